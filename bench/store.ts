/**
 * C-STORE throughput benchmark: Tessera's SCP and SCU against DCMTK's storescp and storescu, same
 * files, same disk, same run.
 *
 *   npm run bench:store -- [--files N] [--rounds R] [--parallel P]
 *   npx tsx bench/store.ts --files 1000 --rounds 3 --parallel 4      (the defaults)
 *
 * (a) storescu -> `tessera serve` (a child process, fresh for each run), one association, then P
 *     storescu processes in parallel (storescu has no parallel option), each sending every P-th file;
 * (b) the same SCUs -> DCMTK `storescp -od D +xa PORT` (single process, as DCMTK runs it by default:
 *     it serves one association at a time, so P storescu are served one after another), and, for P
 *     associations, also `storescp --fork` (one child process per association); ratio (a)/(b).
 * (c) `tessera store [--parallel P]` -> storescp vs storescu -> storescp: the ratio of the SCUs. With P
 *     associations both SCUs send to `storescp --fork` (so the SCP does not serialize them) and also to
 *     the single-process storescp.
 *
 * A run = a fresh server on a free port with a fresh receive folder, the SCU(s) spawned, timed from the
 * first spawn to the last exit, then the received files counted (fewer than sent = a failed run, printed
 * loudly), the server's peak RSS (VmHWM) and CPU time read from /proc, the server stopped, the receive
 * folder synced, dropped from the page cache and moved into a graveyard (deleting ~0.5 GB stalls file
 * creation for seconds on this disk, which is mounted with `discard`), all untimed, so no run pays for
 * the previous one's writeback or cache. The graveyard is deleted at the very end (--keep-received
 * leaves it). An untimed warm-up run per SCP comes first; rounds run the runs in alternating order
 * (forward, then reversed). DCMTK tools get TCP_NODELAY=1 (Debian's DCMTK leaves Nagle on otherwise);
 * Tessera sets noDelay itself. Everything is on 127.0.0.1 and bounded in time.
 *
 * Data: N CT-like instances (145 elements with meta and sequence items, 512x512x16-bit Pixel Data =
 * 0.5 MiB, explicit VR LE), generated into os.tmpdir()/tessera-bench-store/files and reused. MB here
 * means MiB (2^20 bytes) of Part 10 file sent. Progress goes to stderr; the human table and then the JSON
 * summary go to stdout. The exit code is 1 if any run failed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Dataset, writePart10 } from '../src/codec/index.ts';
import { Tag } from '../src/dictionary/index.ts';

// ---------------------------------------------------------------------------------------------------
// Options

const MiB = 1024 * 1024;
const ROWS = 512;
const COLUMNS = 512;
const FRAME_BYTES = ROWS * COLUMNS * 2;
const SLICES_PER_SERIES = 50;
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
/** Bump when the generated content changes, so stale data in the temp dir is not reused. */
const DATA_VERSION = 'store-v1';
const BENCH_DIR = path.join(os.tmpdir(), 'tessera-bench-store');
const FILES_DIR = path.join(BENCH_DIR, 'files');
/** Receive folders of runs in progress. */
const RUNS_DIR = path.join(BENCH_DIR, 'runs');
/** Receive folders of finished runs, moved here (a rename) and deleted at the very end. */
const GRAVEYARD = path.join(BENCH_DIR, 'graveyard');
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '..');
const TESSERA_MAIN = path.join(ROOT, 'src', 'cli', 'main.ts');
const HOST = '127.0.0.1';
/** Tessera serve's default --max-pdu; storescp gets the same (its own default is 16384). */
const SCP_MAX_PDU = 116_794;
const SERVER_READY_MS = 30_000;
const SERVER_STOP_MS = 15_000;
const SYNC_MS = 180_000;
/** The longest wait, before the first run, for discards left by an earlier delete to end. */
const SETTLE_MS = 180_000;
const TARGET_RATIO = 1.0;
/** Environment of every child: DCMTK reads TCP_NODELAY (Debian's build leaves Nagle on without it). */
const CHILD_ENV = { ...process.env, TCP_NODELAY: '1' };

interface Args {
  files: number;
  rounds: number;
  parallel: number;
  keepReceived: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { files: 1000, rounds: 3, parallel: 4, keepReceived: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? (a.split('=', 2) as [string, string]) : [a, undefined];
    const int = (min: number, max: number): number => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max)
        throw new Error(`${flag} ${v}: expected ${min}..${max}`);
      return n;
    };
    switch (flag) {
      case '--files':
        args.files = int(1, 100_000);
        break;
      case '--rounds':
        args.rounds = int(1, 100);
        break;
      case '--parallel':
        args.parallel = int(1, 64);
        break;
      case '--keep-received':
        args.keepReceived = true;
        break;

      case '--help':
      case '-h':
        console.log(
          'usage: tsx bench/store.ts [--files N=1000] [--rounds R=3] [--parallel P=4] [--keep-received]',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return args;
}

function log(message: string): void {
  process.stderr.write(`[bench:store] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------------
// Test data (the same kind of CT-like files as bench/parse.ts, which exports no generator: importing
// it would run its benchmark)

const FAMILY = ['SMITH', 'MUELLER', 'GARCIA', 'ROSSI', 'TANAKA', 'NOWAK', 'SILVA', 'DUBOIS', 'BERG'];
const GIVEN = ['ANNA', 'JOHN', 'MARIA', 'PETER', 'YUKI', 'LUCA', 'SOFIA', 'OMAR', 'EVA', 'LIAM', 'NORA'];

/** A deterministic 2.25 UID (PS3.5 §B.2) for a kind of entity and its index. */
function uid(kind: string, n: number): string {
  const h = createHash('sha256').update(`tessera-bench-store:${kind}:${n}`).digest();
  return `2.25.${BigInt(`0x${h.subarray(0, 16).toString('hex')}`).toString()}`;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function isoDate(base: Date, addDays: number): string {
  const d = new Date(base.getTime() + addDays * 86_400_000);
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

/**
 * A CT-like header (PS3.3 A.3 CT Image IOD modules plus what scanners add): patient, study, series,
 * frame of reference, equipment, image plane, image pixel, CT image, VOI LUT, SOP common, three
 * sequences, two private blocks. Everything but Pixel Data.
 */
function ctHeader(i: number): Dataset {
  const rnd = mulberry32(i + 1);
  const study = Math.floor(i / SLICES_PER_SERIES);
  const slice = i % SLICES_PER_SERIES;
  const z = -120 + slice * 2.5;
  const date = isoDate(new Date(Date.UTC(2019, 0, 2)), study * 3);
  const person = (k: number): string =>
    `${FAMILY[(study + k) % FAMILY.length]}^${GIVEN[(study * 7 + k) % GIVEN.length]}`;
  const time = (h: number): string => {
    const s = Math.floor(h * 3600 + slice * 0.7);
    const hh = String(Math.floor(s / 3600) % 24).padStart(2, '0');
    const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    return `${hh}${mm}${ss}.${String(Math.floor(rnd() * 1e6)).padStart(6, '0')}`;
  };
  const t0 = 8 + (study % 9) + 0.25;
  const ds = new Dataset();
  const v = (tag: number, ...values: (string | number)[]): void => ds.setValues(tag, values);
  const item = (entries: [number, string][]): Dataset => {
    const d = new Dataset();
    for (const [tag, value] of entries) d.setValues(tag, [value]);
    return d;
  };
  v(Tag.SpecificCharacterSet, 'ISO_IR 100');
  v(Tag.ImageType, 'ORIGINAL', 'PRIMARY', 'AXIAL');
  v(Tag.InstanceCreationDate, date);
  v(Tag.InstanceCreationTime, time(t0 + 0.1));
  v(Tag.SOPClassUID, CT_IMAGE_STORAGE);
  v(Tag.SOPInstanceUID, uid('sop', i));
  v(Tag.StudyDate, date);
  v(Tag.SeriesDate, date);
  v(Tag.AcquisitionDate, date);
  v(Tag.ContentDate, date);
  v(Tag.AcquisitionDateTime, `${date}${time(t0 + 0.05)}`);
  v(Tag.StudyTime, time(t0));
  v(Tag.SeriesTime, time(t0 + 0.02));
  v(Tag.AcquisitionTime, time(t0 + 0.05));
  v(Tag.ContentTime, time(t0 + 0.1));
  v(Tag.AccessionNumber, `ACC${String(400_000 + study * 13).padStart(9, '0')}`);
  v(Tag.Modality, 'CT');
  v(Tag.Manufacturer, 'TESSERA MEDICAL SYSTEMS');
  v(Tag.InstitutionName, 'Saint Example General Hospital');
  v(Tag.InstitutionAddress, `${100 + (study % 50)} Example Street\\Springfield`);
  v(Tag.ReferringPhysicianName, `${person(3)}^^DR`);
  v(Tag.StationName, `CT${(study % 4) + 1}-SCANNER`);
  v(Tag.StudyDescription, 'CT CHEST ABDOMEN PELVIS WITH CONTRAST');
  v(Tag.SeriesDescription, `AXIAL 2.5mm SOFT TISSUE ${study}`);
  v(Tag.InstitutionalDepartmentName, 'RADIOLOGY');
  v(Tag.PerformingPhysicianName, person(5));
  v(Tag.OperatorsName, person(7));
  v(Tag.ManufacturerModelName, 'Tessera CT 128');
  ds.setSequence(
    Tag.ProcedureCodeSequence,
    [
      item([
        [Tag.CodeValue, 'CTCAPW'],
        [Tag.CodingSchemeDesignator, '99TESSERA'],
        [Tag.CodeMeaning, 'CT Chest Abdomen Pelvis with contrast'],
      ]),
    ],
    true,
  );
  ds.setSequence(
    Tag.ReferencedImageSequence,
    [-1, 1].map((d) =>
      item([
        [Tag.ReferencedSOPClassUID, CT_IMAGE_STORAGE],
        [Tag.ReferencedSOPInstanceUID, uid('sop', Math.max(0, i + d))],
      ]),
    ),
    false,
  );
  v(Tag.DerivationDescription, 'Reconstructed from raw projections');
  // Private block 1 (a creator and its elements, as scanners write them).
  ds.setValues(0x00090010, ['TESSERA BENCH 1.0'], 'LO');
  ds.setValues(0x00091001, ['RECON-A'], 'LO');
  ds.setValues(0x00091002, [1.25, 0.75, 3], 'DS');
  ds.setValues(0x00091003, [Math.floor(rnd() * 1e9)], 'UL');
  ds.setBytes(0x00091004, 'OB', Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256))));
  ds.setValues(0x00091005, ['HELICAL'], 'SH');
  ds.setValues(0x00091006, [rnd(), rnd(), rnd(), rnd()], 'FD');
  v(Tag.PatientName, person(0));
  v(Tag.PatientID, `TB${String(1_000_003 + study * 7919).padStart(8, '0')}`);
  v(Tag.IssuerOfPatientID, 'SEGH');
  v(Tag.PatientBirthDate, isoDate(new Date(Date.UTC(1940, 0, 1)), study * 811));
  v(Tag.PatientSex, study % 2 === 0 ? 'F' : 'M');
  v(Tag.PatientAge, `${String(40 + (study % 45)).padStart(3, '0')}Y`);
  v(Tag.PatientSize, 1.6 + (study % 30) / 100);
  v(Tag.PatientWeight, 55 + (study % 40));
  v(Tag.PatientIdentityRemoved, 'NO');
  v(Tag.BodyPartExamined, 'CHEST');
  v(Tag.ScanOptions, 'HELICAL MODE');
  v(Tag.SliceThickness, 2.5);
  v(Tag.KVP, 120);
  v(Tag.DataCollectionDiameter, 500);
  v(Tag.DeviceSerialNumber, `SN${10_000 + (study % 4)}`);
  v(Tag.SoftwareVersions, 'TCT_2.4.1', 'RECON_5.0');
  v(Tag.ProtocolName, '5.1 CHEST-ABD-PELVIS');
  v(Tag.ReconstructionDiameter, 380 + (study % 5) * 10);
  v(Tag.DistanceSourceToDetector, 1085.6);
  v(Tag.DistanceSourceToPatient, 595);
  v(Tag.GantryDetectorTilt, 0);
  v(Tag.TableHeight, 160 + (study % 20));
  v(Tag.RotationDirection, 'CW');
  v(Tag.ExposureTime, 500);
  v(Tag.XRayTubeCurrent, 180 + Math.floor(rnd() * 120));
  v(Tag.Exposure, 90 + Math.floor(rnd() * 60));
  v(Tag.FilterType, 'BODY FILTER');
  v(Tag.GeneratorPower, 36);
  v(Tag.FocalSpots, 1.2);
  v(Tag.DateOfLastCalibration, isoDate(new Date(Date.UTC(2018, 11, 1)), study));
  v(Tag.TimeOfLastCalibration, '071500');
  v(Tag.ConvolutionKernel, 'STANDARD');
  v(Tag.PatientPosition, 'FFS');
  v(Tag.RevolutionTime, 0.5);
  v(Tag.SingleCollimationWidth, 0.625);
  v(Tag.TotalCollimationWidth, 40);
  v(Tag.TableSpeed, 78.75);
  v(Tag.TableFeedPerRotation, 39.375);
  v(Tag.SpiralPitchFactor, 0.984375);
  v(Tag.DataCollectionCenterPatient, 0, -160, z);
  v(Tag.ReconstructionTargetCenterPatient, 0, -160, z);
  v(Tag.ExposureModulationType, 'XYZ_EC');
  v(Tag.CTDIvol, 8 + rnd() * 4);
  v(Tag.StudyInstanceUID, uid('study', study));
  v(Tag.SeriesInstanceUID, uid('series', study));
  v(Tag.StudyID, String(study + 1));
  v(Tag.SeriesNumber, 3);
  v(Tag.AcquisitionNumber, 1);
  v(Tag.InstanceNumber, slice + 1);
  v(Tag.ImagePositionPatient, -190, -350, z);
  v(Tag.ImageOrientationPatient, 1, 0, 0, 0, 1, 0);
  v(Tag.FrameOfReferenceUID, uid('frame-of-reference', study));
  v(Tag.PositionReferenceIndicator, 'SN');
  v(Tag.SliceLocation, z);
  v(Tag.ImagesInAcquisition, SLICES_PER_SERIES);
  v(Tag.SamplesPerPixel, 1);
  v(Tag.PhotometricInterpretation, 'MONOCHROME2');
  v(Tag.Rows, ROWS);
  v(Tag.Columns, COLUMNS);
  v(Tag.PixelSpacing, 0.7421875, 0.7421875);
  v(Tag.BitsAllocated, 16);
  v(Tag.BitsStored, 12);
  v(Tag.HighBit, 11);
  v(Tag.PixelRepresentation, 0);
  ds.setValues(Tag.SmallestImagePixelValue, [0], 'US');
  ds.setValues(Tag.LargestImagePixelValue, [4095], 'US');
  v(Tag.BurnedInAnnotation, 'NO');
  v(Tag.WindowCenter, 40, 400);
  v(Tag.WindowWidth, 400, 1500);
  v(Tag.RescaleIntercept, -1024);
  v(Tag.RescaleSlope, 1);
  v(Tag.RescaleType, 'HU');
  v(Tag.WindowCenterWidthExplanation, 'WINDOW1', 'WINDOW2');
  v(Tag.LossyImageCompression, '00');
  // Private block 2 (a larger vendor block, late in the header).
  ds.setValues(0x00430010, ['TESSERA_PARM_01'], 'LO');
  for (let k = 1; k <= 12; k++) {
    if (k % 3 === 0) ds.setValues(0x00431000 + k, [Math.floor(rnd() * 30000)], 'SS');
    else if (k % 3 === 1) ds.setValues(0x00431000 + k, [(rnd() * 1000).toFixed(3)], 'DS');
    else ds.setValues(0x00431000 + k, [`P${k}-${Math.floor(rnd() * 1e6)}`], 'SH');
  }
  ds.setSequence(
    Tag.RequestAttributesSequence,
    [
      item([
        [Tag.RequestedProcedureID, `RP${study}`],
        [Tag.ScheduledProcedureStepID, `SPS${study}`],
        [Tag.RequestedProcedureDescription, 'CT CAP W'],
      ]),
    ],
    true,
  );
  v(Tag.PerformedProcedureStepStartDate, date);
  v(Tag.PerformedProcedureStepID, `PPS${study}`);
  return ds;
}

/** One 512x512 slice of a cylinder phantom with noise (12-bit, unsigned, CT numbers + 1024). */
function baseSlice(): Buffer {
  const rnd = mulberry32(42);
  const px = Buffer.alloc(FRAME_BYTES);
  for (let y = 0; y < ROWS; y++) {
    for (let x = 0; x < COLUMNS; x++) {
      const r = Math.hypot(x - 256, y - 256);
      const hu = r > 230 ? -1000 : r > 220 ? 300 : r < 40 ? 60 : 0;
      const value = Math.max(0, Math.min(4095, hu + 1024 + Math.round((rnd() - 0.5) * 40)));
      px.writeUInt16LE(value, (y * COLUMNS + x) * 2);
    }
  }
  return px;
}

function countElements(ds: Dataset): number {
  let n = 0;
  for (const el of ds) {
    n++;
    if (el.kind === 'sequence') for (const it of el.items) n += countElements(it);
  }
  return n;
}

function filePath(i: number): string {
  return path.join(FILES_DIR, `ct-${String(i).padStart(5, '0')}.dcm`);
}

interface FileSet {
  readonly paths: string[];
  readonly bytes: number;
  /** Elements of file 0's data set (with sequence items; the File Meta adds 6 more). */
  readonly elements: number;
}

/** Generates the files once (reused while DATA_VERSION matches; an old set is moved to the graveyard). */
function ensureFiles(n: number): FileSet {
  const stamp = path.join(FILES_DIR, 'VERSION');
  if (existsSync(FILES_DIR) && (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== DATA_VERSION)) {
    mkdirSync(GRAVEYARD, { recursive: true });
    renameSync(FILES_DIR, path.join(GRAVEYARD, `files-stale-${Date.now()}`));
  }
  mkdirSync(FILES_DIR, { recursive: true });
  writeFileSync(stamp, DATA_VERSION);
  let base: Buffer | undefined;
  let made = 0;
  const paths: string[] = [];
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const p = filePath(i);
    paths.push(p);
    if (!existsSync(p)) {
      base ??= baseSlice();
      const ds = ctHeader(i);
      const px = Buffer.from(base);
      px.writeUInt16LE((i * 31) & 0x0fff, 0);
      px.writeUInt16LE((i * 7919 + 1234) & 0x0fff, FRAME_BYTES - 2);
      ds.setBytes(Tag.PixelData, 'OW', px);
      const tmp = `${p}.partial`;
      writeFileSync(tmp, writePart10({ dataset: ds }, EXPLICIT_VR_LE));
      renameSync(tmp, p);
      made++;
    }
    bytes += statSync(p).size;
  }
  if (made) log(`generated ${made} files in ${FILES_DIR} (${(performance.now() - t0).toFixed(0)} ms)`);
  return { paths, bytes, elements: countElements(ctHeader(0)) };
}

/** Reads every file once, so all runs (the first included) send from the page cache. */
async function warmPageCache(paths: readonly string[]): Promise<void> {
  const buf = Buffer.allocUnsafe(MiB);
  for (const p of paths) {
    const fh = await open(p, 'r');
    try {
      while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
    } finally {
      await fh.close();
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Child processes

/** Every child still running, so that an error or a signal never leaves one behind. */
const live = new Set<ChildProcess>();

interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The process group is the child's own (spawned detached): storescp --fork children go with it. */
  readonly group: boolean;
  readonly exited: Promise<number | string>;
  /** Resolves after exit once stdout and stderr are closed. */
  readonly closed: Promise<void>;
  output(): string;
}

const OUTPUT_LIMIT = 64 * 1024;

function launch(command: string, argv: readonly string[], options: { group: boolean }): Proc {
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: CHILD_ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group,
  });
  live.add(child);
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString('utf8');
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', (err) => {
      live.delete(child);
      out += `\nspawn error: ${err.message}`;
      resolve(`error: ${err.message}`);
    });
  });
  const closed = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  if (child.pid === undefined) {
    // spawn failed synchronously-ish (ENOENT is reported through 'error'); keep a usable shape.
    return { child, pid: -1, group: options.group, exited, closed, output: () => out };
  }
  return { child, pid: child.pid, group: options.group, exited, closed, output: () => out };
}

function signal(p: Proc, sig: NodeJS.Signals): void {
  if (p.pid <= 0) return;
  try {
    if (p.group) process.kill(-p.pid, sig);
    else process.kill(p.pid, sig);
  } catch {
    // Already gone.
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** SIGTERM (Tessera finishes associations in progress), then SIGKILL to the group if it lingers. */
async function stop(p: Proc): Promise<void> {
  if (p.pid <= 0) return;
  signal(p, 'SIGTERM');
  if ((await withTimeout(p.exited, SERVER_STOP_MS)) === 'timeout') {
    log(`pid ${p.pid} did not stop within ${SERVER_STOP_MS} ms: SIGKILL`);
    signal(p, 'SIGKILL');
    await withTimeout(p.exited, 5000);
  }
  // A --fork storescp's children share the group; make sure none outlives the run.
  if (p.group) signal(p, 'SIGKILL');
}

function killAllNow(): void {
  for (const child of live) {
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
  live.clear();
}

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping every child`);
    killAllNow();
    process.exit(130);
  });
}

/** A free TCP port on the loopback (bound to port 0, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitForPort(port: number, server: Proc, what: string): Promise<void> {
  const deadline = performance.now() + SERVER_READY_MS;
  let exited: number | string | undefined;
  void server.exited.then((code) => {
    exited = code;
  });
  while (performance.now() < deadline) {
    if (exited !== undefined)
      throw new Error(`${what} exited (${exited}) before listening:\n${server.output()}`);
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `${what} not listening on ${HOST}:${port} after ${SERVER_READY_MS} ms:\n${server.output()}`,
  );
}

/** /proc/<pid>/status field in KiB. */
function procStatusKiB(pid: number | 'self', field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** CPU seconds from /proc/<pid>/stat: own (utime+stime) and of waited-for children (cutime+cstime). */
function procCpu(pid: number | 'self'): { own: number; children: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, so utime (14) is index 11.
    const t = (k: number): number => Number(f[k - 3]);
    return { own: (t(14) + t(15)) / CLK_TCK, children: (t(16) + t(17)) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** Flushes the page cache to disk (untimed, between runs), so no run pays for another's writeback. */
function syncDisk(): void {
  const t0 = performance.now();
  const r = spawnSync('sync', [], { timeout: SYNC_MS });
  if (r.status !== 0) log(`warning: sync ${r.error ? r.error.message : `exited ${r.status}`}`);
  const ms = performance.now() - t0;
  if (ms > 2000) log(`sync took ${(ms / 1000).toFixed(1)} s`);
}

/** Sectors discarded so far on the block device holding `dir` (/proc/diskstats field 17), if known. */
function discardedSectors(dir: string): number | undefined {
  try {
    const dev = statSync(dir).dev;
    const major = (dev >> 8) & 0xfff;
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    for (const line of readFileSync('/proc/diskstats', 'latin1').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (Number(f[0]) === major && Number(f[1]) === minor && f.length >= 18) return Number(f[16]);
    }
  } catch {
    // No /proc/diskstats (or no discard fields): nothing to wait for.
  }
  return undefined;
}

/**
 * Waits (bounded) until the disk stops discarding: after a large delete (an earlier run's graveyard) the
 * `discard` mount keeps it busy for minutes (~13 MB/s of discards measured after deleting ~16 GB).
 */
async function waitForDiskToSettle(dir: string): Promise<number> {
  const t0 = performance.now();
  const first = discardedSectors(dir);
  if (first === undefined) return 0;
  let last: number = first;
  let announced = false;
  while (performance.now() - t0 < SETTLE_MS) {
    await new Promise((r) => setTimeout(r, 2000));
    const now: number = discardedSectors(dir) ?? last;
    const mib = ((now - last) * 512) / MiB;
    last = now;
    if (mib < 1) break;
    if (!announced) log(`the disk is discarding (${mib.toFixed(0)} MiB in 2 s): waiting for it to settle`);
    announced = true;
  }
  const s = (performance.now() - t0) / 1000;
  if (announced) log(`waited ${s.toFixed(0)} s for the disk`);
  return s;
}

const DROP_CACHE_PY = `
import os, sys
for dp, dn, fn in os.walk(sys.argv[1]):
    for f in fn:
        fd = os.open(os.path.join(dp, f), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
`;
let dropCacheWarned = false;

/**
 * Drops a (synced) receive folder's files from the page cache: posix_fadvise(DONTNEED), which node does
 * not expose, through python3, else `dd iflag=nocache count=0` per file. Measured here: with each run's
 * 0.5 GB left in the cache, the same storescp run took 2x longer (its system time 3-4x) once the cache
 * had grown by ~10 GB, so runs got slower the later they came; with the files dropped they do not.
 */
function dropFromPageCache(dir: string): void {
  const py = spawnSync('python3', ['-c', DROP_CACHE_PY, dir], { timeout: SYNC_MS });
  if (py.status === 0) return;
  const dd = spawnSync(
    'sh',
    [
      '-c',
      'find "$1" -type f -exec sh -c \'for f; do dd if="$f" iflag=nocache count=0 status=none; done\' sh {} +',
      'sh',
      dir,
    ],
    { timeout: SYNC_MS },
  );
  if (dd.status !== 0 && !dropCacheWarned) {
    dropCacheWarned = true;
    log(
      'warning: cannot drop received files from the page cache (no python3, no dd iflag=nocache): ' +
        'later runs may be slower than earlier ones',
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Runs

type ScpKind = 'tessera' | 'storescp' | 'storescp-fork';
type ScuKind = 'storescu' | 'tessera';

interface Config {
  readonly id: string;
  readonly scu: ScuKind;
  readonly scp: ScpKind;
  readonly associations: number;
}

const SCP_LABEL: Record<ScpKind, string> = {
  tessera: 'tessera serve',
  storescp: 'storescp',
  'storescp-fork': 'storescp --fork',
};

function label(c: Config): string {
  const scu =
    c.scu === 'storescu'
      ? c.associations > 1
        ? `storescu x${c.associations}`
        : 'storescu'
      : c.associations > 1
        ? `tessera store --parallel ${c.associations}`
        : 'tessera store';
  return `${scu} -> ${SCP_LABEL[c.scp]}`;
}

function configs(parallel: number): Config[] {
  const out: Config[] = [];
  const add = (scu: ScuKind, scp: ScpKind, associations: number): void => {
    out.push({ id: `${scu}>${scp}:${associations}`, scu, scp, associations });
  };
  add('storescu', 'tessera', 1);
  add('storescu', 'storescp', 1);
  add('tessera', 'storescp', 1);
  if (parallel > 1) {
    add('storescu', 'tessera', parallel);
    add('storescu', 'storescp', parallel);
    add('storescu', 'storescp-fork', parallel);
    add('tessera', 'storescp-fork', parallel);
    add('tessera', 'storescp', parallel);
  }
  return out;
}

interface RunResult {
  readonly config: string;
  readonly round: number;
  readonly ok: boolean;
  readonly problems: string[];
  /** First SCU spawn to last SCU exit. */
  readonly ms: number;
  readonly received: number;
  readonly receivedBytes: number;
  /** Server: peak RSS (VmHWM, Tessera and storescp single-process; KiB) and CPU seconds during the run. */
  readonly serverPeakRssKiB: number | undefined;
  readonly serverCpuS: number | undefined;
  /** CPU seconds of the SCU processes (cutime+cstime of this process across the run). */
  readonly scuCpuS: number | undefined;
  /** `tessera store`'s own timing (after it has read the headers of its files), seconds. */
  readonly scuSelfReportedS: number | undefined;
}

function startServer(kind: ScpKind, dir: string, port: number): Proc {
  if (kind === 'tessera') {
    return launch(
      process.execPath,
      [
        '--import',
        'tsx',
        TESSERA_MAIN,
        'serve',
        '--data-dir',
        dir,
        '--dimse-port',
        String(port),
        '--host',
        HOST,
        '--any-called-ae',
      ],
      { group: true },
    );
  }
  return launch(
    'storescp',
    [
      '-od',
      dir,
      '+xa',
      '-pdu',
      String(SCP_MAX_PDU),
      ...(kind === 'storescp-fork' ? ['--fork'] : []),
      String(port),
    ],
    { group: true },
  );
}

/** The files of association k of n: every n-th file (as `tessera store --parallel n` shares them). */
function share(paths: readonly string[], k: number, n: number): string[] {
  return paths.filter((_, i) => i % n === k);
}

function startScus(c: Config, port: number, paths: readonly string[], timeoutS: number): Proc[] {
  const aec = c.scp === 'tessera' ? 'TESSERA' : 'STORESCP';
  if (c.scu === 'storescu') {
    return Array.from({ length: c.associations }, (_, k) =>
      launch(
        'storescu',
        ['-aec', aec, '-ta', String(timeoutS), HOST, String(port), ...share(paths, k, c.associations)],
        { group: false },
      ),
    );
  }
  return [
    launch(
      process.execPath,
      [
        '--import',
        'tsx',
        TESSERA_MAIN,
        'store',
        '--aec',
        aec,
        '--timeout',
        String(timeoutS),
        '--parallel',
        String(c.associations),
        HOST,
        String(port),
        ...paths,
      ],
      { group: false },
    ),
  ];
}

/** Received instances: regular files not starting with '.' (Tessera's temporaries are `.incoming-*`). */
function countReceived(dir: string): { count: number; bytes: number; small: number } {
  let count = 0;
  let bytes = 0;
  let small = 0;
  if (!existsSync(dir)) return { count, bytes, small };
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isFile() || e.name.startsWith('.')) continue;
    const size = statSync(path.join(dir, e.name)).size;
    count++;
    bytes += size;
    if (size < FRAME_BYTES) small++;
  }
  return { count, bytes, small };
}

let runSeq = 0;

async function runOnce(c: Config, round: number, paths: readonly string[]): Promise<RunResult> {
  const seq = ++runSeq;
  const slug = `${String(seq).padStart(3, '0')}-${c.id.replace(/[^a-z0-9]+/gi, '-')}`;
  const dir = path.join(RUNS_DIR, slug);
  mkdirSync(dir, { recursive: true });
  const receiveDir = c.scp === 'tessera' ? path.join(dir, 'incoming') : dir;
  const timeoutMs = 60_000 + paths.length * 200;
  const problems: string[] = [];
  let ms = Number.NaN;
  let serverPeakRssKiB: number | undefined;
  let serverCpuS: number | undefined;
  let scuCpuS: number | undefined;
  let scuSelfReportedS: number | undefined;
  let received = { count: 0, bytes: 0, small: 0 };
  const port = await freePort();
  const server = startServer(c.scp, dir, port);
  try {
    await waitForPort(port, server, SCP_LABEL[c.scp]);
    const serverCpu0 = procCpu(server.pid);
    const self0 = procCpu('self');
    const t0 = performance.now();
    const scus = startScus(c, port, paths, Math.ceil(timeoutMs / 1000));
    const codes = await withTimeout(Promise.all(scus.map((s) => s.exited)), timeoutMs);
    ms = performance.now() - t0;
    const self1 = procCpu('self');
    if (codes === 'timeout') {
      problems.push(`timed out after ${timeoutMs} ms`);
      for (const s of scus) signal(s, 'SIGKILL');
    } else {
      codes.forEach((code, k) => {
        if (code !== 0) problems.push(`SCU ${k + 1} exited with ${code}: ${scus[k]!.output().slice(-2000)}`);
      });
    }
    await withTimeout(Promise.all(scus.map((s) => s.closed)), 5000);
    if (self0 && self1) scuCpuS = self1.children - self0.children;
    if (c.scu === 'tessera') {
      const m = / in ([\d.]+) s:/.exec(scus[0]!.output());
      scuSelfReportedS = m ? Number(m[1]) : undefined;
    }
    // Server statistics before it is stopped (storescp --fork: its children did the work; not counted).
    if (c.scp !== 'storescp-fork') {
      serverPeakRssKiB = procStatusKiB(server.pid, 'VmHWM');
      const cpu1 = procCpu(server.pid);
      if (serverCpu0 && cpu1) serverCpuS = cpu1.own + cpu1.children - (serverCpu0.own + serverCpu0.children);
    }
    received = countReceived(receiveDir);
    if (received.count !== paths.length)
      problems.push(`received ${received.count} instances, ${paths.length} sent`);
    if (received.small > 0)
      problems.push(`${received.small} received files are smaller than their Pixel Data`);
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    await stop(server);
    syncDisk();
    dropFromPageCache(dir);
    mkdirSync(GRAVEYARD, { recursive: true });
    renameSync(dir, path.join(GRAVEYARD, `${process.pid}-${slug}`));
  }
  const ok = problems.length === 0;
  const mib = received.bytes / MiB;
  log(
    `${round < 0 ? 'warm-up' : `round ${round + 1}`} ${label(c)}: ${(ms / 1000).toFixed(2)} s, ${((paths.length / ms) * 1000).toFixed(1)} inst/s, ` +
      `${(mib / (ms / 1000)).toFixed(1)} MiB/s received ${received.count}/${paths.length}` +
      (serverPeakRssKiB ? `, server peak RSS ${(serverPeakRssKiB / 1024).toFixed(0)} MiB` : '') +
      (ok
        ? ''
        : `\n${'!'.repeat(100)}\n!!! FAILED RUN: ${label(c)}, ${round < 0 ? 'warm-up' : `round ${round + 1}`}:\n!!! ${problems.join('\n!!! ')}\n${'!'.repeat(100)}`),
  );
  return {
    config: c.id,
    round,
    ok,
    problems,
    ms,
    received: received.count,
    receivedBytes: received.bytes,
    serverPeakRssKiB,
    serverCpuS,
    scuCpuS,
    scuSelfReportedS,
  };
}

/** How long `tessera` takes to start and exit under tsx (what each `tessera store` run pays first). */
async function tesseraStartupMs(): Promise<number> {
  const t0 = performance.now();
  const p = launch(process.execPath, ['--import', 'tsx', TESSERA_MAIN, '--version'], { group: false });
  const code = await withTimeout(p.exited, 30_000);
  if (code !== 0) throw new Error(`tessera --version: ${code}: ${p.output()}`);
  return performance.now() - t0;
}

// ---------------------------------------------------------------------------------------------------
// Statistics and output

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  if (s.length === 0) return Number.NaN;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function round(x: number | undefined, digits = 2): number | null {
  if (x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

function dcmtkVersion(): string {
  const r = spawnSync('storescu', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return /v(\d[\d.]*)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));

  const started = performance.now();
  for (const tool of ['storescu', 'storescp']) {
    if (spawnSync(tool, ['--version']).status !== 0)
      throw new Error(`${tool} (DCMTK) is not installed: apt-get install dcmtk`);
  }
  log(
    `bench dir ${BENCH_DIR}; files=${args.files} rounds=${args.rounds} parallel=${args.parallel}; ` +
      `DCMTK ${dcmtkVersion()}, TCP_NODELAY=1 for every child`,
  );
  // Receive folders left by an interrupted run go to the graveyard too (a rename, nothing deleted now).
  if (existsSync(RUNS_DIR)) {
    mkdirSync(GRAVEYARD, { recursive: true });
    renameSync(RUNS_DIR, path.join(GRAVEYARD, `runs-left-${Date.now()}`));
  }
  const files = ensureFiles(args.files);
  await warmPageCache(files.paths);
  syncDisk();
  const diskSettleS = await waitForDiskToSettle(BENCH_DIR);
  const cfgs = configs(args.parallel);
  // Untimed warm-up, one run per SCP: a smoke test of the set-up, tsx's transform cache filled, and the
  // memory the runs' page cache will use touched once (on this VM, never-touched memory is slower).
  for (const c of cfgs.filter((x) => x.scu === 'storescu' && x.associations === 1)) {
    const w = await runOnce(c, -1, files.paths);
    if (!w.ok) throw new Error(`warm-up ${label(c)} failed: ${w.problems.join('; ')}`);
  }
  const byConfig = new Map<string, RunResult[]>(cfgs.map((c) => [c.id, []]));
  const startupMs: number[] = [];
  try {
    for (let r = 0; r < args.rounds; r++) {
      // Alternate the order: forward in even rounds, reversed in odd ones.
      const order = r % 2 === 0 ? cfgs : [...cfgs].reverse();
      for (const c of order) byConfig.get(c.id)!.push(await runOnce(c, r, files.paths));
      startupMs.push(await tesseraStartupMs());
    }
  } finally {
    killAllNow();
  }

  // Summary.
  const n = args.files;
  const stats = (id: string) => {
    const runs = byConfig.get(id) ?? [];
    const good = runs.filter((x) => x.ok);
    const ms = median(good.map((x) => x.ms));
    const rss = good.map((x) => x.serverPeakRssKiB).filter((x): x is number => x !== undefined);
    const num = (xs: (number | undefined)[]): number | undefined => {
      const ys = xs.filter((x): x is number => x !== undefined);
      return ys.length ? median(ys) : undefined;
    };
    return {
      runs,
      good,
      ms,
      instPerS: (n / ms) * 1000,
      mibPerS: files.bytes / MiB / (ms / 1000),
      serverPeakRssMiB: rss.length ? Math.max(...rss) / 1024 : undefined,
      serverCpuS: num(good.map((x) => x.serverCpuS)),
      scuCpuS: num(good.map((x) => x.scuCpuS)),
      scuSelfReportedS: num(good.map((x) => x.scuSelfReportedS)),
    };
  };
  /** Ratio of throughputs a/b: b's time over a's, of the medians and per round (same round). */
  const ratio = (a: string, b: string) => {
    const sa = stats(a);
    const sb = stats(b);
    const perRound = sa.runs.map((x, k) => {
      const y = sb.runs[k];
      return x.ok && y?.ok ? round(y.ms / x.ms, 2) : null;
    });
    return { ofMedians: sb.ms / sa.ms, perRound };
  };
  const failed = [...byConfig.values()].flat().filter((x) => !x.ok);
  const P = args.parallel;
  const comparisons: {
    key: string;
    what: string;
    a: string;
    b: string;
    target: boolean;
  }[] = [
    {
      key: 'scp1',
      what: 'tessera serve / storescp, 1 association (storescu)',
      a: 'storescu>tessera:1',
      b: 'storescu>storescp:1',
      target: true,
    },
    {
      key: 'scu1',
      what: 'tessera store / storescu, 1 association (-> storescp)',
      a: 'tessera>storescp:1',
      b: 'storescu>storescp:1',
      target: true,
    },
  ];
  if (P > 1) {
    comparisons.splice(
      1,
      0,
      {
        key: `scp${P}`,
        what: `tessera serve / storescp, ${P} associations (storescu x${P}; storescp serves them one at a time)`,
        a: `storescu>tessera:${P}`,
        b: `storescu>storescp:${P}`,
        target: true,
      },
      {
        key: `scp${P}Fork`,
        what: `tessera serve / storescp --fork, ${P} associations (storescu x${P})`,
        a: `storescu>tessera:${P}`,
        b: `storescu>storescp-fork:${P}`,
        target: false,
      },
    );
    comparisons.push(
      {
        key: `scu${P}Fork`,
        what: `tessera store --parallel ${P} / storescu x${P} (-> storescp --fork)`,
        a: `tessera>storescp-fork:${P}`,
        b: `storescu>storescp-fork:${P}`,
        target: true,
      },
      {
        key: `scu${P}`,
        what: `tessera store --parallel ${P} / storescu x${P} (-> storescp, one association at a time)`,
        a: `tessera>storescp:${P}`,
        b: `storescu>storescp:${P}`,
        target: false,
      },
    );
  }

  const table: string[] = [];
  const fileMiB = files.bytes / n / MiB;
  table.push(
    `C-STORE of ${n} CT files of ${fileMiB.toFixed(3)} MiB (${files.elements + 6} elements incl. meta and items), ` +
      `loopback, same disk; median of ${args.rounds} round(s), first SCU spawn to last SCU exit`,
  );
  table.push(
    `${pad('config', 50, true)}${pad('assoc', 6)}${pad('inst/s', 9)}${pad('MiB/s', 8)}${pad('vs ref', 8)}  ${pad('per-round', 18, true)}${pad('srv RSS', 9)}${pad('srv CPU', 9)}${pad('SCU CPU', 9)}`,
  );
  const refOf: Record<string, { ref: string; ratio: ReturnType<typeof ratio> }> = {};
  for (const cmp of comparisons) refOf[cmp.a] ??= { ref: cmp.b, ratio: ratio(cmp.a, cmp.b) };
  const section = (title: string, ids: string[]): void => {
    table.push(title);
    for (const id of ids) {
      const c = cfgs.find((x) => x.id === id);
      if (!c) continue;
      const s = stats(id);
      const ref = refOf[id];
      const fails = s.runs.length - s.good.length;
      table.push(
        `${pad(`  ${label(c)}${fails ? ` (${fails} FAILED)` : ''}`, 50, true)}${pad(String(c.associations), 6)}` +
          `${pad(s.instPerS.toFixed(1), 9)}${pad(s.mibPerS.toFixed(1), 8)}` +
          `${pad(ref ? `${ref.ratio.ofMedians.toFixed(2)}x` : '', 8)}  ${pad(ref ? ref.ratio.perRound.map((x) => x?.toFixed(2) ?? 'fail').join(' ') : '', 18, true)}` +
          `${pad(s.serverPeakRssMiB === undefined ? '-' : `${s.serverPeakRssMiB.toFixed(0)}M`, 9)}` +
          `${pad(s.serverCpuS === undefined ? '-' : `${s.serverCpuS.toFixed(1)}s`, 9)}` +
          `${pad(s.scuCpuS === undefined ? '-' : `${s.scuCpuS.toFixed(1)}s`, 9)}`,
      );
    }
  };
  section('(a)/(b) SCPs, storescu sending; "vs ref" = tessera serve / storescp throughput', [
    'storescu>tessera:1',
    'storescu>storescp:1',
    ...(P > 1 ? [`storescu>tessera:${P}`, `storescu>storescp:${P}`, `storescu>storescp-fork:${P}`] : []),
  ]);
  section('(c) SCUs -> storescp; "vs ref" = tessera store / storescu throughput', [
    'tessera>storescp:1',
    'storescu>storescp:1',
    ...(P > 1
      ? [
          `tessera>storescp-fork:${P}`,
          `storescu>storescp-fork:${P}`,
          `tessera>storescp:${P}`,
          `storescu>storescp:${P}`,
        ]
      : []),
  ]);
  table.push(
    'srv RSS = worst peak RSS (VmHWM) of the SCP process; srv CPU / SCU CPU = median CPU seconds per run ' +
      '(storescp --fork: the work is in its children, not shown)',
  );
  const startup = median(startupMs);
  const selfS = stats('tessera>storescp:1').scuSelfReportedS;
  table.push(
    `tessera CLI start-up under tsx (tessera --version): ${startup.toFixed(0)} ms, inside every tessera store run` +
      (selfS === undefined
        ? ''
        : `; tessera store's own timer (after reading its files' headers), 1 association: ${selfS.toFixed(2)} s of ${(stats('tessera>storescp:1').ms / 1000).toFixed(2)} s`),
  );
  table.push('');
  const targets: Record<string, unknown> = {};
  for (const cmp of comparisons) {
    const r = ratio(cmp.a, cmp.b);
    const pass = r.ofMedians >= TARGET_RATIO;
    if (cmp.target)
      targets[cmp.key] = {
        target: `${cmp.what} >= ${TARGET_RATIO}`,
        ratio: round(r.ofMedians),
        perRound: r.perRound,
        pass,
      };
    table.push(
      `${cmp.target ? 'target' : 'info  '} ${cmp.what}: ${r.ofMedians.toFixed(2)}x (rounds ${r.perRound.map((x) => x?.toFixed(2) ?? 'fail').join(', ')})` +
        (cmp.target ? ` -> ${pass ? 'PASS' : 'FAIL'}` : ''),
    );
  }
  if (failed.length) {
    table.push('');
    table.push(`!!! ${failed.length} FAILED RUN(S), left out of the medians:`);
    for (const f of failed)
      table.push(`!!!   round ${f.round + 1} ${f.config}: ${f.problems.join('; ').slice(0, 500)}`);
  }

  const summary = {
    benchmark: 'tessera store (C-STORE throughput)',
    units: {
      size: 'MiB = 2^20 bytes of Part 10 file sent',
      time: 'ms from the first SCU spawn to the last SCU exit (median of the rounds that succeeded)',
      ratio: 'throughput a / throughput b = time b / time a; perRound pairs the runs of the same round',
      cpu: 'CPU seconds during the run (server: utime+stime from /proc; SCUs: cutime+cstime of this process)',
    },
    env: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}`,
      dcmtk: dcmtkVersion(),
      childEnv: { TCP_NODELAY: '1' },
    },
    params: {
      files: n,
      rounds: args.rounds,
      parallel: P,
      benchDir: BENCH_DIR,
      fileBytes: Math.round(files.bytes / n),
      totalBytes: files.bytes,
      elementsPerFile: files.elements + 6,
      scpMaxPdu: SCP_MAX_PDU,
      storescp: `storescp -od DIR +xa -pdu ${SCP_MAX_PDU} [--fork] PORT`,
      storescu: 'storescu -aec STORESCP|TESSERA -ta T 127.0.0.1 PORT FILES (one process per association)',
      tesseraServe:
        'node --import tsx src/cli/main.ts serve --data-dir DIR --dimse-port PORT --host 127.0.0.1 --any-called-ae',
      tesseraStore:
        'node --import tsx src/cli/main.ts store --aec STORESCP --timeout T --parallel N 127.0.0.1 PORT FILES',
      orderPerRound: cfgs.map((c) => c.id),
      orderNote: 'rounds alternate: forward, then reversed',
    },
    configs: Object.fromEntries(
      cfgs.map((c) => {
        const s = stats(c.id);
        return [
          c.id,
          {
            label: label(c),
            associations: c.associations,
            ms: round(s.ms, 1),
            instPerS: round(s.instPerS, 1),
            mibPerS: round(s.mibPerS, 1),
            roundsMs: s.runs.map((x) => (x.ok ? round(x.ms, 1) : null)),
            failedRuns: s.runs.length - s.good.length,
            received: s.runs.map((x) => x.received),
            serverPeakRssMiB: round(s.serverPeakRssMiB, 1),
            serverCpuS: round(s.serverCpuS, 2),
            scuCpuS: round(s.scuCpuS, 2),
            ...(c.scu === 'tessera' ? { scuSelfReportedS: round(s.scuSelfReportedS, 2) } : {}),
          },
        ];
      }),
    ),
    ratios: Object.fromEntries(
      comparisons.map((cmp) => {
        const r = ratio(cmp.a, cmp.b);
        return [
          cmp.key,
          { what: cmp.what, a: cmp.a, b: cmp.b, ratio: round(r.ofMedians), perRound: r.perRound },
        ];
      }),
    ),
    targets,
    tesseraStartupMs: round(startup, 0),
    diskSettleS: round(diskSettleS, 0),
    failedRuns: failed.map((f) => ({ config: f.config, round: f.round + 1, problems: f.problems })),
    elapsedS: round((performance.now() - started) / 1000, 1),
  };

  if (args.keepReceived) log(`received files kept in ${GRAVEYARD} (delete it yourself)`);
  else if (existsSync(GRAVEYARD)) {
    const t0 = performance.now();
    rmSync(GRAVEYARD, { recursive: true, force: true });
    log(
      `deleted the received files (${GRAVEYARD}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        'the disk may go on discarding their blocks for minutes',
    );
  }
  console.log(table.join('\n'));
  console.log();
  console.log(JSON.stringify(summary, null, 2));
  if (failed.length) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  killAllNow();
  process.exit(1);
});
