/**
 * C-STORE throughput benchmark: Tessera's archive SCP (`tessera serve`, with its SQLite index) against
 * DCMTK's storescp (no index) and Orthanc (SQLite index), and Tessera's SCU against storescu: same
 * files, same disk, same run.
 *
 *   npm run bench:store -- [--sets large,small] [--files N] [--small-files M] [--rounds R] [--parallel P]
 *   npx tsx bench/store.ts --sets large,small --files 1000 --small-files 10000 --rounds 3 --parallel 4
 *                                                                                     (the defaults)
 *
 * Two data sets: "large" = N CT-like instances of 0.5 MiB, "small" = M CT-like instances of ~8 KiB.
 * For each set, with one association and with P (storescu has no parallel option, so P storescu
 * processes each send every P-th file):
 * (a) storescu -> `tessera serve` (a child process, fresh archive for each run: index + blobs), durable
 *     (fsync of each instance before its answer, the default) and with --no-fsync (answered once the OS
 *     has it, as storescp; a crash of the process still loses nothing);
 * (b) the same SCUs -> DCMTK `storescp -od D +xa PORT` (single process, as DCMTK runs it by default:
 *     it serves one association at a time, so P storescu are served one after another), and, for P
 *     associations, also `storescp --fork` (one child process per association); ratio (a)/(b), the
 *     target on --no-fsync (storescp does not fsync either);
 * (c) the same SCUs -> Orthanc (Debian package, default SQLite index, a fresh storage and index folder
 *     for each run; Orthanc 1.10 fsyncs its storage area by default, SyncStorageArea); ratio (a)/(c),
 *     the target on durable Tessera;
 * (a') storescu -> `tessera receive --no-fsync` (issue 3's SCP: the networking layer writing each instance
 *     as a Part 10 file, as storescp does, no index); ratio against storescp (1 association) and
 *     storescp --fork (P associations, served at once by both);
 * (d) `tessera store [--parallel P]` -> storescp vs storescu -> storescp: the ratio of the SCUs (by
 *     default on the large set only, --scu-sets). With P associations both SCUs send to `storescp
 *     --fork` (so the SCP does not serialize them) and also to the single-process storescp.
 *
 * A run = a fresh server on a free port with a fresh receive folder, sent (untimed) a process warm-up of
 * 500 large / 2000 small instances with UIDs of their own by one storescu (tessera receive --workers P:
 * P storescu, one per worker process, each with as many instances of its own) (every SCP alike: a
 * server runs for days, and its code and caches are warm by then; see PROCESS_WARM_UP), then the
 * SCU(s) spawned, timed from the first spawn to the last exit,
 * then the received instances counted (warm-up included) (storescp: files; Tessera: blob files
 * and index rows; Orthanc: its REST /statistics and its storage files; fewer than sent = a failed run,
 * printed loudly), the server's peak RSS (VmHWM) and CPU time read from /proc, the server stopped, the
 * receive folder synced, dropped from the page cache and moved into a graveyard (deleting ~0.5 GB stalls
 * file creation for seconds on this disk, which is mounted with `discard`), all untimed, so no run pays
 * for the previous one's writeback or cache. The graveyard is deleted at the very end (--keep-received
 * leaves it). An untimed warm-up run per SCP and set comes first; rounds run the runs in alternating
 * order (forward, then reversed). DCMTK tools and Orthanc get TCP_NODELAY=1 (Debian's DCMTK leaves Nagle
 * on otherwise; Orthanc's SCP is DCMTK's); Tessera sets noDelay itself. Everything is on 127.0.0.1 and
 * bounded in time.
 *
 * Data: CT-like instances (145 elements with meta and sequence items, explicit VR LE) with 512x512 (large,
 * 0.5 MiB) or 50x50 (small, ~8 KiB) 16-bit Pixel Data, generated into os.tmpdir()/tessera-bench-store/
 * files and files-small and reused. MB here means MiB (2^20 bytes) of Part 10 file sent. Progress goes to
 * stderr; the human table and then the JSON summary go to stdout. The exit code is 1 if any run failed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
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
import Database from 'better-sqlite3';
import { InstanceAnalysis } from '../src/archive/analysis.ts';
import { SqliteIndex } from '../src/archive/index-sqlite.ts';
import type { InstanceRecord } from '../src/archive/ports.ts';
import { Dataset, writePart10 } from '../src/codec/index.ts';
import { Tag } from '../src/dictionary/index.ts';
import {
  benchLog,
  isoDate,
  mulberry32,
  orthancGet,
  pad,
  readFlags,
  tesseraEntry,
  uidIn,
  waitForOrthancHttp,
  writeOrthancConfig,
} from './common.ts';

// ---------------------------------------------------------------------------------------------------
// Options

const MiB = 1024 * 1024;
const SLICES_PER_SERIES = 50;
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const BENCH_DIR = path.join(os.tmpdir(), 'tessera-bench-store');
/** Receive folders of runs in progress. */
const RUNS_DIR = path.join(BENCH_DIR, 'runs');
/** Receive folders of finished runs, moved here (a rename) and deleted at the very end. */
const GRAVEYARD = path.join(BENCH_DIR, 'graveyard');
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '..');
/** The bundle `tessera` runs (built now: dist/main.js). */
const TESSERA_MAIN = tesseraEntry(ROOT);
const HOST = '127.0.0.1';
/** Tessera serve's default --max-pdu; storescp and Orthanc get the same (their own default is 16384). */
const SCP_MAX_PDU = 116_794;
const SERVER_READY_MS = 30_000;
const SERVER_STOP_MS = 15_000;
const SYNC_MS = 180_000;
/** The longest wait, before the first run, for discards left by an earlier delete to end. */
const SETTLE_MS = 180_000;
/** Tessera against storescp (large set) and tessera store against storescu: at least as fast. */
const TARGET_RATIO = 1.0;
/** Tessera against Orthanc (both sets): at least 3x its throughput (issue 4). */
const TARGET_ORTHANC_RATIO = 3.0;
/** Tessera server's peak RSS in every run (issue 4: "< 200 MB"; MB means MiB in this benchmark). */
const TARGET_RSS_MIB = 200;
const ORTHANC = '/usr/sbin/Orthanc';
/** Environment of every child: DCMTK (and Orthanc's DCMTK network layer) reads TCP_NODELAY. */
const CHILD_ENV = { ...process.env, TCP_NODELAY: '1' };

type SetName = 'large' | 'small';
const SET_NAMES: readonly SetName[] = ['large', 'small'];

/** A data set: CT-like instances whose Pixel Data is rows x columns x 16 bits. */
interface SetSpec {
  readonly name: SetName;
  readonly rows: number;
  readonly columns: number;
  readonly dir: string;
  readonly prefix: string;
  /** Prefix of the UID kinds, so that the sets never share a UID. */
  readonly uidPrefix: string;
  /** Bump when the generated content changes, so stale data in the temp dir is not reused. */
  readonly dataVersion: string;
  /** How many of the files the warm-up run sends (untimed). */
  readonly warmUpFiles: number;
}

const SETS: Record<SetName, SetSpec> = {
  large: {
    name: 'large',
    rows: 512,
    columns: 512,
    dir: path.join(BENCH_DIR, 'files'),
    prefix: 'ct',
    uidPrefix: '',
    dataVersion: 'store-v1',
    warmUpFiles: Number.POSITIVE_INFINITY,
  },
  small: {
    name: 'small',
    rows: 50,
    columns: 50,
    dir: path.join(BENCH_DIR, 'files-small'),
    prefix: 'sm',
    uidPrefix: 'small-',
    dataVersion: 'store-small-v1',
    warmUpFiles: 2000,
  },
};

/**
 * Instances each server gets, untimed, right after it starts and before the timed run (its own files,
 * UIDs of their own): a server runs for days, and this is what it has compiled and cached by then.
 * V8 optimizes a function once it has run ~200 KB of its bytecode (interrupt budget x ticks), so the
 * functions run once per instance (command decoding, the File Meta, the reply) are optimized only after
 * some thousand instances. With the former 100 large instances, `--trace-opt` showed 104 functions of
 * `tessera receive` being optimized during the timed 1000; receive did 780-878 inst/s after 100,
 * 968-1028 after 500 or 1000 and 1105-1126 after 2000, storescp 776-1212 throughout (tmp runs, same
 * files and disk). 500 large instances (0.25 GB per run, kept until the end with the run's other files:
 * see the README on deleting) is where the gain was reached in these runs.
 */
const PROCESS_WARM_UP: Record<SetName, number> = { large: 500, small: 2000 };

/** The set of a set's process warm-up files: the same instances with UIDs of their own. */
function warmSpec(spec: SetSpec): SetSpec {
  return {
    ...spec,
    dir: `${spec.dir}-warm`,
    prefix: `${spec.prefix}w`,
    uidPrefix: `${spec.uidPrefix}warm-`,
    dataVersion: `${spec.dataVersion}-warm`,
  };
}

interface Args {
  sets: SetName[];
  files: number;
  smallFiles: number;
  rounds: number;
  parallel: number;
  /** Sets on which `tessera store` is compared with storescu (d). */
  scuSets: SetName[];
  orthanc: boolean;
  /** Also run the Node.js floor SCP and SCU (bench/floor), on the SCU sets. */
  floor: boolean;
  keepReceived: boolean;
}

function parseSets(flag: string, v: string, allowNone: boolean): SetName[] {
  if (allowNone && v === 'none') return [];
  const out: SetName[] = [];
  for (const s of v.split(',')) {
    const name = SET_NAMES.find((x) => x === s.trim());
    if (!name) throw new Error(`${flag} ${v}: expected a comma-separated list of ${SET_NAMES.join(', ')}`);
    if (!out.includes(name)) out.push(name);
  }
  if (out.length === 0) throw new Error(`${flag}: no set`);
  return out;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    sets: ['large', 'small'],
    files: 1000,
    smallFiles: 10_000,
    rounds: 3,
    parallel: 4,
    scuSets: ['large'],
    orthanc: true,
    floor: true,
    keepReceived: false,
  };
  readFlags(argv, (flag, { value, int }) => {
    switch (flag) {
      case '--sets':
        args.sets = parseSets(flag, value(), false);
        break;
      case '--files':
        args.files = int(1, 100_000);
        break;
      case '--small-files':
        args.smallFiles = int(1, 100_000);
        break;
      case '--rounds':
        args.rounds = int(1, 100);
        break;
      case '--parallel':
        args.parallel = int(1, 64);
        break;
      case '--scu-sets':
        args.scuSets = parseSets(flag, value(), true);
        break;
      case '--no-orthanc':
        args.orthanc = false;
        break;
      case '--no-floor':
        args.floor = false;
        break;
      case '--keep-received':
        args.keepReceived = true;
        break;
      case '--help':
      case '-h':
        console.log(
          'usage: tsx bench/store.ts [--sets large,small] [--files N=1000] [--small-files M=10000] ' +
            '[--rounds R=3] [--parallel P=4] [--scu-sets large|large,small|none] [--no-orthanc] [--no-floor] [--keep-received]\n' +
            '  --files: instances of the large set (0.5 MiB); --small-files: of the small set (~8 KiB)\n' +
            '  --scu-sets: the sets on which tessera store is compared with storescu (default large)\n' +
            '  --no-orthanc: leave Orthanc out (its targets are then not checked)\n' +
            '  --no-floor: leave out the Node.js floor SCP and SCU (bench/floor), run on the --scu-sets',
        );
        process.exit(0);
        break;
      default:
        return false;
    }
    return true;
  });
  args.scuSets = args.scuSets.filter((s) => args.sets.includes(s));
  return args;
}

const { log } = benchLog('store');

// ---------------------------------------------------------------------------------------------------
// Test data (the same kind of CT-like files as bench/parse.ts, which exports no generator: importing
// it would run its benchmark)

const FAMILY = ['SMITH', 'MUELLER', 'GARCIA', 'ROSSI', 'TANAKA', 'NOWAK', 'SILVA', 'DUBOIS', 'BERG'];
const GIVEN = ['ANNA', 'JOHN', 'MARIA', 'PETER', 'YUKI', 'LUCA', 'SOFIA', 'OMAR', 'EVA', 'LIAM', 'NORA'];

function uid(kind: string, n: number): string {
  return uidIn('tessera-bench-store', kind, n);
}

/**
 * A CT-like header (PS3.3 A.3 CT Image IOD modules plus what scanners add): patient, study, series,
 * frame of reference, equipment, image plane, image pixel, CT image, VOI LUT, SOP common, three
 * sequences, two private blocks. Everything but Pixel Data.
 */
function ctHeader(i: number, spec: SetSpec): Dataset {
  const u = (kind: string, n: number): string => uid(`${spec.uidPrefix}${kind}`, n);
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
  v(Tag.SOPInstanceUID, u('sop', i));
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
        [Tag.ReferencedSOPInstanceUID, u('sop', Math.max(0, i + d))],
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
  v(Tag.StudyInstanceUID, u('study', study));
  v(Tag.SeriesInstanceUID, u('series', study));
  v(Tag.StudyID, String(study + 1));
  v(Tag.SeriesNumber, 3);
  v(Tag.AcquisitionNumber, 1);
  v(Tag.InstanceNumber, slice + 1);
  v(Tag.ImagePositionPatient, -190, -350, z);
  v(Tag.ImageOrientationPatient, 1, 0, 0, 0, 1, 0);
  v(Tag.FrameOfReferenceUID, u('frame-of-reference', study));
  v(Tag.PositionReferenceIndicator, 'SN');
  v(Tag.SliceLocation, z);
  v(Tag.ImagesInAcquisition, SLICES_PER_SERIES);
  v(Tag.SamplesPerPixel, 1);
  v(Tag.PhotometricInterpretation, 'MONOCHROME2');
  v(Tag.Rows, spec.rows);
  v(Tag.Columns, spec.columns);
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

/** Bytes of one frame of a set's Pixel Data (16 bits per pixel). */
function frameBytes(spec: SetSpec): number {
  return spec.rows * spec.columns * 2;
}

/**
 * One slice of a cylinder phantom with noise (12-bit, unsigned, CT numbers + 1024), scaled to the
 * set's matrix (the 512x512 slice is the one the large files were generated with).
 */
function baseSlice(spec: SetSpec): Buffer {
  const rnd = mulberry32(42);
  const { rows, columns } = spec;
  const s = columns / 512;
  const px = Buffer.alloc(frameBytes(spec));
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++) {
      const r = Math.hypot(x - columns / 2, y - rows / 2);
      const hu = r > 230 * s ? -1000 : r > 220 * s ? 300 : r < 40 * s ? 60 : 0;
      const value = Math.max(0, Math.min(4095, hu + 1024 + Math.round((rnd() - 0.5) * 40)));
      px.writeUInt16LE(value, (y * columns + x) * 2);
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

function filePath(spec: SetSpec, i: number): string {
  return path.join(spec.dir, `${spec.prefix}-${String(i).padStart(5, '0')}.dcm`);
}

interface FileSet {
  readonly spec: SetSpec;
  readonly paths: string[];
  /** The process warm-up files (see PROCESS_WARM_UP). */
  warm?: readonly string[];
  readonly bytes: number;
  /** Elements of file 0's data set (with sequence items; the File Meta adds 6 more). */
  readonly elements: number;
}

/** Generates a set's files once (reused while its version matches; an old set goes to the graveyard). */
function ensureFiles(spec: SetSpec, n: number): FileSet {
  const stamp = path.join(spec.dir, 'VERSION');
  if (existsSync(spec.dir) && (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== spec.dataVersion)) {
    mkdirSync(GRAVEYARD, { recursive: true });
    renameSync(spec.dir, path.join(GRAVEYARD, `${path.basename(spec.dir)}-stale-${Date.now()}`));
  }
  mkdirSync(spec.dir, { recursive: true });
  writeFileSync(stamp, spec.dataVersion);
  const fb = frameBytes(spec);
  let base: Buffer | undefined;
  let made = 0;
  const paths: string[] = [];
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const p = filePath(spec, i);
    paths.push(p);
    if (!existsSync(p)) {
      base ??= baseSlice(spec);
      const ds = ctHeader(i, spec);
      const px = Buffer.from(base);
      px.writeUInt16LE((i * 31) & 0x0fff, 0);
      px.writeUInt16LE((i * 7919 + 1234) & 0x0fff, fb - 2);
      ds.setBytes(Tag.PixelData, 'OW', px);
      const tmp = `${p}.partial`;
      writeFileSync(tmp, writePart10({ dataset: ds }, EXPLICIT_VR_LE));
      renameSync(tmp, p);
      made++;
    }
    bytes += statSync(p).size;
  }
  if (made)
    log(`generated ${made} ${spec.name} files in ${spec.dir} (${(performance.now() - t0).toFixed(0)} ms)`);
  return { spec, paths, bytes, elements: countElements(ctHeader(0, spec)) };
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

/** The live child processes of `pid` (a cluster's workers), from /proc. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * CPU seconds used so far by a server: its own, its waited-for children's and, for `tessera receive`
 * and the floor, whose work is in long-lived worker processes, those of its live children too.
 */
function serverCpuSeconds(kind: ScpKind, pid: number): number | undefined {
  const own = procCpu(pid);
  if (!own) return undefined;
  let total = own.own + own.children;
  if (isMultiProcess(kind)) for (const child of childPids(pid)) total += procCpu(child)?.own ?? 0;
  return total;
}

/** A server's peak RSS: the process's, or for `tessera receive` (and the floor) the sum over it and its workers. */
function serverPeakRss(kind: ScpKind, pid: number): number | undefined {
  const own = procStatusKiB(pid, 'VmHWM');
  if (own === undefined || !isMultiProcess(kind)) return own;
  return childPids(pid).reduce((sum, child) => sum + (procStatusKiB(child, 'VmHWM') ?? 0), own);
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

type ScpKind =
  | 'tessera'
  | 'tessera-nofsync'
  | 'tessera-receive'
  | 'storescp'
  | 'storescp-fork'
  | 'orthanc'
  | 'node-floor';

/** `tessera serve`, durable (the default) or with --no-fsync (storescp's durability). */
const isTessera = (kind: ScpKind): boolean => kind === 'tessera' || kind === 'tessera-nofsync';
type ScuKind = 'storescu' | 'tessera' | 'node-floor';

/**
 * Servers whose work is in P long-lived processes with P associations (`--workers P`, node:cluster):
 * each is warmed up, counted in CPU and memory, as a process of its own.
 */
const isMultiProcess = (kind: ScpKind): boolean => kind === 'tessera-receive' || kind === 'node-floor';

/** The Node.js floor (bench/floor): the least a Node.js SCP or SCU does, none of Tessera's code. */
const FLOOR_SCP = fileURLToPath(new URL('./floor/scp.mjs', import.meta.url));
const FLOOR_SCU = fileURLToPath(new URL('./floor/scu.mjs', import.meta.url));

interface Config {
  readonly id: string;
  readonly set: SetName;
  readonly scu: ScuKind;
  readonly scp: ScpKind;
  readonly associations: number;
}

const SCP_LABEL: Record<ScpKind, string> = {
  tessera: 'tessera serve',
  'tessera-nofsync': 'tessera serve --no-fsync',
  'tessera-receive': 'tessera receive --no-fsync [--workers P]',
  storescp: 'storescp',
  'storescp-fork': 'storescp --fork',
  orthanc: 'Orthanc',
  'node-floor': 'Node.js floor SCP [P workers]',
};

const CALLED_AE: Record<ScpKind, string> = {
  tessera: 'TESSERA',
  'tessera-nofsync': 'TESSERA',
  'tessera-receive': 'TESSERA',
  storescp: 'STORESCP',
  'storescp-fork': 'STORESCP',
  orthanc: 'ORTHANC',
  'node-floor': 'FLOOR',
};

function label(c: Config): string {
  const scu =
    c.scu === 'storescu'
      ? c.associations > 1
        ? `storescu x${c.associations}`
        : 'storescu'
      : c.scu === 'node-floor'
        ? `Node.js floor SCU${c.associations > 1 ? ` x${c.associations}` : ''}`
        : c.associations > 1
          ? `tessera store --parallel ${c.associations}`
          : 'tessera store';
  return `${scu} -> ${SCP_LABEL[c.scp]}`;
}

function configId(set: SetName, scu: ScuKind, scp: ScpKind, associations: number): string {
  return `${set}/${scu}>${scp}:${associations}`;
}

function configs(args: Args): Config[] {
  const out: Config[] = [];
  const P = args.parallel;
  for (const set of args.sets) {
    const add = (scu: ScuKind, scp: ScpKind, associations: number): void => {
      out.push({ id: configId(set, scu, scp, associations), set, scu, scp, associations });
    };
    const scu = args.scuSets.includes(set);
    add('storescu', 'tessera', 1);
    add('storescu', 'tessera-nofsync', 1);
    add('storescu', 'tessera-receive', 1);
    add('storescu', 'storescp', 1);
    if (args.orthanc) add('storescu', 'orthanc', 1);
    if (scu) add('tessera', 'storescp', 1);
    const floor = scu && args.floor;
    if (floor) {
      add('storescu', 'node-floor', 1);
      add('node-floor', 'storescp', 1);
    }
    if (P > 1) {
      add('storescu', 'tessera', P);
      add('storescu', 'tessera-nofsync', P);
      add('storescu', 'tessera-receive', P);
      add('storescu', 'storescp', P);
      add('storescu', 'storescp-fork', P);
      if (args.orthanc) add('storescu', 'orthanc', P);
      if (scu) {
        add('tessera', 'storescp-fork', P);
        add('tessera', 'storescp', P);
      }
      if (floor) {
        add('storescu', 'node-floor', P);
        add('node-floor', 'storescp-fork', P);
      }
    }
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
  readonly sent: number;
  /** Instances found afterwards: storescp's files, Tessera's blob files, Orthanc's storage files. */
  readonly received: number;
  readonly receivedBytes: number;
  /** Instances in the SCP's index: Tessera's `instances` rows, Orthanc's /statistics CountInstances. */
  readonly indexed: number | undefined;
  /** Server: peak RSS (VmHWM; not storescp --fork, whose children do the work; KiB). */
  readonly serverPeakRssKiB: number | undefined;
  /** Tessera server: RSS once it listens, before the first association (KiB). */
  readonly serverStartRssKiB: number | undefined;
  /** Server CPU seconds during the run. */
  readonly serverCpuS: number | undefined;
  /** CPU seconds of the SCU processes (cutime+cstime of this process across the run). */
  readonly scuCpuS: number | undefined;
  /** `tessera store`'s own timing (after it has read the headers of its files), seconds. */
  readonly scuSelfReportedS: number | undefined;
}

/** Whether `tessera serve` has an --http-port option (then each run gets a free one, not 8080). */
let tesseraHttpPortFlag = false;

function detectTesseraHttpPort(): boolean {
  const r = spawnSync(process.execPath, [TESSERA_MAIN, 'serve', '--help'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.includes('--http-port');
}

/** Orthanc's configuration for one run: everything it writes stays in the run's folder. */
function orthancConfig(dir: string, port: number, httpPort: number): string {
  return writeOrthancConfig(dir, 'tessera-bench', port, httpPort, {
    DicomCheckCalledAet: false,
    // The same maximum PDU as Tessera and storescp get (Orthanc's default is 16384).
    MaximumPduLength: SCP_MAX_PDU,
  });
}

function startServer(
  kind: ScpKind,
  dir: string,
  port: number,
  httpPort: number | undefined,
  associations: number,
): Proc {
  if (isTessera(kind)) {
    return launch(
      process.execPath,
      [
        TESSERA_MAIN,
        'serve',
        '--data-dir',
        dir,
        '--dimse-port',
        String(port),
        ...(httpPort === undefined ? [] : ['--http-port', String(httpPort)]),
        '--host',
        HOST,
        '--any-called-ae',
        ...(kind === 'tessera-nofsync' ? ['--no-fsync'] : []),
      ],
      { group: true },
    );
  }
  if (kind === 'tessera-receive') {
    return launch(
      process.execPath,
      [
        TESSERA_MAIN,
        'receive',
        '--out',
        dir,
        '--host',
        HOST,
        '--any-called-ae',
        '--no-fsync',
        // With P associations, P processes (as storescp --fork, its peer there, has one per association).
        ...(associations > 1 ? ['--workers', String(associations)] : []),
        String(port),
      ],
      { group: true },
    );
  }
  if (kind === 'node-floor') {
    // As tessera receive: with P associations, P processes.
    return launch(process.execPath, [FLOOR_SCP, dir, String(port), String(associations)], { group: true });
  }
  if (kind === 'orthanc') {
    if (httpPort === undefined) throw new Error('Orthanc needs an HTTP port');
    return launch(ORTHANC, [orthancConfig(dir, port, httpPort)], { group: true });
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
  const aec = CALLED_AE[c.scp];
  if (c.scu === 'node-floor') {
    return Array.from({ length: c.associations }, (_, k) =>
      launch(process.execPath, [FLOOR_SCU, aec, HOST, String(port), ...share(paths, k, c.associations)], {
        group: false,
      }),
    );
  }
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

/**
 * Received instances: regular files under `dir` (recursively) not starting with '.', and how many are
 * smaller than one frame of Pixel Data (which no complete instance can be).
 */
function countFiles(dir: string, minBytes: number): { count: number; bytes: number; small: number } {
  let count = 0;
  let bytes = 0;
  let small = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const size = statSync(p).size;
        count++;
        bytes += size;
        if (size < minBytes) small++;
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return { count, bytes, small };
}

/** Rows of Tessera's `instances` table, read after the server has stopped. */
function tesseraIndexedCount(dir: string): number {
  const db = new Database(path.join(dir, 'index.sqlite'), { fileMustExist: true });
  try {
    return Number((db.prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

let runSeq = 0;

async function runOnce(
  c: Config,
  round: number,
  files: FileSet,
  paths: readonly string[] = files.paths,
): Promise<RunResult> {
  // Each server process gets PROCESS_WARM_UP instances: tessera receive --workers P has P processes,
  // so P times as many, distinct ones (files written over would be deletions, which slow this disk).
  const perProcess = Math.min(PROCESS_WARM_UP[c.set], files.warm?.length ?? 0);
  const warm = (files.warm ?? []).slice(0, isMultiProcess(c.scp) ? perProcess * c.associations : perProcess);
  const seq = ++runSeq;
  const slug = `${String(seq).padStart(3, '0')}-${c.id.replace(/[^a-z0-9]+/gi, '-')}`;
  const dir = path.join(RUNS_DIR, slug);
  mkdirSync(dir, { recursive: true });
  const sentMiB = ((files.bytes / files.paths.length) * paths.length) / MiB;
  const timeoutMs = Math.round(60_000 + paths.length * 20 + sentMiB * 400);
  const problems: string[] = [];
  let ms = Number.NaN;
  let serverPeakRssKiB: number | undefined;
  let serverStartRssKiB: number | undefined;
  let serverCpuS: number | undefined;
  let scuCpuS: number | undefined;
  let scuSelfReportedS: number | undefined;
  let indexed: number | undefined;
  let received = { count: 0, bytes: 0, small: 0 };
  const port = await freePort();
  let httpPort: number | undefined;
  if (c.scp === 'orthanc' || (isTessera(c.scp) && tesseraHttpPortFlag)) {
    do httpPort = await freePort();
    while (httpPort === port);
  }
  let server: Proc | undefined;
  try {
    try {
      server = startServer(c.scp, dir, port, httpPort, c.associations);
      await waitForPort(port, server, SCP_LABEL[c.scp]);
      if (c.scp === 'orthanc') await waitForOrthancHttp(HOST, httpPort!, server, SERVER_READY_MS);
      if (isTessera(c.scp)) serverStartRssKiB = procStatusKiB(server.pid, 'VmRSS');
      if (warm.length) {
        // tessera receive --workers P: one association per worker, so that each process is warmed up
        // (the cluster hands the connections out in turn), each with PROCESS_WARM_UP instances of its
        // own. Every other server: one association.
        const warmers = startScus(
          { ...c, scu: 'storescu', associations: isMultiProcess(c.scp) ? c.associations : 1 },
          port,
          warm,
          Math.ceil(timeoutMs / 1000),
        );
        const codes = await withTimeout(Promise.all(warmers.map((w) => w.exited)), timeoutMs);
        if (codes === 'timeout' || codes.some((code) => code !== 0))
          throw new Error(
            `process warm-up: storescu exited with ${codes}: ${warmers.map((w) => w.output().slice(-1000)).join('\n')}`,
          );
        await withTimeout(Promise.all(warmers.map((w) => w.closed)), 5000);
      }
      const serverCpu0 = serverCpuSeconds(c.scp, server.pid);
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
          if (code !== 0)
            problems.push(`SCU ${k + 1} exited with ${code}: ${scus[k]!.output().slice(-2000)}`);
        });
      }
      await withTimeout(Promise.all(scus.map((s) => s.closed)), 5000);
      if (self0 && self1) scuCpuS = self1.children - self0.children;
      if (c.scu === 'tessera') {
        const m = / in ([\d.]+) s:/.exec(scus[0]!.output());
        scuSelfReportedS = m ? Number(m[1]) : undefined;
      }
      // Server statistics before it is stopped (storescp --fork: its short-lived children did the
      // work; not counted. tessera receive: its workers' counted in).
      if (c.scp !== 'storescp-fork') {
        serverPeakRssKiB = serverPeakRss(c.scp, server.pid);
        const cpu1 = serverCpuSeconds(c.scp, server.pid);
        if (serverCpu0 !== undefined && cpu1 !== undefined) serverCpuS = cpu1 - serverCpu0;
      }
      if (c.scp === 'orthanc') {
        const n = (await orthancGet(HOST, httpPort!, '/statistics')).CountInstances;
        indexed = typeof n === 'number' ? n : Number(n);
      }
    } catch (err) {
      problems.push((err as Error).message);
    } finally {
      if (server) await stop(server);
    }
    // Counted once the server is gone (every C-STORE was answered before the SCUs exited).
    try {
      const receiveDir = isTessera(c.scp)
        ? path.join(dir, 'blobs')
        : c.scp === 'orthanc'
          ? path.join(dir, 'storage')
          : dir;
      received = countFiles(receiveDir, frameBytes(files.spec));
      if (isTessera(c.scp)) indexed = tesseraIndexedCount(dir);
    } catch (err) {
      problems.push(`counting what was received: ${(err as Error).message}`);
    }
    // The process warm-up's instances are there too.
    const expected = paths.length + warm.length;
    if (received.count !== expected)
      problems.push(`received ${received.count} instances, ${paths.length} sent (+ ${warm.length} warm-up)`);
    if (indexed !== undefined && indexed !== expected)
      problems.push(
        `${indexed} instances in the ${SCP_LABEL[c.scp]} index, ${paths.length} sent (+ ${warm.length} warm-up)`,
      );
    if (received.small > 0)
      problems.push(`${received.small} received files are smaller than their Pixel Data`);
  } finally {
    syncDisk();
    dropFromPageCache(dir);
    mkdirSync(GRAVEYARD, { recursive: true });
    renameSync(dir, path.join(GRAVEYARD, `${process.pid}-${slug}`));
  }
  const ok = problems.length === 0;
  const mib = received.bytes / MiB;
  log(
    `${round < 0 ? 'warm-up' : `round ${round + 1}`} ${c.set} ${label(c)}: ${(ms / 1000).toFixed(2)} s, ${((paths.length / ms) * 1000).toFixed(1)} inst/s, ` +
      `${((mib * paths.length) / Math.max(1, received.count) / (ms / 1000)).toFixed(1)} MiB/s received ${received.count}/${paths.length + warm.length}` +
      (indexed === undefined ? '' : ` indexed ${indexed}`) +
      (serverPeakRssKiB ? `, server peak RSS ${(serverPeakRssKiB / 1024).toFixed(0)} MiB` : '') +
      (ok
        ? ''
        : `\n${'!'.repeat(100)}\n!!! FAILED RUN: ${c.set} ${label(c)}, ${round < 0 ? 'warm-up' : `round ${round + 1}`}:\n!!! ${problems.join('\n!!! ')}\n${'!'.repeat(100)}`),
  );
  return {
    config: c.id,
    round,
    ok,
    problems,
    ms,
    sent: paths.length,
    received: received.count,
    receivedBytes: received.bytes,
    indexed,
    serverPeakRssKiB,
    serverStartRssKiB,
    serverCpuS,
    scuCpuS,
    scuSelfReportedS,
  };
}

/** How long `tessera` takes to start and exit (what each `tessera store` run pays first). */
async function tesseraStartupMs(): Promise<number> {
  const t0 = performance.now();
  const p = launch(process.execPath, [TESSERA_MAIN, '--version'], { group: false });
  const code = await withTimeout(p.exited, 30_000);
  if (code !== 0) throw new Error(`tessera --version: ${code}: ${p.output()}`);
  return performance.now() - t0;
}

/** Peak RSS (KiB) of an idle node: what any Node.js server starts from. */
function nodeBaseline(): { plainKiB: number | undefined } {
  const code =
    'setTimeout(() => { const s = require("node:fs").readFileSync("/proc/self/status", "latin1"); ' +
    'process.stdout.write(/VmHWM:\\s+(\\d+)/.exec(s)[1]); }, 300)';
  const run = (pre: string[]): number | undefined => {
    const r = spawnSync(process.execPath, [...pre, '-e', code], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });
    const n = Number((r.stdout ?? '').trim());
    return Number.isFinite(n) && n > 0 ? n : undefined;
  };
  return { plainKiB: run([]) };
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

function dcmtkVersion(): string {
  const r = spawnSync('storescu', ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return /v(\d[\d.]*)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

function orthancVersion(): string {
  const r = spawnSync(ORTHANC, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return /Orthanc (\d[\d.]*)/.exec(r.stdout ?? '')?.[1] ?? 'unknown';
}

interface Comparison {
  readonly key: string;
  readonly set: SetName;
  readonly what: string;
  readonly a: string;
  readonly b: string;
  readonly threshold: number;
  readonly target: boolean;
}

function comparisons(args: Args, cfgs: readonly Config[]): Comparison[] {
  const P = args.parallel;
  const out: Comparison[] = [];
  for (const set of args.sets) {
    const id = (scu: ScuKind, scp: ScpKind, n: number): string => configId(set, scu, scp, n);
    const add = (
      key: string,
      what: string,
      a: string,
      b: string,
      threshold: number,
      target: boolean,
    ): void => {
      if (cfgs.some((c) => c.id === a) && cfgs.some((c) => c.id === b))
        out.push({ key: `${set}.${key}`, set, what: `${set}: ${what}`, a, b, threshold, target });
    };
    // Issue 4: Tessera (indexing) >= 1.0x storescp on the large files; the small set is information.
    // storescp does not fsync: the target compares it with `tessera serve --no-fsync` (the same
    // durability: a crash of the process loses nothing, a power loss may); durable Tessera is shown too.
    const vsStorescp = set === 'large';
    add(
      'scp1',
      'tessera serve --no-fsync / storescp, 1 association (storescu; neither fsyncs)',
      id('storescu', 'tessera-nofsync', 1),
      id('storescu', 'storescp', 1),
      TARGET_RATIO,
      vsStorescp,
    );
    add(
      'scp1Durable',
      'tessera serve (fsync) / storescp (no fsync), 1 association (storescu)',
      id('storescu', 'tessera', 1),
      id('storescu', 'storescp', 1),
      TARGET_RATIO,
      false,
    );
    if (P > 1) {
      add(
        `scp${P}`,
        `tessera serve --no-fsync / storescp, ${P} associations (storescu x${P}; storescp serves them one at a time)`,
        id('storescu', 'tessera-nofsync', P),
        id('storescu', 'storescp', P),
        TARGET_RATIO,
        vsStorescp,
      );
      add(
        `scp${P}Durable`,
        `tessera serve (fsync) / storescp (no fsync), ${P} associations (storescu x${P})`,
        id('storescu', 'tessera', P),
        id('storescu', 'storescp', P),
        TARGET_RATIO,
        false,
      );
      add(
        `scp${P}Fork`,
        `tessera serve --no-fsync / storescp --fork, ${P} associations (storescu x${P})`,
        id('storescu', 'tessera-nofsync', P),
        id('storescu', 'storescp-fork', P),
        TARGET_RATIO,
        false,
      );
    }
    // Issue 3: Tessera's SCP, the networking layer writing files as storescp does (`tessera receive`,
    // no index), at least as fast as storescp; with P associations against storescp --fork, which
    // also serves them at once.
    add(
      'receive1',
      'tessera receive --no-fsync / storescp, 1 association (storescu; files, no index, neither fsyncs)',
      id('storescu', 'tessera-receive', 1),
      id('storescu', 'storescp', 1),
      TARGET_RATIO,
      vsStorescp,
    );
    // The Node.js floor (bench/floor): information, not targets. With P associations, the floor SCP
    // runs P workers (as tessera receive --workers P) and the SCUs send to storescp --fork.
    for (const k of P > 1 ? [1, P] : [1]) {
      const scp: ScpKind = k > 1 ? 'storescp-fork' : 'storescp';
      const n = k > 1 ? `${k} associations (storescu x${k}, -> storescp --fork)` : '1 association';
      const info = (key: string, what: string, a: string, b: string): void =>
        add(`${key}${k}`, `${what}, ${n}`, a, b, TARGET_RATIO, false);
      const receive = id('storescu', 'tessera-receive', k);
      const floorScp = id('storescu', 'node-floor', k);
      const floorScu = id('node-floor', scp, k);
      info('floorReceive', 'tessera receive / Node.js floor SCP', receive, floorScp);
      info('floorScp', `Node.js floor SCP / ${SCP_LABEL[scp]}`, floorScp, id('storescu', scp, k));
      info('floorStore', 'tessera store / Node.js floor SCU', id('tessera', scp, k), floorScu);
      info('floorScu', 'Node.js floor SCU / storescu', floorScu, id('storescu', scp, k));
    }
    if (P > 1)
      add(
        `receive${P}Fork`,
        `tessera receive --no-fsync / storescp --fork, ${P} associations (storescu x${P})`,
        id('storescu', 'tessera-receive', P),
        id('storescu', 'storescp-fork', P),
        TARGET_RATIO,
        vsStorescp,
      );
    add(
      'orthanc1',
      'tessera serve / Orthanc, 1 association (storescu; both fsync each instance)',
      id('storescu', 'tessera', 1),
      id('storescu', 'orthanc', 1),
      TARGET_ORTHANC_RATIO,
      true,
    );
    if (P > 1)
      add(
        `orthanc${P}`,
        `tessera serve / Orthanc, ${P} associations (storescu x${P}; both fsync each instance)`,
        id('storescu', 'tessera', P),
        id('storescu', 'orthanc', P),
        TARGET_ORTHANC_RATIO,
        true,
      );
    add(
      'scu1',
      'tessera store / storescu, 1 association (-> storescp)',
      id('tessera', 'storescp', 1),
      id('storescu', 'storescp', 1),
      TARGET_RATIO,
      true,
    );
    if (P > 1) {
      add(
        `scu${P}Fork`,
        `tessera store --parallel ${P} / storescu x${P} (-> storescp --fork)`,
        id('tessera', 'storescp-fork', P),
        id('storescu', 'storescp-fork', P),
        TARGET_RATIO,
        true,
      );
      add(
        `scu${P}`,
        `tessera store --parallel ${P} / storescu x${P} (-> storescp, one association at a time)`,
        id('tessera', 'storescp', P),
        id('storescu', 'storescp', P),
        TARGET_RATIO,
        false,
      );
    }
  }
  return out;
}

/** What the archive does per instance beyond receiving and writing it, measured alone in this process. */
interface Budget {
  readonly instances: number;
  /** ms per instance: SHA-256 of the data set; the whole analysis (parse, SHA-256, metadata document, record); one index transaction. */
  readonly sha256Ms: number;
  readonly analysisMs: number;
  readonly indexMs: number;
}

/**
 * The archive's own per-instance work on a set's files (data set in memory, nothing else running):
 * SHA-256 alone, the ingest analysis (parse, SHA-256, DICOM JSON metadata document, index record:
 * src/archive/analysis.ts) and the SQLite index transaction of the record (synchronous=NORMAL, no
 * fsync: the --no-fsync mode). A first pass over other files warms the JIT up; medians of 3 passes.
 */
function measureBudget(paths: readonly string[], count: number): Budget {
  const load = (p: string): { bytes: Buffer; tsuid: string } => {
    const file = readFileSync(p);
    const end = 144 + file.readUInt32LE(140);
    return { bytes: file.subarray(end), tsuid: '1.2.840.10008.1.2.1' };
  };
  const warm = paths.slice(count, count + 50).map(load);
  const sets = paths.slice(0, count).map(load);
  const analyse = (d: { bytes: Buffer; tsuid: string }): InstanceRecord => {
    const a = new InstanceAnalysis({
      transferSyntaxUid: d.tsuid,
      headerLength: 300,
      source: { aeTitle: 'STORESCU' },
    });
    for (let at = 0; at < d.bytes.length; at += 65536) a.push(d.bytes.subarray(at, at + 65536));
    const r = a.end();
    if (r.kind !== 'record') throw new Error(`budget: ${r.comment}`);
    return r.record;
  };
  const warmRecords = warm.map(analyse);
  const sha: number[] = [];
  const analysis: number[] = [];
  const index: number[] = [];
  let records: InstanceRecord[] = [];
  for (let pass = 0; pass < 3; pass++) {
    let t = performance.now();
    for (const d of sets) createHash('sha256').update(d.bytes).digest('hex');
    sha.push((performance.now() - t) / sets.length);
    t = performance.now();
    records = sets.map(analyse);
    analysis.push((performance.now() - t) / sets.length);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-bench-budget-'));
    try {
      const idx = SqliteIndex.open(path.join(dir, 'index.sqlite'), { synchronous: 'NORMAL' });
      for (const r of warmRecords.slice(0, 20)) idx.commitSync([{ record: r, policy: 'reject' }]);
      t = performance.now();
      for (const r of records) idx.commitSync([{ record: r, policy: 'reject' }]);
      index.push((performance.now() - t) / records.length);
      idx.closeSync();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    instances: sets.length,
    sha256Ms: median(sha),
    analysisMs: median(analysis),
    indexMs: median(index),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));

  const started = performance.now();
  for (const tool of ['storescu', 'storescp']) {
    if (spawnSync(tool, ['--version']).status !== 0)
      throw new Error(`${tool} (DCMTK) is not installed: apt-get install dcmtk`);
  }
  if (args.orthanc && spawnSync(ORTHANC, ['--version']).status !== 0)
    throw new Error(`${ORTHANC} is not installed: apt-get install orthanc (or run with --no-orthanc)`);
  tesseraHttpPortFlag = detectTesseraHttpPort();
  const counts: Record<SetName, number> = { large: args.files, small: args.smallFiles };
  log(
    `bench dir ${BENCH_DIR}; sets ${args.sets.map((s) => `${s}=${counts[s]}`).join(' ')} rounds=${args.rounds} ` +
      `parallel=${args.parallel}; DCMTK ${dcmtkVersion()}` +
      (args.orthanc ? `, Orthanc ${orthancVersion()}` : ', no Orthanc') +
      `, TCP_NODELAY=1 for every child; tessera serve ${tesseraHttpPortFlag ? 'has --http-port (a free port per run)' : 'has no --http-port'}`,
  );
  // Receive folders left by an interrupted run go to the graveyard too (a rename, nothing deleted now).
  if (existsSync(RUNS_DIR)) {
    mkdirSync(GRAVEYARD, { recursive: true });
    renameSync(RUNS_DIR, path.join(GRAVEYARD, `runs-left-${Date.now()}`));
  }
  const fileSets = new Map<SetName, FileSet>();
  for (const s of args.sets) {
    const set = ensureFiles(SETS[s], counts[s]);
    // Enough for tessera receive --workers P (see runOnce); the other servers take the first ones.
    set.warm = ensureFiles(warmSpec(SETS[s]), PROCESS_WARM_UP[s] * args.parallel).paths;
    fileSets.set(s, set);
  }
  for (const f of fileSets.values()) await warmPageCache([...f.paths, ...(f.warm ?? [])]);
  syncDisk();
  const overhead = nodeBaseline();
  const diskSettleS = await waitForDiskToSettle(BENCH_DIR);
  const cfgs = configs(args);
  const cmps = comparisons(args, cfgs);
  const warmUps: RunResult[] = [];
  const byConfig = new Map<string, RunResult[]>(cfgs.map((c) => [c.id, []]));
  const startupMs: number[] = [];
  try {
    // Untimed warm-up, one run per SCP and set: a smoke test of the set-up, and the memory the runs'
    // page cache will use touched once (on this VM, never-touched memory is slower).
    for (const c of cfgs.filter((x) => x.scu === 'storescu' && x.associations === 1)) {
      const files = fileSets.get(c.set)!;
      const w = await runOnce(c, -1, files, files.paths.slice(0, files.spec.warmUpFiles));
      warmUps.push(w);
      if (!w.ok) throw new Error(`warm-up ${c.set} ${label(c)} failed: ${w.problems.join('; ')}`);
    }
    for (let r = 0; r < args.rounds; r++) {
      // Alternate the order: forward in even rounds, reversed in odd ones.
      const order = r % 2 === 0 ? cfgs : [...cfgs].reverse();
      for (const c of order) byConfig.get(c.id)!.push(await runOnce(c, r, fileSets.get(c.set)!));
      if (args.scuSets.length) startupMs.push(await tesseraStartupMs());
      log(`round ${r + 1} done after ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
  } finally {
    killAllNow();
  }

  // Summary.
  const cfgOf = (id: string): Config => cfgs.find((c) => c.id === id)!;
  const stats = (id: string) => {
    const files = fileSets.get(cfgOf(id).set)!;
    const n = files.paths.length;
    const runs = byConfig.get(id) ?? [];
    const good = runs.filter((x) => x.ok);
    const ms = median(good.map((x) => x.ms));
    const rss = runs.map((x) => x.serverPeakRssKiB).filter((x): x is number => x !== undefined);
    const toMiB = (kib: number | undefined): number | undefined =>
      kib === undefined ? undefined : kib / 1024;
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
      serverStartRssMiB: toMiB(num(runs.map((x) => x.serverStartRssKiB))),
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
  const fmtRatio = (r: ReturnType<typeof ratio> | undefined): string =>
    r ? `${r.ofMedians.toFixed(2)}x (${r.perRound.map((x) => x?.toFixed(2) ?? 'fail').join(' ')})` : '';
  const failed = [...byConfig.values()].flat().filter((x) => !x.ok);
  const P = args.parallel;

  const table: string[] = [];
  const RC = 24;
  const header = (first: string, r1: string, r2: string): string =>
    `${pad(first, 60, true)}${pad('assoc', 6)}${pad('inst/s', 9)}${pad('MiB/s', 8)}  ${pad(r1, RC, true)}${pad(r2, RC, true)}` +
    `${pad('srv RSS', 9)}${pad('srv CPU', 9)}${pad('SCU CPU', 9)}`;
  const row = (id: string, r1?: ReturnType<typeof ratio>, r2?: ReturnType<typeof ratio>): void => {
    const c = cfgs.find((x) => x.id === id);
    if (!c) return;
    const s = stats(id);
    const fails = s.runs.length - s.good.length;
    table.push(
      `${pad(`  ${label(c)}${fails ? ` (${fails} FAILED)` : ''}`, 60, true)}${pad(String(c.associations), 6)}` +
        `${pad(s.instPerS.toFixed(1), 9)}${pad(s.mibPerS.toFixed(1), 8)}  ${pad(fmtRatio(r1), RC, true)}${pad(fmtRatio(r2), RC, true)}` +
        `${pad(s.serverPeakRssMiB === undefined ? '-' : `${s.serverPeakRssMiB.toFixed(0)}M`, 9)}` +
        `${pad(s.serverCpuS === undefined ? '-' : `${s.serverCpuS.toFixed(1)}s`, 9)}` +
        `${pad(s.scuCpuS === undefined ? '-' : `${s.scuCpuS.toFixed(1)}s`, 9)}`,
    );
  };
  const has = (id: string): boolean => cfgs.some((c) => c.id === id);
  for (const set of args.sets) {
    const files = fileSets.get(set)!;
    const n = files.paths.length;
    const id = (scu: ScuKind, scp: ScpKind, k: number): string => configId(set, scu, scp, k);
    const r = (a: string, b: string) => (has(a) && has(b) ? ratio(a, b) : undefined);
    table.push(
      `[${set}] C-STORE of ${n} CT files of ${((files.bytes / n / MiB) * (set === 'small' ? 1024 : 1)).toFixed(set === 'small' ? 1 : 3)} ${set === 'small' ? 'KiB' : 'MiB'} ` +
        `(${files.spec.rows}x${files.spec.columns}x16-bit, ${files.elements + 6} elements incl. meta and items), loopback, same disk; ` +
        `median of ${args.rounds} round(s), first SCU spawn to last SCU exit`,
    );
    table.push(header('SCPs, storescu sending', 'tessera / storescp', 'tessera / Orthanc'));
    for (const k of P > 1 ? [1, P] : [1]) {
      const t = id('storescu', 'tessera', k);
      const tn = id('storescu', 'tessera-nofsync', k);
      row(t, r(t, id('storescu', 'storescp', k)), r(t, id('storescu', 'orthanc', k)));
      const rc = id('storescu', 'tessera-receive', k);
      row(tn, r(tn, id('storescu', 'storescp', k)), r(tn, id('storescu', 'orthanc', k)));
      row(rc, r(rc, id('storescu', k > 1 ? 'storescp-fork' : 'storescp', k)));
      row(id('storescu', 'storescp', k));
      if (k > 1) row(id('storescu', 'storescp-fork', k), r(tn, id('storescu', 'storescp-fork', k)));
      row(id('storescu', 'orthanc', k));
    }
    if (args.scuSets.includes(set)) {
      table.push(header('SCUs -> storescp', 'tessera / storescu', ''));
      const pairs: [string, string][] = [[id('tessera', 'storescp', 1), id('storescu', 'storescp', 1)]];
      if (P > 1)
        pairs.push(
          [id('tessera', 'storescp-fork', P), id('storescu', 'storescp-fork', P)],
          [id('tessera', 'storescp', P), id('storescu', 'storescp', P)],
        );
      for (const [a, b] of pairs) {
        row(a, r(a, b));
        row(b);
      }
    }
    if (args.scuSets.includes(set) && args.floor) {
      // How far Tessera is from the least any Node.js process does (bench/floor), and where that is.
      table.push(header('Node.js floor (bench/floor)', 'floor / DCMTK', 'tessera / floor'));
      for (const k of P > 1 ? [1, P] : [1]) {
        const dcmtkScp = id('storescu', k > 1 ? 'storescp-fork' : 'storescp', k);
        const floorScp = id('storescu', 'node-floor', k);
        row(floorScp, r(floorScp, dcmtkScp), r(id('storescu', 'tessera-receive', k), floorScp));
        const scp = k > 1 ? 'storescp-fork' : 'storescp';
        const floorScu = id('node-floor', scp, k);
        row(floorScu, r(floorScu, id('storescu', scp, k)), r(id('tessera', scp, k), floorScu));
      }
    }
    table.push('');
  }
  table.push(
    'ratios: throughput a / b = median time b / median time a, then per round; srv RSS = worst peak RSS (VmHWM) of the ' +
      'SCP process (tessera receive: the sum over its processes); srv CPU / SCU CPU = median CPU seconds per run (tessera receive: ' +
      'its workers included; storescp --fork: the work is in its short-lived children, not shown)',
  );
  const tesseraRuns = [...warmUps, ...[...byConfig.values()].flat()].filter((x) =>
    isTessera(cfgOf(x.config).scp),
  );
  const tesseraPeaks = tesseraRuns.map((x) => x.serverPeakRssKiB).filter((x): x is number => x !== undefined);
  const worstRssMiB = tesseraPeaks.length ? Math.max(...tesseraPeaks) / 1024 : undefined;
  const startRss = tesseraRuns.map((x) => x.serverStartRssKiB).filter((x): x is number => x !== undefined);
  const startRssMiB = startRss.length ? median(startRss) / 1024 : undefined;
  table.push(
    `tessera serve runs from its bundle (dist/main.js, as the tessera command does): its RSS once listening (before any ` +
      `association) is ${startRssMiB?.toFixed(0) ?? '?'} MiB (median); an idle node is ${((overhead.plainKiB ?? 0) / 1024).toFixed(0)} MiB`,
  );
  let startup = Number.NaN;
  if (args.scuSets.length) {
    startup = median(startupMs);
    const scuId = configId(args.scuSets[0]!, 'tessera', 'storescp', 1);
    const selfS = has(scuId) ? stats(scuId).scuSelfReportedS : undefined;
    table.push(
      `tessera CLI start-up (tessera --version, the bundle): ${startup.toFixed(0)} ms, inside every tessera store run` +
        (selfS === undefined
          ? ''
          : `; tessera store's own timer (after reading its files' headers), ${args.scuSets[0]} set, 1 association: ${selfS.toFixed(2)} s of ${(stats(scuId).ms / 1000).toFixed(2)} s`),
    );
  }
  table.push('');
  const targets: Record<string, unknown> = {};
  for (const cmp of cmps) {
    const r = ratio(cmp.a, cmp.b);
    const pass = r.ofMedians >= cmp.threshold;
    if (cmp.target)
      targets[cmp.key] = {
        target: `${cmp.what} >= ${cmp.threshold}`,
        ratio: round(r.ofMedians),
        perRound: r.perRound,
        pass,
      };
    table.push(
      `${cmp.target ? 'target' : 'info  '} ${cmp.what}: ${r.ofMedians.toFixed(2)}x (rounds ${r.perRound.map((x) => x?.toFixed(2) ?? 'fail').join(', ')})` +
        (cmp.target ? ` >= ${cmp.threshold.toFixed(1)}x -> ${pass ? 'PASS' : 'FAIL'}` : ''),
    );
  }
  // The archive's own work per instance, measured alone, against the peers' whole CPU per instance.
  const budgets: Record<string, unknown> = {};
  for (const set of args.sets.filter((x) => x === 'large' || x === 'small')) {
    const files = fileSets.get(set)!;
    let b: Budget;
    try {
      b = measureBudget(files.paths, Math.min(300, Math.max(1, files.paths.length - 50)));
    } catch (err) {
      table.push(`info   ${set} set: the per-instance work could not be measured: ${(err as Error).message}`);
      continue;
    }
    const perInstance = (scp: ScpKind): number | undefined => {
      const id = configId(set, 'storescu', scp, 1);
      const cpu = has(id) ? stats(id).serverCpuS : undefined;
      return cpu === undefined ? undefined : (cpu * 1000) / files.paths.length;
    };
    const peers = {
      storescp: perInstance('storescp'),
      orthanc: perInstance('orthanc'),
      tesseraNoFsync: perInstance('tessera-nofsync'),
      tessera: perInstance('tessera'),
    };
    const ms = (x: number | undefined): string => (x === undefined ? '?' : `${x.toFixed(2)} ms`);
    budgets[set] = {
      instancesMeasured: b.instances,
      sha256Ms: round(b.sha256Ms, 3),
      analysisMs: round(b.analysisMs, 3),
      indexTransactionMs: round(b.indexMs, 3),
      serverCpuMsPerInstance1Assoc: Object.fromEntries(
        Object.entries(peers).map(([k, v]) => [k, round(v, 3)]),
      ),
    };
    table.push(
      `info   ${set} set, the archive's own work per instance measured alone (${b.instances} files, in memory): ` +
        `analysis ${ms(b.analysisMs)} (of which SHA-256 ${ms(b.sha256Ms)}; parse, metadata document, record), ` +
        `index transaction ${ms(b.indexMs)}; total ${ms(b.analysisMs + b.indexMs)}. Whole server CPU per instance ` +
        `(1 association, median run): storescp ${ms(peers.storescp)}, Orthanc ${ms(peers.orthanc)}, ` +
        `tessera --no-fsync ${ms(peers.tesseraNoFsync)}, tessera ${ms(peers.tessera)}`,
    );
  }
  const rssPass = worstRssMiB !== undefined && worstRssMiB < TARGET_RSS_MIB;
  const rssBySet = Object.fromEntries(
    args.sets.map((set) => {
      const xs = tesseraRuns
        .filter((x) => cfgOf(x.config).set === set)
        .map((x) => x.serverPeakRssKiB)
        .filter((x): x is number => x !== undefined);
      return [set, xs.length ? round(Math.max(...xs) / 1024, 1) : null];
    }),
  );
  targets.tesseraPeakRss = {
    target: `tessera serve peak RSS (VmHWM) < ${TARGET_RSS_MIB} MiB in every run (warm-ups included)`,
    worstMiB: round(worstRssMiB, 1),
    worstMiBBySet: rssBySet,
    pass: rssPass,
  };
  table.push(
    `target tessera serve peak RSS in all ${tesseraPeaks.length} runs (warm-ups included): worst ${worstRssMiB?.toFixed(0) ?? '?'} MiB ` +
      `(${args.sets.map((s) => `${s} ${rssBySet[s] ?? '?'}`).join(', ')}) < ${TARGET_RSS_MIB} MiB -> ${rssPass ? 'PASS' : 'FAIL'}`,
  );
  if (failed.length) {
    table.push('');
    table.push(`!!! ${failed.length} FAILED RUN(S), left out of the medians:`);
    for (const f of failed)
      table.push(`!!!   round ${f.round + 1} ${f.config}: ${f.problems.join('; ').slice(0, 500)}`);
  }

  const summary = {
    benchmark: 'tessera store (C-STORE throughput: tessera serve with its index vs storescp vs Orthanc)',
    units: {
      size: 'MiB = 2^20 bytes of Part 10 file sent',
      time: 'ms from the first SCU spawn to the last SCU exit (median of the rounds that succeeded)',
      ratio: 'throughput a / throughput b = time b / time a; perRound pairs the runs of the same round',
      cpu: 'CPU seconds during the run (server: utime+stime from /proc; SCUs: cutime+cstime of this process)',
      rss: 'MiB, VmHWM of the server process read from /proc before it is stopped (tessera serve: its bundle, dist/main.js)',
    },
    env: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}`,
      memMiB: Math.round(os.totalmem() / MiB),
      dcmtk: dcmtkVersion(),
      orthanc: args.orthanc ? orthancVersion() : null,
      childEnv: { TCP_NODELAY: '1' },
      idleNodeMiB: round(overhead.plainKiB === undefined ? undefined : overhead.plainKiB / 1024, 1),
      tesseraServeHttpPort: tesseraHttpPortFlag,
    },
    params: {
      sets: Object.fromEntries(
        args.sets.map((set) => {
          const f = fileSets.get(set)!;
          return [
            set,
            {
              files: f.paths.length,
              dir: f.spec.dir,
              pixels: `${f.spec.rows}x${f.spec.columns}x16`,
              fileBytes: Math.round(f.bytes / f.paths.length),
              totalBytes: f.bytes,
              elementsPerFile: f.elements + 6,
              warmUpFiles: Math.min(f.paths.length, f.spec.warmUpFiles),
            },
          ];
        }),
      ),
      rounds: args.rounds,
      parallel: P,
      scuSets: args.scuSets,
      benchDir: BENCH_DIR,
      scpMaxPdu: SCP_MAX_PDU,
      storescp: `storescp -od DIR +xa -pdu ${SCP_MAX_PDU} [--fork] PORT`,
      storescu:
        'storescu -aec STORESCP|TESSERA|ORTHANC -ta T 127.0.0.1 PORT FILES (one process per association)',
      tesseraServe: `node dist/main.js serve --data-dir DIR --dimse-port PORT${tesseraHttpPortFlag ? ' --http-port PORT2' : ''} --host 127.0.0.1 --any-called-ae`,
      orthanc: `${ORTHANC} DIR/orthanc.json: StorageDirectory DIR/storage, IndexDirectory DIR/index (SQLite), DicomAet ORTHANC, DicomPort PORT, HttpPort PORT2, DicomCheckCalledAet false, RemoteAccessAllowed false, AuthenticationEnabled false, MaximumPduLength ${SCP_MAX_PDU}, the rest default (SyncStorageArea true, DicomThreadsCount 4)`,
      tesseraStore: 'node dist/main.js store --aec STORESCP --timeout T --parallel N 127.0.0.1 PORT FILES',
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
            set: c.set,
            associations: c.associations,
            ms: round(s.ms, 1),
            instPerS: round(s.instPerS, 1),
            mibPerS: round(s.mibPerS, 1),
            roundsMs: s.runs.map((x) => (x.ok ? round(x.ms, 1) : null)),
            failedRuns: s.runs.length - s.good.length,
            received: s.runs.map((x) => x.received),
            ...(isTessera(c.scp) || c.scp === 'orthanc'
              ? { indexed: s.runs.map((x) => x.indexed ?? null) }
              : {}),
            serverPeakRssMiB: round(s.serverPeakRssMiB, 1),
            ...(isTessera(c.scp) ? { serverStartRssMiB: round(s.serverStartRssMiB, 1) } : {}),
            serverCpuS: round(s.serverCpuS, 2),
            scuCpuS: round(s.scuCpuS, 2),
            ...(c.scu === 'tessera' ? { scuSelfReportedS: round(s.scuSelfReportedS, 2) } : {}),
          },
        ];
      }),
    ),
    ratios: Object.fromEntries(
      cmps.map((cmp) => {
        const r = ratio(cmp.a, cmp.b);
        return [
          cmp.key,
          { what: cmp.what, a: cmp.a, b: cmp.b, ratio: round(r.ofMedians), perRound: r.perRound },
        ];
      }),
    ),
    targets,
    budgets,
    warmUps: warmUps.map((w) => ({
      config: w.config,
      ok: w.ok,
      sent: w.sent,
      ms: round(w.ms, 1),
      serverPeakRssMiB: round(w.serverPeakRssKiB === undefined ? undefined : w.serverPeakRssKiB / 1024, 1),
    })),
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
