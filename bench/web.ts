/**
 * DICOMweb benchmark: Tessera's DICOMweb origin server (`tessera serve`, /dicomweb) against Orthanc with
 * its DICOMweb plugin (/dicom-web), the same files and the same HTTP client (this process, Node's fetch)
 * in one run.
 *
 *   npm run bench:web -- [--studies 1000] [--per-study 10] [--retrieve 100] [--ingest 400] [--batch 50]
 *                        [--concurrency 4] [--queries 210] [--rounds 3] [--wado-repeat 3] [--metadata 20]
 *                        [--phases ingest,qido,wado] [--gzip] [--no-orthanc] [--strict] [--keep]
 *
 * Data (bench/qr.ts's generator, shared through bench/common.ts; generated once into
 * os.tmpdir()/tessera-bench-web/files-*, reused):
 * - the query set: S studies (--studies, 1000) of K (--per-study, 10) 64x64 16-bit CT/MR instances
 *   (~10 KiB) in two series; PatientName from lists of names, StudyDate over 15 years, AccessionNumber,
 *   ModalitiesInStudy CT, MR or CT\MR;
 * - the retrieve study: N (--retrieve, 100) 512x512 16-bit CT instances (0.5 MiB) of its own patient;
 * - the ingest set: I (--ingest, 400) 512x512 CT instances (0.5 MiB) in a study of their own.
 *
 * Servers: `node dist/main.js serve --data-dir D --dimse-port P --http-port H --host
 * 127.0.0.1 --any-called-ae` (DICOMweb at http://127.0.0.1:H/dicomweb) and Debian's Orthanc 1.10 with
 * its DICOMweb plugin (a temporary JSON configuration: Plugins [libOrthancDicomWeb.so], DicomWeb
 * {Enable, Root /dicom-web/}, RemoteAccessAllowed false, AuthenticationEnabled false, the rest default:
 * SQLite index, SyncStorageArea true). Both fsync what they store before answering.
 *
 * Phases:
 * - ingest: STOW-RS of the ingest set, multipart/related; type="application/dicom" bodies streamed
 *   from the files (exact Content-Length, no chunking), C (--concurrency, 4) clients pulling requests
 *   from one queue, (a) 1 instance per request and (b) B (--batch, 50) per request. Each run gets a
 *   fresh server (empty data folder) and an untimed warm-up of 12 other 0.5 MiB instances in the same
 *   mode; timed from the first request to the last response. Every response must be 200 with a
 *   ReferencedSOPSequence naming exactly the instances sent, no FailedSOPSequence items, and the
 *   server's instance count must match afterwards. R (--rounds) rounds, servers in alternating order.
 * - load (not a target, printed): both long-running servers get the query set and the retrieve study by
 *   STOW-RS, B per request, C clients (one server at a time).
 * - qido: Q (--queries, 210) QIDO-RS queries of 7 kinds, in turn: /studies?PatientName=ABC*,
 *   ?StudyDate=range, ?PatientID=, ?AccessionNumber=, ?ModalitiesInStudy=X&StudyDate=range,
 *   /studies/{s}/series, /studies/{s}/series/{se}/instances (default return attributes). The same list
 *   for both servers; each query goes to both in turn (Tessera first on even queries) so that they share
 *   the noise; an untimed warm-up pass, then R rounds. Latency: from the request to the parsed JSON.
 *   Every answer is checked against the generator's matches (UIDs of the level, and
 *   NumberOfStudyRelatedInstances where returned), and the two servers' match counts are compared:
 *   a difference is printed loudly and fails the run.
 * - wado: WADO-RS of the retrieve study (Accept: multipart/related; type="application/dicom";
 *   transfer-syntax=*), streamed and split into parts here (each must be a Part 10 file, DICM at 128,
 *   and the SOP Instance UIDs must be exactly the study's); MiB/s of the response body; R rounds of
 *   --wado-repeat retrievals per server, alternating, after a warm-up. Then /studies/{s}/metadata:
 *   --metadata requests per server per round, alternating, latency to the parsed JSON, which must hold
 *   one object per instance with the study's SOP Instance UIDs.
 *
 * Requests send Accept-Encoding: identity (--gzip: gzip, as browsers do). Ratios: ingest and WADO
 * throughput tessera / Orthanc, latencies Orthanc / tessera (> 1: tessera faster). Targets (issue 6):
 * ingest and WADO-RS retrieval >= 3x Orthanc, QIDO median latency <= 1/3 of Orthanc's. The servers' peak
 * RSS (VmHWM), their CPU seconds and this client's per phase are read from /proc and process.cpuUsage.
 *
 * Servers' data lives in os.tmpdir()/tessera-bench-web/run-PID (ingest runs' data is renamed into its
 * graveyard, never deleted mid-run: deleting ~1 GB stalls file creation for seconds on this disk) and is
 * deleted at the very end (--keep leaves it). Progress goes to stderr; the table and then a JSON summary
 * to stdout. The exit code is 1 when a check failed (--strict: also when a target was missed).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import {
  type BenchFileSet,
  type BenchStudy,
  benchChildren,
  benchLog,
  benchQidoQueries,
  benchRetrieveStudy,
  benchSopUid,
  benchStudy,
  cpuSecondsOf,
  ensureBenchFiles,
  freePort,
  fx,
  median,
  note,
  type Problems,
  type Proc,
  pad,
  percentile,
  prepareRunDir,
  procStatusKiB,
  QIDO_KIND_LABEL,
  QIDO_KINDS,
  type QidoKind,
  type QidoQuery,
  QR_DATA_VERSION,
  readFlags,
  readPhases,
  round2,
  SOP_UID,
  STUDY_UID,
  tesseraEntry,
  tesseraRevision,
  tesseraServeArgv,
  waitForPort,
  writeOrthancConfig,
} from './common.ts';

// ---------------------------------------------------------------------------------------------------
// Options

const MiB = 1024 * 1024;
const HOST = '127.0.0.1';
const BENCH_DIR = path.join(os.tmpdir(), 'tessera-bench-web');
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '..');
/** The bundle `tessera` runs (built now: dist/main.js). */
const TESSERA_MAIN = tesseraEntry(ROOT);
const ORTHANC = '/usr/sbin/Orthanc';
const ORTHANC_DICOMWEB = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
const SERVER_READY_MS = 60_000;
const STOW_TIMEOUT_MS = 300_000;
const QUERY_TIMEOUT_MS = 60_000;
const WADO_TIMEOUT_MS = 300_000;
/** Issue 6: ingest and retrieval >= 3x Orthanc; QIDO median <= 1/3 of Orthanc's. */
const TARGET_RATIO = 3.0;
const INGEST_NAMESPACE = 'tessera-bench-web-ingest';
const INGEST_DATA_VERSION = `web-ingest-v1 ${QR_DATA_VERSION}`;
/** Untimed warm-up instances before each ingest run (the first of the retrieve study: other UIDs). */
const INGEST_WARMUP = 12;
const DICOM_MULTIPART = 'multipart/related; type="application/dicom"';
const CHILD_ENV = { ...process.env, TCP_NODELAY: '1' };

type Phase = 'ingest' | 'qido' | 'wado';
const PHASES: readonly Phase[] = ['ingest', 'qido', 'wado'];

interface Args {
  studies: number;
  perStudy: number;
  retrieve: number;
  ingest: number;
  batch: number;
  concurrency: number;
  queries: number;
  rounds: number;
  wadoRepeat: number;
  metadata: number;
  phases: Phase[];
  gzip: boolean;
  orthanc: boolean;
  strict: boolean;
  keep: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    studies: 1000,
    perStudy: 10,
    retrieve: 100,
    ingest: 400,
    batch: 50,
    concurrency: 4,
    queries: 210,
    rounds: 3,
    wadoRepeat: 3,
    metadata: 20,
    phases: [...PHASES],
    gzip: false,
    orthanc: true,
    strict: false,
    keep: false,
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
        args.retrieve = int(INGEST_WARMUP, 10_000);
        break;
      case '--ingest':
        args.ingest = int(1, 100_000);
        break;
      case '--batch':
        args.batch = int(2, 10_000);
        break;
      case '--concurrency':
        args.concurrency = int(1, 64);
        break;
      case '--queries':
        args.queries = int(1, 100_000);
        break;
      case '--rounds':
        args.rounds = int(1, 100);
        break;
      case '--wado-repeat':
        args.wadoRepeat = int(1, 100);
        break;
      case '--metadata':
        args.metadata = int(1, 10_000);
        break;
      case '--phases':
        args.phases = readPhases(value(), PHASES);
        break;
      case '--gzip':
        args.gzip = true;
        break;
      case '--no-orthanc':
        args.orthanc = false;
        break;
      case '--strict':
        args.strict = true;
        break;
      case '--keep':
        args.keep = true;
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: tsx bench/web.ts [--studies S=1000] [--per-study K=10] [--retrieve N=100] [--ingest I=400] [--batch B=50]\n' +
            '                        [--concurrency C=4] [--queries Q=210] [--rounds R=3] [--wado-repeat W=3] [--metadata M=20]\n' +
            '                        [--phases ingest,qido,wado] [--gzip] [--no-orthanc] [--strict] [--keep]\n' +
            '  --studies/--per-study: the QIDO set (S studies of K 64x64 instances in 2 series), loaded by STOW-RS\n' +
            '  --retrieve: instances (512x512, 0.5 MiB) of the study that WADO-RS retrieves\n' +
            '  --ingest: 0.5 MiB instances per STOW-RS ingest run (each mode: 1 and B per request, C clients)\n' +
            '  --queries: QIDO-RS queries per round (7 kinds in turn, the same list for both servers)\n' +
            '  --wado-repeat: study retrievals per server per round; --metadata: metadata requests per server per round\n' +
            '  --gzip: Accept-Encoding gzip (default identity); --no-orthanc: Tessera alone (no ratios)\n' +
            "  --strict: exit 1 when a target is missed too; --keep: leave the servers' data",
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

const { log, loud } = benchLog('web');

// ---------------------------------------------------------------------------------------------------
// Servers

const children = benchChildren(ROOT, CHILD_ENV, log);

type ServerKind = 'tessera' | 'orthanc';
const SERVER_LABEL: Record<ServerKind, string> = { tessera: 'tessera serve', orthanc: 'Orthanc' };

interface WebServer {
  readonly kind: ServerKind;
  readonly label: string;
  readonly httpPort: number;
  /** The DICOMweb service root, no trailing slash. */
  readonly base: string;
  readonly dir: string;
  readonly proc: Proc;
  readonly startRssKiB: number | undefined;
}

function orthancConfig(dir: string, dicomPort: number, httpPort: number): string {
  return writeOrthancConfig(dir, 'tessera-bench-web', dicomPort, httpPort, {
    Plugins: [ORTHANC_DICOMWEB],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
  });
}

async function startServer(kind: ServerKind, dir: string): Promise<WebServer> {
  mkdirSync(dir, { recursive: true });
  const dicomPort = await freePort(HOST);
  const httpPort = await freePort(HOST, [dicomPort]);
  const proc =
    kind === 'tessera'
      ? children.launch(process.execPath, tesseraServeArgv(TESSERA_MAIN, dir, dicomPort, httpPort, HOST), {
          group: true,
        })
      : children.launch(ORTHANC, [orthancConfig(dir, dicomPort, httpPort)], { group: true });
  await waitForPort(HOST, httpPort, proc, SERVER_LABEL[kind], SERVER_READY_MS);
  const base = `http://${HOST}:${httpPort}${kind === 'tessera' ? '/dicomweb' : '/dicom-web'}`;
  // Ready when a QIDO query answers 200 (Orthanc loads its plugin after opening the HTTP port).
  const deadline = performance.now() + SERVER_READY_MS;
  let last = '';
  for (;;) {
    try {
      const res = await httpText(
        `${base}/studies?PatientID=NOBODY`,
        { accept: 'application/dicom+json' },
        5000,
      );
      if (res.status === 200 || res.status === 204) break;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (performance.now() > deadline)
      throw new Error(`${SERVER_LABEL[kind]}: ${base} did not answer QIDO (${last}):\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    kind,
    label: SERVER_LABEL[kind],
    httpPort,
    base,
    dir,
    proc,
    startRssKiB: procStatusKiB(proc.pid, 'VmRSS'),
  };
}

/** Instances the server holds: Tessera's admin /stats, Orthanc's /statistics. */
async function instanceCount(s: WebServer): Promise<number> {
  const url =
    s.kind === 'tessera' ? `http://${HOST}:${s.httpPort}/stats` : `http://${HOST}:${s.httpPort}/statistics`;
  const res = await httpText(url, {}, 30_000);
  if (res.status !== 200) throw new Error(`${s.label} ${url}: HTTP ${res.status}`);
  const body = JSON.parse(res.text) as { index?: { instances?: number }; CountInstances?: number };
  return Number(s.kind === 'tessera' ? body.index?.instances : body.CountInstances);
}

function clientCpuS(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

function syncDisk(): void {
  spawnSync('sync', [], { timeout: 120_000 });
}

// ---------------------------------------------------------------------------------------------------
// HTTP: node:http with one keep-alive agent (lighter on the client's CPU than fetch, and the same for both
// servers), bodies streamed both ways.

const agent = new http.Agent({ keepAlive: true });

/**
 * Sends a request (the body streamed from `body` when given); resolves with the response, body unread.
 * The whole exchange, body included, is bounded by `timeoutMs` (the socket is destroyed then).
 */
function httpRequest(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: AsyncIterable<Uint8Array>;
    timeoutMs: number;
  },
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent },
      (res) => {
        res.once('close', () => clearTimeout(timer));
        resolve(res);
      },
    );
    const timer = setTimeout(
      () =>
        req.destroy(new Error(`${options.method ?? 'GET'} ${url}: not done within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (options.body) pipeline(Readable.from(options.body), req).catch(reject);
    else req.end();
  });
}

/** The response body, decompressed when the server sent it gzip-encoded (--gzip). */
function bodyOf(res: http.IncomingMessage): AsyncIterable<Buffer> {
  if (res.headers['content-encoding'] !== 'gzip') return res;
  const gunzip = createGunzip();
  res.once('error', (err) => gunzip.destroy(err));
  return res.pipe(gunzip);
}

async function readBody(res: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of bodyOf(res)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** GET (or the request described), the whole body as text. */
async function httpText(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  const res = await httpRequest(url, { headers, timeoutMs });
  const body = await readBody(res);
  return { status: res.statusCode ?? 0, text: body.toString('utf8'), headers: res.headers };
}

// ---------------------------------------------------------------------------------------------------
// STOW-RS

interface FileRef {
  readonly path: string;
  readonly size: number;
  readonly sopUid: string;
}

function fileRefs(set: BenchFileSet, studies: readonly BenchStudy[]): FileRef[] {
  const uids: string[] = [];
  for (const st of studies) for (let i = 0; i < st.instances; i++) uids.push(benchSopUid(st, i));
  if (uids.length !== set.paths.length) throw new Error('file list and studies disagree');
  return set.paths.map((p, i) => ({ path: p, size: set.sizes[i]!, sopUid: uids[i]! }));
}

interface StowRun {
  readonly ms: number;
  readonly instances: number;
  readonly bytes: number;
  readonly requests: number;
  /** Latency of each request (ms), request to response body. */
  readonly requestMs: number[];
  readonly problems: string[];
  readonly serverCpuS: number | undefined;
  readonly clientCpuS: number;
}

const BOUNDARY = 'tessera-bench-web-5d41402abc4b2a76b9719d911017c592';

/** DICOM JSON helpers: the values of a tag in an object, and a sequence's items. */
type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

function values(obj: DicomJson | undefined, tag: string): unknown[] {
  return obj?.[tag]?.Value ?? [];
}

function firstString(obj: DicomJson | undefined, tag: string): string | undefined {
  const v = values(obj, tag)[0];
  return v === undefined || v === null ? undefined : String(v);
}

/** POSTs the files in requests of `perRequest` parts from `concurrency` clients; checks every response. */
async function stow(
  s: WebServer,
  files: readonly FileRef[],
  perRequest: number,
  concurrency: number,
  accept: Record<string, string>,
): Promise<StowRun> {
  const batches: FileRef[][] = [];
  for (let i = 0; i < files.length; i += perRequest) batches.push(files.slice(i, i + perRequest));
  const problems: string[] = [];
  const requestMs: number[] = [];
  let next = 0;
  const one = async (batch: readonly FileRef[]): Promise<void> => {
    const heads = batch.map((_, i) =>
      Buffer.from(`${i ? '\r\n' : ''}--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1'),
    );
    const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`, 'latin1');
    let length = tail.length;
    for (let i = 0; i < batch.length; i++) length += heads[i]!.length + batch[i]!.size;
    const body = async function* (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < batch.length; i++) {
        yield heads[i]!;
        // Reads of at most 1 MiB and no larger than the file, which ends where its size says (no read for
        // EOF): a 1 MiB buffer per 10 KiB file cost more client CPU in GC than the rest of the request.
        const { path: file, size } = batch[i]!;
        const highWaterMark = Math.max(1, Math.min(MiB, size));
        for await (const chunk of createReadStream(file, {
          highWaterMark,
          start: 0,
          end: Math.max(0, size - 1),
        }))
          yield chunk as Buffer;
      }
      yield tail;
    };
    const t0 = performance.now();
    let status = 0;
    let text = '';
    try {
      const res = await httpRequest(`${s.base}/studies`, {
        method: 'POST',
        headers: {
          'content-type': `${DICOM_MULTIPART}; boundary=${BOUNDARY}`,
          'content-length': String(length),
          accept: 'application/dicom+json',
          ...accept,
        },
        body: body(),
        timeoutMs: STOW_TIMEOUT_MS,
      });
      status = res.statusCode ?? 0;
      text = (await readBody(res)).toString('utf8');
    } catch (err) {
      problems.push(`request of ${batch.length} failed: ${(err as Error).message}`);
      return;
    }
    requestMs.push(performance.now() - t0);
    if (status !== 200) {
      problems.push(`HTTP ${status} for ${batch.length} instance(s): ${text.slice(0, 600)}`);
      return;
    }
    let doc: DicomJson;
    try {
      doc = JSON.parse(text) as DicomJson;
    } catch (err) {
      problems.push(
        `HTTP 200 with a body that is not JSON (${(err as Error).message}): ${text.slice(0, 300)}`,
      );
      return;
    }
    const referenced = values(doc, '00081199') as DicomJson[];
    const failed = values(doc, '00081198') as DicomJson[];
    const got = new Set(referenced.map((x) => firstString(x, '00081155')));
    const missing = batch.filter((f) => !got.has(f.sopUid)).length;
    if (referenced.length !== batch.length || missing || failed.length)
      problems.push(
        `HTTP 200 for ${batch.length} instance(s): ReferencedSOPSequence has ${referenced.length} item(s) (${missing} sent UIDs missing), ` +
          `FailedSOPSequence ${failed.length}: ${text.slice(0, 400)}`,
      );
  };
  const cpu0 = cpuSecondsOf(s.proc);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, batches.length) }, async () => {
      while (next < batches.length) await one(batches[next++]!);
    }),
  );
  const ms = performance.now() - t0;
  const cpu1 = cpuSecondsOf(s.proc);
  return {
    ms,
    instances: files.length,
    bytes: files.reduce((a, f) => a + f.size, 0),
    requests: batches.length,
    requestMs,
    problems,
    serverCpuS: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined,
    clientCpuS: clientCpuS(client0),
  };
}

interface IngestRun extends StowRun {
  readonly server: ServerKind;
  readonly perRequest: number;
  readonly round: number;
  readonly peakRssKiB: number | undefined;
  readonly ok: boolean;
}

/** One ingest run: a fresh server, an untimed warm-up, the timed STOW of the ingest set, counts checked. */
async function ingestRun(
  kind: ServerKind,
  perRequest: number,
  round: number,
  ingest: readonly FileRef[],
  warmup: readonly FileRef[],
  args: Args,
  runDir: string,
  graveyard: string,
  accept: Record<string, string>,
): Promise<IngestRun> {
  const slug = `ingest-${kind}-b${perRequest}-r${round + 1}`;
  const dir = path.join(runDir, slug);
  let server: WebServer | undefined;
  let run: StowRun | undefined;
  const problems: string[] = [];
  let peakRssKiB: number | undefined;
  try {
    server = await startServer(kind, dir);
    const warm = await stow(server, warmup, Math.min(perRequest, warmup.length), args.concurrency, accept);
    for (const p of warm.problems) problems.push(`warm-up: ${p}`);
    syncDisk();
    run = await stow(server, ingest, perRequest, args.concurrency, accept);
    problems.push(...run.problems);
    const n = await instanceCount(server);
    if (n !== ingest.length + warmup.length)
      problems.push(`${n} instances stored, ${ingest.length + warmup.length} sent`);
    peakRssKiB = procStatusKiB(server.proc.pid, 'VmHWM');
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    if (server) {
      await children.stop(server.proc);
      writeFileSync(path.join(runDir, `${slug}.log`), server.proc.output());
    }
    syncDisk();
    if (existsSync(dir)) renameSync(dir, path.join(graveyard, slug));
  }
  const ok = problems.length === 0 && run !== undefined;
  const r: IngestRun = {
    ms: run?.ms ?? Number.NaN,
    instances: ingest.length,
    bytes: run?.bytes ?? 0,
    requests: run?.requests ?? 0,
    requestMs: run?.requestMs ?? [],
    problems,
    serverCpuS: run?.serverCpuS,
    clientCpuS: run?.clientCpuS ?? Number.NaN,
    server: kind,
    perRequest,
    round,
    peakRssKiB,
    ok,
  };
  log(
    `ingest ${perRequest}/request round ${round + 1} ${SERVER_LABEL[kind]}: ${(r.ms / 1000).toFixed(2)} s, ` +
      `${((r.instances / r.ms) * 1000).toFixed(1)} inst/s, ${(r.bytes / MiB / (r.ms / 1000)).toFixed(1)} MiB/s; ` +
      `request median ${median(r.requestMs).toFixed(1)} ms; CPU s: server ${r.serverCpuS?.toFixed(2) ?? '?'}, client ${r.clientCpuS.toFixed(2)}; ` +
      `peak RSS ${((peakRssKiB ?? Number.NaN) / 1024).toFixed(0)} MiB`,
  );
  if (!ok)
    loud(
      `FAILED: ingest ${perRequest}/request ${SERVER_LABEL[kind]}: ${problems.join(' | ').slice(0, 2000)}`,
    );
  return r;
}

// ---------------------------------------------------------------------------------------------------
// QIDO-RS

interface QidoSample {
  readonly server: ServerKind;
  readonly round: number;
  readonly query: number;
  readonly ms: number;
  readonly matches: number;
  readonly clientCpuMs: number;
}

/** Runs one query against one server: its latency, and the checks of its answer (recorded in `problems`). */
async function qidoOnce(
  s: WebServer,
  q: QidoQuery,
  qi: number,
  accept: Record<string, string>,
  problems: Map<string, Problems>,
): Promise<{ ms: number; matches: number; clientCpuMs: number } | undefined> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let status: number;
  let doc: unknown;
  let text = '';
  try {
    const res = await httpText(
      `${s.base}${q.path}`,
      { accept: 'application/dicom+json', ...accept },
      QUERY_TIMEOUT_MS,
    );
    status = res.status;
    text = res.text;
    doc = status === 204 ? [] : status === 200 ? JSON.parse(text) : undefined;
  } catch (err) {
    note(problems, 'request failed', `#${qi} ${q.path}: ${(err as Error).message}`);
    return undefined;
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (!Array.isArray(doc)) {
    note(problems, `HTTP ${status}`, `#${qi} ${q.path}: ${text.slice(0, 300)}`);
    return undefined;
  }
  const rows = doc as DicomJson[];
  const uids = rows.map((r) => firstString(r, q.uidTag) ?? '(none)');
  const got = new Set(uids);
  const missing = [...q.expected].filter((u) => !got.has(u)).length;
  const extra = [...got].filter((u) => !q.expected.has(u)).length;
  if (missing || extra || got.size !== uids.length)
    note(
      problems,
      `wrong matches (${QIDO_KIND_LABEL[q.kind]})`,
      `#${qi} ${q.path}: ${uids.length} returned, ${q.expected.size} expected (${missing} missing, ${extra} extra, ${uids.length - got.size} duplicates)`,
    );
  if (q.studyInstances)
    for (const r of rows) {
      const n = firstString(r, '00201208');
      const want = q.studyInstances.get(firstString(r, STUDY_UID) ?? '');
      if (n !== undefined && want !== undefined && Number(n) !== want)
        note(problems, 'wrong NumberOfStudyRelatedInstances', `#${qi} ${q.path}: ${n}, expected ${want}`);
    }
  return { ms, matches: uids.length, clientCpuMs: (cpu.user + cpu.system) / 1000 };
}

async function runQido(
  servers: readonly WebServer[],
  queries: readonly QidoQuery[],
  rounds: number,
  accept: Record<string, string>,
): Promise<{
  samples: QidoSample[];
  problems: Map<ServerKind, Map<string, Problems>>;
  countMismatches: string[];
  cpuS: Map<ServerKind, number | undefined>;
  clientCpuS: number;
}> {
  const problems = new Map(servers.map((s) => [s.kind, new Map<string, Problems>()]));
  const samples: QidoSample[] = [];
  /** Per query, the match count of each server (every pass). */
  const counts = new Map<number, Map<ServerKind, Set<number>>>();
  const pass = async (round: number): Promise<void> => {
    const t0 = performance.now();
    for (let qi = 0; qi < queries.length; qi++) {
      const order = qi % 2 === 0 ? servers : [...servers].reverse();
      for (const s of order) {
        const r = await qidoOnce(s, queries[qi]!, qi, accept, problems.get(s.kind)!);
        if (!r) continue;
        if (round >= 0) samples.push({ server: s.kind, round, query: qi, ...r });
        const c = counts.get(qi) ?? new Map<ServerKind, Set<number>>();
        counts.set(qi, c);
        const set = c.get(s.kind) ?? new Set<number>();
        c.set(s.kind, set);
        set.add(r.matches);
      }
    }
    log(
      `qido ${round < 0 ? 'warm-up' : `round ${round + 1}`}: ${queries.length} queries x ${servers.length} server(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        (round < 0
          ? ''
          : servers
              .map((s) => {
                const xs = samples.filter((x) => x.server === s.kind && x.round === round).map((x) => x.ms);
                return `; ${s.label} median ${median(xs).toFixed(2)} ms p95 ${percentile(xs, 95).toFixed(2)} ms (${xs.length} ok)`;
              })
              .join('')),
    );
  };
  await pass(-1);
  const cpu0 = new Map(servers.map((s) => [s.kind, cpuSecondsOf(s.proc)]));
  const client0 = process.cpuUsage();
  for (let r = 0; r < rounds; r++) await pass(r);
  const client = clientCpuS(client0);
  const cpuS = new Map(
    servers.map((s) => {
      const a = cpu0.get(s.kind);
      const b = cpuSecondsOf(s.proc);
      return [s.kind, a !== undefined && b !== undefined ? b - a : undefined] as const;
    }),
  );
  const countMismatches: string[] = [];
  for (const [qi, c] of counts) {
    const all = [...c.values()].flatMap((x) => [...x]);
    if (new Set(all).size > 1)
      countMismatches.push(
        `#${qi} ${queries[qi]!.path}: ${[...c].map(([k, v]) => `${SERVER_LABEL[k]} ${[...v].join('/')}`).join(', ')} (expected ${queries[qi]!.expected.size})`,
      );
  }
  return { samples, problems, countMismatches, cpuS, clientCpuS: client };
}

// ---------------------------------------------------------------------------------------------------
// WADO-RS: a streaming multipart/related splitter that keeps only each part's headers, size and start

interface ScannedPart {
  headers: string;
  size: number;
  head: Buffer;
}

const HEAD_BYTES = 1024;

class MultipartScanner {
  private readonly delimiter: Buffer;
  /** Unscanned bytes; starts with CRLF so that a delimiter at the very start matches too. */
  private buf: Buffer = Buffer.from('\r\n');
  private state: 'preamble' | 'delimiter' | 'headers' | 'body' | 'epilogue' = 'preamble';
  private part: ScannedPart | undefined;
  private headChunks: Buffer[] = [];
  private headBytes = 0;
  readonly parts: ScannedPart[] = [];
  bytes = 0;

  constructor(boundary: string) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  }

  get closed(): boolean {
    return this.state === 'epilogue';
  }

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.state === 'epilogue') return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.scan();
  }

  private content(bytes: Buffer): void {
    const part = this.part!;
    part.size += bytes.length;
    if (this.headBytes < HEAD_BYTES && bytes.length) {
      const take = bytes.subarray(0, HEAD_BYTES - this.headBytes);
      this.headChunks.push(Buffer.from(take));
      this.headBytes += take.length;
    }
  }

  private scan(): void {
    for (;;) {
      switch (this.state) {
        case 'preamble':
        case 'body': {
          const i = this.buf.indexOf(this.delimiter);
          if (i < 0) {
            const take = Math.max(0, this.buf.length - (this.delimiter.length - 1));
            if (this.state === 'body') this.content(this.buf.subarray(0, take));
            this.buf = this.buf.subarray(take);
            return;
          }
          if (this.state === 'body') {
            this.content(this.buf.subarray(0, i));
            this.part!.head = Buffer.concat(this.headChunks);
            this.parts.push(this.part!);
            this.part = undefined;
          }
          this.buf = this.buf.subarray(i + this.delimiter.length);
          this.state = 'delimiter';
          break;
        }
        case 'delimiter': {
          if (this.buf.length < 2) return;
          if (this.buf[0] === 0x2d && this.buf[1] === 0x2d) {
            this.state = 'epilogue';
            this.buf = Buffer.alloc(0);
            return;
          }
          const eol = this.buf.indexOf('\r\n');
          if (eol < 0) return;
          this.buf = this.buf.subarray(eol + 2);
          this.state = 'headers';
          break;
        }
        case 'headers': {
          let headers: string;
          if (this.buf.length >= 2 && this.buf[0] === 0x0d && this.buf[1] === 0x0a) {
            headers = '';
            this.buf = this.buf.subarray(2);
          } else {
            const end = this.buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            headers = this.buf.subarray(0, end).toString('latin1');
            this.buf = this.buf.subarray(end + 4);
          }
          this.part = { headers, size: 0, head: Buffer.alloc(0) };
          this.headChunks = [];
          this.headBytes = 0;
          this.state = 'body';
          break;
        }
        case 'epilogue':
          return;
      }
    }
  }
}

/** The boundary parameter of a multipart Content-Type (quoted or not). */
function boundaryOf(contentType: string): string | undefined {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m?.[1] ?? m?.[2];
}

interface WadoRun {
  readonly server: ServerKind;
  /** -1: warm-up. */
  readonly round: number;
  readonly ms: number;
  readonly bytes: number;
  readonly parts: number;
  readonly problems: string[];
  readonly serverCpuS: number | undefined;
  readonly clientCpuS: number;
  readonly contentType: string;
}

async function wadoOnce(
  s: WebServer,
  study: BenchStudy,
  sopUids: ReadonlySet<string>,
  round: number,
  accept: Record<string, string>,
): Promise<WadoRun> {
  const problems: string[] = [];
  const cpu0 = cpuSecondsOf(s.proc);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  let scanner: MultipartScanner | undefined;
  let contentType = '';
  try {
    const res = await httpRequest(`${s.base}/studies/${study.uid}`, {
      headers: { accept: `${DICOM_MULTIPART}; transfer-syntax=*`, ...accept },
      timeoutMs: WADO_TIMEOUT_MS,
    });
    contentType = res.headers['content-type'] ?? '';
    const boundary = boundaryOf(contentType);
    if (res.statusCode !== 200 || !boundary) {
      problems.push(
        `HTTP ${res.statusCode}, Content-Type ${contentType}: ${(await readBody(res)).toString('utf8').slice(0, 500)}`,
      );
    } else {
      scanner = new MultipartScanner(boundary);
      for await (const chunk of bodyOf(res)) scanner.push(chunk);
    }
  } catch (err) {
    problems.push(`request failed: ${(err as Error).message}`);
  }
  const ms = performance.now() - t0;
  const client = clientCpuS(client0);
  const cpu1 = cpuSecondsOf(s.proc);
  // Checks, after the clock stopped.
  const parts = scanner?.parts ?? [];
  if (scanner && !scanner.closed) problems.push('the multipart body has no close delimiter');
  if (scanner && parts.length !== study.instances)
    problems.push(`${parts.length} parts, ${study.instances} expected`);
  const seen = new Set<string>();
  let notDicom = 0;
  let small = 0;
  let otherType = 0;
  for (const p of parts) {
    if (p.head.length < 132 || p.head.toString('latin1', 128, 132) !== 'DICM') notDicom++;
    if (p.size < 512 * 512 * 2) small++;
    const type = /^content-type:\s*([^;\r\n]+)/im.exec(p.headers)?.[1]?.trim().toLowerCase();
    if (type !== 'application/dicom') otherType++;
    for (const u of p.head.toString('latin1').match(/[0-9.]{10,64}/g) ?? []) if (sopUids.has(u)) seen.add(u);
  }
  if (notDicom) problems.push(`${notDicom} part(s) are not Part 10 files (no DICM at 128)`);
  if (small) problems.push(`${small} part(s) smaller than their Pixel Data`);
  if (otherType) problems.push(`${otherType} part(s) without Content-Type application/dicom`);
  if (scanner && seen.size !== sopUids.size)
    problems.push(`${seen.size} of the study's ${sopUids.size} SOP Instance UIDs found in the parts`);
  const r: WadoRun = {
    server: s.kind,
    round,
    ms,
    bytes: scanner?.bytes ?? 0,
    parts: parts.length,
    problems,
    serverCpuS: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined,
    clientCpuS: client,
    contentType,
  };
  log(
    `wado ${round < 0 ? 'warm-up' : `round ${round + 1}`} ${s.label}: ${(ms / 1000).toFixed(3)} s, ${(r.bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s, ` +
      `${parts.length} parts (${(r.bytes / MiB).toFixed(1)} MiB); CPU s: server ${r.serverCpuS?.toFixed(2) ?? '?'}, client ${client.toFixed(2)}`,
  );
  if (problems.length) loud(`FAILED: WADO-RS ${s.label}: ${problems.join('; ')}`);
  return r;
}

/**
 * This client's ceiling for the WADO-RS phase: a server (a child Node process) that does nothing but
 * write the same study as a multipart/related body from memory (no disk, no parsing, no index), read
 * and split here exactly as the servers' answers are. No server can be measured faster than this
 * with this client on these cores.
 */
async function clientCeiling(
  files: readonly FileRef[],
  runs: number,
): Promise<{ mibPerS: number; bytes: number; clientCpuS: number; problems: string[] }> {
  const script = `const http = require('node:http'), fs = require('node:fs');
const b = 'tessera-bench-ceiling';
const parts = [];
for (const p of process.argv.slice(1)) parts.push(Buffer.from('--' + b + '\\r\\nContent-Type: application/dicom\\r\\n\\r\\n'), fs.readFileSync(p), Buffer.from('\\r\\n'));
parts.push(Buffer.from('--' + b + '--\\r\\n'));
const s = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=' + b });
  let i = 0;
  const pump = () => { while (i < parts.length) if (!res.write(parts[i++])) return res.once('drain', pump); res.end(); };
  pump();
});
s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));`;
  const child = spawn(process.execPath, ['-e', script, ...files.map((f) => f.path)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const problems: string[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('the ceiling server did not start in 30 s')), 30_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /PORT (\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`the ceiling server exited (${code})`)));
    });
    const speeds: number[] = [];
    let bytes = 0;
    const client0 = process.cpuUsage();
    for (let r = -1; r < runs; r++) {
      const t0 = performance.now();
      const res = await httpRequest(`http://${HOST}:${port}/`, { headers: {}, timeoutMs: WADO_TIMEOUT_MS });
      const scanner = new MultipartScanner(boundaryOf(res.headers['content-type'] ?? '') ?? '');
      for await (const chunk of bodyOf(res)) scanner.push(chunk);
      const ms = performance.now() - t0;
      if (scanner.parts.length !== files.length)
        problems.push(`${scanner.parts.length} parts, ${files.length} expected`);
      bytes = scanner.bytes;
      if (r >= 0) speeds.push(scanner.bytes / MiB / (ms / 1000));
    }
    return { mibPerS: median(speeds), bytes, clientCpuS: clientCpuS(client0) / (runs + 1), problems };
  } finally {
    child.kill('SIGKILL');
  }
}

interface MetaSample {
  readonly server: ServerKind;
  readonly round: number;
  readonly ms: number;
  readonly bytes: number;
}

async function metadataOnce(
  s: WebServer,
  study: BenchStudy,
  sopUids: ReadonlySet<string>,
  accept: Record<string, string>,
  problems: Map<string, Problems>,
): Promise<{ ms: number; bytes: number } | undefined> {
  const t0 = performance.now();
  let status: number;
  let text = '';
  let doc: unknown;
  try {
    const res = await httpText(
      `${s.base}/studies/${study.uid}/metadata`,
      { accept: 'application/dicom+json', ...accept },
      QUERY_TIMEOUT_MS,
    );
    status = res.status;
    text = res.text;
    doc = status === 200 ? JSON.parse(text) : undefined;
  } catch (err) {
    note(problems, 'request failed', (err as Error).message);
    return undefined;
  }
  const ms = performance.now() - t0;
  if (!Array.isArray(doc)) {
    note(problems, `HTTP ${status}`, text.slice(0, 300));
    return undefined;
  }
  const rows = doc as DicomJson[];
  const uids = new Set(rows.map((r) => firstString(r, SOP_UID) ?? ''));
  const found = [...sopUids].filter((u) => uids.has(u)).length;
  if (rows.length !== study.instances || found !== sopUids.size)
    note(
      problems,
      'wrong metadata',
      `${rows.length} objects (${study.instances} expected), ${found} of the study's SOP Instance UIDs`,
    );
  const px = rows.filter((r) => r['7FE00010'] !== undefined && r['7FE00010']?.Value === undefined).length;
  if (px !== rows.length)
    note(problems, 'Pixel Data not as BulkDataURI', `${rows.length - px} of ${rows.length} objects`);
  return { ms, bytes: Buffer.byteLength(text) };
}

// ---------------------------------------------------------------------------------------------------
// Output helpers

function mib(kib: number | undefined): string {
  return kib === undefined ? '?' : (kib / 1024).toFixed(0);
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = performance.now();
  if (args.orthanc) {
    if (spawnSync(ORTHANC, ['--version']).status !== 0)
      throw new Error(`${ORTHANC} is not installed: apt-get install orthanc (or run with --no-orthanc)`);
    if (!existsSync(ORTHANC_DICOMWEB))
      throw new Error(`${ORTHANC_DICOMWEB} is missing: apt-get install orthanc-dicomweb (or --no-orthanc)`);
  }
  const orthancVersion = args.orthanc
    ? (/Orthanc (\d[\d.]*)/.exec(spawnSync(ORTHANC, ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ??
      'unknown')
    : null;
  const dicomwebVersion = args.orthanc
    ? (/^Version:\s*(\S+)/m.exec(
        spawnSync('dpkg-query', ['-s', 'orthanc-dicomweb'], { encoding: 'utf8' }).stdout ?? '',
      )?.[1] ?? 'unknown')
    : null;
  const accept: Record<string, string> = { 'accept-encoding': args.gzip ? 'gzip' : 'identity' };
  // What Tessera was measured: the commit, and whether src/ had uncommitted changes at the start.
  const { commit: tesseraCommit, srcChanges } = tesseraRevision(ROOT);

  // Folders: file caches are kept; this run's folder goes at the end, with those of interrupted runs.
  mkdirSync(BENCH_DIR, { recursive: true });
  const { runDir, graveyard } = prepareRunDir(BENCH_DIR);
  log(
    `bench dir ${BENCH_DIR}; ${args.studies} studies x ${args.perStudy} + a retrieve study of ${args.retrieve}; ingest ${args.ingest} ` +
      `(1 and ${args.batch}/request, ${args.concurrency} clients); ${args.queries} queries; rounds ${args.rounds}; phases ${args.phases.join(',')}; ` +
      `${args.orthanc ? `Orthanc ${orthancVersion} + DICOMweb ${dicomwebVersion}` : 'no Orthanc'}; ` +
      `tessera at ${tesseraCommit}${srcChanges ? ` + ${srcChanges} uncommitted change(s) in src/` : ''}`,
  );

  // Data.
  const studies = Array.from({ length: args.studies }, (_, s) => benchStudy(s, args.perStudy));
  const retrieveStudy = benchRetrieveStudy(args.retrieve);
  const ingestStudy = benchRetrieveStudy(args.ingest, INGEST_NAMESPACE);
  const all = [...studies, retrieveStudy];
  const smallSet = ensureBenchFiles(
    path.join(BENCH_DIR, `files-k${args.perStudy}`),
    `${QR_DATA_VERSION} perStudy=${args.perStudy}`,
    studies,
    64,
    (st, i) => `s${String(st.index).padStart(6, '0')}-${String(i).padStart(3, '0')}.dcm`,
    graveyard,
    log,
  );
  const largeSet = ensureBenchFiles(
    path.join(BENCH_DIR, 'files-retrieve'),
    QR_DATA_VERSION,
    [retrieveStudy],
    512,
    (_, i) => `r${String(i).padStart(5, '0')}.dcm`,
    graveyard,
    log,
  );
  const ingestSet = args.phases.includes('ingest')
    ? ensureBenchFiles(
        path.join(BENCH_DIR, 'files-ingest'),
        INGEST_DATA_VERSION,
        [ingestStudy],
        512,
        (_, i) => `i${String(i).padStart(5, '0')}.dcm`,
        graveyard,
        log,
      )
    : { paths: [], sizes: [], bytes: 0 };
  const smallFiles = fileRefs(smallSet, studies);
  const largeFiles = fileRefs(largeSet, [retrieveStudy]);
  const ingestFiles = args.phases.includes('ingest') ? fileRefs(ingestSet, [ingestStudy]) : [];
  const warmupFiles = largeFiles.slice(0, INGEST_WARMUP);
  const loadFiles = [...smallFiles, ...largeFiles];
  const retrieveUids = new Set(largeFiles.map((f) => f.sopUid));
  const queries = benchQidoQueries(20_240_606, studies, all, args.queries, true);
  syncDisk();

  const kinds: ServerKind[] = args.orthanc ? ['tessera', 'orthanc'] : ['tessera'];
  const problems: string[] = [];
  const ingestRuns: IngestRun[] = [];
  const servers: WebServer[] = [];
  const loads = new Map<ServerKind, StowRun>();
  const loadedRssKiB = new Map<ServerKind, number | undefined>();
  let qido: Awaited<ReturnType<typeof runQido>> | undefined;
  const wadoRuns: WadoRun[] = [];
  let ceiling: Awaited<ReturnType<typeof clientCeiling>> | undefined;
  const metaSamples: MetaSample[] = [];
  const metaProblems = new Map(kinds.map((k) => [k, new Map<string, Problems>()]));
  const metaCpuS = new Map<ServerKind, number | undefined>();
  let metaClientCpuS = Number.NaN;
  const peakRssKiB = new Map<ServerKind, number | undefined>();
  try {
    // ---- ingest: fresh servers
    if (args.phases.includes('ingest')) {
      for (let r = 0; r < args.rounds; r++) {
        const order = r % 2 === 0 ? kinds : [...kinds].reverse();
        for (const perRequest of [1, args.batch])
          for (const k of order)
            ingestRuns.push(
              await ingestRun(k, perRequest, r, ingestFiles, warmupFiles, args, runDir, graveyard, accept),
            );
      }
    }

    if (args.phases.includes('qido') || args.phases.includes('wado')) {
      // ---- load the long-running servers
      for (const k of kinds) servers.push(await startServer(k, path.join(runDir, k)));
      for (const s of servers) {
        const run = await stow(s, loadFiles, args.batch, args.concurrency, accept);
        loads.set(s.kind, run);
        const n = await instanceCount(s);
        loadedRssKiB.set(s.kind, procStatusKiB(s.proc.pid, 'VmRSS'));
        log(
          `loaded ${s.label}: ${loadFiles.length} instances (${((smallSet.bytes + largeSet.bytes) / MiB).toFixed(0)} MiB) by STOW-RS, ` +
            `${args.batch}/request, ${args.concurrency} clients, in ${(run.ms / 1000).toFixed(1)} s (${((loadFiles.length / run.ms) * 1000).toFixed(0)} inst/s); ` +
            `${n} instances stored; CPU s: server ${fx(run.serverCpuS)}, client ${fx(run.clientCpuS)}`,
        );
        if (run.problems.length)
          throw new Error(
            `loading ${s.label} failed: ${run.problems.slice(0, 5).join(' | ').slice(0, 3000)}`,
          );
        if (n !== loadFiles.length)
          throw new Error(`${s.label} holds ${n} instances, ${loadFiles.length} sent`);
      }
      syncDisk();

      // ---- QIDO-RS
      if (args.phases.includes('qido')) qido = await runQido(servers, queries, args.rounds, accept);

      // ---- WADO-RS: the study, then its metadata
      if (args.phases.includes('wado')) {
        for (const s of servers) wadoRuns.push(await wadoOnce(s, retrieveStudy, retrieveUids, -1, accept));
        for (let r = 0; r < args.rounds; r++)
          for (let k = 0; k < args.wadoRepeat; k++) {
            const order = (r * args.wadoRepeat + k) % 2 === 0 ? servers : [...servers].reverse();
            for (const s of order) wadoRuns.push(await wadoOnce(s, retrieveStudy, retrieveUids, r, accept));
          }
        ceiling = await clientCeiling(largeFiles, args.rounds * args.wadoRepeat);
        log(
          `wado client ceiling (a server writing the body from memory): ${ceiling.mibPerS.toFixed(1)} MiB/s`,
        );
        for (const s of servers)
          await metadataOnce(s, retrieveStudy, retrieveUids, accept, metaProblems.get(s.kind)!);
        const cpu0 = new Map(servers.map((s) => [s.kind, cpuSecondsOf(s.proc)]));
        const client0 = process.cpuUsage();
        for (let r = 0; r < args.rounds; r++) {
          for (let i = 0; i < args.metadata; i++) {
            const order = i % 2 === 0 ? servers : [...servers].reverse();
            for (const s of order) {
              const m = await metadataOnce(s, retrieveStudy, retrieveUids, accept, metaProblems.get(s.kind)!);
              if (m) metaSamples.push({ server: s.kind, round: r, ...m });
            }
          }
          log(
            `metadata round ${r + 1}: ` +
              servers
                .map((s) => {
                  const xs = metaSamples.filter((x) => x.server === s.kind && x.round === r).map((x) => x.ms);
                  return `${s.label} median ${median(xs).toFixed(1)} ms p95 ${percentile(xs, 95).toFixed(1)} ms`;
                })
                .join('; '),
          );
        }
        metaClientCpuS = clientCpuS(client0);
        for (const s of servers) {
          const a = cpu0.get(s.kind);
          const b = cpuSecondsOf(s.proc);
          metaCpuS.set(s.kind, a !== undefined && b !== undefined ? b - a : undefined);
        }
      }
      for (const s of servers) peakRssKiB.set(s.kind, procStatusKiB(s.proc.pid, 'VmHWM'));
    }
  } catch (err) {
    problems.push((err as Error).message);
    loud((err as Error).message);
  } finally {
    for (const s of servers) {
      await children.stop(s.proc);
      writeFileSync(path.join(runDir, `${s.kind}.log`), s.proc.output());
    }
    children.killAll();
  }

  // ------------------------------------------------------------------------------------------------
  // Figures
  const table: string[] = [];
  const targets: Record<string, { target: string; ratio: number | null; pass: boolean }> = {};
  const target = (key: string, what: string, ratio: number, extra = ''): string => {
    const pass = Number.isFinite(ratio) && ratio >= TARGET_RATIO;
    targets[key] = { target: `${what} >= ${TARGET_RATIO}`, ratio: round2(ratio), pass };
    return `${fx(ratio)}x${extra} >= ${TARGET_RATIO.toFixed(1)}x -> ${pass ? 'PASS' : 'FAIL'}`;
  };
  const hasOrthanc = kinds.includes('orthanc');
  let failedChecks = 0;

  // ingest
  const ingestSummary: Record<string, unknown> = {};
  if (ingestRuns.length) {
    table.push(
      `[ingest] STOW-RS of ${args.ingest} instances (${(ingestFiles.reduce((a, f) => a + f.size, 0) / MiB).toFixed(1)} MiB, 512x512x16-bit CT, ` +
        `${fx(ingestFiles.reduce((a, f) => a + f.size, 0) / ingestFiles.length / 1024, 0)} KiB each), ${args.concurrency} concurrent clients, ` +
        `a fresh server per run after a warm-up of ${INGEST_WARMUP}; median of ${args.rounds} round(s)`,
    );
    table.push(
      `${pad('', 26, true)}${pad('inst/s', 9)}${pad('MiB/s', 9)}${pad('s', 8)}${pad('req ms', 9)}  rounds (s)  [CPU s per run: server, client; peak RSS]`,
    );
    for (const perRequest of [1, args.batch]) {
      const st = new Map(
        kinds.map((k) => {
          const mine = ingestRuns.filter((x) => x.server === k && x.perRequest === perRequest);
          const good = mine.filter((x) => x.ok);
          return [
            k,
            {
              mine,
              good,
              ms: median(good.map((x) => x.ms)),
              reqMs: median(good.flatMap((x) => x.requestMs)),
              cpu: median(good.map((x) => x.serverCpuS ?? Number.NaN)),
              client: median(good.map((x) => x.clientCpuS)),
              rss: Math.max(...mine.map((x) => x.peakRssKiB ?? 0)),
            },
          ];
        }),
      );
      const bytes = ingestFiles.reduce((a, f) => a + f.size, 0);
      for (const k of kinds) {
        const s = st.get(k)!;
        const fails = s.mine.length - s.good.length;
        failedChecks += fails;
        table.push(
          `${pad(`  ${perRequest}/request ${SERVER_LABEL[k]}`, 26, true)}${pad(fx((args.ingest / s.ms) * 1000, 1), 9)}${pad(fx(bytes / MiB / (s.ms / 1000), 1), 9)}` +
            `${pad(fx(s.ms / 1000, 2), 8)}${pad(fx(s.reqMs, 1), 9)}  ${s.mine.map((x) => (x.ok ? (x.ms / 1000).toFixed(2) : 'FAIL')).join(' ')}` +
            `  [${fx(s.cpu)}, ${fx(s.client)}; ${mib(s.rss)} MiB]${fails ? ` !!! ${fails} FAILED` : ''}`,
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
              instPerS: round2((args.ingest / s.ms) * 1000, 1),
              mibPerS: round2(bytes / MiB / (s.ms / 1000), 1),
              ms: round2(s.ms, 1),
              roundsMs: s.mine.map((x) => (x.ok ? round2(x.ms, 1) : null)),
              requestMedianMs: round2(s.reqMs, 1),
              serverCpuS: round2(s.cpu),
              clientCpuS: round2(s.client),
              peakRssMiB: round2(s.rss / 1024, 1),
              failed: s.mine.length - s.good.length,
            },
          ];
        }),
      );
      if (o) {
        const perRound = t.mine.map((x) => {
          const y = o.mine.find((z) => z.round === x.round);
          return x.ok && y?.ok ? y.ms / x.ms : Number.NaN;
        });
        const ratio = o.ms / t.ms;
        summary.ratioTesseraOverOrthanc = { ratio: round2(ratio), perRound: perRound.map((x) => round2(x)) };
        table.push(
          `target STOW-RS ${perRequest}/request throughput tessera / Orthanc: ${target(`stow${perRequest}`, `STOW-RS ${perRequest}/request throughput, tessera / Orthanc`, ratio, ` (rounds ${perRound.map((x) => fx(x)).join(' ')})`)}`,
        );
      }
      ingestSummary[`perRequest${perRequest}`] = summary;
    }
    for (const r of ingestRuns.filter((x) => !x.ok))
      table.push(
        `!!! FAILED ingest ${r.perRequest}/request round ${r.round + 1} ${SERVER_LABEL[r.server]}: ${r.problems.join(' | ').slice(0, 1500)}`,
      );
    table.push('');
  }

  // load
  const loadSummary: Record<string, unknown> = {};
  if (loads.size) {
    table.push(
      `[load] (info) STOW-RS of the QIDO set and the retrieve study: ${loadFiles.length} instances (${((smallSet.bytes + largeSet.bytes) / MiB).toFixed(0)} MiB; ` +
        `${smallFiles.length} of ~${fx(smallSet.bytes / smallFiles.length / 1024, 1)} KiB), ${args.batch}/request, ${args.concurrency} clients, into the long-running servers`,
    );
    for (const k of kinds) {
      const l = loads.get(k);
      if (!l) continue;
      table.push(
        `${pad(`  ${SERVER_LABEL[k]}`, 26, true)}${pad(fx((l.instances / l.ms) * 1000, 0), 9)} inst/s ${pad(fx(l.bytes / MiB / (l.ms / 1000), 1), 7)} MiB/s ${pad(fx(l.ms / 1000, 1), 7)} s` +
          `  [CPU s: server ${fx(l.serverCpuS)}, client ${fx(l.clientCpuS)}]`,
      );
      loadSummary[k] = {
        instPerS: round2((l.instances / l.ms) * 1000, 1),
        ms: round2(l.ms, 0),
        serverCpuS: round2(l.serverCpuS),
        clientCpuS: round2(l.clientCpuS),
      };
    }
    const lt = loads.get('tessera');
    const lo = loads.get('orthanc');
    if (lt && lo) {
      table.push(`info   load throughput tessera / Orthanc: ${fx(lo.ms / lt.ms)}x`);
      loadSummary.ratioTesseraOverOrthanc = round2(lo.ms / lt.ms);
    }
    table.push('');
  }

  // QIDO
  const qidoSummary: Record<string, unknown> = {};
  if (qido) {
    const q = qido;
    const stats = (k: ServerKind) => {
      const rounds = Array.from({ length: args.rounds }, (_, r) => {
        const xs = q.samples.filter((x) => x.server === k && x.round === r).map((x) => x.ms);
        return { median: median(xs), p95: percentile(xs, 95) };
      });
      const mine = q.samples.filter((x) => x.server === k);
      const perKind = Object.fromEntries(
        QIDO_KINDS.map((kind) => {
          const xs = mine.filter((x) => queries[x.query]!.kind === kind).map((x) => x.ms);
          return [kind, { median: median(xs), p95: percentile(xs, 95) }];
        }),
      ) as Record<QidoKind, { median: number; p95: number }>;
      return {
        median: median(rounds.map((x) => x.median)),
        p95: median(rounds.map((x) => x.p95)),
        rounds,
        perKind,
        answered: mine.length,
        clientCpuMs: median(mine.map((x) => x.clientCpuMs)),
      };
    };
    const st = new Map(kinds.map((k) => [k, stats(k)]));
    const meanMatches = (kind: QidoKind): number => {
      const xs = queries.filter((x) => x.kind === kind).map((x) => x.expected.size);
      return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    };
    table.push(
      `[qido] QIDO-RS, ${all.length} studies / ${loadFiles.length} instances, ${queries.length} queries x ${args.rounds} round(s) (${QIDO_KINDS.length} kinds in turn), ` +
        'each query to both servers in turn; ms from the request to the parsed JSON; median and p95 of each round, then the median of the rounds',
    );
    table.push(
      `  matches per query (mean): ${QIDO_KINDS.map((k) => `${QIDO_KIND_LABEL[k]} ${meanMatches(k).toFixed(1)}`).join(', ')}`,
    );
    table.push(
      `${pad('', 26, true)}${pad('median', 8)}${pad('p95', 8)}  per kind median/p95 ms: ${QIDO_KINDS.map((k) => QIDO_KIND_LABEL[k]).join(' | ')}`,
    );
    for (const k of kinds) {
      const s = st.get(k)!;
      table.push(
        `${pad(`  ${SERVER_LABEL[k]}`, 26, true)}${pad(fx(s.median), 8)}${pad(fx(s.p95), 8)}  ` +
          QIDO_KINDS.map((kind) => `${fx(s.perKind[kind].median)}/${fx(s.perKind[kind].p95)}`).join(' | ') +
          `   (${s.answered}/${queries.length * args.rounds} answered; server CPU ${fx(q.cpuS.get(k), 1)} s over the rounds)`,
      );
    }
    const t = st.get('tessera')!;
    const o = st.get('orthanc');
    let ratios: Record<string, unknown> = {};
    if (o) {
      const perRound = (which: 'median' | 'p95') => t.rounds.map((x, r) => o.rounds[r]![which] / x[which]);
      const rm = o.median / t.median;
      const rp = o.p95 / t.p95;
      table.push(
        `target QIDO-RS median latency Orthanc / tessera: ${target(
          'qidoMedian',
          'QIDO-RS median latency, Orthanc / tessera',
          rm,
          ` (rounds ${perRound('median')
            .map((x) => fx(x))
            .join(' ')})`,
        )}`,
      );
      table.push(
        `info   QIDO-RS p95 latency Orthanc / tessera: ${fx(rp)}x (rounds ${perRound('p95')
          .map((x) => fx(x))
          .join(' ')})`,
      );
      table.push(
        `info   per kind, median Orthanc / tessera: ${QIDO_KINDS.map((k) => `${QIDO_KIND_LABEL[k]} ${fx(o.perKind[k].median / t.perKind[k].median)}x`).join(', ')}`,
      );
      ratios = {
        median: round2(rm),
        p95: round2(rp),
        medianPerRound: perRound('median').map((x) => round2(x)),
        p95PerRound: perRound('p95').map((x) => round2(x)),
        perKindMedian: Object.fromEntries(
          QIDO_KINDS.map((k) => [k, round2(o.perKind[k].median / t.perKind[k].median)]),
        ),
      };
    }
    for (const k of kinds) {
      const ps = q.problems.get(k)!;
      const n = [...ps.values()].reduce((a, b) => a + b.count, 0);
      failedChecks += n;
      if (n === 0) table.push(`check  ${SERVER_LABEL[k]}: every answer had the expected matches`);
      else {
        table.push(`!!! check ${SERVER_LABEL[k]}: ${n} problem(s) in the answers:`);
        for (const [key, p] of ps)
          table.push(`!!!   ${key}: ${p.count}x, e.g. ${p.examples.join(' | ').slice(0, 600)}`);
      }
    }
    if (hasOrthanc) {
      if (q.countMismatches.length === 0)
        table.push('check  both servers gave the same match count for every query');
      else {
        failedChecks += q.countMismatches.length;
        table.push(`!!! the servers' match counts differ on ${q.countMismatches.length} quer(ies):`);
        for (const m of q.countMismatches.slice(0, 10)) table.push(`!!!   ${m}`);
      }
    }
    table.push(
      `info   the client (this process) used ${fx(q.clientCpuS, 1)} s of CPU over the rounds; inside the timed window, median per query: ` +
        kinds.map((k) => `${SERVER_LABEL[k]} ${fx(st.get(k)!.clientCpuMs)} ms`).join(', '),
    );
    Object.assign(qidoSummary, {
      queries: queries.length,
      kinds: QIDO_KIND_LABEL,
      meanMatches: Object.fromEntries(QIDO_KINDS.map((k) => [k, round2(meanMatches(k), 1)])),
      servers: Object.fromEntries(
        kinds.map((k) => {
          const s = st.get(k)!;
          return [
            k,
            {
              medianMs: round2(s.median, 3),
              p95Ms: round2(s.p95, 3),
              roundsMedianMs: s.rounds.map((x) => round2(x.median, 3)),
              roundsP95Ms: s.rounds.map((x) => round2(x.p95, 3)),
              perKindMs: Object.fromEntries(
                QIDO_KINDS.map((kind) => [
                  kind,
                  { median: round2(s.perKind[kind].median, 3), p95: round2(s.perKind[kind].p95, 3) },
                ]),
              ),
              answered: s.answered,
              serverCpuS: round2(q.cpuS.get(k)),
              clientCpuMsInTimerMedian: round2(s.clientCpuMs, 3),
              problems: Object.fromEntries(q.problems.get(k)!),
            },
          ];
        }),
      ),
      countMismatches: q.countMismatches,
      clientCpuS: round2(q.clientCpuS),
      ratioOrthancOverTessera: ratios,
    });
    table.push('');
  }

  // WADO-RS
  const wadoSummary: Record<string, unknown> = {};
  if (wadoRuns.length) {
    table.push(
      `[wado] WADO-RS of the ${args.retrieve}-instance study (${(largeSet.bytes / MiB).toFixed(1)} MiB of files), Accept: ${DICOM_MULTIPART}; transfer-syntax=*; ` +
        `body streamed and split into parts here; ${args.rounds} round(s) x ${args.wadoRepeat}, alternating; median`,
    );
    table.push(
      `${pad('', 26, true)}${pad('MiB/s', 9)}${pad('inst/s', 9)}${pad('s', 8)}  runs (s)  [CPU s per run: server, client]`,
    );
    const st = new Map(
      kinds.map((k) => {
        const mine = wadoRuns.filter((x) => x.server === k && x.round >= 0);
        const good = mine.filter((x) => x.problems.length === 0);
        return [
          k,
          {
            mine,
            good,
            ms: median(good.map((x) => x.ms)),
            bytes: median(good.map((x) => x.bytes)),
            cpu: median(good.map((x) => x.serverCpuS ?? Number.NaN)),
            client: median(good.map((x) => x.clientCpuS)),
          },
        ];
      }),
    );
    for (const k of kinds) {
      const s = st.get(k)!;
      const fails = wadoRuns.filter((x) => x.server === k && x.problems.length).length;
      failedChecks += fails;
      table.push(
        `${pad(`  ${SERVER_LABEL[k]}`, 26, true)}${pad(fx(s.bytes / MiB / (s.ms / 1000), 1), 9)}${pad(fx((args.retrieve / s.ms) * 1000, 1), 9)}${pad(fx(s.ms / 1000, 3), 8)}` +
          `  ${s.mine.map((x) => (x.problems.length ? 'FAIL' : (x.ms / 1000).toFixed(3))).join(' ')}  [${fx(s.cpu)}, ${fx(s.client)}]` +
          `  body ${fx(s.bytes / MiB, 1)} MiB${fails ? ` !!! ${fails} FAILED` : ''}`,
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
            mibPerS: round2(s.bytes / MiB / (s.ms / 1000), 1),
            instPerS: round2((args.retrieve / s.ms) * 1000, 1),
            ms: round2(s.ms, 1),
            runsMs: s.mine.map((x) => (x.problems.length ? null : round2(x.ms, 1))),
            bodyBytes: s.bytes,
            serverCpuS: round2(s.cpu),
            clientCpuS: round2(s.client),
            contentType: wadoRuns.find((x) => x.server === k)?.contentType ?? null,
          },
        ];
      }),
    );
    if (o) {
      // MiB/s ratio (the bodies' sizes differ by a few headers).
      const ratio = o.ms / o.bytes / (t.ms / t.bytes);
      summary.ratioTesseraOverOrthanc = round2(ratio);
      table.push(
        `target WADO-RS study throughput (MiB/s) tessera / Orthanc: ${target('wado', 'WADO-RS study MiB/s, tessera / Orthanc', ratio)}`,
      );
    }
    if (ceiling) {
      const orthancMiBs = o ? o.bytes / MiB / (o.ms / 1000) : undefined;
      summary.clientCeiling = {
        mibPerS: round2(ceiling.mibPerS, 1),
        clientCpuSPerRun: round2(ceiling.clientCpuS),
        problems: ceiling.problems,
      };
      table.push(
        `info   this client's ceiling: a Node server writing the same body from memory (no disk, no index) is read at ` +
          `${ceiling.mibPerS.toFixed(1)} MiB/s (client CPU ${ceiling.clientCpuS.toFixed(2)} s per run)` +
          (orthancMiBs === undefined
            ? ''
            : `; 3x Orthanc would be ${(3 * orthancMiBs).toFixed(1)} MiB/s, ${((3 * orthancMiBs) / ceiling.mibPerS).toFixed(2)}x this ceiling`) +
          (ceiling.problems.length ? `; PROBLEMS: ${ceiling.problems.join('; ')}` : ''),
      );
    }
    for (const r of wadoRuns.filter((x) => x.problems.length))
      table.push(
        `!!! FAILED WADO-RS ${r.round < 0 ? 'warm-up' : `round ${r.round + 1}`} ${SERVER_LABEL[r.server]}: ${r.problems.join('; ').slice(0, 800)}`,
      );
    wadoSummary.study = summary;
    table.push('');

    // metadata
    table.push(
      `[metadata] /studies/{study}/metadata of the ${args.retrieve}-instance study: ${args.metadata} requests per server per round, alternating; ms to the parsed JSON`,
    );
    table.push(
      `${pad('', 26, true)}${pad('median', 8)}${pad('p95', 8)}  rounds (median)  [JSON KiB; CPU s over the rounds: server; client (both)]`,
    );
    const ms = new Map(
      kinds.map((k) => {
        const rounds = Array.from({ length: args.rounds }, (_, r) => {
          const xs = metaSamples.filter((x) => x.server === k && x.round === r).map((x) => x.ms);
          return { median: median(xs), p95: percentile(xs, 95) };
        });
        return [
          k,
          {
            rounds,
            median: median(rounds.map((x) => x.median)),
            p95: median(rounds.map((x) => x.p95)),
            kib: median(metaSamples.filter((x) => x.server === k).map((x) => x.bytes)) / 1024,
          },
        ];
      }),
    );
    for (const k of kinds) {
      const m = ms.get(k)!;
      table.push(
        `${pad(`  ${SERVER_LABEL[k]}`, 26, true)}${pad(fx(m.median, 1), 8)}${pad(fx(m.p95, 1), 8)}  ${m.rounds.map((x) => fx(x.median, 1)).join(' ')}` +
          `  [${fx(m.kib, 0)} KiB; ${fx(metaCpuS.get(k), 1)}; ${fx(metaClientCpuS, 1)}]`,
      );
    }
    const mt = ms.get('tessera')!;
    const mo = ms.get('orthanc');
    if (mo) {
      table.push(
        `info   metadata latency Orthanc / tessera: median ${fx(mo.median / mt.median)}x (rounds ${mt.rounds.map((x, r) => fx(mo.rounds[r]!.median / x.median)).join(' ')}), p95 ${fx(mo.p95 / mt.p95)}x`,
      );
    }
    for (const k of kinds) {
      const ps = metaProblems.get(k)!;
      const n = [...ps.values()].reduce((a, b) => a + b.count, 0);
      failedChecks += n;
      if (n === 0)
        table.push(
          `check  ${SERVER_LABEL[k]}: every metadata answer had ${args.retrieve} objects with the study's SOP Instance UIDs`,
        );
      else
        for (const [key, p] of ps)
          table.push(
            `!!! check ${SERVER_LABEL[k]} metadata: ${key}: ${p.count}x, e.g. ${p.examples.join(' | ').slice(0, 600)}`,
          );
    }
    wadoSummary.metadata = {
      ...Object.fromEntries(
        kinds.map((k) => {
          const m = ms.get(k)!;
          return [
            k,
            {
              medianMs: round2(m.median, 2),
              p95Ms: round2(m.p95, 2),
              roundsMedianMs: m.rounds.map((x) => round2(x.median, 2)),
              jsonKiB: round2(m.kib, 0),
              serverCpuS: round2(metaCpuS.get(k)),
              problems: Object.fromEntries(metaProblems.get(k)!),
            },
          ];
        }),
      ),
      ...(mo
        ? { ratioOrthancOverTessera: { median: round2(mo.median / mt.median), p95: round2(mo.p95 / mt.p95) } }
        : {}),
      clientCpuS: round2(metaClientCpuS),
    };
    table.push('');
  }

  table.push(
    `servers (long-running, for load/QIDO/WADO): ${servers
      .map(
        (s) =>
          `${s.label} peak RSS (VmHWM) ${mib(peakRssKiB.get(s.kind))} MiB (${mib(s.startRssKiB)} MiB once listening, ${mib(loadedRssKiB.get(s.kind))} MiB after loading)`,
      )
      .join('; ')}`,
  );
  if (ingestRuns.length)
    table.push(
      `servers (ingest runs): peak RSS (VmHWM), highest over the runs: ${kinds
        .map(
          (k) =>
            `${SERVER_LABEL[k]} ${mib(Math.max(...ingestRuns.filter((x) => x.server === k).map((x) => x.peakRssKiB ?? 0)))} MiB`,
        )
        .join(', ')}`,
    );
  table.push(
    `tessera at ${tesseraCommit}${srcChanges ? ` + ${srcChanges} uncommitted change(s) in src/` : ''}, Orthanc ${orthancVersion ?? '-'} + DICOMweb plugin ${dicomwebVersion ?? '-'}`,
  );
  table.push(
    `tessera serve runs from its bundle (dist/main.js, as the tessera command does); requests send Accept-Encoding: ${accept['accept-encoding']}; ` +
      `${os.cpus().length} CPUs shared by the servers and this client`,
  );
  for (const p of problems) table.push(`!!! ${p}`);
  failedChecks += problems.length;
  if (failedChecks) table.push(`!!! ${failedChecks} failed check(s): see above`);
  const missed = Object.entries(targets).filter(([, t]) => !t.pass);
  table.push(
    Object.keys(targets).length
      ? `targets: ${Object.keys(targets).length - missed.length}/${Object.keys(targets).length} met${missed.length ? ` (missed: ${missed.map(([k]) => k).join(', ')})` : ''}`
      : 'targets: none measured (no Orthanc)',
  );

  const summary = {
    benchmark:
      'tessera DICOMweb (STOW-RS ingest, QIDO-RS latency, WADO-RS study and metadata retrieval): tessera serve vs Orthanc + DICOMweb plugin, same client',
    units: {
      throughput:
        'instances/s and MiB/s (2^20 bytes) of Part 10 files (ingest) or of the response body (WADO-RS); median over runs',
      latency:
        'ms from the request to the parsed JSON; median / p95 of each round, then the median over rounds',
      ratio:
        'ingest/WADO: tessera throughput / Orthanc throughput; QIDO/metadata: Orthanc latency / tessera latency (> 1: tessera faster)',
      rss: 'MiB, VmHWM of the server process',
    },
    env: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}`,
      memMiB: Math.round(os.totalmem() / MiB),
      orthanc: orthancVersion,
      orthancDicomWeb: dicomwebVersion,
      tesseraCommit,
      tesseraUncommittedSrcChanges: srcChanges,
      acceptEncoding: accept['accept-encoding'],
    },
    params: {
      studies: args.studies,
      perStudy: args.perStudy,
      retrieve: args.retrieve,
      ingest: args.ingest,
      batch: args.batch,
      concurrency: args.concurrency,
      queries: args.queries,
      rounds: args.rounds,
      wadoRepeat: args.wadoRepeat,
      metadata: args.metadata,
      phases: args.phases,
      files: {
        small: { files: smallFiles.length, bytes: smallSet.bytes, pixels: '64x64x16' },
        retrieve: { files: largeFiles.length, bytes: largeSet.bytes, pixels: '512x512x16' },
        ingest: { files: ingestFiles.length, bytes: ingestSet.bytes, pixels: '512x512x16' },
      },
      benchDir: BENCH_DIR,
      tesseraServe:
        'node dist/main.js serve --data-dir DIR --dimse-port P --http-port H --host 127.0.0.1 --any-called-ae (DICOMweb at /dicomweb)',
      orthanc: `${ORTHANC} DIR/orthanc.json: Plugins [${ORTHANC_DICOMWEB}], DicomWeb {Enable: true, Root: /dicom-web/}, RemoteAccessAllowed false, AuthenticationEnabled false, the rest default`,
    },
    ingest: ingestSummary,
    load: loadSummary,
    qido: qidoSummary,
    wado: wadoSummary,
    servers: Object.fromEntries(
      kinds.map((k) => {
        const s = servers.find((x) => x.kind === k);
        return [
          k,
          {
            peakRssMiB: round2((peakRssKiB.get(k) ?? Number.NaN) / 1024, 1),
            startRssMiB: round2((s?.startRssKiB ?? Number.NaN) / 1024, 1),
            loadedRssMiB: round2((loadedRssKiB.get(k) ?? Number.NaN) / 1024, 1),
            ingestPeakRssMiB: round2(
              Math.max(...ingestRuns.filter((x) => x.server === k).map((x) => x.peakRssKiB ?? Number.NaN)) /
                1024,
              1,
            ),
          },
        ];
      }),
    ),
    targets,
    failedChecks,
    problems,
    elapsedS: round2((performance.now() - started) / 1000, 1),
  };

  if (args.keep) log(`servers' data and logs kept in ${runDir} (delete it yourself)`);
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
  if (failedChecks || (args.strict && missed.length)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  children.killAll();
  process.exit(1);
});
