/** Helpers shared by the benchmarks' data generators (deterministic, so data sets can be reused). */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Dataset, writePart10 } from '../src/codec/index.ts';
import { Tag, UID } from '../src/dictionary/index.ts';

/** A deterministic 2.25 UID (PS3.5 §B.2) for a kind of entity and its index, within a namespace. */
export function uidIn(namespace: string, kind: string, n: number): string {
  const h = createHash('sha256').update(`${namespace}:${kind}:${n}`).digest();
  return `2.25.${BigInt(`0x${h.subarray(0, 16).toString('hex')}`).toString()}`;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same files on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A DA value `addDays` after `base`. */
export function isoDate(base: Date, addDays: number): string {
  const d = new Date(base.getTime() + addDays * 86_400_000);
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

// ---------------------------------------------------------------------------------------------------
// Options, logging, run folders and output formatting, as every benchmark that starts servers does them.

/** How a flag's value is read: after `=` (`--flag=value`) or from the next argument. */
export interface FlagValue {
  value(): string;
  /** The value as an integer in min..max (throws otherwise). */
  int(min: number, max: number): number;
}

/**
 * Walks the arguments in order: `on` handles each flag, reading its value through `read`, and returns
 * false for a flag it does not know (which throws `unknown argument`).
 */
export function readFlags(argv: readonly string[], on: (flag: string, read: FlagValue) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? (a.split('=', 2) as [string, string]) : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (min: number, max: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max)
        throw new Error(`${flag} ${v}: expected ${min}..${max}`);
      return n;
    };
    if (!on(flag, { value, int })) throw new Error(`unknown argument ${a}`);
  }
}

/** The value of --phases: a comma-separated subset of `all`, in the order given, without repeats. */
export function readPhases<T extends string>(value: string, all: readonly T[]): T[] {
  const out: T[] = [];
  for (const s of value.split(',')) {
    const p = all.find((x) => x === s.trim());
    if (!p) throw new Error(`--phases: expected a comma-separated list of ${all.join(', ')}`);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** A benchmark's progress log on stderr (`[bench:NAME] ...`), and a loud variant for failures. */
export function benchLog(name: string): { log: (message: string) => void; loud: (message: string) => void } {
  const log = (message: string): void => {
    process.stderr.write(`[bench:${name}] ${message}\n`);
  };
  const line = '!'.repeat(100);
  return { log, loud: (message) => log(`\n${line}\n!!! ${message}\n${line}`) };
}

/** The commit of `root` and how many uncommitted changes its src/ has (what was measured). */
export function tesseraRevision(root: string): { commit: string; srcChanges: number } {
  const git = (...a: string[]): string =>
    spawnSync('git', a, { cwd: root, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  return {
    commit: git('rev-parse', '--short', 'HEAD') || 'unknown',
    srcChanges: git('status', '--porcelain', '--', 'src')
      .split('\n')
      .filter((l) => l !== '').length,
  };
}

/**
 * This run's folder in `benchDir` (run-PID) and its graveyard, where the run folders of interrupted
 * runs are renamed now (deleted only at the end, with this one's).
 */
export function prepareRunDir(benchDir: string): { runDir: string; graveyard: string } {
  const runDir = path.join(benchDir, `run-${process.pid}`);
  const graveyard = path.join(runDir, 'graveyard');
  mkdirSync(graveyard, { recursive: true });
  for (const e of readdirSync(benchDir)) {
    if (/^run-\d+$/.test(e) && e !== path.basename(runDir))
      renameSync(path.join(benchDir, e), path.join(graveyard, `left-${e}`));
  }
  return { runDir, graveyard };
}

/** `x` rounded to `digits` decimals, null when undefined or not finite (for the JSON summaries). */
export function round2(x: number | undefined, digits = 2): number | null {
  if (x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

/** `x` with `digits` decimals, '-' when undefined or not finite (for the tables). */
export function fx(x: number | undefined, digits = 2): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

/** How often something went wrong, with the first few examples. */
export interface Problems {
  count: number;
  examples: string[];
}

/** Counts one problem under `key`, keeping up to three examples. */
export function note(problems: Map<string, Problems>, key: string, example: string): void {
  let p = problems.get(key);
  if (!p) {
    p = { count: 0, examples: [] };
    problems.set(key, p);
  }
  p.count++;
  if (p.examples.length < 3) p.examples.push(example);
}

// ---------------------------------------------------------------------------------------------------
// Statistics, ports, /proc and child processes, for the benchmarks that start servers (no side effects
// at import: a benchmark installs its own exit and signal handlers around `Children.killAll`).

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The p-th percentile (0 < p <= 100) by the nearest-rank method; NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}

/** Resolves with the promise's value, or 'timeout' after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A free TCP port on `host` (bound to port 0, then released), other than those in `avoid`. */
export async function freePort(host = '127.0.0.1', avoid: readonly number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const address = srv.address();
        const p = typeof address === 'object' && address ? address.port : 0;
        srv.close(() => (p ? resolve(p) : reject(new Error('no port'))));
      });
    });
    if (!avoid.includes(port)) return port;
  }
}

/** Whether a TCP connection to host:port opens within a second. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** A field of /proc/<pid>/status in KiB (VmHWM: peak RSS; VmRSS: current RSS), if readable. */
export function procStatusKiB(pid: number | 'self', field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

let clockTicks: number | undefined;

/** CPU seconds of a process from /proc/<pid>/stat: its own (utime+stime) and its waited-for children's. */
export function procCpuSeconds(pid: number | 'self'): { own: number; children: number } | undefined {
  if (clockTicks === undefined) {
    const n = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, so utime (field 14) is at index 11.
    const t = (k: number): number => Number(f[k - 3]);
    return { own: (t(14) + t(15)) / clockTicks, children: (t(16) + t(17)) / clockTicks };
  } catch {
    return undefined;
  }
}

/** A child process started by `Children.launch`. */
export interface Proc {
  readonly child: ChildProcess;
  /** -1 when the spawn failed. */
  readonly pid: number;
  /** Whether it leads its own process group (spawned detached): signals go to the whole group. */
  readonly group: boolean;
  /** The exit code, or the signal name, or 'error: ...' when it could not be spawned. */
  readonly exited: Promise<number | string>;
  /** Resolves after the exit, once stdout and stderr are closed. */
  readonly closed: Promise<void>;
  /** The last 64 KiB of its stdout and stderr. */
  output(): string;
}

/** The children of a benchmark, so that an error or a signal never leaves one behind. */
export class Children {
  private readonly live = new Set<ChildProcess>();

  constructor(private readonly options: { readonly cwd: string; readonly env: NodeJS.ProcessEnv }) {}

  launch(command: string, argv: readonly string[], options: { group: boolean }): Proc {
    const child = spawn(command, argv, {
      cwd: this.options.cwd,
      env: this.options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.group,
    });
    this.live.add(child);
    let out = '';
    const keep = (d: Buffer): void => {
      out += d.toString('utf8');
      if (out.length > 64 * 1024) out = out.slice(-64 * 1024);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, sig) => {
        this.live.delete(child);
        resolve(code ?? sig ?? 'unknown');
      });
      child.once('error', (err) => {
        this.live.delete(child);
        out += `\nspawn error: ${err.message}`;
        resolve(`error: ${err.message}`);
      });
    });
    const closed = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      child.once('error', () => resolve());
    });
    return { child, pid: child.pid ?? -1, group: options.group, exited, closed, output: () => out };
  }

  signal(p: Proc, sig: NodeJS.Signals): void {
    if (p.pid <= 0) return;
    try {
      process.kill(p.group ? -p.pid : p.pid, sig);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM, then SIGKILL (to the group) if it lingers for `graceMs`. */
  async stop(p: Proc, graceMs = 15_000): Promise<void> {
    if (p.pid <= 0) return;
    this.signal(p, 'SIGTERM');
    if ((await withTimeout(p.exited, graceMs)) === 'timeout') {
      this.signal(p, 'SIGKILL');
      await withTimeout(p.exited, 5000);
    }
    if (p.group) this.signal(p, 'SIGKILL');
  }

  /** SIGKILL to every child still running (to its group when it leads one), synchronously. */
  killAll(): void {
    for (const child of this.live) {
      if (child.pid === undefined) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    this.live.clear();
  }
}

/** Waits (bounded) until a server child accepts TCP connections on host:port; throws if it exits first. */
export async function waitForPort(
  host: string,
  port: number,
  server: Proc,
  what: string,
  ms: number,
): Promise<void> {
  const deadline = performance.now() + ms;
  let exited: number | string | undefined;
  void server.exited.then((code) => {
    exited = code;
  });
  while (performance.now() < deadline) {
    if (exited !== undefined)
      throw new Error(`${what} exited (${exited}) before listening:\n${server.output()}`);
    if (await canConnect(host, port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not listening on ${host}:${port} after ${ms} ms:\n${server.output()}`);
}

/**
 * The children of a benchmark, killed (SIGKILL, whole groups) when it exits and on SIGINT/SIGTERM; `onExit`
 * runs after them in both cases (e.g. to stop a database synchronously).
 */
export function benchChildren(
  cwd: string,
  env: NodeJS.ProcessEnv,
  log: (message: string) => void,
  onExit: () => void = () => undefined,
): Children {
  const children = new Children({ cwd, env });
  process.on('exit', () => {
    children.killAll();
    onExit();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping every child`);
      children.killAll();
      onExit();
      process.exit(130);
    });
  }
  return children;
}

/** CPU seconds of a child so far (its own and its waited-for children's), if readable. */
export function cpuSecondsOf(proc: Proc): number | undefined {
  const c = procCpuSeconds(proc.pid);
  return c ? c.own + c.children : undefined;
}

/**
 * Builds the bundle the `tessera` command runs (`npm run build`: dist/main.js) and returns its path:
 * benches run Tessera as users do, not through tsx (which adds ~0.3 s of start-up and ~40 MiB).
 */
export function tesseraEntry(root: string): string {
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`npm run build failed (${r.status}): ${r.stderr}`);
  return path.join(root, 'dist', 'main.js');
}

/** The arguments of `node` for `tessera serve` (the bundle) on 127.0.0.1-style `host`, any called AE. */
export function tesseraServeArgv(
  main: string,
  dataDir: string,
  dimsePort: number | string,
  httpPort: number | string,
  host: string,
  extra: readonly string[] = [],
): string[] {
  return [
    main,
    'serve',
    '--data-dir',
    dataDir,
    '--dimse-port',
    String(dimsePort),
    '--http-port',
    String(httpPort),
    '--host',
    host,
    '--any-called-ae',
    ...extra,
  ];
}

/**
 * Writes an Orthanc configuration into `dir`/orthanc.json (storage and index in `dir`, AE ORTHANC, no
 * remote access nor authentication) with `extra` settings; returns its path.
 */
export function writeOrthancConfig(
  dir: string,
  name: string,
  dicomPort: number,
  httpPort: number,
  extra: Record<string, unknown>,
): string {
  const file = path.join(dir, 'orthanc.json');
  const config = {
    Name: name,
    StorageDirectory: path.join(dir, 'storage'),
    IndexDirectory: path.join(dir, 'index'),
    DicomAet: 'ORTHANC',
    DicomPort: dicomPort,
    HttpPort: httpPort,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    ...extra,
  };
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** GET a JSON document from Orthanc's REST API (bounded). */
export async function orthancGet(
  host: string,
  httpPort: number,
  route: string,
): Promise<Record<string, unknown>> {
  const res = await fetch(`http://${host}:${httpPort}${route}`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`Orthanc GET ${route}: HTTP ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

/** Waits (bounded by `ms`) until Orthanc's REST API answers /system. */
export async function waitForOrthancHttp(
  host: string,
  httpPort: number,
  server: { output(): string },
  ms: number,
): Promise<void> {
  const deadline = performance.now() + ms;
  let last = '';
  while (performance.now() < deadline) {
    try {
      await orthancGet(host, httpPort, '/system');
      return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Orthanc's HTTP /system did not answer within ${ms} ms (${last}):\n${server.output()}`);
}

// ---------------------------------------------------------------------------------------------------
// The Q/R data set (bench/qr.ts's generator, shared): S studies of K small 16-bit CT/MR instances in two
// series, patients from a list of names, StudyDate over 15 years, plus a "retrieve" study of N 512x512
// CT instances. The same namespace and version give byte-identical files to bench/qr.ts's.

/** The namespace of bench/qr.ts's UIDs, and the version stamp of its files. */
export const QR_NAMESPACE = 'tessera-bench-qr';
export const QR_DATA_VERSION = 'qr-v2';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

export const BENCH_FAMILY_NAMES: readonly string[] = [
  'ADAMS',
  'BAKER',
  'CLARK',
  'DUBOIS',
  'EVANS',
  'FISCHER',
  'GARCIA',
  'HUGHES',
  'IVANOV',
  'JONES',
  'KOWALSKI',
  'LOPEZ',
  'MUELLER',
  'NGUYEN',
  'OKAFOR',
  'PETROV',
  'QUINN',
  'ROSSI',
  'SMITH',
  'SMIRNOV',
  'TANAKA',
  'UDDIN',
  'VARGA',
  'WAGNER',
  'XU',
  'YILMAZ',
  'ZHANG',
  'BAKKER',
  'GARNIER',
  'ROSSITER',
];
export const BENCH_GIVEN_NAMES: readonly string[] = [
  'ANNA',
  'JOHN',
  'MARIA',
  'PETER',
  'YUKI',
  'LUCA',
  'SOFIA',
  'OMAR',
  'EVA',
  'LIAM',
  'NORA',
  'IGOR',
];
const CT_DESCRIPTIONS = ['CT CHEST', 'CT ABDOMEN PELVIS', 'CT HEAD', 'CT CHEST ABDOMEN PELVIS WITH CONTRAST'];
const MR_DESCRIPTIONS = ['MR BRAIN', 'MR KNEE LEFT', 'MR LUMBAR SPINE', 'MR PROSTATE'];
const SOP_CLASS: Record<string, string> = { CT: UID.CTImageStorage, MR: UID.MRImageStorage };
/** StudyDate runs from BENCH_DATE_BASE over BENCH_DATE_SPAN_DAYS. */
export const BENCH_DATE_BASE = new Date(Date.UTC(2010, 0, 1));
export const BENCH_DATE_SPAN_DAYS = 15 * 365;

export interface BenchSeries {
  readonly uid: string;
  readonly modality: string;
  readonly number: number;
  readonly instances: number;
}

export interface BenchStudy {
  /** The namespace of its UIDs. */
  readonly namespace: string;
  /** -1 for the retrieve study. */
  readonly index: number;
  readonly uid: string;
  readonly patientId: string;
  readonly patientName: string;
  readonly birthDate: string;
  readonly sex: string;
  readonly date: string;
  readonly time: string;
  readonly accession: string;
  readonly description: string;
  readonly series: readonly BenchSeries[];
  readonly instances: number;
  /** Distinct modalities of its series, sorted. */
  readonly modalities: readonly string[];
}

function benchPatient(p: number): { id: string; name: string; birthDate: string; sex: string } {
  return {
    id: `P${100_000 + p}`,
    name: `${BENCH_FAMILY_NAMES[p % BENCH_FAMILY_NAMES.length]}^${BENCH_GIVEN_NAMES[Math.floor(p / BENCH_FAMILY_NAMES.length) % BENCH_GIVEN_NAMES.length]}`,
    birthDate: isoDate(new Date(Date.UTC(1935, 0, 1)), (p * 7919) % 25_000),
    sex: p % 2 ? 'F' : 'M',
  };
}

/** Patients per block of 1000 studies (~2.9 studies each); a study's patient depends on its index only. */
const PATIENTS_PER_1000_STUDIES = 350;

/** Study `s` of the query set: two series (CT, MR or one of each) sharing `perStudy` instances. */
export function benchStudy(s: number, perStudy: number, namespace = QR_NAMESPACE): BenchStudy {
  const uid = (kind: string, n: number): string => uidIn(namespace, kind, n);
  const rnd = mulberry32(1_000_003 + s);
  const pt = benchPatient(
    Math.floor(s / 1000) * PATIENTS_PER_1000_STUDIES + Math.floor(rnd() * PATIENTS_PER_1000_STUDIES),
  );
  const date = isoDate(BENCH_DATE_BASE, Math.floor(rnd() * BENCH_DATE_SPAN_DAYS));
  const seconds = 7 * 3600 + Math.floor(rnd() * 12 * 3600);
  const time = [seconds / 3600, (seconds / 60) % 60, seconds % 60]
    .map((x) => String(Math.floor(x)).padStart(2, '0'))
    .join('');
  const modality = rnd() < 0.6 ? 'CT' : 'MR';
  const mixed = rnd() < 0.2;
  const second = mixed ? (modality === 'CT' ? 'MR' : 'CT') : modality;
  const first = Math.ceil(perStudy / 2);
  const series: BenchSeries[] = [
    { uid: uid('series', s * 2), modality, number: 1, instances: first },
    { uid: uid('series', s * 2 + 1), modality: second, number: 2, instances: perStudy - first },
  ];
  const descriptions = modality === 'CT' ? CT_DESCRIPTIONS : MR_DESCRIPTIONS;
  return {
    namespace,
    index: s,
    uid: uid('study', s),
    patientId: pt.id,
    patientName: pt.name,
    birthDate: pt.birthDate,
    sex: pt.sex,
    date,
    time,
    accession: `A${2_000_000 + s * 7}`,
    description: descriptions[Math.floor(rnd() * descriptions.length)]!,
    series,
    instances: perStudy,
    modalities: [...new Set(series.map((x) => x.modality))].sort(),
  };
}

/** The retrieve study: `n` CT instances in one series, of its own patient. */
export function benchRetrieveStudy(n: number, namespace = QR_NAMESPACE): BenchStudy {
  const uid = (kind: string, k: number): string => uidIn(namespace, kind, k);
  return {
    namespace,
    index: -1,
    uid: uid('retrieve-study', 0),
    patientId: 'PRETRIEVE',
    patientName: 'RETRIEVE^BENCH',
    birthDate: '19700101',
    sex: 'O',
    date: '20240615',
    time: '101500',
    accession: 'ARETRIEVE',
    description: 'CT CHEST ABDOMEN PELVIS (RETRIEVE)',
    series: [{ uid: uid('retrieve-series', 0), modality: 'CT', number: 1, instances: n }],
    instances: n,
    modalities: ['CT'],
  };
}

/** The SOP Instance UID of the i-th instance of a study (counting across its series in order). */
export function benchSopUid(st: BenchStudy, i: number): string {
  return st.index < 0
    ? uidIn(st.namespace, 'retrieve-sop', i)
    : uidIn(st.namespace, 'sop', st.index * 1000 + i);
}

/** One instance: patient, study, series, equipment, image plane and pixel modules, and Pixel Data. */
export function benchInstance(
  st: BenchStudy,
  se: BenchSeries,
  k: number,
  sopUid: string,
  size: number,
  base: Buffer,
): Dataset {
  const ds = new Dataset();
  const v = (tag: number, ...values: (string | number)[]): void => ds.setValues(tag, values);
  const ct = se.modality === 'CT';
  const z = -100 + k * 2.5;
  const family = BENCH_FAMILY_NAMES;
  v(Tag.SpecificCharacterSet, 'ISO_IR 100');
  v(Tag.ImageType, 'ORIGINAL', 'PRIMARY', 'AXIAL');
  v(Tag.InstanceCreationDate, st.date);
  v(Tag.SOPClassUID, SOP_CLASS[se.modality]!);
  v(Tag.SOPInstanceUID, sopUid);
  v(Tag.StudyDate, st.date);
  v(Tag.SeriesDate, st.date);
  v(Tag.ContentDate, st.date);
  v(Tag.StudyTime, st.time);
  v(Tag.SeriesTime, st.time);
  v(Tag.ContentTime, st.time);
  v(Tag.AccessionNumber, st.accession);
  v(Tag.Modality, se.modality);
  v(Tag.Manufacturer, 'TESSERA MEDICAL SYSTEMS');
  v(Tag.InstitutionName, 'Saint Example General Hospital');
  v(
    Tag.ReferringPhysicianName,
    `${family[(st.index + 3 + family.length) % family.length]}^${BENCH_GIVEN_NAMES[0]}^^DR`,
  );
  v(Tag.StationName, `${se.modality}${(Math.abs(st.index) % 4) + 1}`);
  v(Tag.StudyDescription, st.description);
  v(Tag.SeriesDescription, `${se.modality} SERIES ${se.number}`);
  v(Tag.ManufacturerModelName, ct ? 'Tessera CT 128' : 'Tessera MR 3T');
  v(Tag.PatientName, st.patientName);
  v(Tag.PatientID, st.patientId);
  v(Tag.PatientBirthDate, st.birthDate);
  v(Tag.PatientSex, st.sex);
  if (ct) {
    v(Tag.SliceThickness, 2.5);
    v(Tag.KVP, 120);
  } else {
    v(Tag.SliceThickness, 3);
    v(Tag.RepetitionTime, 5000);
    v(Tag.EchoTime, 90);
    v(Tag.MagneticFieldStrength, 3);
  }
  v(Tag.PatientPosition, 'HFS');
  v(Tag.StudyInstanceUID, st.uid);
  v(Tag.SeriesInstanceUID, se.uid);
  v(Tag.StudyID, String(st.index + 2));
  v(Tag.SeriesNumber, se.number);
  v(Tag.InstanceNumber, k + 1);
  v(Tag.ImagePositionPatient, -190, -190, z);
  v(Tag.ImageOrientationPatient, 1, 0, 0, 0, 1, 0);
  v(Tag.FrameOfReferenceUID, uidIn(st.namespace, 'frame-of-reference', st.index + 1));
  v(Tag.SliceLocation, z);
  v(Tag.SamplesPerPixel, 1);
  v(Tag.PhotometricInterpretation, 'MONOCHROME2');
  v(Tag.Rows, size);
  v(Tag.Columns, size);
  v(Tag.PixelSpacing, 380 / size, 380 / size);
  v(Tag.BitsAllocated, 16);
  v(Tag.BitsStored, 12);
  v(Tag.HighBit, 11);
  v(Tag.PixelRepresentation, 0);
  v(Tag.WindowCenter, ct ? 40 : 600);
  v(Tag.WindowWidth, ct ? 400 : 1200);
  if (ct) {
    v(Tag.RescaleIntercept, -1024);
    v(Tag.RescaleSlope, 1);
  }
  const px = Buffer.from(base);
  px.writeUInt16LE((k * 31) & 0x0fff, 0);
  px.writeUInt16LE((Math.abs(st.index) * 7919 + k) & 0x0fff, px.length - 2);
  ds.setBytes(Tag.PixelData, 'OW', px);
  return ds;
}

/** A cylinder phantom with noise (12-bit, unsigned), size x size x 16 bits. */
export function benchBaseSlice(size: number): Buffer {
  const rnd = mulberry32(42);
  const s = size / 512;
  const px = Buffer.alloc(size * size * 2);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r = Math.hypot(x - size / 2, y - size / 2);
      const hu = r > 230 * s ? -1000 : r > 220 * s ? 300 : r < 40 * s ? 60 : 0;
      px.writeUInt16LE(
        Math.max(0, Math.min(4095, hu + 1024 + Math.round((rnd() - 0.5) * 40))),
        (y * size + x) * 2,
      );
    }
  }
  return px;
}

export interface BenchFileSet {
  /** In the order of the studies, then series, then instances. */
  readonly paths: string[];
  /** The size of each file, in the order of `paths`. */
  readonly sizes: number[];
  readonly bytes: number;
}

/**
 * Generates (or reuses) the Part 10 files (explicit VR LE) of some studies into `dir`, named by `name`;
 * a cache with another `version` stamp is renamed into `graveyard` (never deleted here).
 */
export function ensureBenchFiles(
  dir: string,
  version: string,
  studies: readonly BenchStudy[],
  size: number,
  name: (st: BenchStudy, i: number) => string,
  graveyard: string,
  log: (message: string) => void = () => undefined,
): BenchFileSet {
  const stamp = path.join(dir, 'VERSION');
  if (existsSync(dir) && (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== version)) {
    mkdirSync(graveyard, { recursive: true });
    renameSync(dir, path.join(graveyard, `${path.basename(dir)}-stale-${Date.now()}`));
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(stamp, version);
  let base: Buffer | undefined;
  const paths: string[] = [];
  const sizes: number[] = [];
  let bytes = 0;
  let made = 0;
  const t0 = performance.now();
  for (const st of studies) {
    let i = 0;
    for (const se of st.series) {
      for (let k = 0; k < se.instances; k++, i++) {
        const p = path.join(dir, name(st, i));
        paths.push(p);
        if (!existsSync(p)) {
          base ??= benchBaseSlice(size);
          const tmp = `${p}.partial`;
          writeFileSync(
            tmp,
            writePart10(
              { dataset: benchInstance(st, se, i, benchSopUid(st, i), size, base) },
              EXPLICIT_VR_LITTLE_ENDIAN,
            ),
          );
          renameSync(tmp, p);
          made++;
        }
        const n = statSync(p).size;
        sizes.push(n);
        bytes += n;
      }
    }
  }
  if (made) log(`generated ${made} files in ${dir} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return { paths, sizes, bytes };
}

// ---------------------------------------------------------------------------------------------------
// QIDO-RS queries on that data set (bench/web.ts and bench/scale.ts): seven kinds in turn, parameters
// drawn (seeded) from the studies, expected matches from the generator.

export type QidoKind = 'name' | 'date' | 'pid' | 'acc' | 'modDate' | 'series' | 'instances';
export const QIDO_KINDS: readonly QidoKind[] = [
  'name',
  'date',
  'pid',
  'acc',
  'modDate',
  'series',
  'instances',
];
export const QIDO_KIND_LABEL: Record<QidoKind, string> = {
  name: 'PatientName ABC*',
  date: 'StudyDate range',
  pid: 'PatientID',
  acc: 'AccessionNumber',
  modDate: 'ModalitiesInStudy+date',
  series: 'study/series',
  instances: 'series/instances',
};
/** The unique key of each level, as a DICOM JSON tag. */
export const STUDY_UID = '0020000D';
export const SERIES_UID = '0020000E';
export const SOP_UID = '00080018';

export interface QidoQuery {
  readonly kind: QidoKind;
  /** Path and query string after the service root. */
  readonly path: string;
  readonly uidTag: string;
  readonly expected: ReadonlySet<string>;
  /** For study-level queries, when asked for: NumberOfStudyRelatedInstances per StudyInstanceUID. */
  readonly studyInstances?: ReadonlyMap<string, number>;
}

/** Whether a DA value is in a DA range (`from-to`, either side may be empty). */
export function inDateRange(date: string, range: string): boolean {
  const [from, to] = range.split('-') as [string, string];
  return (from === '' || date >= from) && (to === '' || date <= to);
}

/**
 * `n` QIDO-RS queries, the kinds in turn, from the PRNG seeded with `seed`: PatientID, AccessionNumber
 * and the studies of series/instances queries are picked from `pick`; study-level queries match over
 * `all` (with the instance counts of `all` when `withStudyInstances`).
 */
export function benchQidoQueries(
  seed: number,
  pick: readonly BenchStudy[],
  all: readonly BenchStudy[],
  n: number,
  withStudyInstances: boolean,
): QidoQuery[] {
  const rnd = mulberry32(seed);
  const pickOf = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const dateRange = (minDays: number, maxDays: number): string => {
    const start = Math.floor(rnd() * BENCH_DATE_SPAN_DAYS);
    const len = minDays + Math.floor(rnd() * (maxDays - minDays));
    return `${isoDate(BENCH_DATE_BASE, start)}-${isoDate(BENCH_DATE_BASE, start + len)}`;
  };
  const counts = withStudyInstances ? new Map(all.map((st) => [st.uid, st.instances])) : undefined;
  const studies = (
    kind: QidoKind,
    params: [string, string][],
    match: (st: BenchStudy) => boolean,
  ): QidoQuery => ({
    kind,
    path: `/studies?${params.map(([k, v]) => `${k}=${encodeURIComponent(v).replaceAll('%2A', '*')}`).join('&')}`,
    uidTag: STUDY_UID,
    expected: new Set(all.filter(match).map((st) => st.uid)),
    ...(counts ? { studyInstances: counts } : {}),
  });
  const out: QidoQuery[] = [];
  for (let i = 0; i < n; i++) {
    const kind = QIDO_KINDS[i % QIDO_KINDS.length]!;
    switch (kind) {
      case 'name': {
        const prefix = pickOf(BENCH_FAMILY_NAMES).slice(0, 3);
        out.push(studies(kind, [['PatientName', `${prefix}*`]], (st) => st.patientName.startsWith(prefix)));
        break;
      }
      case 'date': {
        const range = dateRange(7, 365);
        out.push(studies(kind, [['StudyDate', range]], (st) => inDateRange(st.date, range)));
        break;
      }
      case 'pid': {
        const id = pickOf(pick).patientId;
        out.push(studies(kind, [['PatientID', id]], (st) => st.patientId === id));
        break;
      }
      case 'acc': {
        const acc = pickOf(pick).accession;
        out.push(studies(kind, [['AccessionNumber', acc]], (st) => st.accession === acc));
        break;
      }
      case 'modDate': {
        const modality = rnd() < 0.5 ? 'MR' : 'CT';
        const range = dateRange(180, 730);
        out.push(
          studies(
            kind,
            [
              ['ModalitiesInStudy', modality],
              ['StudyDate', range],
            ],
            (st) => inDateRange(st.date, range) && st.modalities.includes(modality),
          ),
        );
        break;
      }
      case 'series': {
        const st = pickOf(pick);
        out.push({
          kind,
          path: `/studies/${st.uid}/series`,
          uidTag: SERIES_UID,
          expected: new Set(st.series.map((se) => se.uid)),
        });
        break;
      }
      case 'instances': {
        const st = pickOf(pick);
        const k = Math.floor(rnd() * st.series.length);
        let first = 0;
        for (let j = 0; j < k; j++) first += st.series[j]!.instances;
        const se = st.series[k]!;
        out.push({
          kind,
          path: `/studies/${st.uid}/series/${se.uid}/instances`,
          uidTag: SOP_UID,
          expected: new Set(Array.from({ length: se.instances }, (_, j) => benchSopUid(st, first + j))),
        });
        break;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Whole-process-tree CPU, machine CPU and disk counters (bench/scale.ts: where the time of a run went).

/** The pids of the live processes whose parent is `pid` (from /proc/<n>/stat). */
export function procChildPids(pid: number): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      // After "pid (comm) ": state, then ppid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/**
 * CPU seconds of a process and all its live descendants (their own, plus what each has reaped of its
 * exited children), e.g. a PostgreSQL postmaster with its backends; undefined when `pid` is gone.
 */
export function procTreeCpuSeconds(pid: number): number | undefined {
  const root = procCpuSeconds(pid);
  if (!root) return undefined;
  let total = root.own + root.children;
  const todo = procChildPids(pid);
  const seen = new Set<number>([pid]);
  while (todo.length) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    const c = procCpuSeconds(p);
    if (c) total += c.own + c.children;
    todo.push(...procChildPids(p));
  }
  return total;
}

/** The machine's CPU time from /proc/stat, in seconds summed over all CPUs. */
export interface SystemCpu {
  /** user + nice + system + irq + softirq + steal. */
  readonly busy: number;
  readonly idle: number;
  readonly iowait: number;
}

export function systemCpu(): SystemCpu | undefined {
  if (clockTicks === undefined) procCpuSeconds('self');
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const t = (i: number): number => (f[i] ?? 0) / (clockTicks ?? 100);
    return { busy: t(0) + t(1) + t(2) + t(5) + t(6) + t(7), idle: t(3), iowait: t(4) };
  } catch {
    return undefined;
  }
}

/** Counters of the machine's whole disks (/proc/diskstats, partitions, loop, ram and zram devices left out). */
export interface DiskIo {
  readonly writes: number;
  readonly writtenBytes: number;
  /** Cache flushes completed (what fsync / fdatasync become on a disk with a volatile cache). */
  readonly flushes: number;
}

export function diskIo(): DiskIo | undefined {
  try {
    let writes = 0;
    let sectors = 0;
    let flushes = 0;
    for (const line of readFileSync('/proc/diskstats', 'latin1').split('\n')) {
      const f = line.trim().split(/\s+/);
      const name = f[2];
      if (!name || /^(loop|ram|zram|dm-|md)/.test(name)) continue;
      // Partitions (vda1, sda2, nvme0n1p1) would count twice.
      if (/^(sd|vd|xvd|hd)[a-z]+\d+$/.test(name) || /^nvme\d+n\d+p\d+$/.test(name)) continue;
      writes += Number(f[7] ?? 0);
      sectors += Number(f[9] ?? 0);
      flushes += Number(f[18] ?? 0);
    }
    return { writes, writtenBytes: sectors * 512, flushes };
  } catch {
    return undefined;
  }
}
