/**
 * Scale-out benchmark (issue 7): C-STORE ingest throughput with 1 vs 2 `tessera serve` nodes on one
 * PostgreSQL database, and QIDO-RS latency at 100000 instances on SQLite vs PostgreSQL, in one run.
 *
 *   npm run bench:scale -- [--instances 2000] [--size 180] [--parallel 4] [--rounds 3] [--no-s3]
 *                          [--qido-instances 100000] [--per-study 10] [--queries 140]
 *                          [--phases ingest,qido] [--interleave] [--pg-sync-off] [--keep]
 *
 * Ingest. N (--instances, 2000) CT/MR instances of S x S 16-bit pixels (--size 180: ~64 KiB files),
 * 10 per study in two series (bench/qr.ts's generator through bench/common.ts), generated once into
 * os.tmpdir()/tessera-bench-scale/files-*. P (--parallel, 4) storescu processes per node
 * (TCP_NODELAY=1), each sending one contiguous share of the files (whole studies; --interleave: every
 * (P*nodes)-th file, so that all associations write into the same studies at once). Configurations,
 * each on a fresh database and a fresh blob folder (or bucket):
 * - `sqlite 1 node`: the embedded archive (SQLite index + blob folder in --data-dir), for reference;
 * - `pg 1 node`: `--index postgres://.../<fresh db> --blobs <run>/shared-blobs`;
 * - `pg 2 nodes`: two nodes on the same database and the same blob folder (a shared volume), the same
 *   N instances split over 2 x P associations;
 * - unless --no-s3: the same two with `--blobs s3://<fresh bucket>/archive` on s3rver
 *   (test/helpers/s3.ts). s3rver is a test server (one Node.js process writing files), not a
 *   performance peer: its figures say how Tessera behaves with a slow blob store, not how S3 does.
 * Each node first gets an untimed warm-up of 20 other instances (one storescu). The timer runs from the
 * first storescu spawn to the last exit. Checks: every storescu exits 0; every node's QIDO-RS /studies
 * lists the studies sent with NumberOfStudyRelatedInstances adding up to the instances sent (and its
 * /stats agrees, except on s3rver: its ListObjectsV2 fails past 1000 objects, jamhall/s3rver#814, and
 * /stats sums the blob store's usage with it); `SELECT count(*)` and `Index.verify()` on PostgreSQL, or
 * the SQLite file once the node stopped; the blob store holds one blob per instance and no temp.
 * Where the time goes: CPU seconds of the nodes, of PostgreSQL (postmaster and backends), of s3rver, of
 * the storescu processes and of this process, and "other" (the machine's busy time none of them accounts
 * for: kernel threads, softirqs, other processes); the machine's busy and iowait share (/proc/stat);
 * disk writes and cache flushes (/proc/diskstats).
 * R (--rounds, 3) rounds, the configurations in alternating order; medians; ratios 2 nodes / 1 node.
 *
 * PostgreSQL: a throwaway cluster (Debian's postgresql 14+, initdb'd into the run folder, run as the
 * postgres user when this runs as root), durable defaults (fsync, synchronous_commit on, like the
 * SQLite index's synchronous=FULL), shared_buffers etc. untuned; --pg-sync-off starts it with
 * synchronous_commit=off (commits no longer wait for the WAL flush) to show what the flush costs.
 *
 * QIDO. M (--qido-instances, 100000) index rows, K (--per-study, 10) per study (10000 studies of
 * 64x64 CT/MR images in two series, patients and names from the generator, StudyDate over 15 years,
 * AccessionNumber, ModalitiesInStudy CT / MR / CT\MR), written straight into a SqliteIndex file and a
 * PostgresIndex database in batches of 500 (the records ingest would build: the same columns and a
 * DICOM JSON metadata document per instance; no blobs). PostgreSQL is then ANALYZEd (as autovacuum
 * would do after such a load); SQLite is left as the product leaves it. One `tessera serve` per index
 * (`--data-dir` holding the index.sqlite; `--index postgres://...`) answers Q (--queries, 140) QIDO-RS
 * queries of 7 kinds in turn (bench/web.ts's): /studies?PatientName=ABC*, ?StudyDate=range,
 * ?PatientID=, ?AccessionNumber=, ?ModalitiesInStudy=&StudyDate=range, /studies/{s}/series,
 * /studies/{s}/series/{se}/instances; each query to both servers in turn (SQLite first on even ones), a
 * warm-up pass, then R rounds; latency from the request to the parsed JSON; median and p95 per server
 * and kind; ratio PostgreSQL / SQLite (> 1: PostgreSQL slower). Every answer is checked against the
 * generator's matches, and both servers must return the same match counts. The EXPLAIN (ANALYZE,
 * BUFFERS) of one study-level PatientName page on PostgreSQL (the SQL the query engine writes, from
 * querySql with POSTGRES_DIALECT) and SQLite's EXPLAIN QUERY PLAN of the same query are printed.
 *
 * Everything lives under os.tmpdir()/tessera-bench-scale/run-PID; ingest runs' folders are renamed
 * into its graveyard (deleting ~1 GB mid-run stalls file creation on this disk) and the whole run
 * folder is deleted at the very end (--keep leaves it). Progress goes to stderr; the tables and then
 * a JSON summary line to stdout. Exit code 1 when a check fails.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ListObjectsCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  blobKeyFor,
  type CommitItem,
  type Index,
  type InstanceRecord,
  openPostgresIndex,
  POSTGRES_DIALECT,
  prepareQuery,
  querySql,
  SQLITE_DIALECT,
  SqliteIndex,
} from '../src/archive/index.ts';
import { datasetToJson, writePart10 } from '../src/codec/index.ts';
import { parseQidoQuery } from '../src/dicomweb/index.ts';
import { S3RVER_CREDENTIALS, type S3TestServer, startS3Server } from '../test/helpers/s3.ts';
import {
  type BenchStudy,
  benchBaseSlice,
  benchChildren,
  benchInstance,
  benchLog,
  benchQidoQueries,
  benchSopUid,
  benchStudy,
  diskIo,
  ensureBenchFiles,
  freePort,
  fx,
  median,
  type Proc,
  pad,
  percentile,
  prepareRunDir,
  procCpuSeconds,
  procStatusKiB,
  procTreeCpuSeconds,
  QIDO_KIND_LABEL,
  QIDO_KINDS,
  type QidoKind,
  type QidoQuery,
  QR_DATA_VERSION,
  readFlags,
  readPhases,
  round2,
  type SystemCpu,
  systemCpu,
  tesseraEntry,
  tesseraRevision,
  tesseraServeArgv,
  withTimeout,
} from './common.ts';

const exec = promisify(execFile);

// ---------------------------------------------------------------------------------------------------
// Options

const MiB = 1024 * 1024;
const HOST = '127.0.0.1';
const BENCH_DIR = path.join(os.tmpdir(), 'tessera-bench-scale');
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '..');
/** The bundle `tessera` runs (built now: dist/main.js). */
const TESSERA_MAIN = tesseraEntry(ROOT);
const NODE_READY_MS = 60_000;
const QUERY_TIMEOUT_MS = 60_000;
const INGEST_NAMESPACE = 'tessera-bench-scale-ingest';
const WARMUP_NAMESPACE = 'tessera-bench-scale-warmup';
const QIDO_NAMESPACE = 'tessera-bench-scale-qido';
const DATA_VERSION = `scale-v1 ${QR_DATA_VERSION}`;
const INGEST_PER_STUDY = 10;
/** Untimed warm-up instances per node before each ingest run. */
const WARMUP_PER_NODE = 20;
const LOAD_BATCH = 500;
const PG_LOAD_INFLIGHT = 2;
const QIDO_SIZE = 64;
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const CHILD_ENV: NodeJS.ProcessEnv = { ...process.env, TCP_NODELAY: '1' };

type Phase = 'ingest' | 'qido';
const PHASES: readonly Phase[] = ['ingest', 'qido'];

interface Args {
  instances: number;
  size: number;
  parallel: number;
  rounds: number;
  s3: boolean;
  qidoInstances: number;
  perStudy: number;
  queries: number;
  phases: Phase[];
  interleave: boolean;
  pgSyncOff: boolean;
  keep: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    instances: 2000,
    size: 180,
    parallel: 4,
    rounds: 3,
    s3: true,
    qidoInstances: 100_000,
    perStudy: 10,
    queries: 140,
    phases: [...PHASES],
    interleave: false,
    pgSyncOff: false,
    keep: false,
  };
  readFlags(argv, (flag, { value, int }) => {
    switch (flag) {
      case '--instances':
        args.instances = int(10, 1_000_000);
        break;
      case '--size':
        args.size = int(8, 1024);
        break;
      case '--parallel':
        args.parallel = int(1, 32);
        break;
      case '--rounds':
        args.rounds = int(1, 100);
        break;
      case '--no-s3':
        args.s3 = false;
        break;
      case '--qido-instances':
        args.qidoInstances = int(10, 10_000_000);
        break;
      case '--per-study':
        args.perStudy = int(2, 1000);
        break;
      case '--queries':
        args.queries = int(7, 100_000);
        break;
      case '--phases':
        args.phases = readPhases(value(), PHASES);
        break;
      case '--interleave':
        args.interleave = true;
        break;
      case '--pg-sync-off':
        args.pgSyncOff = true;
        break;
      case '--keep':
        args.keep = true;
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: tsx bench/scale.ts [--instances N=2000] [--size S=180] [--parallel P=4] [--rounds R=3] [--no-s3]\n' +
            '                          [--qido-instances M=100000] [--per-study K=10] [--queries Q=140]\n' +
            '                          [--phases ingest,qido] [--interleave] [--pg-sync-off] [--keep]\n' +
            '  --instances/--size: the ingest set (N instances of SxS 16-bit pixels, 10 per study; 180: ~64 KiB files)\n' +
            '  --parallel: storescu associations per node; --rounds: ingest rounds and QIDO rounds\n' +
            '  --no-s3: leave out the runs with blobs on s3rver (a test server, not a performance peer)\n' +
            '  --qido-instances/--per-study: index rows written straight into SQLite and PostgreSQL for QIDO\n' +
            '  --queries: QIDO-RS queries per round (7 kinds in turn, the same list for both servers)\n' +
            '  --interleave: every association sends every (P*nodes)-th file (all of them into the same studies)\n' +
            '  --pg-sync-off: PostgreSQL with synchronous_commit=off (not durable: shows what the WAL flush costs)\n' +
            '  --keep: leave the run folder (databases, blobs, logs)',
        );
        process.exit(0);
        break;
      default:
        return false;
    }
    return true;
  });
  args.instances = Math.ceil(args.instances / INGEST_PER_STUDY) * INGEST_PER_STUDY;
  args.qidoInstances = Math.ceil(args.qidoInstances / args.perStudy) * args.perStudy;
  return args;
}

const { log, loud } = benchLog('scale');

// ---------------------------------------------------------------------------------------------------
// Children, PostgreSQL, s3rver

/** Set once the PostgreSQL cluster runs: stops it synchronously (on exit, error or signal). */
let stopPostgresNow: (() => void) | undefined;
const children = benchChildren(ROOT, CHILD_ENV, log, () => stopPostgresNow?.());

interface BenchPostgres {
  readonly port: number;
  readonly version: string;
  /** The postmaster's pid (its backends are its children). */
  readonly pid: number;
  readonly settings: Record<string, string>;
  url(database: string): string;
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

/** The newest /usr/lib/postgresql/<major>/bin with initdb and pg_ctl. */
function postgresBin(): string {
  const root = process.env.TESSERA_PG_ROOT ?? '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .map(Number)
        .filter((v) => Number.isInteger(v) && v >= 14)
        .sort((a, b) => b - a)
    : [];
  for (const v of versions) {
    const bin = path.join(root, String(v), 'bin');
    if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'pg_ctl'))) return bin;
  }
  throw new Error(
    `PostgreSQL 14+ is not installed (no ${root}/<version>/bin/initdb): apt-get install postgresql`,
  );
}

/**
 * A throwaway PostgreSQL cluster in `dir` on a free port of 127.0.0.1, as the postgres user when this
 * runs as root (PostgreSQL refuses root). Durable defaults unless `syncOff`; trust authentication.
 */
async function startBenchPostgres(dir: string, syncOff: boolean): Promise<BenchPostgres> {
  const bin = postgresBin();
  const asRoot = process.getuid?.() === 0;
  mkdirSync(dir, { recursive: true });
  if (asRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid))
      throw new Error("running as root, but there is no 'postgres' user to run PostgreSQL as");
    chownSync(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  const pgLog = path.join(dir, 'postgresql.log');
  const run = async (file: string, argv: readonly string[]): Promise<void> => {
    const [cmd, a] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...argv]] : [file, [...argv]];
    try {
      await exec(cmd, a, { timeout: 120_000, env: { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' } });
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      const tail = existsSync(pgLog) ? readFileSync(pgLog, 'utf8').slice(-3000) : '';
      throw new Error(`${file} ${argv.join(' ')}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}\n${tail}`);
    }
  };
  // The same cluster set-up as test/helpers/postgres.ts (UTF8, locale C.UTF-8), but durable.
  await run(path.join(bin, 'initdb'), [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C.UTF-8',
    '--no-sync',
  ]);
  let port = 0;
  for (let attempt = 0; ; attempt++) {
    port = await freePort(HOST);
    try {
      await run(path.join(bin, 'pg_ctl'), [
        '-D',
        data,
        '-l',
        pgLog,
        '-w',
        '-t',
        '60',
        '-o',
        `-p ${port} -k ${dir} -c listen_addresses=${HOST} -c max_connections=200${syncOff ? ' -c synchronous_commit=off' : ''}`,
        'start',
      ]);
      break;
    } catch (err) {
      if (attempt >= 2) throw err;
    }
  }
  const pid = Number(readFileSync(path.join(data, 'postmaster.pid'), 'latin1').split('\n')[0]);
  const stopCmd = (mode: string): [string, string[]] => {
    const argv = ['-D', data, '-m', mode, '-w', 'stop'];
    return asRoot
      ? ['runuser', ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), ...argv]]
      : [path.join(bin, 'pg_ctl'), argv];
  };
  let running = true;
  stopPostgresNow = () => {
    if (!running) return;
    running = false;
    const [cmd, argv] = stopCmd('immediate');
    spawnSync(cmd, argv, { timeout: 60_000, stdio: 'ignore' });
  };
  const url = (database: string): string =>
    `postgres://postgres@${HOST}:${port}/${encodeURIComponent(database)}`;
  const settings: Record<string, string> = {};
  const client = new pg.Client({ connectionString: url('postgres') });
  await client.connect();
  let version = '';
  try {
    version = String((await client.query('SHOW server_version')).rows[0]?.server_version ?? '');
    for (const name of [
      'fsync',
      'synchronous_commit',
      'full_page_writes',
      'wal_sync_method',
      'shared_buffers',
      'max_wal_size',
      'lc_collate',
    ]) {
      const r = await client.query(`SELECT current_setting('${name}') AS v`);
      settings[name] = String(r.rows[0]?.v);
    }
  } finally {
    await client.end();
  }
  return {
    port,
    version,
    pid,
    settings,
    url,
    async createDatabase(name) {
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE template0 ENCODING 'UTF8'`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    async stop() {
      if (!running) return;
      running = false;
      const [cmd, argv] = stopCmd('fast');
      await exec(cmd, argv, { timeout: 120_000 }).catch(() => undefined);
    },
  };
}

async function withPg<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end();
  }
}

/** s3rver's process (a child of this one, started by test/helpers/s3.ts), for its CPU time. */
function s3rverPid(): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1');
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && cmd.includes('helpers/s3.ts') && cmd.includes('--serve'))
        return Number(name);
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Nodes

interface TesseraNode {
  readonly name: string;
  readonly proc: Proc;
  readonly dimsePort: number;
  readonly httpPort: number;
  /** DICOMweb service root. */
  readonly base: string;
  readonly dataDir: string;
}

const LISTENING = /listening on 127\.0\.0\.1:(\d+) \(DIMSE\), http:\/\/127\.0\.0\.1:(\d+), archive in /;

/** `tessera serve` on free ports (port 0), ready once it prints its listening line. */
async function startNode(name: string, dataDir: string, extra: readonly string[]): Promise<TesseraNode> {
  mkdirSync(dataDir, { recursive: true });
  const proc = children.launch(process.execPath, tesseraServeArgv(TESSERA_MAIN, dataDir, 0, 0, HOST, extra), {
    group: true,
  });
  let exited: number | string | undefined;
  void proc.exited.then((c) => {
    exited = c;
  });
  const deadline = performance.now() + NODE_READY_MS;
  for (;;) {
    const m = LISTENING.exec(proc.output());
    if (m) {
      const httpPort = Number(m[2]);
      return {
        name,
        proc,
        dimsePort: Number(m[1]),
        httpPort,
        base: `http://${HOST}:${httpPort}/dicomweb`,
        dataDir,
      };
    }
    if (exited !== undefined)
      throw new Error(`node ${name} exited (${exited}) before listening:\n${proc.output()}`);
    if (performance.now() > deadline)
      throw new Error(`node ${name} not listening after ${NODE_READY_MS} ms:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const agent = new http.Agent({ keepAlive: true });

function httpGet(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.once('error', reject);
    });
    const timer = setTimeout(
      () => req.destroy(new Error(`GET ${url}: not done within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** What a node's QIDO-RS /studies says it holds: studies, and the sum of their NumberOfStudyRelatedInstances. */
async function qidoTotals(n: TesseraNode): Promise<{ studies: number; instances: number }> {
  const r = await httpGet(
    `${n.base}/studies?limit=10000&includefield=00201208`,
    { accept: 'application/dicom+json' },
    60_000,
  );
  if (r.status !== 200)
    throw new Error(`node ${n.name} QIDO /studies: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  const rows = JSON.parse(r.text) as Record<string, { Value?: unknown[] }>[];
  let instances = 0;
  for (const row of rows) instances += Number(row['00201208']?.Value?.[0] ?? Number.NaN);
  return { studies: rows.length, instances };
}

/** The node's index counts from its admin /stats. */
async function nodeInstances(n: TesseraNode): Promise<number> {
  const r = await httpGet(`http://${HOST}:${n.httpPort}/stats`, {}, 30_000);
  if (r.status !== 200) throw new Error(`node ${n.name} /stats: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return Number((JSON.parse(r.text) as { index?: { instances?: number } }).index?.instances);
}

// ---------------------------------------------------------------------------------------------------
// Ingest runs

type IndexKind = 'sqlite' | 'pg';
type BlobKind = 'folder' | 's3';

interface IngestConfig {
  readonly id: string;
  readonly label: string;
  readonly index: IndexKind;
  readonly blobs: BlobKind;
  readonly nodes: number;
}

function ingestConfigs(args: Args): IngestConfig[] {
  const out: IngestConfig[] = [
    { id: 'sqlite-1', label: 'sqlite, 1 node, folder', index: 'sqlite', blobs: 'folder', nodes: 1 },
    { id: 'pg-1', label: 'pg, 1 node, shared folder', index: 'pg', blobs: 'folder', nodes: 1 },
    { id: 'pg-2', label: 'pg, 2 nodes, shared folder', index: 'pg', blobs: 'folder', nodes: 2 },
  ];
  if (args.s3)
    out.push(
      { id: 'pg-1-s3', label: 'pg, 1 node, s3rver (test)', index: 'pg', blobs: 's3', nodes: 1 },
      { id: 'pg-2-s3', label: 'pg, 2 nodes, s3rver (test)', index: 'pg', blobs: 's3', nodes: 2 },
    );
  return out;
}

interface CpuSnapshot {
  readonly nodes: number;
  readonly pg: number;
  readonly s3: number;
  readonly self: { own: number; children: number };
  readonly sys: SystemCpu | undefined;
  readonly disk: ReturnType<typeof diskIo>;
}

interface IngestRun {
  readonly config: string;
  readonly round: number;
  readonly ok: boolean;
  readonly problems: string[];
  readonly ms: number;
  readonly instances: number;
  readonly bytes: number;
  /** CPU seconds in the timed window. */
  readonly cpu: { nodes: number; pg: number; s3: number; storescu: number; bench: number };
  readonly busyShare: number;
  readonly iowaitShare: number;
  /** The machine's busy CPU seconds in the timed window (all processes and the kernel). */
  readonly busyS: number;
  readonly diskWrites: number;
  readonly diskMiB: number;
  readonly flushes: number;
  readonly peakRssKiB: number[];
  readonly counts: string;
}

function share<T>(xs: readonly T[], k: number, of: number, interleave: boolean): T[] {
  if (interleave) return xs.filter((_, i) => i % of === k);
  const per = Math.ceil(xs.length / of);
  return xs.slice(k * per, (k + 1) * per);
}

function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    n += e.isDirectory() ? countFiles(path.join(dir, e.name)) : 1;
  return n;
}

/**
 * Objects under a prefix, listed with ListObjects (v1, Marker): s3rver answers ListObjectsV2 with a 500
 * as soon as more than MaxKeys (1000) objects match (jamhall/s3rver#814).
 */
async function countObjects(s3: S3TestServer, bucket: string, prefix: string): Promise<number> {
  let n = 0;
  let marker: string | undefined;
  do {
    const page = await s3.client.send(
      new ListObjectsCommand({ Bucket: bucket, Prefix: prefix, ...(marker ? { Marker: marker } : {}) }),
    );
    n += page.Contents?.length ?? 0;
    marker = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
  } while (marker !== undefined);
  return n;
}

interface IngestContextShared {
  readonly args: Args;
  readonly files: readonly string[];
  readonly bytes: number;
  readonly warmup: readonly string[];
  readonly runDir: string;
  readonly graveyard: string;
  readonly pg: BenchPostgres;
  readonly s3: S3TestServer | undefined;
}

function storescu(node: TesseraNode, files: readonly string[]): Proc {
  return children.launch(
    'storescu',
    ['-aec', 'TESSERA', '-ta', '60', HOST, String(node.dimsePort), ...files],
    {
      group: false,
    },
  );
}

async function ingestRun(c: IngestConfig, round: number, x: IngestContextShared): Promise<IngestRun> {
  const { args } = x;
  const dir = path.join(x.runDir, `ingest-${c.id}-r${round + 1}`);
  mkdirSync(dir, { recursive: true });
  const problems: string[] = [];
  const nodes: TesseraNode[] = [];
  let indexUrl: string | undefined;
  let bucket: string | undefined;
  const expected = x.files.length + WARMUP_PER_NODE * c.nodes;
  let ms = Number.NaN;
  let counts = '';
  const cpu = { nodes: Number.NaN, pg: Number.NaN, s3: Number.NaN, storescu: Number.NaN, bench: Number.NaN };
  let busyShare = Number.NaN;
  let iowaitShare = Number.NaN;
  let busyS = Number.NaN;
  let diskWrites = Number.NaN;
  let diskMiB = Number.NaN;
  let flushes = Number.NaN;
  const peakRssKiB: number[] = [];
  const s3pid = x.s3 ? s3rverPid() : undefined;
  try {
    const extra: string[] = ['--log-level', 'warn'];
    if (c.index === 'pg') {
      indexUrl = await x.pg.createDatabase(`ingest_${c.id.replaceAll('-', '_')}_r${round + 1}`);
      extra.push('--index', indexUrl);
    }
    if (c.blobs === 's3') {
      bucket = await x.s3!.createBucket('scale');
      extra.push('--blobs', `s3://${bucket}/archive`);
    } else if (c.index === 'pg') extra.push('--blobs', path.join(dir, 'shared-blobs'));
    // One at a time: the first one runs the migrations of the fresh database.
    for (let k = 0; k < c.nodes; k++)
      nodes.push(await startNode(`${c.id}/${'ab'[k]}`, path.join(dir, `node-${'ab'[k]}`), extra));
    // Warm-up (untimed): 20 other instances through each node.
    const warm = nodes.map((n, k) =>
      storescu(n, x.warmup.slice(k * WARMUP_PER_NODE, (k + 1) * WARMUP_PER_NODE)),
    );
    for (const p of warm) {
      const code = await withTimeout(p.exited, 120_000);
      if (code !== 0) throw new Error(`warm-up storescu: ${String(code)}\n${p.output().slice(-2000)}`);
    }
    // Timed: P storescu per node, each with its share of the files.
    const S = args.parallel * c.nodes;
    const shares = Array.from({ length: S }, (_, k) => share(x.files, k, S, args.interleave));
    const before = snapshot(nodes, x.pg, s3pid);
    const t0 = performance.now();
    const procs = shares.map((files, k) => storescu(nodes[Math.floor(k / args.parallel)]!, files));
    const limitMs = 120_000 + 100 * x.files.length;
    const codes = await withTimeout(Promise.all(procs.map((p) => p.exited)), limitMs);
    ms = performance.now() - t0;
    const after = snapshot(nodes, x.pg, s3pid);
    if (codes === 'timeout') {
      for (const p of procs) children.signal(p, 'SIGKILL');
      throw new Error(`storescu not done within ${limitMs} ms`);
    }
    codes.forEach((code, k) => {
      if (code !== 0)
        problems.push(`storescu ${k + 1}/${S} exited ${String(code)}: ${procs[k]!.output().slice(-800)}`);
    });
    cpu.nodes = after.nodes - before.nodes;
    cpu.pg = after.pg - before.pg;
    cpu.s3 = after.s3 - before.s3;
    cpu.storescu = after.self.children - before.self.children;
    cpu.bench = after.self.own - before.self.own;
    if (before.sys && after.sys) {
      const total =
        after.sys.busy +
        after.sys.idle +
        after.sys.iowait -
        (before.sys.busy + before.sys.idle + before.sys.iowait);
      busyS = after.sys.busy - before.sys.busy;
      busyShare = busyS / total;
      iowaitShare = (after.sys.iowait - before.sys.iowait) / total;
    }
    if (before.disk && after.disk) {
      diskWrites = after.disk.writes - before.disk.writes;
      diskMiB = (after.disk.writtenBytes - before.disk.writtenBytes) / MiB;
      flushes = after.disk.flushes - before.disk.flushes;
    }
    for (const n of nodes) peakRssKiB.push(procStatusKiB(n.proc.pid, 'VmHWM') ?? Number.NaN);
    // Counts: every node sees them all (QIDO-RS; /stats too, except on s3rver, whose ListObjectsV2 fails
    // past 1000 objects and /stats sums the blob store's usage with it).
    const seen: string[] = [];
    const studies = x.files.length / INGEST_PER_STUDY + (WARMUP_PER_NODE / INGEST_PER_STUDY) * c.nodes;
    for (const n of nodes) {
      const q = await qidoTotals(n);
      seen.push(`${q.studies}/${q.instances}`);
      if (q.instances !== expected || q.studies !== studies)
        problems.push(
          `node ${n.name} QIDO: ${q.studies} studies, ${q.instances} instances; ${studies} / ${expected} sent`,
        );
      if (c.blobs !== 's3') {
        const v = await nodeInstances(n);
        if (v !== expected) problems.push(`node ${n.name} /stats: ${v} instances, ${expected} sent`);
      }
    }
    counts = `QIDO studies/instances per node ${seen.join(', ')}`;
    if (indexUrl) {
      const n = await withPg(indexUrl, async (cl) =>
        Number((await cl.query('SELECT count(*) AS n FROM instances')).rows[0]?.n),
      );
      counts += `; SQL count ${n}`;
      if (n !== expected) problems.push(`SELECT count(*) FROM instances: ${n}, ${expected} sent`);
      const index = await openPostgresIndex(indexUrl, { poolSize: 1 });
      try {
        const v = await index.verify();
        if (v.length) problems.push(`PostgreSQL verify(): ${v.slice(0, 5).join('; ')}`);
        else counts += '; verify() ok';
      } finally {
        await index.close();
      }
    }
    if (c.blobs === 's3') {
      const blobs = await countObjects(x.s3!, bucket!, 'archive/blobs/');
      const temps = await countObjects(x.s3!, bucket!, 'archive/tmp/');
      counts += `; ${blobs} objects, ${temps} temps`;
      if (blobs !== expected) problems.push(`s3rver holds ${blobs} blobs, ${expected} sent`);
      if (temps) problems.push(`s3rver holds ${temps} temp objects`);
    }
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    for (const n of nodes) await children.stop(n.proc);
  }
  // Checks that need the nodes stopped: the SQLite file, the blob folder.
  try {
    if (c.index === 'sqlite' && nodes[0]) {
      const index = SqliteIndex.open(path.join(nodes[0].dataDir, 'index.sqlite'));
      try {
        const n = (await index.counts()).instances;
        const v = await index.verify();
        counts += `; sqlite ${n}${v.length ? '' : ', verify() ok'}`;
        if (n !== expected) problems.push(`index.sqlite: ${n} instances, ${expected} sent`);
        if (v.length) problems.push(`SQLite verify(): ${v.slice(0, 5).join('; ')}`);
      } finally {
        await index.close();
      }
    }
    if (c.blobs === 'folder' && nodes[0]) {
      const root = c.index === 'pg' ? path.join(dir, 'shared-blobs') : nodes[0].dataDir;
      const blobs = countFiles(path.join(root, 'blobs'));
      const temps = countFiles(path.join(root, 'tmp'));
      counts += `; ${blobs} blob files, ${temps} temps`;
      if (blobs !== expected) problems.push(`${blobs} blob files, ${expected} sent`);
      if (temps) problems.push(`${temps} temp files left`);
    }
  } catch (err) {
    problems.push((err as Error).message);
  }
  renameSync(dir, path.join(x.graveyard, `${path.basename(dir)}-${Date.now()}`));
  const run: IngestRun = {
    config: c.id,
    round,
    ok: problems.length === 0,
    problems,
    ms,
    instances: x.files.length,
    bytes: x.bytes,
    cpu,
    busyShare,
    iowaitShare,
    busyS,
    diskWrites,
    diskMiB,
    flushes,
    peakRssKiB,
    counts,
  };
  log(
    `ingest ${c.label} round ${round + 1}: ${run.ok ? 'ok' : 'FAILED'} ${(ms / 1000).toFixed(2)} s, ` +
      `${((x.files.length / ms) * 1000).toFixed(0)} inst/s; CPU s nodes ${fx(cpu.nodes)} pg ${fx(cpu.pg)} ` +
      `s3rver ${fx(cpu.s3)} storescu ${fx(cpu.storescu)}; busy ${fx(busyShare * 100, 0)}% iowait ${fx(iowaitShare * 100, 0)}%; ${counts}` +
      (run.ok ? '' : `\n  ${problems.join('\n  ').slice(0, 3000)}`),
  );
  return run;
}

function snapshot(
  nodes: readonly TesseraNode[],
  postgres: BenchPostgres,
  s3pid: number | undefined,
): CpuSnapshot {
  let n = 0;
  for (const node of nodes) n += procTreeCpuSeconds(node.proc.pid) ?? Number.NaN;
  return {
    nodes: n,
    pg: procTreeCpuSeconds(postgres.pid) ?? Number.NaN,
    s3: s3pid === undefined ? 0 : (procTreeCpuSeconds(s3pid) ?? Number.NaN),
    self: procCpuSeconds('self') ?? { own: Number.NaN, children: Number.NaN },
    sys: systemCpu(),
    disk: diskIo(),
  };
}

// ---------------------------------------------------------------------------------------------------
// QIDO: the index filled directly, then served

/** The index records of a study, as ingest builds them from its files (bench/common.ts's instances). */
function studyRecords(st: BenchStudy, base: Buffer, size: number, receivedAt: string): InstanceRecord[] {
  const out: InstanceRecord[] = [];
  let i = 0;
  for (const se of st.series) {
    for (let k = 0; k < se.instances; k++, i++) {
      const sop = benchSopUid(st, i);
      const ds = benchInstance(st, se, i, sop, QIDO_SIZE, base);
      const metadata = JSON.stringify(
        datasetToJson(ds, {
          bulkThreshold: 1024,
          bulkDataUri: (_el, p) =>
            `bulk/${p.map((t, j) => (j % 2 === 0 ? t.toString(16).toUpperCase().padStart(8, '0') : String(t))).join('/')}`,
        }),
      );
      // A stand-in for the sha256 of the received bytes (no blob is stored for this part).
      const checksum = sha256(sop);
      const pixelBytes = QIDO_SIZE * QIDO_SIZE * 2;
      out.push({
        patient: {
          patientId: st.patientId,
          patientName: st.patientName,
          birthDate: st.birthDate,
          sex: st.sex,
        },
        study: {
          studyInstanceUid: st.uid,
          studyDate: st.date,
          studyTime: st.time,
          accessionNumber: st.accession,
          studyId: String(st.index + 2),
          studyDescription: st.description,
          referringPhysicianName: ds.string(0x00080090)!,
        },
        series: {
          seriesInstanceUid: se.uid,
          modality: se.modality,
          seriesNumber: se.number,
          seriesDescription: `${se.modality} SERIES ${se.number}`,
          seriesDate: st.date,
          seriesTime: st.time,
          institutionName: 'Saint Example General Hospital',
          stationName: `${se.modality}${(Math.abs(st.index) % 4) + 1}`,
        },
        instance: {
          sopInstanceUid: sop,
          sopClassUid: ds.string(0x00080016)!,
          instanceNumber: i + 1,
          transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN,
          rows: QIDO_SIZE,
          columns: QIDO_SIZE,
          bitsAllocated: 16,
          contentDate: st.date,
          contentTime: st.time,
          blobKey: blobKeyFor(sop, checksum),
          size,
          checksum,
          receivedAt,
          sourceAETitle: 'STORESCU',
          sourceAddress: HOST,
          metadata,
          frameOffsets: JSON.stringify([[size - pixelBytes, pixelBytes]]),
          characterSet: 'ISO_IR 100',
        },
      });
    }
  }
  return out;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

interface LoadResult {
  readonly ms: number;
  readonly sqliteMs: number;
  readonly pgWaitMs: number;
  readonly buildMs: number;
  readonly instances: number;
}

/** Writes the QIDO set into both indexes, LOAD_BATCH records per commit (PostgreSQL's commit overlaps SQLite's). */
async function loadIndexes(
  studies: readonly BenchStudy[],
  sqlitePath: string,
  pgUrl: string,
): Promise<LoadResult> {
  const base = benchBaseSlice(QIDO_SIZE);
  const first = studies[0]!;
  const size = writePart10(
    { dataset: benchInstance(first, first.series[0]!, 0, benchSopUid(first, 0), QIDO_SIZE, base) },
    EXPLICIT_VR_LITTLE_ENDIAN,
  ).length;
  const receivedAt = new Date().toISOString();
  const sqlite = SqliteIndex.open(sqlitePath, { synchronous: 'NORMAL' });
  const postgres: Index = await openPostgresIndex(pgUrl, { poolSize: PG_LOAD_INFLIGHT });
  const t0 = performance.now();
  let sqliteMs = 0;
  let pgWaitMs = 0;
  let buildMs = 0;
  let instances = 0;
  /** PostgreSQL commits in flight (two: the server's backends can use both CPUs while this process builds). */
  const inflight: Promise<void>[] = [];
  let batch: CommitItem[] = [];
  let lastLog = t0;
  const check = (outcomes: readonly { kind: string }[], what: string): void => {
    const bad = outcomes.filter((o) => o.kind !== 'stored');
    if (bad.length) throw new Error(`${what}: ${bad.length} records not stored (${bad[0]!.kind})`);
  };
  const wait = async (keep: number): Promise<void> => {
    const tw = performance.now();
    while (inflight.length > keep) await inflight.shift();
    pgWaitMs += performance.now() - tw;
  };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const items = batch;
    batch = [];
    await wait(PG_LOAD_INFLIGHT - 1);
    const p = postgres.commit(items).then((o) => check(o, 'PostgreSQL'));
    p.catch(() => undefined); // awaited in order by wait(); this only keeps it from being unhandled meanwhile
    inflight.push(p);
    const ts = performance.now();
    check(sqlite.commitSync(items), 'SQLite');
    sqliteMs += performance.now() - ts;
    instances += items.length;
    if (performance.now() - lastLog > 15_000) {
      lastLog = performance.now();
      log(
        `  loaded ${instances} of ${studies.length * studies[0]!.instances} (${((lastLog - t0) / 1000).toFixed(0)} s)`,
      );
    }
  };
  try {
    for (const st of studies) {
      const tb = performance.now();
      for (const record of studyRecords(st, base, size, receivedAt)) batch.push({ record, policy: 'reject' });
      buildMs += performance.now() - tb;
      if (batch.length >= LOAD_BATCH) await flush();
    }
    await flush();
    await wait(0);
  } finally {
    await Promise.allSettled(inflight);
    sqlite.closeSync();
    await postgres.close();
  }
  return { ms: performance.now() - t0, sqliteMs, pgWaitMs, buildMs, instances };
}

type QidoServer = 'sqlite' | 'pg';
const QIDO_SERVERS: readonly QidoServer[] = ['sqlite', 'pg'];
const QIDO_LABEL: Record<QidoServer, string> = { sqlite: 'SQLite', pg: 'PostgreSQL' };

interface QidoSample {
  readonly server: QidoServer;
  readonly round: number;
  readonly query: number;
  readonly kind: QidoKind;
  readonly ms: number;
  readonly matches: number;
}

function firstString(
  obj: Record<string, { Value?: unknown[] }> | undefined,
  tag: string,
): string | undefined {
  const v = obj?.[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

async function runQido(
  nodes: Record<QidoServer, TesseraNode>,
  postgres: BenchPostgres,
  queries: readonly QidoQuery[],
  rounds: number,
): Promise<{
  samples: QidoSample[];
  problems: string[];
  mismatches: string[];
  cpuS: Record<QidoServer | 'postgres', number>;
}> {
  const samples: QidoSample[] = [];
  const problems: string[] = [];
  const counts = new Map<number, Map<QidoServer, Set<number>>>();
  const once = async (s: QidoServer, q: QidoQuery, qi: number, round: number): Promise<void> => {
    const t0 = performance.now();
    let res: { status: number; text: string };
    let rows: Record<string, { Value?: unknown[] }>[];
    try {
      res = await httpGet(
        `${nodes[s].base}${q.path}`,
        { accept: 'application/dicom+json', 'accept-encoding': 'identity' },
        QUERY_TIMEOUT_MS,
      );
      rows = res.status === 204 ? [] : (JSON.parse(res.text) as typeof rows);
    } catch (err) {
      problems.push(`${QIDO_LABEL[s]} #${qi} ${q.path}: ${(err as Error).message}`);
      return;
    }
    const ms = performance.now() - t0;
    if (res.status !== 200 && res.status !== 204) {
      problems.push(`${QIDO_LABEL[s]} #${qi} ${q.path}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
      return;
    }
    const uids = rows.map((r) => firstString(r, q.uidTag) ?? '(none)');
    const got = new Set(uids);
    const missing = [...q.expected].filter((u) => !got.has(u)).length;
    const extra = [...got].filter((u) => !q.expected.has(u)).length;
    if (missing || extra || got.size !== uids.length)
      problems.push(
        `${QIDO_LABEL[s]} #${qi} ${q.path}: ${uids.length} returned, ${q.expected.size} expected (${missing} missing, ${extra} extra)`,
      );
    const c = counts.get(qi) ?? new Map<QidoServer, Set<number>>();
    counts.set(qi, c);
    const set = c.get(s) ?? new Set<number>();
    c.set(s, set);
    set.add(uids.length);
    if (round >= 0) samples.push({ server: s, round, query: qi, kind: q.kind, ms, matches: uids.length });
  };
  const pass = async (round: number): Promise<void> => {
    const t0 = performance.now();
    for (let qi = 0; qi < queries.length; qi++) {
      const order = qi % 2 === 0 ? QIDO_SERVERS : [...QIDO_SERVERS].reverse();
      for (const s of order) await once(s, queries[qi]!, qi, round);
    }
    log(
      `qido ${round < 0 ? 'warm-up' : `round ${round + 1}`}: ${queries.length} queries x 2 servers in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        (round < 0
          ? ''
          : QIDO_SERVERS.map((s) => {
              const xs = samples.filter((x) => x.server === s && x.round === round).map((x) => x.ms);
              return `; ${QIDO_LABEL[s]} median ${median(xs).toFixed(2)} ms p95 ${percentile(xs, 95).toFixed(2)} ms`;
            }).join('')),
    );
  };
  await pass(-1);
  const c0 = {
    sqlite: procTreeCpuSeconds(nodes.sqlite.proc.pid) ?? Number.NaN,
    pg: procTreeCpuSeconds(nodes.pg.proc.pid) ?? Number.NaN,
    postgres: procTreeCpuSeconds(postgres.pid) ?? Number.NaN,
  };
  for (let r = 0; r < rounds; r++) await pass(r);
  const cpuS = {
    sqlite: (procTreeCpuSeconds(nodes.sqlite.proc.pid) ?? Number.NaN) - c0.sqlite,
    pg: (procTreeCpuSeconds(nodes.pg.proc.pid) ?? Number.NaN) - c0.pg,
    postgres: (procTreeCpuSeconds(postgres.pid) ?? Number.NaN) - c0.postgres,
  };
  const mismatches: string[] = [];
  for (const [qi, c] of counts) {
    const all = [...c.values()].flatMap((x) => [...x]);
    if (new Set(all).size > 1 || c.size !== 2)
      mismatches.push(
        `#${qi} ${queries[qi]!.path}: ${[...c].map(([k, v]) => `${QIDO_LABEL[k]} ${[...v].join('/')}`).join(', ')}`,
      );
  }
  return { samples, problems, mismatches, cpuS };
}

/** The SQL of the first page of a QIDO-RS study query, as the web layer prepares it (src/web/app.ts). */
function qidoSql(search: string, dialect: typeof POSTGRES_DIALECT): { sql: string; params: unknown[] } {
  const q = parseQidoQuery(new URLSearchParams(search), 'STUDY');
  const prepared = prepareQuery(q.identifier, {
    level: 'STUDY',
    model: 'STUDY_ROOT',
    relational: true,
    caseInsensitivePersonNames: true,
    fuzzyPersonNames: q.fuzzymatching,
    limit: 10_001,
  });
  return querySql(prepared, dialect);
}

async function explainPostgres(
  url: string,
  search: string,
): Promise<{ sql: string; params: unknown[]; plan: string[] }> {
  const { sql, params } = qidoSql(search, POSTGRES_DIALECT);
  const plan = await withPg(url, async (c) => {
    await c.query('SELECT 1'); // warm the connection (the plan's timing is of a warm cache)
    await c.query(sql, params);
    const r = await c.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params);
    return r.rows.map((row) => String((row as Record<string, unknown>)['QUERY PLAN']));
  });
  return { sql, params, plan };
}

function explainSqlite(file: string, search: string): string[] {
  const { sql, params } = qidoSql(search, SQLITE_DIALECT);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...(params as (string | number | null)[])) as {
      id: number;
      parent: number;
      detail: string;
    }[];
    const depth = new Map<number, number>([[0, -1]]);
    return rows.map((r) => {
      const d = (depth.get(r.parent) ?? -1) + 1;
      depth.set(r.id, d);
      return `${'  '.repeat(d)}${r.detail}`;
    });
  } catch (err) {
    return [`(EXPLAIN QUERY PLAN failed: ${(err as Error).message})`];
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Formatting

function dirBytes(p: string): number {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.size;
  let n = 0;
  for (const e of readdirSync(p)) n += dirBytes(path.join(p, e));
  return n;
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  if (args.phases.includes('ingest') && spawnSync('storescu', ['--version']).status !== 0)
    throw new Error('storescu is not installed: apt-get install dcmtk');
  const { commit: tesseraCommit, srcChanges } = tesseraRevision(ROOT);

  mkdirSync(BENCH_DIR, { recursive: true });
  const { runDir, graveyard } = prepareRunDir(BENCH_DIR);
  log(
    `bench dir ${BENCH_DIR}; phases ${args.phases.join(',')}; ingest ${args.instances} x ${args.size}x${args.size}, ` +
      `${args.parallel} storescu per node (${args.interleave ? 'interleaved' : 'whole studies each'}), ${args.s3 ? 'with' : 'without'} s3rver; ` +
      `QIDO at ${args.qidoInstances} instances (${args.perStudy} per study), ${args.queries} queries; rounds ${args.rounds}; ` +
      `tessera at ${tesseraCommit}${srcChanges ? ` + ${srcChanges} uncommitted change(s) in src/` : ''}`,
  );

  const problems: string[] = [];
  const runs: IngestRun[] = [];
  const configs = ingestConfigs(args);
  let ingestBytes = 0;
  let ingestFiles = 0;
  let postgres: BenchPostgres | undefined;
  let s3: S3TestServer | undefined;
  let load: LoadResult | undefined;
  let analyzeMs = Number.NaN;
  let sqliteBytes = Number.NaN;
  let pgBytes = Number.NaN;
  let qido: Awaited<ReturnType<typeof runQido>> | undefined;
  let queries: QidoQuery[] = [];
  let explain:
    | { search: string; pg?: Awaited<ReturnType<typeof explainPostgres>>; sqlite?: string[] }
    | undefined;
  const qidoRss: Partial<Record<QidoServer, number | undefined>> = {};
  const qidoNodes: TesseraNode[] = [];
  try {
    postgres = await startBenchPostgres(path.join(runDir, 'pg'), args.pgSyncOff);
    log(
      `PostgreSQL ${postgres.version} on port ${postgres.port}: ${Object.entries(postgres.settings)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );

    // ---- ingest
    if (args.phases.includes('ingest')) {
      if (args.s3) {
        s3 = await startS3Server();
        Object.assign(CHILD_ENV, {
          AWS_ENDPOINT_URL_S3: s3.endpoint,
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
          AWS_REGION: 'us-east-1',
        });
        log(`s3rver at ${s3.endpoint} (${s3.directory})`);
      }
      const studies = Array.from({ length: args.instances / INGEST_PER_STUDY }, (_, s) =>
        benchStudy(s, INGEST_PER_STUDY, INGEST_NAMESPACE),
      );
      const set = ensureBenchFiles(
        path.join(BENCH_DIR, `files-ingest-${args.size}`),
        `${DATA_VERSION} size=${args.size}`,
        studies,
        args.size,
        (st, i) => `s${String(st.index).padStart(6, '0')}-${String(i).padStart(3, '0')}.dcm`,
        graveyard,
        log,
      );
      const warm = ensureBenchFiles(
        path.join(BENCH_DIR, `files-warmup-${args.size}`),
        `${DATA_VERSION} size=${args.size}`,
        Array.from({ length: (2 * WARMUP_PER_NODE) / INGEST_PER_STUDY }, (_, s) =>
          benchStudy(s, INGEST_PER_STUDY, WARMUP_NAMESPACE),
        ),
        args.size,
        (st, i) => `w${String(st.index).padStart(6, '0')}-${String(i).padStart(3, '0')}.dcm`,
        graveyard,
        log,
      );
      ingestBytes = set.bytes;
      ingestFiles = set.paths.length;
      spawnSync('sync', [], { timeout: 120_000 });
      const shared: IngestContextShared = {
        args,
        files: set.paths,
        bytes: set.bytes,
        warmup: warm.paths,
        runDir,
        graveyard,
        pg: postgres,
        s3,
      };
      for (let r = 0; r < args.rounds; r++) {
        const order = r % 2 === 0 ? configs : [...configs].reverse();
        for (const c of order) runs.push(await ingestRun(c, r, shared));
      }
    }

    // ---- QIDO at M instances
    if (args.phases.includes('qido')) {
      const studies = Array.from({ length: args.qidoInstances / args.perStudy }, (_, s) =>
        benchStudy(s, args.perStudy, QIDO_NAMESPACE),
      );
      const sqliteDir = path.join(runDir, 'qido-sqlite');
      mkdirSync(sqliteDir, { recursive: true });
      const sqliteFile = path.join(sqliteDir, 'index.sqlite');
      const pgUrl = await postgres.createDatabase('qido');
      log(
        `loading ${args.qidoInstances} instances into ${sqliteFile} and PostgreSQL (batches of ${LOAD_BATCH})`,
      );
      load = await loadIndexes(studies, sqliteFile, pgUrl);
      log(
        `loaded in ${(load.ms / 1000).toFixed(1)} s (SQLite commits ${(load.sqliteMs / 1000).toFixed(1)} s, waiting for PostgreSQL ` +
          `${(load.pgWaitMs / 1000).toFixed(1)} s, records built ${(load.buildMs / 1000).toFixed(1)} s)`,
      );
      const ta = performance.now();
      await withPg(pgUrl, (c) => c.query('ANALYZE'));
      analyzeMs = performance.now() - ta;
      sqliteBytes = dirBytes(sqliteDir);
      pgBytes = await withPg(pgUrl, async (c) =>
        Number((await c.query('SELECT pg_database_size(current_database()) AS n')).rows[0]?.n),
      );
      const nodes: Record<QidoServer, TesseraNode> = {
        sqlite: await startNode('qido/sqlite', sqliteDir, ['--log-level', 'warn']),
        pg: await startNode('qido/pg', path.join(runDir, 'qido-pg-node'), [
          '--index',
          pgUrl,
          '--log-level',
          'warn',
        ]),
      };
      qidoNodes.push(nodes.sqlite, nodes.pg);
      queries = benchQidoQueries(20_240_707, studies, studies, args.queries, false);
      qido = await runQido(nodes, postgres, queries, args.rounds);
      for (const s of QIDO_SERVERS) qidoRss[s] = procStatusKiB(nodes[s].proc.pid, 'VmHWM');
      const search = queries.find((q) => q.kind === 'name')!.path.split('?')[1]!;
      explain = {
        search,
        pg: await explainPostgres(pgUrl, search),
        sqlite: explainSqlite(sqliteFile, search),
      };
    }
  } catch (err) {
    problems.push((err as Error).stack ?? (err as Error).message);
    loud((err as Error).message);
  } finally {
    for (const n of qidoNodes) await children.stop(n.proc);
    children.killAll();
    await postgres?.stop();
    await s3?.stop().catch(() => undefined);
  }

  // ------------------------------------------------------------------------------------------------
  // Figures
  const table: string[] = [];
  let failedChecks = problems.length;
  const summary: Record<string, unknown> = {};

  if (runs.length) {
    const medians = new Map(
      configs.map((c) => {
        const mine = runs.filter((x) => x.config === c.id);
        const good = mine.filter((x) => x.ok);
        const m = (f: (x: IngestRun) => number): number => median(good.map(f));
        return [
          c.id,
          {
            c,
            mine,
            good,
            ms: m((x) => x.ms),
            cpu: {
              nodes: m((x) => x.cpu.nodes),
              pg: m((x) => x.cpu.pg),
              s3: m((x) => x.cpu.s3),
              storescu: m((x) => x.cpu.storescu),
              bench: m((x) => x.cpu.bench),
              other: m(
                (x) =>
                  x.busyS -
                  x.cpu.nodes -
                  x.cpu.pg -
                  (Number.isFinite(x.cpu.s3) ? x.cpu.s3 : 0) -
                  x.cpu.storescu -
                  x.cpu.bench,
              ),
            },
            busy: m((x) => x.busyShare),
            iowait: m((x) => x.iowaitShare),
            flushesPerS: m((x) => x.flushes / (x.ms / 1000)),
            diskMiBPerS: m((x) => x.diskMiB / (x.ms / 1000)),
            rss: Math.max(...mine.flatMap((x) => x.peakRssKiB).filter(Number.isFinite)),
          },
        ] as const;
      }),
    );
    const perInst = (s: number): string => fx((s / ingestFiles) * 1000, 2);
    table.push(
      `[ingest] C-STORE of ${ingestFiles} instances (${(ingestBytes / MiB).toFixed(1)} MiB, ${args.size}x${args.size}x16-bit CT/MR, ` +
        `${fx(ingestBytes / ingestFiles / 1024, 1)} KiB each, 10 per study), ${args.parallel} storescu per node ` +
        `(${args.interleave ? 'interleaved files: all associations in the same studies' : 'each a contiguous share of whole studies'}), ` +
        `fresh database and blob store per run, warm-up of ${WARMUP_PER_NODE} per node; median of ${args.rounds} round(s)`,
    );
    table.push(
      `${pad('', 30, true)}${pad('inst/s', 8)}${pad('MiB/s', 8)}${pad('s', 7)}  rounds (s)          CPU ms/instance: nodes   pg s3rver storescu other | busy iowait | flush/s disk MiB/s | node RSS`,
    );
    for (const c of configs) {
      const s = medians.get(c.id)!;
      const fails = s.mine.length - s.good.length;
      failedChecks += fails;
      table.push(
        `${pad(`  ${c.label}`, 30, true)}${pad(fx((ingestFiles / s.ms) * 1000, 0), 8)}${pad(fx(ingestBytes / MiB / (s.ms / 1000), 1), 8)}${pad(fx(s.ms / 1000, 2), 7)}` +
          `  ${pad(s.mine.map((x) => (x.ok ? (x.ms / 1000).toFixed(2) : 'FAIL')).join(' '), 18, true)}` +
          `${pad(perInst(s.cpu.nodes), 22)}${pad(perInst(s.cpu.pg), 5)}${pad(c.blobs === 's3' ? perInst(s.cpu.s3) : '-', 7)}${pad(perInst(s.cpu.storescu), 9)}${pad(perInst(s.cpu.other), 6)}` +
          ` | ${pad(`${fx(s.busy * 100, 0)}%`, 4)} ${pad(`${fx(s.iowait * 100, 0)}%`, 6)} | ${pad(fx(s.flushesPerS, 0), 7)} ${pad(fx(s.diskMiBPerS, 1), 10)} | ${pad(`${fx(s.rss / 1024, 0)} MiB`, 8)}` +
          (fails ? ` !!! ${fails} FAILED` : ''),
      );
    }
    const ratio = (a: string, b: string): { ratio: number; perRound: number[] } | undefined => {
      const x = medians.get(a);
      const y = medians.get(b);
      if (!x || !y) return undefined;
      const perRound = x.mine.map((rx) => {
        const ry = y.mine.find((z) => z.round === rx.round);
        return rx.ok && ry?.ok ? ry.ms / rx.ms : Number.NaN;
      });
      return { ratio: y.ms / x.ms, perRound };
    };
    const ratios: Record<string, unknown> = {};
    const ratioLine = (key: string, what: string, a: string, b: string): void => {
      const r = ratio(a, b);
      if (!r) return;
      ratios[key] = { ratio: round2(r.ratio), perRound: r.perRound.map((x) => round2(x)) };
      table.push(`ratio  ${what}: ${fx(r.ratio)}x (rounds ${r.perRound.map((x) => fx(x)).join(' ')})`);
    };
    ratioLine('pg2OverPg1Folder', 'throughput pg 2 nodes / pg 1 node, shared folder', 'pg-2', 'pg-1');
    ratioLine(
      'pg2OverPg1S3',
      'throughput pg 2 nodes / pg 1 node, s3rver (test server)',
      'pg-2-s3',
      'pg-1-s3',
    );
    ratioLine('pg1OverSqlite1', 'throughput pg 1 node / sqlite 1 node (both folder)', 'pg-1', 'sqlite-1');
    ratioLine('pg2OverSqlite1', 'throughput pg 2 nodes / sqlite 1 node', 'pg-2', 'sqlite-1');
    for (const r of runs) {
      if (r.ok) continue;
      table.push(`!!! FAILED ${r.config} round ${r.round + 1}: ${r.problems.join(' | ').slice(0, 1500)}`);
    }
    if (runs.every((r) => r.ok))
      table.push(
        `check  every run: all storescu exited 0; each node's QIDO-RS /studies (and /stats, but on s3rver), the index (SQL count / SQLite file, verify()) and the blob store ` +
          `held exactly the ${ingestFiles} + ${WARMUP_PER_NODE}/node warm-up instances sent, no temp left; e.g. ${runs.find((r) => r.config === 'pg-2')?.counts ?? runs[0]!.counts}`,
      );
    table.push(
      `info   CPU ms/instance is CPU time in the timed window / instances (other: the machine's busy time that no process ` +
        `above accounts for: kernel threads such as block I/O and journal work, softirqs, other processes); busy and iowait are shares of the machine's ${os.cpus().length} CPUs (/proc/stat); ` +
        'flush/s: disk cache flushes (fsync, fdatasync, WAL flushes) from /proc/diskstats',
    );
    table.push('');
    summary.ingest = {
      instances: ingestFiles,
      bytes: ingestBytes,
      pixels: `${args.size}x${args.size}x16`,
      parallelPerNode: args.parallel,
      interleave: args.interleave,
      configs: Object.fromEntries(
        configs.map((c) => {
          const s = medians.get(c.id)!;
          return [
            c.id,
            {
              label: c.label,
              instPerS: round2((ingestFiles / s.ms) * 1000, 1),
              mibPerS: round2(ingestBytes / MiB / (s.ms / 1000), 1),
              ms: round2(s.ms, 0),
              roundsMs: s.mine.map((x) => (x.ok ? round2(x.ms, 0) : null)),
              cpuMsPerInstance: {
                nodes: round2((s.cpu.nodes / ingestFiles) * 1000),
                postgres: round2((s.cpu.pg / ingestFiles) * 1000),
                s3rver: c.blobs === 's3' ? round2((s.cpu.s3 / ingestFiles) * 1000) : null,
                storescu: round2((s.cpu.storescu / ingestFiles) * 1000),
                bench: round2((s.cpu.bench / ingestFiles) * 1000),
                other: round2((s.cpu.other / ingestFiles) * 1000),
              },
              busyShare: round2(s.busy, 3),
              iowaitShare: round2(s.iowait, 3),
              flushesPerS: round2(s.flushesPerS, 0),
              diskMiBPerS: round2(s.diskMiBPerS, 1),
              nodePeakRssMiB: round2(s.rss / 1024, 0),
              failed: s.mine.length - s.good.length,
              counts: s.mine.map((x) => x.counts),
            },
          ];
        }),
      ),
      ratios,
    };
  }

  if (qido && load) {
    const kinds = QIDO_KINDS;
    const stat = (s: QidoServer, kind?: QidoKind) => {
      const xs = qido!.samples
        .filter((x) => x.server === s && (kind === undefined || x.kind === kind))
        .map((x) => x.ms);
      return { median: median(xs), p95: percentile(xs, 95), n: xs.length };
    };
    const roundMedians = (s: QidoServer): number[] =>
      Array.from({ length: args.rounds }, (_, r) =>
        median(qido!.samples.filter((x) => x.server === s && x.round === r).map((x) => x.ms)),
      );
    const meanMatches = (kind: QidoKind): number => {
      const xs = qido!.samples.filter((x) => x.server === 'sqlite' && x.kind === kind).map((x) => x.matches);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    table.push(
      `[qido] QIDO-RS at ${load.instances} instances (${load.instances / args.perStudy} studies x ${args.perStudy}, 64x64 CT/MR in 2 series), index rows written directly ` +
        `in batches of ${LOAD_BATCH}: ${fx(load.ms / 1000, 1)} s for both (SQLite commits ${fx(load.sqliteMs / 1000, 1)} s, waiting for PostgreSQL ${fx(load.pgWaitMs / 1000, 1)} s, ` +
        `records built ${fx(load.buildMs / 1000, 1)} s), PostgreSQL ANALYZE ${fx(analyzeMs / 1000, 1)} s; index.sqlite ${fx(sqliteBytes / MiB, 0)} MiB, PostgreSQL database ${fx(pgBytes / MiB, 0)} MiB`,
    );
    table.push(
      `  ${queries.length} queries x ${args.rounds} round(s), each to both servers in turn (after a warm-up pass); ms from the request to the parsed JSON, median / p95 over the rounds`,
    );
    table.push(
      `${pad('', 14, true)}${pad('all', 15)}${kinds.map((k) => pad(QIDO_KIND_LABEL[k], 24)).join('')}`,
    );
    for (const s of QIDO_SERVERS) {
      const a = stat(s);
      table.push(
        `${pad(`  ${QIDO_LABEL[s]}`, 14, true)}${pad(`${fx(a.median)}/${fx(a.p95)}`, 15)}${kinds
          .map((k) => {
            const x = stat(s, k);
            return pad(`${fx(x.median)}/${fx(x.p95)}`, 24);
          })
          .join('')}`,
      );
    }
    const ratioKind = (k?: QidoKind, which: 'median' | 'p95' = 'median'): number =>
      stat('pg', k)[which] / stat('sqlite', k)[which];
    table.push(
      `${pad('  PG/SQLite', 14, true)}${pad(`${fx(ratioKind())}x/${fx(ratioKind(undefined, 'p95'))}x`, 15)}${kinds
        .map((k) => pad(`${fx(ratioKind(k))}x/${fx(ratioKind(k, 'p95'))}x`, 24))
        .join('')}`,
    );
    table.push(
      `${pad('  matches', 14, true)}${pad('', 15)}${kinds.map((k) => pad(fx(meanMatches(k), 1), 24)).join('')}`,
    );
    const sq = roundMedians('sqlite');
    const pq = roundMedians('pg');
    table.push(
      `ratio  QIDO-RS median latency PostgreSQL / SQLite: ${fx(ratioKind())}x (rounds ${sq.map((x, r) => fx(pq[r]! / x)).join(' ')}); p95 ${fx(ratioKind(undefined, 'p95'))}x`,
    );
    const nProblems = qido.problems.length;
    failedChecks += nProblems + qido.mismatches.length;
    table.push(
      nProblems === 0
        ? 'check  every answer of both servers held exactly the matches the generator expects'
        : `!!! ${nProblems} wrong or failed answers, e.g. ${qido.problems.slice(0, 3).join(' | ').slice(0, 1500)}`,
    );
    table.push(
      qido.mismatches.length === 0
        ? 'check  both servers gave the same match count for every query'
        : `!!! match counts differ on ${qido.mismatches.length} queries: ${qido.mismatches.slice(0, 5).join(' | ')}`,
    );
    table.push(
      `info   CPU s over the rounds: SQLite node ${fx(qido.cpuS.sqlite, 1)}; PostgreSQL node ${fx(qido.cpuS.pg, 1)} + PostgreSQL server ${fx(qido.cpuS.postgres, 1)}; ` +
        `peak RSS: SQLite node ${fx((qidoRss.sqlite ?? Number.NaN) / 1024, 0)} MiB, PostgreSQL node ${fx((qidoRss.pg ?? Number.NaN) / 1024, 0)} MiB`,
    );
    if (explain?.pg) {
      table.push('');
      table.push(
        `[explain] /studies?${explain.search} (first page, as the query engine writes it; params ${JSON.stringify(explain.pg.params)}):`,
      );
      table.push(`  SQL: ${explain.pg.sql}`);
      table.push('  PostgreSQL EXPLAIN (ANALYZE, BUFFERS):');
      for (const l of explain.pg.plan) table.push(`    ${l}`);
      table.push('  SQLite EXPLAIN QUERY PLAN:');
      for (const l of explain.sqlite ?? []) table.push(`    ${l}`);
    }
    table.push('');
    summary.qido = {
      instances: load.instances,
      studies: load.instances / args.perStudy,
      loadMs: round2(load.ms, 0),
      loadSqliteMs: round2(load.sqliteMs, 0),
      loadPgWaitMs: round2(load.pgWaitMs, 0),
      analyzeMs: round2(analyzeMs, 0),
      sqliteMiB: round2(sqliteBytes / MiB, 1),
      postgresMiB: round2(pgBytes / MiB, 1),
      queries: queries.length,
      rounds: args.rounds,
      servers: Object.fromEntries(
        QIDO_SERVERS.map((s) => [
          s,
          {
            medianMs: round2(stat(s).median, 3),
            p95Ms: round2(stat(s).p95, 3),
            roundsMedianMs: roundMedians(s).map((x) => round2(x, 3)),
            perKindMs: Object.fromEntries(
              kinds.map((k) => [k, { median: round2(stat(s, k).median, 3), p95: round2(stat(s, k).p95, 3) }]),
            ),
            peakRssMiB: round2((qidoRss[s] ?? Number.NaN) / 1024, 0),
          },
        ]),
      ),
      ratioPgOverSqlite: {
        median: round2(ratioKind()),
        p95: round2(ratioKind(undefined, 'p95')),
        perRoundMedian: sq.map((x, r) => round2(pq[r]! / x)),
        perKindMedian: Object.fromEntries(kinds.map((k) => [k, round2(ratioKind(k))])),
      },
      meanMatches: Object.fromEntries(kinds.map((k) => [k, round2(meanMatches(k), 1)])),
      cpuS: {
        sqliteNode: round2(qido.cpuS.sqlite),
        pgNode: round2(qido.cpuS.pg),
        postgres: round2(qido.cpuS.postgres),
      },
      problems: qido.problems.slice(0, 20),
      mismatches: qido.mismatches.slice(0, 20),
      explain: explain
        ? { search: explain.search, postgres: explain.pg?.plan ?? null, sqlite: explain.sqlite ?? null }
        : null,
    };
  }

  table.push(
    `PostgreSQL ${postgres?.version ?? '?'} (${Object.entries(postgres?.settings ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}; otherwise default), one cluster for the run, a fresh database per ingest run`,
  );
  table.push(
    `tessera at ${tesseraCommit}${srcChanges ? ` + ${srcChanges} uncommitted change(s) in src/` : ''}; nodes run under tsx with --log-level warn; ` +
      `${os.cpus().length} CPUs shared by PostgreSQL, the nodes, storescu/s3rver and this client`,
  );
  for (const p of problems) table.push(`!!! ${p.slice(0, 3000)}`);
  if (failedChecks) table.push(`!!! ${failedChecks} failed check(s): see above`);

  Object.assign(summary, {
    benchmark:
      'tessera scale-out: C-STORE ingest 1 vs 2 nodes on PostgreSQL (shared folder / s3rver), SQLite for reference; QIDO-RS latency SQLite vs PostgreSQL at M instances',
    units: {
      throughput: 'instances/s and MiB/s (2^20 bytes) of the Part 10 files sent; median over rounds',
      latency: 'ms from the request to the parsed JSON; median / p95 over all rounds',
      ratio:
        'ingest: throughput a / throughput b; QIDO: PostgreSQL latency / SQLite latency (> 1: PostgreSQL slower)',
    },
    env: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}`,
      memMiB: Math.round(os.totalmem() / MiB),
      postgres: postgres?.version ?? null,
      postgresSettings: postgres?.settings ?? null,
      tesseraCommit,
      tesseraUncommittedSrcChanges: srcChanges,
    },
    params: { ...args },
    failedChecks,
    problems: problems.map((p) => p.slice(0, 2000)),
    elapsedS: round2((performance.now() - started) / 1000, 1),
  });

  if (args.keep) log(`run folder kept: ${runDir} (delete it yourself)`);
  else {
    const t0 = performance.now();
    rmSync(runDir, { recursive: true, force: true });
    log(
      `deleted ${runDir} in ${((performance.now() - t0) / 1000).toFixed(1)} s (generated files stay in ${BENCH_DIR})`,
    );
  }
  console.log(table.join('\n'));
  console.log();
  console.log(JSON.stringify(summary));
  if (failedChecks) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  children.killAll();
  stopPostgresNow?.();
  process.exit(1);
});
