/**
 * Query/Retrieve benchmark: Tessera's archive (`tessera serve`) against Orthanc, loaded with the same
 * files, queried and retrieved from by the same client in the same run.
 *
 *   npm run bench:qr -- [--studies 1000] [--per-study 10] [--retrieve 100] [--queries 200] [--rounds 3]
 *                       [--parallel 4] [--phases find,move,get] [--get-sink files|drain] [--no-orthanc] [--keep]
 *
 * Data (generated once with Tessera's codec into os.tmpdir()/tessera-bench-qr/files*, reused):
 * - the query set: S studies (--studies, 1000) of K instances (--per-study, 10) in two series, 64x64
 *   16-bit CT or MR images (~10 KiB), explicit VR LE; about 0.35 studies per patient (PatientName from
 *   a list of families and given names, PatientID), StudyDate spread over 15 years, AccessionNumber,
 *   ModalitiesInStudy CT, MR or CT\MR;
 * - the retrieve study: N (--retrieve, 100) 512x512 16-bit CT images (0.5 MiB each) in one study of
 *   its own patient (also part of what the queries search).
 *
 * Set-up: `tessera serve --data-dir D --any-called-ae --peer DEST=127.0.0.1:P` and Orthanc (Debian's
 * 1.10, a temporary JSON configuration: DicomModalities {"DEST": ["DEST", "127.0.0.1", P]},
 * DicomCheckCalledAet false, DicomAlwaysAllowFind/Move/Get true, MaximumPduLength as Tessera's; the
 * rest default, e.g. SQLite index, StorageAccessOnFind "Always") run side by side, each loaded by P
 * (--parallel) DCMTK storescu processes (load time printed, not a target), and a DCMTK
 * `storescp +xa -od DIR` listens as the move destination DEST. DCMTK tools and Orthanc get
 * TCP_NODELAY=1 (Debian's DCMTK leaves Nagle on); Tessera's sockets set noDelay themselves.
 *
 * Measurements, all from this one client process with Tessera's SCU library (src/dimse), so the SCU is
 * the same for both servers:
 * - C-FIND: Q (--queries, 200) study-level queries (Study Root) of five kinds: PatientName `ABC*`,
 *   StudyDate range, PatientID, AccessionNumber, ModalitiesInStudy with a StudyDate range; the same
 *   10 return keys each time. One association per server for the whole phase; the queries alternate
 *   between the servers (Tessera first for even queries, Orthanc first for odd ones) so that they share
 *   the machine's noise. Latency = from the request to the final response (every match received and
 *   decoded). An untimed warm-up pass first. Every answer is checked against the matches the generator
 *   knows (StudyInstanceUIDs, and the values of PatientID, StudyDate, AccessionNumber, ModalitiesInStudy,
 *   NumberOfStudyRelatedInstances); a mismatch is printed loudly and makes the exit code 1.
 * - C-MOVE: the retrieve study to DEST (storescp), timed from the request to the final response;
 *   instances/s. Then the files storescp received are counted (must be N) and moved aside.
 * - C-GET: the retrieve study back on the same association; the C-STORE-RQ handler here writes each
 *   instance as a Part 10 file (File Meta + the data set as received, no fsync: as getscu and storescp
 *   do) into a fresh folder (--get-sink drain: reads and drops them instead); instances/s; files counted.
 *   This process's CPU time is printed for each run: with C-GET it is also the receiver, and can be
 *   what limits the faster server.
 *   An untimed warm-up move and get per server come first; rounds alternate which server goes first.
 * Each measurement runs R rounds (--rounds, 3); medians of the rounds are printed with per-round ratios
 * (Orthanc time / Tessera time: > 1 means Tessera is faster). The servers' peak RSS (VmHWM) and CPU
 * seconds per phase are read from /proc.
 *
 * Servers' data and received files live in os.tmpdir()/tessera-bench-qr/run-PID (received files are
 * renamed aside between runs, never deleted mid-run) and are deleted at the very end (--keep leaves
 * them). Progress goes to stderr; the table and then a JSON summary to stdout. The exit code is 1 when
 * a check failed or a target was missed.
 */
import { spawnSync } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Dataset, part10Header } from '../src/codec/index.ts';
import { Tag, UID } from '../src/dictionary/index.ts';
import {
  Dimse,
  find,
  get,
  getStorageContexts,
  type HandlerResult,
  type IncomingRequest,
  move,
  qrContexts,
  statusCategory,
} from '../src/dimse/index.ts';
import {
  BENCH_DATE_BASE,
  BENCH_DATE_SPAN_DAYS,
  BENCH_FAMILY_NAMES,
  type BenchStudy,
  benchChildren,
  benchLog,
  benchRetrieveStudy,
  benchStudy,
  cpuSecondsOf,
  ensureBenchFiles,
  freePort,
  inDateRange,
  isoDate,
  median,
  mulberry32,
  note,
  orthancGet,
  type Problems,
  type Proc,
  pad,
  percentile,
  prepareRunDir,
  procStatusKiB,
  QR_DATA_VERSION,
  readFlags,
  readPhases,
  round2,
  tesseraEntry,
  tesseraServeArgv,
  waitForOrthancHttp,
  waitForPort,
  withTimeout,
  writeOrthancConfig,
} from './common.ts';

// ---------------------------------------------------------------------------------------------------
// Options

const MiB = 1024 * 1024;
const HOST = '127.0.0.1';
const BENCH_DIR = path.join(os.tmpdir(), 'tessera-bench-qr');
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '..');
/** The bundle `tessera` runs (built now: dist/main.js). */
const TESSERA_MAIN = tesseraEntry(ROOT);
const ORTHANC = '/usr/sbin/Orthanc';
/** Tessera serve's default --max-pdu; Orthanc and storescp get the same (their default is 16384). */
const SCP_MAX_PDU = 116_794;
const SERVER_READY_MS = 60_000;
const QUERY_TIMEOUT_MS = 60_000;
const RETRIEVE_TIMEOUT_MS = 300_000;
/** The issue's target: at least 3x Orthanc on C-FIND latency (median and p95), C-MOVE and C-GET throughput. */
const TARGET_RATIO = 3.0;
const CALLING_AE = 'BENCHSCU';
const DEST_AE = 'DEST';
const CHILD_ENV = { ...process.env, TCP_NODELAY: '1' };

type Phase = 'find' | 'move' | 'get';
const PHASES: readonly Phase[] = ['find', 'move', 'get'];

interface Args {
  studies: number;
  perStudy: number;
  retrieve: number;
  queries: number;
  rounds: number;
  parallel: number;
  phases: Phase[];
  orthanc: boolean;
  keep: boolean;
  getSink: GetSink;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    studies: 1000,
    perStudy: 10,
    retrieve: 100,
    queries: 200,
    rounds: 3,
    parallel: 4,
    phases: [...PHASES],
    orthanc: true,
    keep: false,
    getSink: 'files',
  };
  readFlags(argv, (flag, { value, int }) => {
    switch (flag) {
      case '--studies':
        args.studies = int(1, 100_000);
        break;
      case '--per-study':
        args.perStudy = int(2, 1000);
        break;
      case '--retrieve':
        args.retrieve = int(1, 10_000);
        break;
      case '--queries':
        args.queries = int(1, 100_000);
        break;
      case '--rounds':
        args.rounds = int(1, 100);
        break;
      case '--parallel':
        args.parallel = int(1, 32);
        break;
      case '--phases':
        args.phases = readPhases(value(), PHASES);
        break;
      case '--no-orthanc':
        args.orthanc = false;
        break;
      case '--get-sink': {
        const v = value();
        if (v !== 'files' && v !== 'drain') throw new Error(`--get-sink ${v}: expected files or drain`);
        args.getSink = v;
        break;
      }
      case '--keep':
        args.keep = true;
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: tsx bench/qr.ts [--studies S=1000] [--per-study K=10] [--retrieve N=100] [--queries Q=200] ' +
            '[--rounds R=3] [--parallel P=4] [--phases find,move,get] [--get-sink files|drain] [--no-orthanc] [--keep]\n' +
            '  --studies/--per-study: the query set (S studies of K 64x64 instances in 2 series)\n' +
            '  --retrieve: instances (512x512, 0.5 MiB) of the study that C-MOVE and C-GET retrieve\n' +
            '  --queries: study-level C-FIND queries per round (the same list for both servers)\n' +
            '  --parallel: storescu processes loading each server (loading is not measured)\n' +
            '  --get-sink: what the C-GET receiver does with each instance: write a Part 10 file (default) or drain it\n' +
            "  --no-orthanc: Tessera alone (no ratios); --keep: leave the servers' data and received files",
        );
        process.exit(0);
        break;
      default:
        return false;
    }
    return true;
  });
  return args;
}

const { log } = benchLog('qr');

// ---------------------------------------------------------------------------------------------------
// Queries and their expected matches (the test data's model, bench/common.ts's generator, knows them)

type QueryKind = 'name' | 'date' | 'pid' | 'acc' | 'modDate';
const QUERY_KINDS: readonly QueryKind[] = ['name', 'date', 'pid', 'acc', 'modDate'];
const KIND_LABEL: Record<QueryKind, string> = {
  name: 'PatientName ABC*',
  date: 'StudyDate range',
  pid: 'PatientID',
  acc: 'AccessionNumber',
  modDate: 'ModalitiesInStudy+date',
};

/** The return keys of every query (what a viewer's study list asks for), with their VRs. */
const RETURN_KEYS: readonly (readonly [number, 'UI' | 'DA' | 'TM' | 'SH' | 'PN' | 'LO' | 'CS' | 'IS'])[] = [
  [Tag.StudyDate, 'DA'],
  [Tag.StudyTime, 'TM'],
  [Tag.AccessionNumber, 'SH'],
  [Tag.ModalitiesInStudy, 'CS'],
  [Tag.StudyDescription, 'LO'],
  [Tag.PatientName, 'PN'],
  [Tag.PatientID, 'LO'],
  [Tag.StudyInstanceUID, 'UI'],
  [Tag.NumberOfStudyRelatedSeries, 'IS'],
  [Tag.NumberOfStudyRelatedInstances, 'IS'],
];

interface Query {
  readonly kind: QueryKind;
  readonly keys: ReadonlyMap<number, string>;
  readonly text: string;
  /** StudyInstanceUIDs the query must match. */
  readonly expected: ReadonlySet<string>;
}

function identifierFor(q: Query): Dataset {
  const ds = new Dataset();
  const keys: [number, string, string][] = [[Tag.QueryRetrieveLevel, 'CS', 'STUDY']];
  for (const [t, vr] of RETURN_KEYS) keys.push([t, vr, q.keys.get(t) ?? '']);
  keys.sort((a, b) => a[0] - b[0]);
  for (const [t, vr, value] of keys) {
    if (value === '') ds.setBytes(t, vr as 'CS', Buffer.alloc(0));
    else ds.setString(t, value, vr as 'CS');
  }
  return ds;
}

/** The query list: Q queries, the kinds in turn, parameters drawn (seeded) from the studies. */
function makeQueries(studies: readonly BenchStudy[], n: number): Query[] {
  const rnd = mulberry32(20_240_101);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const out: Query[] = [];
  const dateRange = (minDays: number, maxDays: number): string => {
    const start = Math.floor(rnd() * BENCH_DATE_SPAN_DAYS);
    const len = minDays + Math.floor(rnd() * (maxDays - minDays));
    return `${isoDate(BENCH_DATE_BASE, start)}-${isoDate(BENCH_DATE_BASE, start + len)}`;
  };
  const make = (kind: QueryKind, keys: [number, string][], match: (st: BenchStudy) => boolean): Query => ({
    kind,
    keys: new Map(keys),
    text: keys
      .map(
        ([t, v]) =>
          `${t === Tag.PatientName ? 'PatientName' : t === Tag.StudyDate ? 'StudyDate' : t === Tag.PatientID ? 'PatientID' : t === Tag.AccessionNumber ? 'AccessionNumber' : 'ModalitiesInStudy'}=${v}`,
      )
      .join(' '),
    expected: new Set(studies.filter(match).map((st) => st.uid)),
  });
  for (let i = 0; i < n; i++) {
    const kind = QUERY_KINDS[i % QUERY_KINDS.length]!;
    switch (kind) {
      case 'name': {
        const prefix = pick(BENCH_FAMILY_NAMES).slice(0, 3);
        out.push(make(kind, [[Tag.PatientName, `${prefix}*`]], (st) => st.patientName.startsWith(prefix)));
        break;
      }
      case 'date': {
        const range = dateRange(7, 365);
        out.push(make(kind, [[Tag.StudyDate, range]], (st) => inDateRange(st.date, range)));
        break;
      }
      case 'pid': {
        const id = pick(studies).patientId;
        out.push(make(kind, [[Tag.PatientID, id]], (st) => st.patientId === id));
        break;
      }
      case 'acc': {
        const acc = pick(studies).accession;
        out.push(make(kind, [[Tag.AccessionNumber, acc]], (st) => st.accession === acc));
        break;
      }
      case 'modDate': {
        const modality = rnd() < 0.5 ? 'MR' : 'CT';
        const range = dateRange(180, 730);
        out.push(
          make(
            kind,
            [
              [Tag.StudyDate, range],
              [Tag.ModalitiesInStudy, modality],
            ],
            (st) => inDateRange(st.date, range) && st.modalities.includes(modality),
          ),
        );
        break;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Servers

const children = benchChildren(ROOT, CHILD_ENV, log);

type ServerKind = 'tessera' | 'orthanc';
const SERVER_LABEL: Record<ServerKind, string> = { tessera: 'tessera serve', orthanc: 'Orthanc' };

interface Server {
  readonly kind: ServerKind;
  readonly label: string;
  readonly aet: string;
  readonly port: number;
  readonly httpPort: number;
  readonly dir: string;
  readonly proc: Proc;
  /** RSS once listening, before any association (KiB). */
  startRssKiB: number | undefined;
  loadedRssKiB: number | undefined;
}

function orthancConfig(dir: string, port: number, httpPort: number, destPort: number): string {
  return writeOrthancConfig(dir, 'tessera-bench-qr', port, httpPort, {
    DicomCheckCalledAet: false,
    // Q/R from any calling AE (the defaults only serve AEs listed in DicomModalities).
    DicomAlwaysAllowFind: true,
    DicomAlwaysAllowMove: true,
    DicomAlwaysAllowGet: true,
    DicomModalities: { [DEST_AE]: [DEST_AE, HOST, destPort] },
    MaximumPduLength: SCP_MAX_PDU,
  });
}

async function startServer(
  kind: ServerKind,
  dir: string,
  destPort: number,
  avoid: number[],
): Promise<Server> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort(HOST, avoid);
  avoid.push(port);
  const httpPort = await freePort(HOST, avoid);
  avoid.push(httpPort);
  const proc =
    kind === 'tessera'
      ? children.launch(
          process.execPath,
          tesseraServeArgv(TESSERA_MAIN, dir, port, httpPort, HOST, [
            '--peer',
            `${DEST_AE}=${HOST}:${destPort}`,
          ]),
          { group: true },
        )
      : children.launch(ORTHANC, [orthancConfig(dir, port, httpPort, destPort)], { group: true });
  await waitForPort(HOST, port, proc, SERVER_LABEL[kind], SERVER_READY_MS);
  if (kind === 'orthanc') await waitForOrthancHttp(HOST, httpPort, proc, SERVER_READY_MS);
  return {
    kind,
    label: SERVER_LABEL[kind],
    aet: kind === 'tessera' ? 'TESSERA' : 'ORTHANC',
    port,
    httpPort,
    dir,
    proc,
    startRssKiB: procStatusKiB(proc.pid, 'VmRSS'),
    loadedRssKiB: undefined,
  };
}

/** Instances the server has indexed: Tessera's `instances` rows (read-only, WAL), Orthanc's /statistics. */
async function indexedInstances(s: Server): Promise<number> {
  if (s.kind === 'orthanc') return Number((await orthancGet(HOST, s.httpPort, '/statistics')).CountInstances);
  const db = new Database(path.join(s.dir, 'index.sqlite'), { readonly: true, fileMustExist: true });
  try {
    return Number((db.prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

/** P storescu processes, each sending every P-th file; resolves with the wall time in ms. */
async function load(s: Server, paths: readonly string[], parallel: number): Promise<number> {
  const t0 = performance.now();
  const procs = Array.from({ length: Math.min(parallel, paths.length) }, (_, k) =>
    children.launch(
      'storescu',
      [
        '-aec',
        s.aet,
        '-aet',
        CALLING_AE,
        '-ta',
        '120',
        '-td',
        '120',
        HOST,
        String(s.port),
        ...paths.filter((_, i) => i % parallel === k),
      ],
      { group: false },
    ),
  );
  const codes = await withTimeout(Promise.all(procs.map((p) => p.exited)), 60_000 + paths.length * 100);
  const ms = performance.now() - t0;
  if (codes === 'timeout') {
    for (const p of procs) children.signal(p, 'SIGKILL');
    throw new Error(`loading ${s.label}: storescu timed out`);
  }
  codes.forEach((code, k) => {
    if (code !== 0)
      throw new Error(
        `loading ${s.label}: storescu ${k + 1} exited with ${code}: ${procs[k]!.output().slice(-2000)}`,
      );
  });
  return ms;
}

// ---------------------------------------------------------------------------------------------------
// C-FIND

interface FindSample {
  readonly server: ServerKind;
  readonly round: number;
  readonly query: number;
  readonly ms: number;
  readonly matches: number;
  /** This process's CPU time (user + system) between the request and the final response. */
  readonly clientCpuMs: number;
}

class FindClient {
  private dimse: Dimse | undefined;
  broken: string | undefined;
  readonly checks = new Map<string, Problems>();

  constructor(
    readonly server: Server,
    private readonly byUid: ReadonlyMap<string, BenchStudy>,
  ) {}

  private async connect(): Promise<Dimse> {
    this.dimse ??= await Dimse.connect({
      host: HOST,
      port: this.server.port,
      callingAETitle: CALLING_AE,
      calledAETitle: this.server.aet,
      contexts: qrContexts('STUDY_ROOT', ['find']),
      maxPduLength: SCP_MAX_PDU,
      timeoutMs: 10_000,
    });
    return this.dimse;
  }

  /** Runs one query: its latency (request to final response) and checks of its answer; undefined on failure. */
  async run(q: Query, qi: number): Promise<{ ms: number; matches: number; clientCpuMs: number } | undefined> {
    if (this.broken) return undefined;
    let dimse: Dimse;
    try {
      dimse = await this.connect();
    } catch (err) {
      this.broken = `cannot associate: ${(err as Error).message}`;
      note(this.checks, 'association failed', this.broken);
      return undefined;
    }
    const identifier = identifierFor(q);
    const uids: string[] = [];
    const values: Dataset[] = [];
    const signal = AbortSignal.timeout(QUERY_TIMEOUT_MS);
    let status: number;
    let comment: string | undefined;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    try {
      const it = find(dimse, { model: 'STUDY_ROOT', identifier, signal });
      for (;;) {
        const r = await it.next();
        if (r.done) {
          status = r.value.status;
          comment = r.value.command.errorComment;
          break;
        }
        values.push(r.value.identifier);
      }
    } catch (err) {
      note(this.checks, 'query failed (exception)', `#${qi} ${q.text}: ${(err as Error).message}`);
      // The association may be gone: drop it, and give up on this server after a failed reconnect.
      const old = this.dimse;
      this.dimse = undefined;
      try {
        old?.abort();
      } catch {
        // gone already
      }
      try {
        await this.connect();
      } catch (e) {
        this.broken = `association lost and no new one: ${(e as Error).message}`;
      }
      return undefined;
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const clientCpuMs = (cpu.user + cpu.system) / 1000;
    if (statusCategory(status) !== 'success') {
      note(
        this.checks,
        `final status ${status.toString(16).toUpperCase()}`,
        `#${qi} ${q.text}: ${comment ?? ''}`,
      );
      return undefined;
    }
    // Checks (after the clock stopped).
    for (const ds of values) uids.push(ds.string(Tag.StudyInstanceUID) ?? '');
    const got = new Set(uids);
    const missing = [...q.expected].filter((u) => !got.has(u)).length;
    const extra = [...got].filter((u) => !q.expected.has(u)).length;
    if (missing || extra || got.size !== uids.length)
      note(
        this.checks,
        'wrong matches',
        `#${qi} ${q.text}: ${uids.length} returned, ${q.expected.size} expected (${missing} missing, ${extra} extra, ${uids.length - got.size} duplicates)`,
      );
    for (const ds of values) {
      const st = this.byUid.get(ds.string(Tag.StudyInstanceUID) ?? '');
      if (!st) continue;
      const expect: [string, number, string][] = [
        ['PatientID', Tag.PatientID, st.patientId],
        ['PatientName', Tag.PatientName, st.patientName],
        ['StudyDate', Tag.StudyDate, st.date],
        ['AccessionNumber', Tag.AccessionNumber, st.accession],
        ['ModalitiesInStudy', Tag.ModalitiesInStudy, st.modalities.join('\\')],
        ['NumberOfStudyRelatedSeries', Tag.NumberOfStudyRelatedSeries, String(st.series.length)],
        ['NumberOfStudyRelatedInstances', Tag.NumberOfStudyRelatedInstances, String(st.instances)],
      ];
      for (const [name, t, want] of expect) {
        let have: string;
        try {
          have = ds.has(t)
            ? ds
                .strings(t)
                .map((x) => x.trim())
                .sort()
                .join('\\')
            : '(absent)';
        } catch (err) {
          have = `(undecodable: ${(err as Error).message})`;
        }
        const wantSorted = want.split('\\').sort().join('\\');
        if (have !== wantSorted)
          note(this.checks, `wrong ${name}`, `study ${st.index}: "${have}", expected "${wantSorted}"`);
      }
    }
    return { ms, matches: uids.length, clientCpuMs };
  }

  async close(): Promise<void> {
    const d = this.dimse;
    this.dimse = undefined;
    if (d)
      await withTimeout(
        d.release().catch(() => undefined),
        10_000,
      );
  }
}

async function runFindPhase(
  servers: readonly Server[],
  queries: readonly Query[],
  rounds: number,
  byUid: ReadonlyMap<string, BenchStudy>,
): Promise<{
  samples: FindSample[];
  clients: FindClient[];
  cpuS: Map<ServerKind, number | undefined>;
  clientCpuS: number;
}> {
  const clients = servers.map((s) => new FindClient(s, byUid));
  const samples: FindSample[] = [];
  const pass = async (round: number): Promise<void> => {
    const t0 = performance.now();
    for (let qi = 0; qi < queries.length; qi++) {
      const order = qi % 2 === 0 ? clients : [...clients].reverse();
      for (const c of order) {
        const r = await c.run(queries[qi]!, qi);
        if (r && round >= 0) samples.push({ server: c.server.kind, round, query: qi, ...r });
      }
    }
    log(
      `find ${round < 0 ? 'warm-up' : `round ${round + 1}`}: ${queries.length} queries x ${clients.length} server(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        clients
          .map((c) => {
            const xs = samples
              .filter((x) => x.server === c.server.kind && x.round === round)
              .map((x) => x.ms);
            return round < 0
              ? ''
              : `; ${c.server.label} median ${median(xs).toFixed(2)} ms p95 ${percentile(xs, 95).toFixed(2)} ms (${xs.length} ok)`;
          })
          .join(''),
    );
  };
  await pass(-1);
  const cpuWarm = new Map(servers.map((s) => [s.kind, cpuSecondsOf(s.proc)]));
  const client0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) await pass(r);
  const client1 = process.cpuUsage(client0);
  const cpuS = new Map(
    servers.map((s) => {
      const a = cpuWarm.get(s.kind);
      const b = cpuSecondsOf(s.proc);
      return [s.kind, a !== undefined && b !== undefined ? b - a : undefined] as const;
    }),
  );
  for (const c of clients) await c.close();
  return { samples, clients, cpuS, clientCpuS: (client1.user + client1.system) / 1e6 };
}

// ---------------------------------------------------------------------------------------------------
// C-MOVE and C-GET

interface RetrieveRun {
  readonly server: ServerKind;
  readonly op: 'move' | 'get';
  /** -1 for the warm-up. */
  readonly round: number;
  readonly ok: boolean;
  readonly problems: string[];
  readonly ms: number;
  readonly completed: number;
  readonly received: number;
  readonly receivedBytes: number;
  readonly transferSyntax: string | undefined;
  readonly serverCpuS: number | undefined;
  /** This process's CPU seconds during the run (the SCU; for C-GET also the receiver). */
  readonly clientCpuS: number;
  /** storescp's CPU seconds during a C-MOVE (the receiver). */
  readonly destCpuS: number | undefined;
}

function countFiles(dir: string): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  if (!existsSync(dir)) return { count, bytes };
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isFile() || e.name.startsWith('.')) continue;
    count++;
    bytes += statSync(path.join(dir, e.name)).size;
  }
  return { count, bytes };
}

function syncDisk(): void {
  spawnSync('sync', [], { timeout: 120_000 });
}

type GetSink = 'files' | 'drain';

interface Receiver {
  readonly handler: (rq: IncomingRequest) => Promise<HandlerResult>;
  readonly received: { count: number; bytes: number };
}

/**
 * The C-STORE-RQ handler of C-GET: 'files' writes each instance as a Part 10 file (File Meta + the data
 * set as received, no fsync, as getscu does); 'drain' reads the data set and counts its bytes.
 */
function getReceiver(sink: GetSink, dir: string): Receiver {
  const received = { count: 0, bytes: 0 };
  if (sink === 'drain') {
    return {
      received,
      handler: async ({ dataset }) => {
        if (!dataset) return { status: 0xa900, errorComment: 'no data set' };
        for await (const chunk of dataset) received.bytes += (chunk as Buffer).length;
        received.count++;
        return { status: 0 };
      },
    };
  }
  mkdirSync(dir, { recursive: true });
  let n = 0;
  const handler = async ({
    command,
    context,
    association,
    dataset,
  }: IncomingRequest): Promise<HandlerResult> => {
    if (!dataset) return { status: 0xa900, errorComment: 'no data set' };
    const file = path.join(dir, `${String(++n).padStart(5, '0')}.dcm`);
    const out = createWriteStream(file);
    out.write(
      part10Header({
        sopClassUid: command.affectedSopClassUid,
        sopInstanceUid: command.affectedSopInstanceUid,
        transferSyntaxUid: context.transferSyntax,
        sourceAETitle: association.info.callingAETitle,
      }),
    );
    await pipeline(dataset, out);
    received.count++;
    received.bytes += out.bytesWritten;
    return { status: 0 };
  };
  return { handler, received };
}

async function retrieveOnce(
  s: Server,
  op: 'move' | 'get',
  round: number,
  study: BenchStudy,
  destDir: string,
  graveyard: string,
  runDir: string,
  sink: GetSink,
  storescp: Proc,
): Promise<RetrieveRun> {
  const problems: string[] = [];
  const identifier = new Dataset();
  identifier.setString(Tag.QueryRetrieveLevel, 'STUDY', 'CS');
  identifier.setString(Tag.StudyInstanceUID, study.uid, 'UI');
  const slug = `${op}-${s.kind}-${round < 0 ? 'warmup' : `r${round + 1}`}`;
  const getDir = path.join(runDir, slug);
  let ms = Number.NaN;
  let completed = 0;
  let transferSyntax: string | undefined;
  let serverCpuS: number | undefined;
  let destCpuS: number | undefined;
  let clientCpuS = Number.NaN;
  let dimse: Dimse | undefined;
  const receiver = op === 'get' ? getReceiver(sink, getDir) : undefined;
  try {
    dimse = await Dimse.connect(
      {
        host: HOST,
        port: s.port,
        callingAETitle: CALLING_AE,
        calledAETitle: s.aet,
        contexts:
          op === 'move'
            ? qrContexts('STUDY_ROOT', ['move'])
            : [
                ...qrContexts('STUDY_ROOT', ['get']),
                ...getStorageContexts(
                  [UID.CTImageStorage, UID.MRImageStorage],
                  [UID.ExplicitVRLittleEndian, UID.ImplicitVRLittleEndian],
                ),
              ],
        maxPduLength: SCP_MAX_PDU,
        timeoutMs: 10_000,
      },
      receiver ? { 'C-STORE-RQ': receiver.handler } : {},
    );
    if (op === 'get') transferSyntax = dimse.contextFor(UID.CTImageStorage)?.transferSyntax;
    const cpu0 = cpuSecondsOf(s.proc);
    const dest0 = cpuSecondsOf(storescp);
    const client0 = process.cpuUsage();
    const t0 = performance.now();
    const signal = AbortSignal.timeout(RETRIEVE_TIMEOUT_MS);
    const result =
      op === 'move'
        ? await move(dimse, { model: 'STUDY_ROOT', identifier, destination: DEST_AE, signal })
        : await get(dimse, { model: 'STUDY_ROOT', identifier, signal });
    ms = performance.now() - t0;
    const client1 = process.cpuUsage(client0);
    clientCpuS = (client1.user + client1.system) / 1e6;
    const cpu1 = cpuSecondsOf(s.proc);
    if (cpu0 !== undefined && cpu1 !== undefined) serverCpuS = cpu1 - cpu0;
    const dest1 = cpuSecondsOf(storescp);
    if (op === 'move' && dest0 !== undefined && dest1 !== undefined) destCpuS = dest1 - dest0;
    completed = result.completed;
    if (statusCategory(result.status) !== 'success' || result.failed > 0 || result.warning > 0)
      problems.push(
        `final status ${result.status.toString(16).toUpperCase()}${result.errorComment ? ` (${result.errorComment})` : ''}: ${result.completed} completed, ${result.failed} failed, ${result.warning} warnings`,
      );
    if (result.completed !== study.instances)
      problems.push(`${result.completed} sub-operations completed, ${study.instances} expected`);
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    if (dimse)
      await withTimeout(
        dimse.release().catch(() => undefined),
        10_000,
      );
  }
  // What arrived (storescp answers each C-STORE once its file is written, so all are there by now).
  const dir = op === 'move' ? destDir : getDir;
  const got = receiver && sink === 'drain' ? receiver.received : countFiles(dir);
  if (got.count !== study.instances)
    problems.push(`${got.count} instances received, ${study.instances} expected`);
  syncDisk();
  mkdirSync(graveyard, { recursive: true });
  if (existsSync(dir)) renameSync(dir, path.join(graveyard, slug));
  if (op === 'move') mkdirSync(destDir, { recursive: true });
  const ok = problems.length === 0;
  log(
    `${op} ${round < 0 ? 'warm-up' : `round ${round + 1}`} ${s.label}: ${(ms / 1000).toFixed(2)} s, ${((study.instances / ms) * 1000).toFixed(1)} inst/s, ` +
      `${got.count} instances (${(got.bytes / MiB).toFixed(1)} MiB) received; CPU s: server ${serverCpuS?.toFixed(2) ?? '?'}, ` +
      `client ${clientCpuS.toFixed(2)}${destCpuS === undefined ? '' : `, storescp ${destCpuS.toFixed(2)}`}` +
      (ok
        ? ''
        : `\n${'!'.repeat(100)}\n!!! FAILED: ${op} ${s.label}: ${problems.join('; ')}\n${'!'.repeat(100)}`),
  );
  return {
    server: s.kind,
    op,
    round,
    ok,
    problems,
    ms,
    completed,
    received: got.count,
    receivedBytes: got.bytes,
    transferSyntax,
    serverCpuS,
    clientCpuS,
    destCpuS,
  };
}

// ---------------------------------------------------------------------------------------------------
// Output helpers

function version(cmd: string, re: RegExp): string {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? 'unknown';
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  for (const tool of ['storescu', 'storescp']) {
    if (spawnSync(tool, ['--version']).status !== 0)
      throw new Error(`${tool} (DCMTK) is not installed: apt-get install dcmtk`);
  }
  if (args.orthanc && spawnSync(ORTHANC, ['--version']).status !== 0)
    throw new Error(`${ORTHANC} is not installed: apt-get install orthanc (or run with --no-orthanc)`);
  const dcmtk = version('storescu', /v(\d[\d.]*)/);
  const orthancVersion = args.orthanc ? version(ORTHANC, /Orthanc (\d[\d.]*)/) : null;

  // Folders: the file caches are kept; this run's folder (servers' data, received files) goes at the end,
  // together with those of interrupted runs (renamed into it now, deleted only at the end).
  const { runDir, graveyard } = prepareRunDir(BENCH_DIR);
  log(
    `bench dir ${BENCH_DIR}; ${args.studies} studies x ${args.perStudy} + a retrieve study of ${args.retrieve}; ${args.queries} queries; ` +
      `rounds ${args.rounds}; phases ${args.phases.join(',')}; DCMTK ${dcmtk}${args.orthanc ? `, Orthanc ${orthancVersion}` : ', no Orthanc'}`,
  );

  // Data.
  const studies = Array.from({ length: args.studies }, (_, s) => benchStudy(s, args.perStudy));
  const retrieveStudy = benchRetrieveStudy(args.retrieve);
  const all = [...studies, retrieveStudy];
  const byUid = new Map(all.map((st) => [st.uid, st]));
  const small = ensureBenchFiles(
    path.join(BENCH_DIR, `files-k${args.perStudy}`),
    `${QR_DATA_VERSION} perStudy=${args.perStudy}`,
    studies,
    64,
    (st, i) => `s${String(st.index).padStart(6, '0')}-${String(i).padStart(3, '0')}.dcm`,
    graveyard,
    log,
  );
  const large = ensureBenchFiles(
    path.join(BENCH_DIR, 'files-retrieve'),
    QR_DATA_VERSION,
    [retrieveStudy],
    512,
    (_, i) => `r${String(i).padStart(5, '0')}.dcm`,
    graveyard,
    log,
  );
  const queries = makeQueries(all, args.queries);
  const loadPaths = [...small.paths, ...large.paths];

  const servers: Server[] = [];
  let storescp: Proc | undefined;
  const loadMs = new Map<ServerKind, number>();
  const indexed = new Map<ServerKind, number>();
  const problems: string[] = [];
  let find: Awaited<ReturnType<typeof runFindPhase>> | undefined;
  const retrieves: RetrieveRun[] = [];
  const peakRssKiB = new Map<ServerKind, number | undefined>();
  const destDir = path.join(runDir, 'dest');
  try {
    const ports: number[] = [];
    const destPort = await freePort(HOST, ports);
    ports.push(destPort);
    mkdirSync(destDir, { recursive: true });
    storescp = children.launch(
      'storescp',
      ['+xa', '-pdu', String(SCP_MAX_PDU), '-od', destDir, String(destPort)],
      { group: true },
    );
    await waitForPort(HOST, destPort, storescp, 'storescp', SERVER_READY_MS);
    servers.push(await startServer('tessera', path.join(runDir, 'tessera'), destPort, ports));
    if (args.orthanc)
      servers.push(await startServer('orthanc', path.join(runDir, 'orthanc'), destPort, ports));

    // Load (not measured, but printed).
    for (const s of servers) {
      const ms = await load(s, loadPaths, args.parallel);
      loadMs.set(s.kind, ms);
      const n = await indexedInstances(s);
      indexed.set(s.kind, n);
      s.loadedRssKiB = procStatusKiB(s.proc.pid, 'VmRSS');
      log(
        `loaded ${s.label}: ${loadPaths.length} files (${((small.bytes + large.bytes) / MiB).toFixed(0)} MiB) with ${args.parallel} storescu in ${(ms / 1000).toFixed(1)} s ` +
          `(${((loadPaths.length / ms) * 1000).toFixed(0)} inst/s); ${n} instances indexed`,
      );
      if (n !== loadPaths.length)
        throw new Error(`${s.label} indexed ${n} instances, ${loadPaths.length} sent`);
    }
    syncDisk();

    if (args.phases.includes('find')) find = await runFindPhase(servers, queries, args.rounds, byUid);

    const ops = (['move', 'get'] as const).filter((op) => args.phases.includes(op));
    if (ops.length) {
      for (const op of ops)
        for (const s of servers)
          retrieves.push(
            await retrieveOnce(s, op, -1, retrieveStudy, destDir, graveyard, runDir, args.getSink, storescp!),
          );
      for (let r = 0; r < args.rounds; r++) {
        const order = r % 2 === 0 ? servers : [...servers].reverse();
        for (const op of ops)
          for (const s of order)
            retrieves.push(
              await retrieveOnce(
                s,
                op,
                r,
                retrieveStudy,
                destDir,
                graveyard,
                runDir,
                args.getSink,
                storescp!,
              ),
            );
      }
    }
    for (const s of servers) peakRssKiB.set(s.kind, procStatusKiB(s.proc.pid, 'VmHWM'));
  } catch (err) {
    problems.push((err as Error).message);
    log(`!!! ${(err as Error).message}`);
  } finally {
    for (const s of servers) await children.stop(s.proc);
    if (storescp) await children.stop(storescp);
    children.killAll();
  }

  // ------------------------------------------------------------------------------------------------
  // Figures
  const kinds = servers.map((s) => s.kind);
  const table: string[] = [];
  const targets: Record<
    string,
    { target: string; ratio: number | null; perRound: (number | null)[]; pass: boolean }
  > = {};
  const addTarget = (key: string, what: string, ratio: number, perRound: (number | null)[]): string => {
    const pass = Number.isFinite(ratio) && ratio >= TARGET_RATIO;
    targets[key] = { target: `${what} >= ${TARGET_RATIO}`, ratio: round2(ratio), perRound, pass };
    return `${ratio.toFixed(2)}x (rounds ${perRound.map((x) => x?.toFixed(2) ?? '-').join(' ')}) >= ${TARGET_RATIO.toFixed(1)}x -> ${pass ? 'PASS' : 'FAIL'}`;
  };
  const findSummary: Record<string, unknown> = {};
  let mismatches = 0;
  if (find) {
    const f = find;
    const roundStats = (k: ServerKind, r: number) => {
      const xs = f.samples.filter((x) => x.server === k && x.round === r).map((x) => x.ms);
      return { median: median(xs), p95: percentile(xs, 95), n: xs.length };
    };
    const perServer = (k: ServerKind) => {
      const rounds = Array.from({ length: args.rounds }, (_, r) => roundStats(k, r));
      const all = f.samples.filter((x) => x.server === k).map((x) => x.ms);
      return {
        median: median(rounds.map((x) => x.median)),
        p95: median(rounds.map((x) => x.p95)),
        mean: all.reduce((a, b) => a + b, 0) / all.length,
        max: Math.max(...all),
        rounds,
        ok: all.length,
        perKind: Object.fromEntries(
          QUERY_KINDS.map((kind) => [
            kind,
            median(
              f.samples.filter((x) => x.server === k && queries[x.query]!.kind === kind).map((x) => x.ms),
            ),
          ]),
        ) as Record<QueryKind, number>,
      };
    };
    const stats = new Map(kinds.map((k) => [k, perServer(k)]));
    const expectedMatches = queries.map((q) => q.expected.size);
    table.push(
      `[find] study-level C-FIND (Study Root), ${all.length} studies / ${loadPaths.length} instances, ${queries.length} queries x ${args.rounds} round(s) ` +
        `(${QUERY_KINDS.length} kinds, ${(expectedMatches.reduce((a, b) => a + b, 0) / queries.length).toFixed(1)} matches per query on average, ${RETURN_KEYS.length} return keys); ` +
        'one association per server, queries alternating between servers; ms from request to final response',
    );
    table.push(
      `${pad('', 18, true)}${pad('median', 9)}${pad('p95', 9)}${pad('mean', 9)}${pad('max', 9)}  per kind (median ms): ${QUERY_KINDS.map((k) => KIND_LABEL[k]).join(' | ')}`,
    );
    const perKindMatches = QUERY_KINDS.map((kind) => {
      const xs = queries.filter((q) => q.kind === kind).map((q) => q.expected.size);
      return `${KIND_LABEL[kind]} ${(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)).toFixed(1)}`;
    });
    table.push(`  matches per query (mean): ${perKindMatches.join(', ')}`);
    for (const k of kinds) {
      const s = stats.get(k)!;
      table.push(
        `${pad(`  ${SERVER_LABEL[k]}`, 18, true)}${pad(s.median.toFixed(2), 9)}${pad(s.p95.toFixed(2), 9)}${pad(s.mean.toFixed(2), 9)}${pad(s.max.toFixed(1), 9)}  ` +
          QUERY_KINDS.map((kind) => s.perKind[kind].toFixed(2)).join(' | ') +
          `   (server CPU ${f.cpuS.get(k)?.toFixed(1) ?? '?'} s over the rounds; ${s.ok}/${queries.length * args.rounds} queries answered)`,
      );
    }
    const t = stats.get('tessera')!;
    const o = stats.get('orthanc');
    let ratios: Record<string, unknown> = {};
    if (o) {
      const perRound = (which: 'median' | 'p95') =>
        t.rounds.map((x, r) => round2(o.rounds[r]![which] / x[which]));
      const rm = o.median / t.median;
      const rp = o.p95 / t.p95;
      table.push(
        `target C-FIND median latency Orthanc / tessera: ${addTarget('findMedian', 'C-FIND median latency, Orthanc / tessera', rm, perRound('median'))}`,
      );
      table.push(
        `target C-FIND p95 latency Orthanc / tessera:    ${addTarget('findP95', 'C-FIND p95 latency, Orthanc / tessera', rp, perRound('p95'))}`,
      );
      table.push(
        `info   per kind, median Orthanc / tessera: ${QUERY_KINDS.map((k) => `${KIND_LABEL[k]} ${(o.perKind[k] / t.perKind[k]).toFixed(2)}x`).join(', ')}`,
      );
      ratios = {
        median: round2(rm),
        p95: round2(rp),
        medianPerRound: perRound('median'),
        p95PerRound: perRound('p95'),
      };
    }
    for (const c of f.clients) {
      const n = [...c.checks.values()].reduce((a, b) => a + b.count, 0);
      mismatches += n;
      if (n === 0) table.push(`check  ${c.server.label}: every answer had the expected matches and values`);
      else {
        table.push(
          `!!! check ${c.server.label}: ${n} problem(s) in the answers${c.broken ? ` (gave up: ${c.broken})` : ''}:`,
        );
        for (const [key, ch] of c.checks)
          table.push(`!!!   ${key}: ${ch.count}x, e.g. ${ch.examples.join(' | ').slice(0, 400)}`);
      }
    }
    const answered = f.samples.length;
    const clientIn = new Map(
      kinds.map((k) => [k, median(f.samples.filter((x) => x.server === k).map((x) => x.clientCpuMs))]),
    );
    table.push(
      `info   the client (this process, the same SCU for both) used ${f.clientCpuS.toFixed(1)} s of CPU over the rounds ` +
        `(${((f.clientCpuS / Math.max(1, answered)) * 1000).toFixed(2)} ms per query, checks included); inside the timed window, median per query: ` +
        kinds.map((k) => `${SERVER_LABEL[k]} ${clientIn.get(k)!.toFixed(2)} ms`).join(', '),
    );
    findSummary.clientCpuS = round2(f.clientCpuS);
    findSummary.clientCpuMsPerQuery = round2((f.clientCpuS / Math.max(1, answered)) * 1000, 3);
    findSummary.clientCpuMsInTimerMedian = Object.fromEntries(
      kinds.map((k) => [k, round2(clientIn.get(k), 3)]),
    );
    findSummary.queries = queries.length;
    findSummary.kinds = Object.fromEntries(QUERY_KINDS.map((k) => [k, KIND_LABEL[k]]));
    findSummary.expectedMatches = {
      total: expectedMatches.reduce((a, b) => a + b, 0),
      max: Math.max(...expectedMatches),
    };
    findSummary.servers = Object.fromEntries(
      kinds.map((k) => {
        const s = stats.get(k)!;
        return [
          k,
          {
            medianMs: round2(s.median, 3),
            p95Ms: round2(s.p95, 3),
            meanMs: round2(s.mean, 3),
            maxMs: round2(s.max, 2),
            roundsMedianMs: s.rounds.map((x) => round2(x.median, 3)),
            roundsP95Ms: s.rounds.map((x) => round2(x.p95, 3)),
            perKindMedianMs: Object.fromEntries(
              QUERY_KINDS.map((kind) => [kind, round2(s.perKind[kind], 3)]),
            ),
            answered: s.ok,
            serverCpuS: round2(f.cpuS.get(k)),
            checks: Object.fromEntries(
              [...f.clients.find((c) => c.server.kind === k)!.checks].map(([key, ch]) => [key, ch]),
            ),
          },
        ];
      }),
    );
    findSummary.ratioOrthancOverTessera = ratios;
    table.push('');
  }

  const retrieveSummary: Record<string, unknown> = {};
  for (const op of ['move', 'get'] as const) {
    const runs = retrieves.filter((x) => x.op === op && x.round >= 0);
    if (runs.length === 0 && !retrieves.some((x) => x.op === op)) continue;
    const mib = (large.bytes / MiB).toFixed(1);
    table.push(
      op === 'move'
        ? `[move] C-MOVE of a ${args.retrieve}-instance study (${mib} MiB, 512x512x16-bit CT) to storescp +xa (DEST), timed from the request to the final response; median of ${args.rounds} round(s)`
        : `[get] C-GET of the same study on the requestor's association; this process ${args.getSink === 'files' ? 'writes each instance as a Part 10 file (no fsync)' : 'reads and drops each instance (--get-sink drain)'}; median of ${args.rounds} round(s)`,
    );
    table.push(`${pad('', 18, true)}${pad('inst/s', 9)}${pad('MiB/s', 9)}${pad('s', 8)}  rounds (s)`);
    const st = new Map(
      kinds.map((k) => {
        const mine = runs.filter((x) => x.server === k);
        const good = mine.filter((x) => x.ok);
        const ms = median(good.map((x) => x.ms));
        return [
          k,
          {
            mine,
            good,
            ms,
            cpu: median(good.map((x) => x.serverCpuS).filter((x): x is number => x !== undefined)),
            clientCpu: median(good.map((x) => x.clientCpuS)),
            destCpu: median(good.map((x) => x.destCpuS).filter((x): x is number => x !== undefined)),
          },
        ];
      }),
    );
    for (const k of kinds) {
      const s = st.get(k)!;
      const fails = s.mine.length - s.good.length;
      const ts = retrieves.find((x) => x.server === k && x.op === op && x.transferSyntax)?.transferSyntax;
      table.push(
        `${pad(`  ${SERVER_LABEL[k]}`, 18, true)}${pad(((args.retrieve / s.ms) * 1000).toFixed(1), 9)}${pad((large.bytes / MiB / (s.ms / 1000)).toFixed(1), 9)}${pad((s.ms / 1000).toFixed(3), 8)}  ` +
          `${s.mine.map((x) => (x.ok ? (x.ms / 1000).toFixed(3) : 'FAIL')).join(' ')}   (CPU s per run: server ${Number.isFinite(s.cpu) ? s.cpu.toFixed(2) : '?'}, ` +
          `this process ${Number.isFinite(s.clientCpu) ? s.clientCpu.toFixed(2) : '?'}` +
          `${Number.isFinite(s.destCpu) ? `, storescp ${s.destCpu.toFixed(2)}` : ''}` +
          `${ts ? `; transfer syntax ${ts}` : ''})${fails ? ` ${fails} FAILED` : ''}`,
      );
    }
    const t = st.get('tessera')!;
    const o = st.get('orthanc');
    const summary: Record<string, unknown> = Object.fromEntries(
      kinds.map((k) => {
        const s = st.get(k)!;
        return [
          k,
          {
            instPerS: round2((args.retrieve / s.ms) * 1000, 1),
            mibPerS: round2(large.bytes / MiB / (s.ms / 1000), 1),
            ms: round2(s.ms, 1),
            roundsMs: s.mine.map((x) => (x.ok ? round2(x.ms, 1) : null)),
            serverCpuS: round2(s.cpu),
            clientCpuS: round2(s.clientCpu),
            ...(op === 'move' ? { storescpCpuS: round2(s.destCpu) } : {}),
            failed: s.mine.length - s.good.length,
          },
        ];
      }),
    );
    if (o) {
      const perRound = t.mine.map((x) => {
        const y = o.mine.find((z) => z.round === x.round);
        return x.ok && y?.ok ? round2(y.ms / x.ms) : null;
      });
      const r = o.ms / t.ms;
      summary.ratioTesseraOverOrthanc = { ratio: round2(r), perRound };
      table.push(
        `target C-${op.toUpperCase()} throughput tessera / Orthanc: ${addTarget(op, `C-${op.toUpperCase()} throughput, tessera / Orthanc`, r, perRound)}`,
      );
    }
    retrieveSummary[op] = summary;
    table.push('');
  }
  const failedRetrieves = retrieves.filter((x) => !x.ok);
  for (const f of failedRetrieves)
    table.push(
      `!!! FAILED ${f.op} ${f.round < 0 ? 'warm-up' : `round ${f.round + 1}`} ${SERVER_LABEL[f.server]}: ${f.problems.join('; ').slice(0, 500)}`,
    );

  table.push(
    `servers: ${servers
      .map(
        (s) =>
          `${s.label} peak RSS (VmHWM) ${((peakRssKiB.get(s.kind) ?? Number.NaN) / 1024).toFixed(0)} MiB ` +
          `(${((s.startRssKiB ?? Number.NaN) / 1024).toFixed(0)} MiB once listening, ${((s.loadedRssKiB ?? Number.NaN) / 1024).toFixed(0)} MiB after loading), ` +
          `loaded in ${((loadMs.get(s.kind) ?? Number.NaN) / 1000).toFixed(1)} s`,
      )
      .join('; ')}`,
  );
  table.push('tessera serve runs from its bundle (dist/main.js, as the tessera command does)');
  for (const p of problems) table.push(`!!! ${p}`);
  if (mismatches) table.push(`!!! ${mismatches} problem(s) in C-FIND answers (see the checks above)`);

  const summary = {
    benchmark:
      'tessera Q/R (C-FIND latency, C-MOVE and C-GET throughput: tessera serve vs Orthanc, same client)',
    units: {
      latency:
        'ms from the C-FIND-RQ to the final response, every match received and decoded; median / p95 of each round, then the median over rounds',
      throughput:
        'instances/s of the retrieve study, from the C-MOVE-RQ/C-GET-RQ to the final response (median over rounds)',
      ratio:
        'find: Orthanc latency / tessera latency; move/get: tessera throughput / Orthanc throughput (> 1: tessera faster)',
      rss: 'MiB, VmHWM of the server process over the whole run, loading included',
    },
    env: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}`,
      memMiB: Math.round(os.totalmem() / MiB),
      dcmtk,
      orthanc: orthancVersion,
      childEnv: { TCP_NODELAY: '1' },
    },
    params: {
      studies: args.studies,
      perStudy: args.perStudy,
      instances: loadPaths.length,
      queryFiles: { files: small.paths.length, bytes: small.bytes, pixels: '64x64x16' },
      retrieveStudy: { instances: args.retrieve, bytes: large.bytes, pixels: '512x512x16' },
      queries: args.queries,
      rounds: args.rounds,
      loadParallel: args.parallel,
      scpMaxPdu: SCP_MAX_PDU,
      benchDir: BENCH_DIR,
      tesseraServe: `node dist/main.js serve --data-dir DIR --dimse-port PORT --http-port PORT2 --host 127.0.0.1 --any-called-ae --peer ${DEST_AE}=127.0.0.1:DESTPORT`,
      orthanc: `${ORTHANC} DIR/orthanc.json: SQLite index, DicomAet ORTHANC, DicomCheckCalledAet false, DicomAlwaysAllowFind/Move/Get true, DicomModalities {${DEST_AE}: [${DEST_AE}, 127.0.0.1, DESTPORT]}, MaximumPduLength ${SCP_MAX_PDU}, the rest default`,
      moveDestination: `storescp +xa -pdu ${SCP_MAX_PDU} -od DIR DESTPORT`,
      getReceiver:
        args.getSink === 'files'
          ? 'this process (Tessera SCU): Part 10 file per instance, no fsync'
          : 'this process (Tessera SCU): data sets read and dropped',
    },
    load: Object.fromEntries(
      kinds.map((k) => [k, { ms: round2(loadMs.get(k), 0), indexed: indexed.get(k) ?? null }]),
    ),
    find: findSummary,
    ...retrieveSummary,
    servers: Object.fromEntries(
      servers.map((s) => [
        s.kind,
        {
          peakRssMiB: round2((peakRssKiB.get(s.kind) ?? Number.NaN) / 1024, 1),
          startRssMiB: round2((s.startRssKiB ?? Number.NaN) / 1024, 1),
          loadedRssMiB: round2((s.loadedRssKiB ?? Number.NaN) / 1024, 1),
        },
      ]),
    ),
    targets,
    problems: [
      ...problems,
      ...failedRetrieves.map((f) => `${f.op} ${f.round} ${f.server}: ${f.problems.join('; ')}`),
    ],
    findAnswerProblems: mismatches,
    elapsedS: round2((performance.now() - started) / 1000, 1),
  };

  for (const s of servers) writeFileSync(path.join(runDir, `${s.kind}.log`), s.proc.output());
  if (args.keep) log(`servers' data, logs and received files kept in ${runDir} (delete it yourself)`);
  else {
    const t0 = performance.now();
    rmSync(runDir, { recursive: true, force: true });
    log(
      `deleted ${runDir} in ${((performance.now() - t0) / 1000).toFixed(1)} s (the generated files stay in ${BENCH_DIR} for the next run)`,
    );
  }
  console.log(table.join('\n'));
  console.log();
  console.log(JSON.stringify(summary));
  if (problems.length || mismatches || failedRetrieves.length || Object.values(targets).some((x) => !x.pass))
    process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  children.killAll();
  process.exit(1);
});
