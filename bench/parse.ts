/**
 * Parse benchmark: Tessera's Part 10 reader against dcmjs and dicom-parser, same files, same run.
 *
 *   npm run bench:parse -- [--files N] [--big-mb M] [--rounds R]
 *   npx tsx bench/parse.ts --files 300 --big-mb 500 --rounds 3      (the defaults)
 *
 * (a) N CT-like files (145 elements with meta and sequence items, 512x512x16-bit Pixel Data = 0.5 MiB,
 *     explicit VR LE), read into memory once, then parsed header-only (stop before Pixel Data) and
 *     fully, in process, after an untimed warm-up round; rounds interleaved and rotated. Every parser
 *     extracts the same 10 attributes (and, for a full parse, the last Pixel Data value) inside the timed
 *     loop, and the loop's digest is checked against the written values. Peak RSS: one child per case.
 * (b) one multi-frame file of M MiB (512x512x16-bit frames): every case runs in its own child process,
 *     one per round. Tessera reads it from a Buffer and from a stream (readPart10File); the peers from
 *     a Buffer (the only way they read).
 *
 * Memory: children report VmHWM (/proc/self/status), the peak RSS of their own address space, and
 * the peak of the parse phase alone (VmHWM reset through /proc/self/clear_refs). resourceUsage().maxRSS
 * is in the JSON too, but on Linux a child's maxRSS starts at its parent's RSS at fork time, so here
 * it mostly measures this parent. Children run under tsx (as the project does) and, when esbuild (a
 * tsx dependency) can bundle this script, under plain node too: tsx's loader alone costs ~40 MiB.
 *
 * Data is generated into os.tmpdir()/tessera-bench-parse and reused. MB here means MiB (2^20 bytes).
 * Progress goes to stderr; the human table and then the JSON summary go to stdout.
 */
import { spawn } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { DataSet as DicomParserDataSet } from 'dicom-parser';
import {
  Dataset,
  readPart10,
  readPart10File,
  type Dataset as TesseraDataset,
  writePart10,
} from '../src/codec/index.ts';
import { Tag } from '../src/dictionary/index.ts';
import { isoDate, mulberry32, uidIn } from './common.ts';

// ---------------------------------------------------------------------------------------------------
// Options

const MiB = 1024 * 1024;
const ROWS = 512;
const COLUMNS = 512;
const FRAME_BYTES = ROWS * COLUMNS * 2;
const SLICES_PER_SERIES = 50;
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const MF_GRAYSCALE_WORD_SC = '1.2.840.10008.5.1.4.1.1.7.3';
const PIXEL_DATA = 0x7fe00010;
/** Bump when the generated content changes, so stale data in the temp dir is not reused. */
const DATA_VERSION = 'v1';
const DATA_DIR = path.join(os.tmpdir(), 'tessera-bench-parse');
const SCRIPT = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SCRIPT), '..');
/** Minimum duration of one in-process measurement; passes over the N files repeat until reached. */
const MIN_MEASURE_MS = 400;
/** The stream-read peak RSS target on the big file, MiB. */
const STREAM_RSS_TARGET_MIB = 100;
const HEADER_SPEEDUP_TARGET = 5;

interface Args {
  files: number;
  bigMb: number;
  rounds: number;
  child: string | undefined;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { files: 300, bigMb: 500, rounds: 3, child: undefined };
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
    switch (flag) {
      case '--files':
        args.files = int(1, 100_000);
        break;
      case '--big-mb':
        args.bigMb = int(1, 4000);
        break;
      case '--rounds':
        args.rounds = int(1, 100);
        break;
      case '--child':
        args.child = value();
        break;
      case '--help':
      case '-h':
        console.log('usage: tsx bench/parse.ts [--files N=300] [--big-mb M=500] [--rounds R=3]');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return args;
}

function log(message: string): void {
  process.stderr.write(`[bench:parse] ${message}\n`);
}

/** A real gc() for settling the heap between measurements (outside the timed regions). */
const gc: () => void = (() => {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

// ---------------------------------------------------------------------------------------------------
// Test data

/** The attributes every parser extracts from every file (what the benchmark checks and times). */
interface Attrs {
  patientName: string;
  patientId: string;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  modality: string;
  rows: number;
  columns: number;
  instanceNumber: number;
  studyDate: string;
}

const FAMILY = [
  'SMITH',
  'MUELLER',
  'GARCIA',
  'ROSSI',
  'TANAKA',
  'NOWAK',
  'SILVA',
  'DUBOIS',
  'KOWALSKI',
  'BERG',
];
const GIVEN = ['ANNA', 'JOHN', 'MARIA', 'PETER', 'YUKI', 'LUCA', 'SOFIA', 'OMAR', 'EVA', 'LIAM', 'NORA'];

function uid(kind: string, n: number): string {
  return uidIn('tessera-bench-parse', kind, n);
}

/** The values written into CT file i (and so expected back from every parser). */
function expectedCt(i: number): Attrs {
  const study = Math.floor(i / SLICES_PER_SERIES);
  return {
    patientName: `${FAMILY[study % FAMILY.length]}^${GIVEN[(study * 7 + 3) % GIVEN.length]}`,
    patientId: `TB${String(1_000_003 + study * 7919).padStart(8, '0')}`,
    studyUid: uid('study', study),
    seriesUid: uid('series', study),
    sopUid: uid('sop', i),
    modality: 'CT',
    rows: ROWS,
    columns: COLUMNS,
    instanceNumber: (i % SLICES_PER_SERIES) + 1,
    studyDate: isoDate(new Date(Date.UTC(2019, 0, 2)), study * 3),
  };
}

function expectedBig(): Attrs {
  return { ...expectedCt(900_000), sopUid: uid('big-sop', 0), instanceNumber: 1 };
}

/** The last Pixel Data value of file i (the last pixel of the last frame), to prove Pixel Data was located. */
function pixelMarker(i: number): number {
  return (i * 7919 + 1234) & 0x0fff;
}

/**
 * A CT-like header (PS3.3 A.3 CT Image IOD modules plus what scanners add): patient, study, series,
 * frame of reference, equipment, image plane, image pixel, CT image, VOI LUT, SOP common, two sequences,
 * two private blocks. Everything but Pixel Data.
 */
function ctHeader(i: number, attrs: Attrs, frames: number | undefined): Dataset {
  const rnd = mulberry32(i + 1);
  const study = Math.floor(i / SLICES_PER_SERIES);
  const slice = i % SLICES_PER_SERIES;
  const z = -120 + slice * 2.5;
  const time = (h: number): string => {
    const s = Math.floor(h * 3600 + slice * 0.7);
    const hh = String(Math.floor(s / 3600) % 24).padStart(2, '0');
    const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    return `${hh}${mm}${ss}.${String(Math.floor(rnd() * 1e6)).padStart(6, '0')}`;
  };
  const studyTime = 8 + (study % 9) + 0.25;
  const ds = new Dataset();
  const v = (tag: number, ...values: (string | number)[]): void => ds.setValues(tag, values);
  v(Tag.SpecificCharacterSet, 'ISO_IR 100');
  v(Tag.ImageType, 'ORIGINAL', 'PRIMARY', 'AXIAL');
  v(Tag.InstanceCreationDate, attrs.studyDate);
  v(Tag.InstanceCreationTime, time(studyTime + 0.1));
  v(Tag.SOPClassUID, frames === undefined ? CT_IMAGE_STORAGE : MF_GRAYSCALE_WORD_SC);
  v(Tag.SOPInstanceUID, attrs.sopUid);
  v(Tag.StudyDate, attrs.studyDate);
  v(Tag.SeriesDate, attrs.studyDate);
  v(Tag.AcquisitionDate, attrs.studyDate);
  v(Tag.ContentDate, attrs.studyDate);
  v(Tag.AcquisitionDateTime, `${attrs.studyDate}${time(studyTime + 0.05)}`);
  v(Tag.StudyTime, time(studyTime));
  v(Tag.SeriesTime, time(studyTime + 0.02));
  v(Tag.AcquisitionTime, time(studyTime + 0.05));
  v(Tag.ContentTime, time(studyTime + 0.1));
  v(Tag.AccessionNumber, `ACC${String(400_000 + study * 13).padStart(9, '0')}`);
  v(Tag.Modality, attrs.modality);
  v(Tag.Manufacturer, 'TESSERA MEDICAL SYSTEMS');
  v(Tag.InstitutionName, 'Saint Example General Hospital');
  v(Tag.InstitutionAddress, `${100 + (study % 50)} Example Street\\Springfield`);
  v(Tag.ReferringPhysicianName, `${FAMILY[(study + 3) % FAMILY.length]}^${GIVEN[study % GIVEN.length]}^^DR`);
  v(Tag.StationName, `CT${(study % 4) + 1}-SCANNER`);
  v(Tag.StudyDescription, 'CT CHEST ABDOMEN PELVIS WITH CONTRAST');
  v(Tag.SeriesDescription, `AXIAL 2.5mm SOFT TISSUE ${study}`);
  v(Tag.InstitutionalDepartmentName, 'RADIOLOGY');
  v(
    Tag.PerformingPhysicianName,
    `${FAMILY[(study + 5) % FAMILY.length]}^${GIVEN[(study + 2) % GIVEN.length]}`,
  );
  v(Tag.OperatorsName, `${FAMILY[(study + 7) % FAMILY.length]}^${GIVEN[(study + 4) % GIVEN.length]}`);
  v(Tag.ManufacturerModelName, 'Tessera CT 128');
  const procedure = new Dataset();
  procedure.setValues(Tag.CodeValue, ['CTCAPW']);
  procedure.setValues(Tag.CodingSchemeDesignator, ['99TESSERA']);
  procedure.setValues(Tag.CodeMeaning, ['CT Chest Abdomen Pelvis with contrast']);
  ds.setSequence(Tag.ProcedureCodeSequence, [procedure], true);
  const refs = [-1, 1].map((d) => {
    const item = new Dataset();
    item.setValues(Tag.ReferencedSOPClassUID, [CT_IMAGE_STORAGE]);
    item.setValues(Tag.ReferencedSOPInstanceUID, [uid('sop', Math.max(0, i + d))]);
    return item;
  });
  ds.setSequence(Tag.ReferencedImageSequence, refs, false);
  v(Tag.DerivationDescription, 'Reconstructed from raw projections');
  // Private block 1 (a creator and its elements, as scanners write them).
  ds.setValues(0x00090010, ['TESSERA BENCH 1.0'], 'LO');
  ds.setValues(0x00091001, ['RECON-A'], 'LO');
  ds.setValues(0x00091002, [1.25, 0.75, 3], 'DS');
  ds.setValues(0x00091003, [Math.floor(rnd() * 1e9)], 'UL');
  ds.setBytes(0x00091004, 'OB', Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256))));
  ds.setValues(0x00091005, ['HELICAL'], 'SH');
  ds.setValues(0x00091006, [rnd(), rnd(), rnd(), rnd()], 'FD');
  v(Tag.PatientName, attrs.patientName);
  v(Tag.PatientID, attrs.patientId);
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
  v(Tag.StudyInstanceUID, attrs.studyUid);
  v(Tag.SeriesInstanceUID, attrs.seriesUid);
  v(Tag.StudyID, String(study + 1));
  v(Tag.SeriesNumber, 3);
  v(Tag.AcquisitionNumber, 1);
  v(Tag.InstanceNumber, attrs.instanceNumber);
  v(Tag.ImagePositionPatient, -190, -350, z);
  v(Tag.ImageOrientationPatient, 1, 0, 0, 0, 1, 0);
  v(Tag.FrameOfReferenceUID, uid('frame-of-reference', study));
  v(Tag.PositionReferenceIndicator, 'SN');
  v(Tag.SliceLocation, z);
  v(Tag.ImagesInAcquisition, SLICES_PER_SERIES);
  v(Tag.SamplesPerPixel, 1);
  v(Tag.PhotometricInterpretation, 'MONOCHROME2');
  if (frames !== undefined) {
    v(Tag.NumberOfFrames, frames);
    ds.setValues(Tag.FrameIncrementPointer, [Tag.FrameTime], 'AT');
    v(Tag.FrameTime, 50);
  }
  v(Tag.Rows, attrs.rows);
  v(Tag.Columns, attrs.columns);
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
  const request = new Dataset();
  request.setValues(Tag.RequestedProcedureID, [`RP${study}`]);
  request.setValues(Tag.ScheduledProcedureStepID, [`SPS${study}`]);
  request.setValues(Tag.RequestedProcedureDescription, ['CT CAP W']);
  ds.setSequence(Tag.RequestAttributesSequence, [request], true);
  v(Tag.PerformedProcedureStepStartDate, attrs.studyDate);
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

/** The 12-byte explicit VR LE header of native Pixel Data: (7FE0,0010) OW, 2 reserved bytes, length. */
function pixelDataHeader(length: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16LE(0x7fe0, 0);
  h.writeUInt16LE(0x0010, 2);
  h.write('OW', 4, 'latin1');
  h.writeUInt32LE(length, 8);
  return h;
}

interface CtSet {
  readonly paths: string[];
  /** Header (File Meta and data set before Pixel Data) size and element count of file 0. */
  readonly headerBytes: number;
  readonly elements: { readonly topLevel: number; readonly total: number };
}

function countElements(ds: TesseraDataset): number {
  let n = 0;
  for (const el of ds) {
    n++;
    if (el.kind === 'sequence') for (const item of el.items) n += countElements(item);
  }
  return n;
}

function ctPath(i: number): string {
  return path.join(DATA_DIR, `ct-${DATA_VERSION}`, `ct-${String(i).padStart(5, '0')}.dcm`);
}

function ensureCtFiles(n: number): CtSet {
  mkdirSync(path.dirname(ctPath(0)), { recursive: true });
  let base: Buffer | undefined;
  let made = 0;
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = ctPath(i);
    paths.push(p);
    if (existsSync(p)) continue;
    base ??= baseSlice();
    const attrs = expectedCt(i);
    const ds = ctHeader(i, attrs, undefined);
    const px = Buffer.from(base);
    px.writeUInt16LE((i * 31) & 0x0fff, 0);
    px.writeUInt16LE(pixelMarker(i), FRAME_BYTES - 2);
    ds.setBytes(Tag.PixelData, 'OW', px);
    const tmp = `${p}.partial`;
    writeFileSync(tmp, writePart10({ dataset: ds }, EXPLICIT_VR_LE));
    renameSync(tmp, p);
    made++;
  }
  if (made) log(`generated ${made} CT files in ${path.dirname(ctPath(0))}`);
  const head = readPart10(readFileSync(paths[0]!), { stopBeforeTag: PIXEL_DATA });
  const headerBytes = statSync(paths[0]!).size - FRAME_BYTES - 12;
  return {
    paths,
    headerBytes,
    elements: { topLevel: head.dataset.size, total: countElements(head.dataset) + head.meta.size },
  };
}

function bigPath(mb: number): string {
  return path.join(DATA_DIR, `big-${mb}mb-${DATA_VERSION}.dcm`);
}

function bigFrames(mb: number): number {
  return Math.max(1, Math.round((mb * MiB) / FRAME_BYTES));
}

/** Writes the multi-frame file by streaming frames to disk (never the whole file in memory). */
async function ensureBigFile(mb: number): Promise<{ path: string; bytes: number; frames: number }> {
  const p = bigPath(mb);
  const frames = bigFrames(mb);
  const attrs = expectedBig();
  const head = writePart10({ dataset: ctHeader(900_000, attrs, frames) }, EXPLICIT_VR_LE);
  const pixelLength = frames * FRAME_BYTES;
  const bytes = head.length + 12 + pixelLength;
  if (existsSync(p) && statSync(p).size === bytes) return { path: p, bytes, frames };
  log(`generating ${p} (${frames} frames, ${(bytes / MiB).toFixed(1)} MiB)`);
  mkdirSync(DATA_DIR, { recursive: true });
  const tmp = `${p}.partial`;
  const out = createWriteStream(tmp);
  const write = (b: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      if (out.write(b)) resolve();
      else {
        out.once('drain', resolve);
        out.once('error', reject);
      }
    });
  await write(head);
  await write(pixelDataHeader(pixelLength));
  const slice = baseSlice();
  const perChunk = 8;
  for (let f = 0; f < frames; f += perChunk) {
    const count = Math.min(perChunk, frames - f);
    const chunk = Buffer.allocUnsafe(count * FRAME_BYTES);
    for (let k = 0; k < count; k++) {
      slice.copy(chunk, k * FRAME_BYTES);
      chunk.writeUInt16LE((f + k) & 0x0fff, k * FRAME_BYTES);
    }
    if (f + count === frames) chunk.writeUInt16LE(pixelMarker(900_000), chunk.length - 2);
    await write(chunk);
  }
  await new Promise<void>((resolve, reject) =>
    out.end((err?: Error | null) => (err ? reject(err) : resolve())),
  );
  renameSync(tmp, p);
  if (statSync(p).size !== bytes) throw new Error(`${p}: wrote ${statSync(p).size} bytes, expected ${bytes}`);
  return { path: p, bytes, frames };
}

// ---------------------------------------------------------------------------------------------------
// Parsers: each parses and extracts the same attributes (and for a full parse the last pixel value).

type ParserName = 'tessera' | 'dcmjs' | 'dicomParser';
type Mode = 'header' | 'full';
const PARSERS: readonly ParserName[] = ['tessera', 'dcmjs', 'dicomParser'];
const MODES: readonly Mode[] = ['header', 'full'];

interface Extract {
  readonly attrs: Attrs;
  /** Last 16-bit Pixel Data value for a full parse, -1 for header-only. */
  readonly lastPixel: number;
}

/** One file in the shapes each parser takes, all views of the same memory. */
interface Input {
  readonly buf: Buffer;
  readonly u8: Uint8Array;
  readonly ab: ArrayBuffer;
}

function toInput(bytes: Buffer): Input {
  let buf = bytes;
  if (buf.byteOffset !== 0 || buf.buffer.byteLength !== buf.length || !(buf.buffer instanceof ArrayBuffer)) {
    const own = new ArrayBuffer(buf.length);
    new Uint8Array(own).set(buf);
    buf = Buffer.from(own);
  }
  const ab = buf.buffer as ArrayBuffer;
  return { buf, u8: new Uint8Array(ab, 0, buf.length), ab };
}

function tesseraAttrs(ds: TesseraDataset): Attrs {
  return {
    patientName: ds.string(Tag.PatientName) ?? '',
    patientId: ds.string(Tag.PatientID) ?? '',
    studyUid: ds.string(Tag.StudyInstanceUID) ?? '',
    seriesUid: ds.string(Tag.SeriesInstanceUID) ?? '',
    sopUid: ds.string(Tag.SOPInstanceUID) ?? '',
    modality: ds.string(Tag.Modality) ?? '',
    rows: ds.number(Tag.Rows) ?? -1,
    columns: ds.number(Tag.Columns) ?? -1,
    instanceNumber: ds.number(Tag.InstanceNumber) ?? -1,
    studyDate: ds.string(Tag.StudyDate) ?? '',
  };
}

function tessera(input: Input, mode: Mode): Extract {
  const { dataset } = readPart10(input.buf, mode === 'header' ? { stopBeforeTag: PIXEL_DATA } : {});
  let lastPixel = -1;
  if (mode === 'full') {
    const px = dataset.get(PIXEL_DATA);
    if (px?.kind !== 'value') throw new Error(`tessera: Pixel Data is ${px?.kind ?? 'missing'}`);
    lastPixel = px.bytes.readUInt16LE(px.bytes.length - 2);
  }
  return { attrs: tesseraAttrs(dataset), lastPixel };
}

interface DcmjsElement {
  readonly vr?: string;
  readonly Value?: unknown;
}
interface DcmjsReadOptions {
  readonly ignoreErrors: boolean;
  readonly untilTag: string | null;
  readonly includeUntilTagValue: boolean;
  readonly noCopy: boolean;
  readonly forceStoreRaw: boolean;
}
interface DcmjsModule {
  readonly data: {
    readonly DicomMessage: {
      readFile(
        buffer: ArrayBuffer,
        options?: DcmjsReadOptions,
      ): { readonly dict: Record<string, DcmjsElement | undefined> };
    };
  };
  readonly log: { setLevel(level: string): void };
}
type DicomParserModule = typeof import('dicom-parser');

/**
 * Peers are resolved from the repository (TESSERA_BENCH_ROOT is set for children, which may run from a
 * bundle in the temp dir); the name is not `require`, so a bundler leaves these calls alone.
 */
const requirePeer = createRequire(
  process.env.TESSERA_BENCH_ROOT
    ? path.join(process.env.TESSERA_BENCH_ROOT, 'package.json')
    : import.meta.url,
);
let dcmjsModule: DcmjsModule | undefined;
let dicomParserModule: DicomParserModule | undefined;

/** Peers are loaded on first use, so a child process measuring Tessera does not carry them in its RSS. */
function dcmjsLib(): DcmjsModule {
  if (!dcmjsModule) {
    dcmjsModule = requirePeer('dcmjs') as DcmjsModule;
    dcmjsModule.log.setLevel('error');
  }
  return dcmjsModule;
}

function dicomParserLib(): DicomParserModule {
  dicomParserModule ??= requirePeer('dicom-parser') as DicomParserModule;
  return dicomParserModule;
}

/** dcmjs 0.51 readFile options: `untilTag` (clean hex) and `includeUntilTagValue` exist; the rest are its defaults. */
const DCMJS_HEADER: DcmjsReadOptions = {
  ignoreErrors: false,
  untilTag: '7FE00010',
  includeUntilTagValue: false,
  noCopy: false,
  forceStoreRaw: false,
};

function dcmjsFirst(dict: Record<string, DcmjsElement | undefined>, tag: string): unknown {
  const value = dict[tag]?.Value;
  return Array.isArray(value) ? value[0] : undefined;
}

function dcmjsString(dict: Record<string, DcmjsElement | undefined>, tag: string): string {
  const v = dcmjsFirst(dict, tag);
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && 'Alphabetic' in v)
    return String((v as { Alphabetic: unknown }).Alphabetic);
  return v === undefined || v === null ? '' : String(v);
}

function dcmjsNumber(dict: Record<string, DcmjsElement | undefined>, tag: string): number {
  const v = dcmjsFirst(dict, tag);
  return v === undefined || v === null ? -1 : Number(v);
}

function dcmjs(input: Input, mode: Mode): Extract {
  const { DicomMessage } = dcmjsLib().data;
  const { dict } =
    mode === 'header' ? DicomMessage.readFile(input.ab, DCMJS_HEADER) : DicomMessage.readFile(input.ab);
  let lastPixel = -1;
  if (mode === 'full') {
    const frame = dcmjsFirst(dict, '7FE00010');
    if (!(frame instanceof ArrayBuffer)) throw new Error('dcmjs: Pixel Data is not an ArrayBuffer');
    lastPixel = new DataView(frame).getUint16(frame.byteLength - 2, true);
  }
  const attrs: Attrs = {
    patientName: dcmjsString(dict, '00100010'),
    patientId: dcmjsString(dict, '00100020'),
    studyUid: dcmjsString(dict, '0020000D'),
    seriesUid: dcmjsString(dict, '0020000E'),
    sopUid: dcmjsString(dict, '00080018'),
    modality: dcmjsString(dict, '00080060'),
    rows: dcmjsNumber(dict, '00280010'),
    columns: dcmjsNumber(dict, '00280011'),
    instanceNumber: dcmjsNumber(dict, '00200013'),
    studyDate: dcmjsString(dict, '00080020'),
  };
  return { attrs, lastPixel };
}

function dicomParser(input: Input, mode: Mode): Extract {
  const ds: DicomParserDataSet = dicomParserLib().parseDicom(
    input.u8,
    mode === 'header' ? { untilTag: 'x7fe00010' } : undefined,
  );
  let lastPixel = -1;
  if (mode === 'full') {
    const px = ds.elements.x7fe00010;
    if (!px) throw new Error('dicom-parser: no Pixel Data element');
    const at = px.dataOffset + px.length - 2;
    lastPixel = ds.byteArray[at]! | (ds.byteArray[at + 1]! << 8);
  }
  const attrs: Attrs = {
    patientName: ds.string('x00100010') ?? '',
    patientId: ds.string('x00100020') ?? '',
    studyUid: ds.string('x0020000d') ?? '',
    seriesUid: ds.string('x0020000e') ?? '',
    sopUid: ds.string('x00080018') ?? '',
    modality: ds.string('x00080060') ?? '',
    rows: ds.uint16('x00280010') ?? -1,
    columns: ds.uint16('x00280011') ?? -1,
    instanceNumber: ds.intString('x00200013') ?? -1,
    studyDate: ds.string('x00080020') ?? '',
  };
  return { attrs, lastPixel };
}

const PARSE: Readonly<Record<ParserName, (input: Input, mode: Mode) => Extract>> = {
  tessera,
  dcmjs,
  dicomParser,
};

/** Folds an extract into a number, so the timed loop's results are used and can be checked. */
function digest(e: Extract): number {
  const a = e.attrs;
  let h = a.rows + a.columns * 3 + a.instanceNumber * 7 + e.lastPixel * 11;
  for (const s of [a.patientName, a.patientId, a.studyUid, a.seriesUid, a.sopUid, a.modality, a.studyDate]) {
    h = (h * 31 + s.length * 17 + s.charCodeAt(s.length - 1)) % 1_000_000_007;
  }
  return h;
}

function checkExtract(who: string, got: Extract, attrs: Attrs, lastPixel: number): void {
  const want = { attrs, lastPixel };
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(
      `${who}: parsed values differ from what was written (stale data? rm -rf ${DATA_DIR})\n` +
        `  got  ${JSON.stringify(got)}\n  want ${JSON.stringify(want)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Statistics and child processes

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

interface ChildResult {
  readonly case: string;
  /** Median time of one parse (ms); for `*:load`, the readFile time. */
  readonly ms: number;
  readonly bytes: number;
  readonly iterations: number;
  /**
   * Peak RSS of this process over its life, KiB: VmHWM of /proc/self/status, which belongs to the
   * process's own address space. (resourceUsage().maxRSS is below: on Linux it starts at the parent's
   * RSS at fork time, so for a child of this benchmark it reports at least the parent's size.)
   */
  readonly peakRssKiB: number;
  /** Peak RSS while parsing (VmHWM reset just before), KiB. */
  readonly parsePeakRssKiB: number;
  /** RSS when parsing started (input loaded, after a gc), KiB. */
  readonly rssAtParseStartKiB: number;
  /** process.resourceUsage().maxRSS at the end, KiB (inflated by fork on Linux, see peakRssKiB). */
  readonly maxRssKiB: number;
  /** Where peakRssKiB came from: VmHWM, or maxRSS where /proc is unavailable. */
  readonly peakSource: 'VmHWM' | 'maxRSS';
  readonly loadMs: number | undefined;
}

/** How a child process runs this script: through the tsx loader, or as a plain-node bundle of it. */
type Runtime = 'tsx' | 'node';

function runChild(
  args: Args,
  name: string,
  runtime: Runtime,
  bundle: string | undefined,
): Promise<ChildResult> {
  const entry = runtime === 'tsx' ? ['--import', 'tsx', SCRIPT] : [bundle!];
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        ...entry,
        '--child',
        name,
        '--files',
        String(args.files),
        '--big-mb',
        String(args.bigMb),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TESSERA_BENCH_ROOT: ROOT } },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`child ${runtime} ${name} exited with ${code}: ${out}`));
        return;
      }
      resolve(JSON.parse(line) as ChildResult);
    });
  });
}

/**
 * This script bundled (with Tessera's sources and their dependencies) into one .mjs, so children can
 * also run under plain node: the tsx loader alone costs ~45 MiB of RSS (its hooks run in a worker
 * thread), which would otherwise be charged to every parser. Built with esbuild, which tsx depends on.
 */
async function buildBundle(): Promise<string | undefined> {
  try {
    const esbuild = await import('esbuild');
    const outfile = path.join(DATA_DIR, 'parse-bench.bundle.mjs');
    await esbuild.build({
      entryPoints: [SCRIPT],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['dcmjs', 'dicom-parser', 'esbuild'],
      banner: {
        js: "import { createRequire as __benchCreateRequire } from 'node:module';\nconst require = __benchCreateRequire(import.meta.url);",
      },
      logLevel: 'error',
    });
    return outfile;
  } catch (err) {
    log(`no plain-node runtime for the children (esbuild bundle failed): ${String(err)}`);
    return undefined;
  }
}

function procStatusKiB(field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the parse phase: gc, note the RSS and the peak so far, and reset the peak (Linux clear_refs 5). */
function startPhase(): { startKiB: number; peakBeforeKiB: number | undefined; reset: boolean } {
  gc();
  const peakBeforeKiB = procStatusKiB('VmHWM');
  let reset = false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    reset = true;
  } catch {
    // No way to reset the peak: the parse-phase peak is then the lifetime peak.
  }
  return {
    startKiB: procStatusKiB('VmRSS') ?? Math.round(process.memoryUsage().rss / 1024),
    peakBeforeKiB,
    reset,
  };
}

function endPhase(
  phase: ReturnType<typeof startPhase>,
): Pick<ChildResult, 'peakRssKiB' | 'parsePeakRssKiB' | 'rssAtParseStartKiB' | 'maxRssKiB' | 'peakSource'> {
  const hwm = procStatusKiB('VmHWM');
  const maxRssKiB = process.resourceUsage().maxRSS;
  if (hwm === undefined || phase.peakBeforeKiB === undefined) {
    return {
      peakRssKiB: maxRssKiB,
      parsePeakRssKiB: maxRssKiB,
      rssAtParseStartKiB: phase.startKiB,
      maxRssKiB,
      peakSource: 'maxRSS',
    };
  }
  return {
    peakRssKiB: Math.max(hwm, phase.peakBeforeKiB),
    parsePeakRssKiB: phase.reset ? hwm : Math.max(hwm, phase.peakBeforeKiB),
    rssAtParseStartKiB: phase.startKiB,
    maxRssKiB,
    peakSource: 'VmHWM',
  };
}

/** Times `fn` after warming it up: the median of up to `max` runs or `budgetMs`, whichever ends first. */
async function timeRepeated(
  fn: () => unknown | Promise<unknown>,
  max: number,
  budgetMs: number,
): Promise<number[]> {
  for (let i = 0; i < 3; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < max && (times.length < 5 || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}

/**
 * A child process case. `ct:<parser>:<mode>` parses each of the N files once (after loading them all);
 * `big:<parser>:<mode>` parses the big file, `big:tesseraStream:<mode>` streams it with readPart10File.
 * `*:load` only loads the input (the phase measured is the load), `big:none` does nothing (baseline).
 */
async function child(args: Args, name: string): Promise<void> {
  const [set, parser, mode] = name.split(':') as [string, string, Mode | undefined];
  const report = (
    phase: ReturnType<typeof startPhase>,
    r: Pick<ChildResult, 'ms' | 'bytes' | 'iterations' | 'loadMs'>,
  ): void => {
    const mem = endPhase(phase);
    process.stdout.write(`${JSON.stringify({ case: name, ...r, ...mem } satisfies ChildResult)}\n`);
  };
  if (set === 'ct') {
    const paths = Array.from({ length: args.files }, (_, i) => ctPath(i));
    const loadPhase = parser === 'load' ? startPhase() : undefined;
    const t0 = performance.now();
    const inputs = paths.map((p) => toInput(readFileSync(p)));
    const loadMs = performance.now() - t0;
    const bytes = inputs.reduce((n, x) => n + x.buf.length, 0);
    if (loadPhase) return report(loadPhase, { ms: loadMs, bytes, iterations: 1, loadMs });
    const parse = PARSE[parser as ParserName];
    if (!parse || !mode) throw new Error(`unknown case ${name}`);
    for (let i = 0; i < Math.min(20, inputs.length); i++) parse(inputs[i]!, mode);
    const phase = startPhase();
    let sum = 0;
    const p0 = performance.now();
    for (const input of inputs) sum += digest(parse(input, mode));
    const ms = performance.now() - p0;
    let want = 0;
    for (let i = 0; i < inputs.length; i++)
      want += digest({ attrs: expectedCt(i), lastPixel: mode === 'full' ? pixelMarker(i) : -1 });
    if (sum !== want) throw new Error(`${name}: digest ${sum} != ${want}`);
    return report(phase, { ms, bytes, iterations: 1, loadMs });
  }
  if (set !== 'big') throw new Error(`unknown case ${name}`);
  const file = bigPath(args.bigMb);
  const bytes = statSync(file).size;
  const attrs = expectedBig();
  const marker = pixelMarker(900_000);
  if (parser === 'none') {
    return report(startPhase(), { ms: 0, bytes, iterations: 0, loadMs: undefined });
  }
  if (parser === 'tesseraStream') {
    if (!mode) throw new Error(`unknown case ${name}`);
    const read = () => readPart10File(file, mode === 'header' ? { stopBeforeTag: PIXEL_DATA } : {});
    // Warm up on header-only reads (only the first 256 KiB chunk of the file).
    for (let i = 0; i < 3; i++) await readPart10File(file, { stopBeforeTag: PIXEL_DATA });
    const phase = startPhase();
    let times: number[];
    let last: Awaited<ReturnType<typeof read>> | undefined;
    if (mode === 'header') {
      times = await timeRepeated(
        async () => {
          last = await read();
        },
        200,
        1000,
      );
    } else {
      const t0 = performance.now();
      last = await read();
      times = [performance.now() - t0];
    }
    const mem = endPhase(phase);
    const ds = last!.dataset;
    let lastPixel = -1;
    if (mode === 'full') {
      const px = ds.get(PIXEL_DATA);
      if (px?.kind !== 'bulk')
        throw new Error(`tesseraStream: Pixel Data is ${px?.kind ?? 'missing'}, not bulk`);
      if (px.bulk.offset + px.bulk.length !== bytes)
        throw new Error('tesseraStream: Pixel Data reference is off');
      const fh = await open(file, 'r');
      const b = Buffer.alloc(2);
      await fh.read(b, 0, 2, px.bulk.offset + px.bulk.length - 2);
      await fh.close();
      lastPixel = b.readUInt16LE(0);
    }
    checkExtract(name, { attrs: tesseraAttrs(ds), lastPixel }, attrs, mode === 'full' ? marker : -1);
    const result: ChildResult = {
      case: name,
      ms: median(times),
      bytes,
      iterations: times.length,
      loadMs: undefined,
      ...mem,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const loadPhase = parser === 'load' ? startPhase() : undefined;
  const t0 = performance.now();
  const input = toInput(readFileSync(file));
  const loadMs = performance.now() - t0;
  if (loadPhase) return report(loadPhase, { ms: loadMs, bytes, iterations: 1, loadMs });
  const parse = PARSE[parser as ParserName];
  if (!parse || !mode) throw new Error(`unknown case ${name}`);
  // Warm up on header-only parses of the same buffer (cheap for every parser; no big allocation).
  for (let i = 0; i < 3; i++) parse(input, 'header');
  const phase = startPhase();
  let times: number[];
  let last: Extract | undefined;
  if (mode === 'header') {
    times = await timeRepeated(
      () => {
        last = parse(input, mode);
      },
      200,
      1000,
    );
  } else {
    const p0 = performance.now();
    last = parse(input, mode);
    times = [performance.now() - p0];
  }
  const mem = endPhase(phase);
  checkExtract(name, last!, attrs, mode === 'full' ? marker : -1);
  const result: ChildResult = {
    case: name,
    ms: median(times),
    bytes,
    iterations: times.length,
    loadMs,
    ...mem,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------------------------------------------
// The in-process comparison on the CT files

interface Measure {
  /** Milliseconds per pass over the N files, one per round. */
  readonly msPerPass: number[];
}

function measurePasses(
  parse: (input: Input, mode: Mode) => Extract,
  inputs: readonly Input[],
  mode: Mode,
  want: number,
): number {
  let passes = 0;
  const t0 = performance.now();
  let elapsed = 0;
  do {
    let sum = 0;
    for (let i = 0; i < inputs.length; i++) sum += digest(parse(inputs[i]!, mode));
    passes++;
    elapsed = performance.now() - t0;
    if (sum !== want) throw new Error(`digest mismatch: ${sum} != ${want}`);
  } while (elapsed < MIN_MEASURE_MS);
  return elapsed / passes;
}

function compareCt(ct: CtSet, rounds: number): Record<Mode, Record<ParserName, Measure>> {
  const t0 = performance.now();
  const inputs = ct.paths.map((p) => toInput(readFileSync(p)));
  log(`loaded ${inputs.length} CT files into memory (${(performance.now() - t0).toFixed(0)} ms)`);
  const want: Record<Mode, number> = { header: 0, full: 0 };
  // Verify every parser on every file (this is also the JIT warm-up).
  for (let i = 0; i < inputs.length; i++) {
    const attrs = expectedCt(i);
    for (const mode of MODES) {
      const lastPixel = mode === 'full' ? pixelMarker(i) : -1;
      want[mode] += digest({ attrs, lastPixel });
      for (const p of PARSERS)
        checkExtract(`${p} ${mode} ${ct.paths[i]}`, PARSE[p](inputs[i]!, mode), attrs, lastPixel);
    }
  }
  log('all parsers return the written values for every file');
  const out = {} as Record<Mode, Record<ParserName, Measure>>;
  for (const mode of MODES) {
    out[mode] = { tessera: { msPerPass: [] }, dcmjs: { msPerPass: [] }, dicomParser: { msPerPass: [] } };
  }
  const cases = MODES.flatMap((mode) => PARSERS.map((parser) => ({ mode, parser })));
  // One untimed round first: a pass over N files is not enough for the JIT to settle (the first
  // measured case came out up to 4x slow without it).
  for (const { mode, parser } of cases) measurePasses(PARSE[parser], inputs, mode, want[mode]);
  for (let r = 0; r < rounds; r++) {
    // Rotate the order every round, so no parser always runs right after the same other one.
    const order = cases.map((_, k) => cases[(k + r * PARSERS.length + r) % cases.length]!);
    for (const { mode, parser } of order) {
      gc();
      const ms = measurePasses(PARSE[parser], inputs, mode, want[mode]);
      out[mode][parser].msPerPass.push(ms);
    }
    log(
      `round ${r + 1}/${rounds}: ${MODES.map(
        (m) => `${m} ${PARSERS.map((p) => `${p} ${out[m][p].msPerPass.at(-1)!.toFixed(1)}ms`).join(', ')}`,
      ).join(' | ')}`,
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Main

const BIG_CASES = [
  'big:none',
  'big:load',
  'big:tesseraStream:header',
  'big:tesseraStream:full',
  ...MODES.flatMap((m) => PARSERS.map((p) => `big:${p}:${m}`)),
] as const;
const CT_RSS_CASES = ['ct:load', ...MODES.flatMap((m) => PARSERS.map((p) => `ct:${p}:${m}`))] as const;

function peerVersion(pkg: string): string {
  try {
    return (
      JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return 'unknown';
  }
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padEnd(n) : s.padStart(n);
}

const mbps = (bytes: number, ms: number): number =>
  ms > 0 ? bytes / MiB / (ms / 1000) : Number.POSITIVE_INFINITY;
const mib = (kib: number): number => kib / 1024;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return child(args, args.child);
  const started = performance.now();
  log(`data dir ${DATA_DIR}; files=${args.files} big-mb=${args.bigMb} rounds=${args.rounds}`);
  const ct = ensureCtFiles(args.files);
  const big = await ensureBigFile(args.bigMb);
  const ctBytes = ct.paths.reduce((n, p) => n + statSync(p).size, 0);
  const bundle = await buildBundle();
  const runtimes: Runtime[] = bundle ? ['tsx', 'node'] : ['tsx'];

  // (a) in-process throughput.
  const ctTimes = compareCt(ct, args.rounds);

  // (a) peak RSS, one child per case and runtime.
  const ctRss: Record<Runtime, Record<string, ChildResult>> = { tsx: {}, node: {} };
  for (const runtime of runtimes) {
    for (const name of CT_RSS_CASES) {
      const res = await runChild(args, name, runtime, bundle);
      ctRss[runtime][name] = res;
      log(`${runtime} ${name}: peak RSS ${mib(res.peakRssKiB).toFixed(1)} MiB`);
    }
  }

  // (b) the big file: one child per case, runtime and round; rounds interleaved.
  const bigRuns: Record<Runtime, Record<string, ChildResult[]>> = { tsx: {}, node: {} };
  for (let r = 0; r < args.rounds; r++) {
    for (const runtime of runtimes) {
      for (const name of BIG_CASES) {
        const res = await runChild(args, name, runtime, bundle);
        const runs = bigRuns[runtime][name] ?? [];
        runs.push(res);
        bigRuns[runtime][name] = runs;
        log(
          `round ${r + 1}/${args.rounds} ${runtime} ${name}: ${res.ms.toFixed(3)} ms, peak RSS ${mib(res.peakRssKiB).toFixed(1)} MiB ` +
            `(parse phase ${mib(res.rssAtParseStartKiB).toFixed(1)} -> ${mib(res.parsePeakRssKiB).toFixed(1)}; resourceUsage maxRSS ${mib(res.maxRssKiB).toFixed(1)})`,
        );
      }
    }
  }

  // (a) summary.
  const table: string[] = [];
  const ratio = (a: number, b: number): number => round(a / b, 2);
  const perRuntime = (f: (rt: Runtime) => number | undefined, digits = 1): Record<string, number | null> =>
    Object.fromEntries(
      runtimes.map((rt) => {
        const v = f(rt);
        return [rt, v === undefined ? null : round(v, digits)];
      }),
    );
  const cell = (f: (rt: Runtime) => number | undefined): string =>
    runtimes.map((rt) => f(rt)?.toFixed(0) ?? '-').join(' / ');
  const rt2 = runtimes.join('/');
  const growth = (r: ChildResult | undefined): number | undefined =>
    r ? mib(r.parsePeakRssKiB - r.rssAtParseStartKiB) : undefined;
  const ctSummary: Record<string, unknown> = {};
  const headerRatio = { dcmjs: 0, dicomParser: 0 };
  table.push(
    `(a) ${args.files} CT files of ${(ctBytes / args.files / MiB).toFixed(3)} MiB (header ${ct.headerBytes} B, ` +
      `${ct.elements.total} elements incl. meta and items), parsed from memory; median of ${args.rounds} rounds; ` +
      'peak RSS from one child per case holding all files',
  );
  table.push(
    `${pad('mode', 7, true)}${pad('parser', 12, true)}${pad('MiB/s', 9)}${pad('files/s', 9)}${pad('us/file', 9)}${pad('tessera/x', 11)}  ${pad(`peak RSS MiB ${rt2}`, 26, true)}parse-phase growth MiB`,
  );
  for (const mode of MODES) {
    const modeOut: Record<string, unknown> = {};
    const med = Object.fromEntries(PARSERS.map((p) => [p, median(ctTimes[mode][p].msPerPass)])) as Record<
      ParserName,
      number
    >;
    for (const p of PARSERS) {
      const ms = med[p];
      const rss = (rt: Runtime): ChildResult | undefined => ctRss[rt][`ct:${p}:${mode}`];
      const perRound = ctTimes[mode][p].msPerPass.map((x, r) =>
        round(x / ctTimes[mode].tessera.msPerPass[r]!, 2),
      );
      modeOut[p] = {
        msPerPass: round(ms, 3),
        roundsMs: ctTimes[mode][p].msPerPass.map((x) => round(x, 3)),
        mibPerS: round(mbps(ctBytes, ms), 1),
        filesPerS: round((args.files / ms) * 1000, 0),
        usPerFile: round((ms * 1000) / args.files, 1),
        ...(p === 'tessera'
          ? {}
          : { tesseraSpeedup: ratio(ms, med.tessera), tesseraSpeedupPerRound: perRound }),
        peakRssMiB: perRuntime((rt) => (rss(rt) ? mib(rss(rt)!.peakRssKiB) : undefined)),
        parsePhaseGrowthMiB: perRuntime((rt) => growth(rss(rt))),
        resourceUsageMaxRssMiB: perRuntime((rt) => (rss(rt) ? mib(rss(rt)!.maxRssKiB) : undefined)),
      };
      if (mode === 'header' && p !== 'tessera') headerRatio[p] = ratio(ms, med.tessera);
      table.push(
        `${pad(mode, 7, true)}${pad(p, 12, true)}${pad(mbps(ctBytes, ms).toFixed(0), 9)}${pad(((args.files / ms) * 1000).toFixed(0), 9)}${pad(((ms * 1000) / args.files).toFixed(1), 9)}${pad(p === 'tessera' ? '' : `${(ms / med.tessera).toFixed(2)}x`, 11)}  ${pad(
          cell((rt) => (rss(rt) ? mib(rss(rt)!.peakRssKiB) : undefined)),
          26,
          true,
        )}${cell((rt) => growth(rss(rt)))}`,
      );
    }
    ctSummary[mode] = modeOut;
  }
  const ctLoad = (rt: Runtime): ChildResult | undefined => ctRss[rt]['ct:load'];
  ctSummary.loadOnly = {
    peakRssMiB: perRuntime((rt) => (ctLoad(rt) ? mib(ctLoad(rt)!.peakRssKiB) : undefined)),
    loadGrowthMiB: perRuntime((rt) => growth(ctLoad(rt))),
  };
  table.push(
    `${pad('(load the files only, no parse)', 57, true)}  ${pad(
      cell((rt) => (ctLoad(rt) ? mib(ctLoad(rt)!.peakRssKiB) : undefined)),
      26,
      true,
    )}${cell((rt) => growth(ctLoad(rt)))}`,
  );

  // (b) summary: times from the tsx children (as the project runs), memory from both runtimes.
  const runsOf = (rt: Runtime, name: string): ChildResult[] => bigRuns[rt][name] ?? [];
  const msOf = (name: string): number => median(runsOf('tsx', name).map((r) => r.ms));
  const worst = (rt: Runtime, name: string, f: (r: ChildResult) => number): number | undefined => {
    const runs = runsOf(rt, name);
    return runs.length ? mib(Math.max(...runs.map(f))) : undefined;
  };
  const worstPeak = (rt: Runtime, name: string): number | undefined => worst(rt, name, (r) => r.peakRssKiB);
  const worstGrowth = (rt: Runtime, name: string): number | undefined =>
    worst(rt, name, (r) => r.parsePeakRssKiB - r.rssAtParseStartKiB);
  const bigSummary: Record<string, unknown> = {};
  table.push('');
  table.push(
    `(b) ${big.frames}-frame file of ${(big.bytes / MiB).toFixed(1)} MiB; one child process per case, runtime and round; ` +
      `median time of ${args.rounds} tsx runs; worst peak RSS (VmHWM) of ${args.rounds} runs`,
  );
  table.push(
    `${pad('case', 26, true)}${pad('ms', 11)}${pad('MiB/s', 10)}${pad('tessera/x', 11)}  ${pad(`peak RSS MiB ${rt2}`, 26, true)}parse-phase growth MiB`,
  );
  for (const name of BIG_CASES) {
    const [, parser, mode] = name.split(':') as [string, string, Mode | undefined];
    const isParse = mode !== undefined;
    const ms = msOf(name);
    const speedup =
      isParse && (parser === 'dcmjs' || parser === 'dicomParser')
        ? ratio(ms, msOf(`big:tessera:${mode}`))
        : undefined;
    bigSummary[name.slice(4)] = {
      ...(name === 'big:none'
        ? {}
        : { ms: round(ms, 4), roundsMs: runsOf('tsx', name).map((r) => round(r.ms, 4)) }),
      ...(isParse ? { mibPerS: round(mbps(big.bytes, ms), 1) } : {}),
      ...(speedup === undefined ? {} : { tesseraBufferSpeedup: speedup }),
      ...(bigRuns.node[name] ? { nodeRuntimeRoundsMs: runsOf('node', name).map((r) => round(r.ms, 4)) } : {}),
      peakRssMiB: perRuntime((rt) => worstPeak(rt, name)),
      parsePhaseGrowthMiB: perRuntime((rt) => worstGrowth(rt, name)),
      rssAtParseStartMiB: perRuntime((rt) => mib(median(runsOf(rt, name).map((r) => r.rssAtParseStartKiB)))),
      resourceUsageMaxRssMiB: perRuntime((rt) => worst(rt, name, (r) => r.maxRssKiB)),
      ...(runsOf('tsx', name)[0]?.loadMs === undefined
        ? {}
        : { readFileMs: round(median(runsOf('tsx', name).map((r) => r.loadMs ?? 0)), 1) }),
    };
    const label =
      name === 'big:none'
        ? 'baseline (idle process)'
        : name === 'big:load'
          ? 'readFileSync only'
          : name
              .replace('big:', '')
              .replace('tesseraStream', 'tessera stream')
              .replace(/^tessera:/, 'tessera buffer:');
    table.push(
      `${pad(label, 26, true)}${pad(name === 'big:none' ? '' : ms.toFixed(3), 11)}${pad(isParse ? mbps(big.bytes, ms).toFixed(0) : '', 10)}${pad(speedup === undefined ? '' : `${speedup.toFixed(2)}x`, 11)}  ${pad(
        cell((rt) => worstPeak(rt, name)),
        26,
        true,
      )}${cell((rt) => worstGrowth(rt, name))}`,
    );
  }

  const streamPeak = perRuntime((rt) => worstPeak(rt, 'big:tesseraStream:full'));
  const streamGrowth = perRuntime((rt) => worstGrowth(rt, 'big:tesseraStream:full'));
  const judged: Runtime = runtimes.includes('node') ? 'node' : 'tsx';
  const decisive = streamPeak[judged]!;
  const targets = {
    headerOnlyVsDcmjs: {
      target: `header-only throughput >= ${HEADER_SPEEDUP_TARGET}x dcmjs (CT files, same run)`,
      ratio: headerRatio.dcmjs,
      pass: headerRatio.dcmjs >= HEADER_SPEEDUP_TARGET,
    },
    streamPeakRss: {
      target: `peak RSS < ${STREAM_RSS_TARGET_MIB} MiB for a full readPart10File of the ${(big.bytes / MiB).toFixed(0)} MiB file (worst of ${args.rounds})`,
      peakRssMiB: streamPeak,
      parsePhaseGrowthMiB: streamGrowth,
      idleProcessPeakRssMiB: perRuntime((rt) => worstPeak(rt, 'big:none')),
      judgedOn: judged,
      pass: decisive < STREAM_RSS_TARGET_MIB,
    },
  };
  table.push('');
  table.push(
    `target header-only >= ${HEADER_SPEEDUP_TARGET}x dcmjs: ${headerRatio.dcmjs.toFixed(2)}x -> ${targets.headerOnlyVsDcmjs.pass ? 'PASS' : 'FAIL'}  (vs dicom-parser: ${headerRatio.dicomParser.toFixed(2)}x)`,
  );
  table.push(
    `target stream peak RSS < ${STREAM_RSS_TARGET_MIB} MiB: ${runtimes.map((rt) => `${rt} ${streamPeak[rt]} MiB`).join(', ')} ` +
      `(reading adds ${runtimes.map((rt) => `${streamGrowth[rt]}`).join(' / ')} MiB) -> ${targets.streamPeakRss.pass ? 'PASS' : 'FAIL'} (judged on ${judged})`,
  );

  const summary = {
    benchmark: 'tessera parse',
    units: {
      size: 'MiB = 2^20 bytes',
      throughput: 'MiB of Part 10 file per second (header-only too)',
      tesseraSpeedup: 'peer time / tessera time, i.e. tessera throughput / peer throughput',
    },
    env: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: `${os.cpus().length}x ${os.cpus()[0]?.model ?? '?'}`,
      dcmjs: peerVersion('dcmjs'),
      dicomParser: peerVersion('dicom-parser'),
      childRuntimes: runtimes,
    },
    params: {
      files: args.files,
      bigMb: args.bigMb,
      rounds: args.rounds,
      dataDir: DATA_DIR,
      ctFileBytes: Math.round(ctBytes / args.files),
      ctHeaderBytes: ct.headerBytes,
      ctElements: ct.elements,
      bigFileBytes: big.bytes,
      bigFrames: big.frames,
      minMeasureMs: MIN_MEASURE_MS,
    },
    ct: ctSummary,
    big: bigSummary,
    targets,
    elapsedS: round((performance.now() - started) / 1000, 1),
  };
  console.log(table.join('\n'));
  console.log();
  console.log(JSON.stringify(summary, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
