/**
 * Interoperability with DCMTK 3.6, the reference implementation (dcmdump, dcm2json, dcmconv on PATH):
 *   1. files Tessera writes, from a data set built in code (every common VR, ISO_IR 100 and ISO_IR 192
 *      text, nested sequences of both length kinds), in the four uncompressed syntaxes, are read by
 *      dcmdump without a warning and give the same DICOM JSON in dcm2json as in Tessera;
 *   2. files DCMTK converts (dcmconv +ti / +tb / +td) read in Tessera to the JSON of the original;
 *   3. files Tessera converts read in DCMTK to the dcm2json of the original.
 * These tests are never skipped: without DCMTK they fail, saying so.
 *
 * Differences between dcm2json and datasetToJson that are normalised, and why:
 *   - Specific Character Set: dcm2json converts all text to UTF-8 and so declares (0008,0005) ISO_IR 192;
 *     Tessera keeps the declared value (the text values themselves must be identical).
 *   - Numbers: dcm2json prints DS as stored and FL with 9 significant digits (29.97 -> 29.9699993),
 *     Tessera the shortest decimal that reads back as the same float: compared with a relative
 *     tolerance of 1e-6.
 *   - Pixel Data in Implicit VR Little Endian: the file carries no VR, and both DCMTK and Tessera take
 *     OW (PS3.5 §A.1) where the data set had OB for 8-bit pixels. The bytes (InlineBinary) are the same.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tag } from '../dictionary/index.ts';
import {
  Dataset,
  datasetToJson,
  type JsonDataset,
  readPart10,
  transferSyntax,
  writePart10,
} from './index.ts';

const corpus = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TIMEOUT = 20_000;

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
const SYNTAXES = [IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE];
/** How dcmdump names each syntax in its "# Used TransferSyntax:" line. */
const DCMTK_SYNTAX_NAME: Record<string, string> = {
  [IMPLICIT_LE]: 'Little Endian Implicit',
  [EXPLICIT_LE]: 'Little Endian Explicit',
  [EXPLICIT_BE]: 'Big Endian Explicit',
  [DEFLATED_LE]: 'Deflated Explicit VR Little Endian',
};

const DCMTK_REQUIRED =
  'DCMTK 3.6 (dcmdump, dcm2json, dcmconv) must be on PATH for these interop tests, which are never ' +
  'skipped; install it (Debian/Ubuntu: apt-get install dcmtk)';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a DCMTK tool; rejects with a clear message when it is not installed. */
function dcmtk(tool: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: TIMEOUT });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error(`${tool} not found. ${DCMTK_REQUIRED}`, { cause: e }) : e),
    );
    child.on('close', (code, signal) =>
      resolve({
        code: signal ? null : code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

function assertOk(r: Run, what: string): void {
  assert.equal(r.code, 0, `${what}: exit code ${r.code}\n${r.stderr}`);
  assert.equal(r.stderr, '', `${what}: warnings or errors on stderr`);
}

/**
 * dcmdump must read the file cleanly: `dcmdump -q +E` as asked, and also plain `dcmdump` at the default
 * log level, where DCMTK prints its warnings (odd lengths, bad VRs...) that -q would hide.
 */
async function assertDcmdumpAccepts(path: string, syntaxUid: string): Promise<void> {
  assertOk(await dcmtk('dcmdump', ['-q', '+E', path]), `dcmdump -q +E ${path}`);
  const plain = await dcmtk('dcmdump', [path]);
  assertOk(plain, `dcmdump ${path}`);
  assert.match(plain.stdout, new RegExp(`^# Used TransferSyntax: ${DCMTK_SYNTAX_NAME[syntaxUid]}$`, 'm'));
  assert.doesNotMatch(plain.stdout, /Unknown Tag & Data/, 'DCMTK does not know a tag of the data set');
}

async function dcm2json(path: string): Promise<JsonDataset> {
  const r = await dcmtk('dcm2json', [path]);
  assertOk(r, `dcm2json ${path}`);
  return JSON.parse(r.stdout) as JsonDataset;
}

/** Equal JSON, numbers within a relative tolerance of 1e-6 (see the header comment). */
function assertJsonEquivalent(actual: unknown, expected: unknown, path = ''): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    const scale = Math.max(Math.abs(expected), Math.abs(actual));
    assert.ok(Math.abs(expected - actual) <= 1e-6 * scale, `${path}: ${actual} != ${expected}`);
    return;
  }
  if (typeof expected !== 'object' || expected === null || typeof actual !== 'object' || actual === null) {
    assert.equal(actual, expected, path);
    return;
  }
  assert.equal(Array.isArray(actual), Array.isArray(expected), `${path}: array vs object`);
  const a = actual as Record<string, unknown>;
  const e = expected as Record<string, unknown>;
  assert.deepEqual(Object.keys(a).sort(), Object.keys(e).sort(), `${path}: keys`);
  for (const k of Object.keys(e)) assertJsonEquivalent(a[k], e[k], `${path}/${k}`);
}

/** Implicit VR has no VR for Pixel Data: OW is read where OB was written (same bytes). */
function allowImplicitPixelDataOW(json: JsonDataset, reference: JsonDataset, syntaxUid: string): void {
  const pixel = json['7FE00010'];
  if (syntaxUid === IMPLICIT_LE && pixel?.vr === 'OW' && reference['7FE00010']?.vr === 'OB') pixel.vr = 'OB';
}

/**
 * A data set covering the VRs (AE excepted), text in `charset`, and nested sequences: a defined-length
 * sequence of a defined-length and an undefined-length item, holding undefined-length sequences, an
 * empty item, and empty sequences of both kinds. 8-bit OB Pixel Data for ISO_IR 100, 16-bit OW for 192.
 */
function sample(charset: 'ISO_IR 100' | 'ISO_IR 192'): Dataset {
  const utf8 = charset === 'ISO_IR 192';
  const ds = new Dataset();
  ds.setValues(Tag.SpecificCharacterSet, [charset], 'CS');
  ds.setValues(Tag.ImageType, ['DERIVED', 'SECONDARY']);
  ds.setValues(Tag.SOPClassUID, ['1.2.840.10008.5.1.4.1.1.7']);
  ds.setValues(Tag.SOPInstanceUID, [utf8 ? '2.25.1234567890123456789' : '2.25.987654321']);
  ds.setValues(Tag.StudyDate, ['20240131']);
  ds.setValues(Tag.AcquisitionDateTime, ['20240131123456.123456+0100']);
  ds.setValues(Tag.StudyTime, ['123456.5']);
  ds.setValues(Tag.AccessionNumber, []);
  ds.setValues(Tag.Modality, ['OT']);
  ds.setValues(Tag.RetrieveURL, ['https://example.org/dicomweb/studies/1.2.3?include=a%20b'], 'UR');
  ds.setValues(Tag.SimpleFrameList, [1, 4294967295], 'UL');
  ds.setValues(Tag.RecommendedDisplayFrameRateInFloat, [29.97], 'FL');
  ds.setValues(Tag.StudyDescription, [utf8 ? 'Schädel – 頭部 – Голова' : 'Schädel/Crâne ½ µ']);
  ds.setValues(Tag.PatientName, [
    utf8
      ? { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }
      : { Alphabetic: 'Müller^Jürgen^^Dr.' },
  ]);
  ds.setValues(Tag.OtherPatientNames, [
    { Alphabetic: 'Doe^J' },
    { Alphabetic: utf8 ? 'Ωmega^Ζeta' : 'Ñuñez^José' },
  ]);
  ds.setValues(Tag.PatientAge, ['042Y']);
  ds.setValues(Tag.PatientComments, [
    utf8 ? 'Ligne 1 — «citation»\r\nЛиния 2' : 'Première ligne\r\nZweite Zeile: Grüße',
  ]);
  ds.setValues(Tag.SliceThickness, [1.25]);
  ds.setValues(Tag.SpacingBetweenSlices, [0.3333333333]);
  ds.setValues(Tag.DiffusionBValue, [1000.000001], 'FD');
  ds.setValues(Tag.TagAngleSecondAxis, [-32768], 'SS');
  ds.setValues(Tag.InstanceNumber, [-17]);
  ds.setValues(Tag.ImagePositionPatient, [-125.5, 0, 3e-5]);
  ds.setValues(Tag.FrameIncrementPointer, [Tag.FrameTime, Tag.SliceThickness], 'AT');
  ds.setValues(Tag.SamplesPerPixel, [1]);
  ds.setValues(Tag.PhotometricInterpretation, ['MONOCHROME2']);
  ds.setValues(Tag.Rows, [2]);
  ds.setValues(Tag.Columns, [3]);
  ds.setValues(Tag.PixelAspectRatio, [1, 1]);
  ds.setValues(Tag.BitsAllocated, [utf8 ? 16 : 8]);
  ds.setValues(Tag.BitsStored, [utf8 ? 12 : 8]);
  ds.setValues(Tag.HighBit, [utf8 ? 11 : 7]);
  ds.setValues(Tag.PixelRepresentation, [0]);
  ds.setBytes(Tag.RedPaletteColorLookupTableData, 'OW', Buffer.from([0x01, 0x02, 0x03, 0x04, 0xff, 0xee]));
  ds.setValues(Tag.DisplayedAreaTopLeftHandCorner, [-1, 2147483647], 'SL');
  ds.setValues(Tag.RealWorldValueIntercept, [-1024.5], 'FD');
  ds.setBytes(Tag.EncapsulatedDocument, 'OB', Buffer.from('%PDF-1.4\n\0'));
  ds.setValues(Tag.SelectorSVValue, [-5n, 2n ** 40n], 'SV');
  ds.setValues(Tag.SelectorUVValue, [7n], 'UV');
  ds.setBytes(Tag.PointCoordinatesData, 'OF', Buffer.from(new Float32Array([1.5, -2.25]).buffer));
  ds.setBytes(Tag.DoublePointCoordinatesData, 'OD', Buffer.from(new Float64Array([Math.PI]).buffer));
  ds.setBytes(Tag.LongPrimitivePointIndexList, 'OL', Buffer.from(new Uint32Array([1, 70000]).buffer));

  // Items are created with their parent, so that their text is encoded in the inherited character set.
  const code = (parent: Dataset, value: string, meaning: string): Dataset => {
    const c = new Dataset({ parent });
    c.setValues(Tag.CodeValue, [value]);
    c.setValues(Tag.CodingSchemeDesignator, ['DCM']);
    c.setValues(Tag.CodeMeaning, [meaning]);
    return c;
  };
  const content = new Dataset({ parent: ds });
  content.undefinedLength = false;
  content.setValues(Tag.RelationshipType, ['CONTAINS']);
  content.setValues(Tag.ValueType, ['TEXT']);
  content.setSequence(
    Tag.ConceptNameCodeSequence,
    [code(content, '121071', utf8 ? 'Befund ✓' : 'Befund')],
    true,
  );
  content.setValues(Tag.TextValue, [utf8 ? 'Befund: ∅ lésion\r\n' : 'Befund: keine Läsion'], 'UT');
  content.setValues(Tag.DimensionIndexPointer, [Tag.ImagePositionPatient], 'AT');
  const inner = new Dataset({ parent: content });
  inner.undefinedLength = true;
  const long = new Dataset({ parent: inner });
  long.setValues(Tag.LongCodeValue, ['a-code-longer-than-sixteen-characters'], 'UC');
  long.setValues(Tag.CodingSchemeDesignator, ['99TEST']);
  long.setValues(Tag.CodeMeaning, [utf8 ? 'Lésion ✓' : 'Läsion']);
  inner.setSequence(Tag.ConceptCodeSequence, [long], false);
  inner.setValues(Tag.ValueType, ['CODE']);
  const emptyItem = new Dataset({ parent: content });
  emptyItem.undefinedLength = false;
  content.setSequence(Tag.ContentSequence, [inner, emptyItem], true);
  const second = new Dataset({ parent: ds });
  second.undefinedLength = true;
  second.setValues(Tag.ReferencedSOPInstanceUID, ['1.2.3.4']);
  ds.setSequence(Tag.ContentSequence, [content, second], false);
  ds.setSequence(Tag.ReferencedSeriesSequence, [], false);
  ds.setSequence(Tag.SpecimenPreparationSequence, [], true);

  ds.setBytes(
    Tag.PixelData,
    utf8 ? 'OW' : 'OB',
    utf8
      ? Buffer.from(new Uint16Array([0, 1, 4095, 2048, 7, 300]).buffer)
      : Buffer.from([0, 1, 2, 3, 254, 255]),
  );
  return ds;
}

let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-dcmtk-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('DCMTK 3.6 is installed (dcmdump, dcm2json, dcmconv)', { timeout: TIMEOUT }, async () => {
  for (const tool of ['dcmdump', 'dcm2json', 'dcmconv']) {
    const r = await dcmtk(tool, ['--version']);
    assert.equal(r.code, 0, `${tool} --version failed. ${DCMTK_REQUIRED}`);
    assert.match(r.stdout, new RegExp(`\\$dcmtk: ${tool} v3\\.6\\.\\d+`), `${tool}: not DCMTK 3.6.x`);
  }
});

describe('Tessera writes, DCMTK reads', () => {
  for (const charset of ['ISO_IR 100', 'ISO_IR 192'] as const) {
    for (const uid of SYNTAXES) {
      test(`${charset} data set in ${transferSyntax(uid).name}: dcmdump and dcm2json agree`, {
        timeout: TIMEOUT,
      }, async () => {
        const ds = sample(charset);
        const path = join(dir, `written-${charset.replace(' ', '_')}-${uid}.dcm`);
        await writeFile(path, writePart10({ dataset: ds }, uid));
        await assertDcmdumpAccepts(path, uid);

        const theirs = await dcm2json(path);
        const ours = datasetToJson(ds);
        assert.deepEqual(theirs['00080005'], { vr: 'CS', Value: ['ISO_IR 192'] });
        theirs['00080005'] = ours['00080005']!;
        allowImplicitPixelDataOW(theirs, ours, uid);
        assertJsonEquivalent(theirs, ours);
      });
    }
  }

  // PS3.5 §7.1.1: every value length is even. A binary value of odd length given to setBytes ends up
  // padded with a NUL byte in the file (as DCMTK, pydicom and dcmjs pad OB), never with an odd length.
  for (const uid of SYNTAXES) {
    test(`an odd-length OB value is written with even length in ${transferSyntax(uid).name}`, {
      timeout: TIMEOUT,
    }, async () => {
      const ds = sample('ISO_IR 100');
      ds.setBytes(Tag.EncapsulatedDocument, 'OB', Buffer.from('%PDF-1.4\n'));
      const path = join(dir, `odd-${uid}.dcm`);
      await writeFile(path, writePart10({ dataset: ds }, uid));
      // DCMTK 3.6.7 says: "W: DcmItem: Length of element (0042,0011) is odd".
      await assertDcmdumpAccepts(path, uid);
      const back = readPart10(await readFile(path)).dataset.bytes(Tag.EncapsulatedDocument);
      assert.equal(back?.length, 10, 'written length of (0042,0011)');
    });
  }
});

/** The corpus files of the two conversion directions: a CT (ISO_IR 100), a deep SR, a UTF-8 RGB image. */
const FILES = [
  'transfer-syntax/ct1-explicit-vr-le.dcm',
  'sr/comprehensive-sr-dcmjs.dcm',
  'ms-tutorial/blue-circle.dcm',
];

describe('DCMTK converts (dcmconv), Tessera reads', () => {
  const conversions = [
    { option: '+ti', uid: IMPLICIT_LE },
    { option: '+tb', uid: EXPLICIT_BE },
    { option: '+td', uid: DEFLATED_LE },
  ];
  for (const file of FILES) {
    for (const { option, uid } of conversions) {
      test(`${file}: dcmconv ${option} -> readPart10 gives the original's JSON`, {
        timeout: TIMEOUT,
      }, async () => {
        const source = join(corpus, file);
        const original = readPart10(await readFile(source));
        const path = join(dir, `dcmconv${option}-${file.replaceAll('/', '_')}`);
        assertOk(await dcmtk('dcmconv', [option, source, path]), `dcmconv ${option} ${file}`);

        const converted = readPart10(await readFile(path));
        assert.equal(converted.declaredTransferSyntaxUid, uid);
        assert.equal(converted.transferSyntax.uid, uid);
        // dcmconv keeps Specific Character Set as declared (it does not convert text), as Tessera does.
        assert.equal(
          converted.dataset.string(Tag.SpecificCharacterSet),
          original.dataset.string(Tag.SpecificCharacterSet),
        );
        const expected = datasetToJson(original.dataset);
        const actual = datasetToJson(converted.dataset);
        allowImplicitPixelDataOW(actual, expected, uid);
        assert.deepEqual(actual, expected);
      });
    }
  }
});

describe('Tessera converts (writePart10), DCMTK reads', () => {
  const reference = new Map<string, Promise<JsonDataset>>();
  for (const file of FILES) {
    for (const uid of SYNTAXES) {
      test(`${file} written in ${transferSyntax(uid).name}: dcm2json as of the original`, {
        timeout: TIMEOUT,
      }, async () => {
        const source = join(corpus, file);
        if (!reference.has(file)) reference.set(file, dcm2json(source));
        const expected = await reference.get(file)!;

        const path = join(dir, `tessera-${uid}-${file.replaceAll('/', '_')}`);
        await writeFile(path, writePart10(readPart10(await readFile(source)), uid));
        await assertDcmdumpAccepts(path, uid);
        const actual = await dcm2json(path);
        allowImplicitPixelDataOW(actual, expected, uid);
        assert.deepEqual(actual, expected);
      });
    }
  }
});
