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
