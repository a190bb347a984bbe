/**
 * Write -> read round trips in every uncompressed transfer syntax: generated data sets covering each
 * VR, nested sequences of both length kinds, character sets; property tests over random data sets;
 * lossless conversion implicit <-> explicit <-> big endian on a real CT.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { Tag } from '../dictionary/index.ts';
import { Dataset } from './dataset.ts';
import { datasetToJson } from './json.ts';
import { readPart10, readPart10Stream } from './part10.ts';
import {
  IMPLEMENTATION_CLASS_UID,
  IMPLEMENTATION_VERSION_NAME,
  part10Chunks,
  part10Header,
  writePart10,
} from './writer.ts';

const SYNTAXES = [
  '1.2.840.10008.1.2',
  '1.2.840.10008.1.2.1',
  '1.2.840.10008.1.2.2',
  '1.2.840.10008.1.2.1.99',
];

function sample(charset?: string): Dataset {
  const ds = new Dataset();
  if (charset) ds.setValues(Tag.SpecificCharacterSet, charset.split('\\'), 'CS');
  ds.setValues(Tag.ImageType, ['ORIGINAL', 'PRIMARY', 'AXIAL']);
  ds.setValues(Tag.SOPClassUID, ['1.2.840.10008.5.1.4.1.1.2']);
  ds.setValues(Tag.SOPInstanceUID, ['1.2.3.4.5.6.7']);
  ds.setValues(Tag.StudyDate, ['20240131']);
  ds.setValues(Tag.AcquisitionDateTime, ['20240131123456.123456+0100']);
  ds.setValues(Tag.StudyTime, ['123456.5']);
  ds.setValues(Tag.Modality, ['CT']);
  ds.setValues(Tag.PatientAge, ['042Y']);
  ds.setValues(Tag.SliceThickness, [1.25]);
  ds.setValues(Tag.ImagePositionPatient, [-125.5, 0, 3e-5]);
  ds.setValues(Tag.InstanceNumber, [17]);
  ds.setValues(Tag.Rows, [2]);
  ds.setValues(Tag.Columns, [2]);
  ds.setValues(Tag.BitsAllocated, [16]);
  ds.setValues(Tag.PixelRepresentation, [1]);
  ds.setValues(Tag.SmallestImagePixelValue, [-1024], 'SS');
  ds.setValues(Tag.FrameIncrementPointer, [Tag.FrameTime], 'AT');
  ds.setValues(Tag.ReferencedFrameNumber, [1, 2, 65536], 'IS');
  ds.setValues(Tag.RecommendedViewingMode, ['']);
  ds.setValues(Tag.SpacingBetweenSlices, [0.5]);
  ds.setValues(Tag.FrameTime, [33.3]);
  ds.setValues(Tag.SimpleFrameList, [1, 4294967295], 'UL');
  ds.setValues(Tag.RealWorldValueFirstValueMapped, [-7], 'SS');
  ds.setValues(Tag.ReferencePixelX0, [-5], 'SL');
  ds.setValues(Tag.ExposureIndex, [123.25], 'DS');
  ds.setValues(Tag.DiffusionBValue, [2.5], 'FD');
  ds.setValues(Tag.RecommendedDisplayFrameRateInFloat, [0.25], 'FL');
  ds.setValues(Tag.RetrieveURL, ['https://example.org/studies/1.2.3?a=b c'], 'UR');
  ds.setValues(Tag.TextValue, ['first line\r\nsecond \\ line'], 'UT');
  ds.setValues(Tag.StudyDescription, ['Head \\ neck']);
  ds.setValues(Tag.SelectorSVValue, [-(2n ** 62n), 5n], 'SV');
  ds.setValues(Tag.SelectorUVValue, [2n ** 63n + 1n], 'UV');
  ds.setValues(Tag.PatientName, [{ Alphabetic: 'Doe^Jane^^Dr', Ideographic: 'Doe^J', Phonetic: 'do^jeyn' }]);
  ds.setValues(Tag.OtherPatientNames, [{ Alphabetic: 'A^B' }, null, { Alphabetic: 'C' }]);
  ds.setBytes(Tag.PixelData, 'OW', Buffer.from([1, 0, 2, 0, 0xff, 0xff, 4, 0]));
  ds.setBytes(Tag.EncapsulatedDocument, 'OB', Buffer.from([1, 2, 3, 4]));
  ds.setBytes(Tag.FloatPixelData, 'OF', Buffer.from(new Float32Array([1.5, -2]).buffer));
  ds.setBytes(Tag.DoubleFloatPixelData, 'OD', Buffer.from(new Float64Array([1e300]).buffer));
  ds.setBytes(0x00091001, 'UN', Buffer.from('private'));
  const inner = new Dataset();
  inner.setValues(Tag.CodeValue, ['T-A0100']);
  inner.setValues(Tag.CodeMeaning, ['Brain']);
  const deep = new Dataset();
  deep.setValues(Tag.CodeValue, ['X']);
  inner.setSequence(Tag.ConceptNameCodeSequence, [deep], false);
  const defined = new Dataset();
  defined.undefinedLength = false;
  defined.setValues(Tag.ReferencedSOPInstanceUID, ['1.2.3']);
  ds.setSequence(Tag.AnatomicRegionSequence, [inner, defined], true);
  ds.setSequence(Tag.ReferencedImageSequence, [], false);
  return ds;
}

for (const uid of SYNTAXES) {
  test(`every VR, nested sequences: write -> read in ${uid}`, () => {
    const ds = sample();
    const bytes = writePart10({ dataset: ds }, uid);
    const back = readPart10(bytes);
    assert.equal(back.transferSyntax.uid, uid);
    assert.deepEqual(datasetToJson(back.dataset), datasetToJson(ds));
    // Writing what was read, in the same syntax, gives the same bytes.
    assert.ok(writePart10(back).equals(bytes));
  });
}

test('values read back as written', () => {
  const back = readPart10(writePart10({ dataset: sample() }, '1.2.840.10008.1.2.2')).dataset;
  assert.deepEqual(back.numbers(Tag.ImagePositionPatient), [-125.5, 0, 3e-5]);
  assert.deepEqual(back.values(Tag.SelectorUVValue), [2n ** 63n + 1n]);
  assert.deepEqual(back.values(Tag.SmallestImagePixelValue), [-1024]);
  assert.deepEqual(back.values(Tag.FrameIncrementPointer), [Tag.FrameTime]);
  assert.deepEqual(back.values(Tag.PatientName), [
    { Alphabetic: 'Doe^Jane^^Dr', Ideographic: 'Doe^J', Phonetic: 'do^jeyn' },
  ]);
  assert.equal(back.string(Tag.TextValue), 'first line\r\nsecond \\ line');
  assert.deepEqual(back.strings(Tag.StudyDescription), ['Head', 'neck']);
  assert.equal(back.items(Tag.AnatomicRegionSequence).length, 2);
  assert.equal(back.items(Tag.AnatomicRegionSequence)[1]!.undefinedLength, false);
  // Pixel Data bytes are swapped to big endian on the way out and read as the same words.
  assert.deepEqual(back.bytes(Tag.PixelData), Buffer.from([0, 1, 0, 2, 0xff, 0xff, 0, 4]));
});

for (const charset of [
  'ISO_IR 100',
  'ISO_IR 192',
  '\\ISO 2022 IR 87',
  'ISO 2022 IR 6\\ISO 2022 IR 149',
  'GB18030',
  'ISO_IR 144',
]) {
  test(`text in ${charset} survives every syntax`, () => {
    const names: Record<string, string> = {
      'ISO_IR 100': 'Müller^Zoë',
      'ISO_IR 192': 'Müller^Zoë=山田^太郎',
      '\\ISO 2022 IR 87': 'Yamada^Tarou=山田^太郎=やまだ^たろう',
      'ISO 2022 IR 6\\ISO 2022 IR 149': 'Hong^Gildong=洪^吉洞=홍^길동',
      GB18030: 'Wang^XiaoDong=王^小東',
      'ISO_IR 144': 'Иванов^Иван',
    };
    const text = names[charset]!;
    for (const uid of SYNTAXES) {
      const ds = sample(charset);
      ds.setString(Tag.PatientName, text);
      ds.setString(Tag.InstitutionName, text.split('=').pop()!.replace('^', ' '));
      const back = readPart10(writePart10({ dataset: ds }, uid)).dataset;
      assert.equal(back.string(Tag.PatientName), text);
      assert.deepEqual(datasetToJson(back), datasetToJson(ds));
    }
  });
}

test('implicit -> explicit -> big endian -> implicit is lossless on a real CT', () => {
  const original = readFileSync(
    new URL('../../../shared/data/dicom/transfer-syntax/ct1-implicit-vr-le.dcm', import.meta.url),
  );
  const a = readPart10(original);
  const explicit = readPart10(writePart10(a, '1.2.840.10008.1.2.1'));
  const big = readPart10(writePart10(explicit, '1.2.840.10008.1.2.2'));
  const implicit = writePart10(big, '1.2.840.10008.1.2');
  assert.deepEqual(datasetToJson(big.dataset), datasetToJson(a.dataset));
  // Only the meta differs (it names the last writer's transfer syntax path): the data sets are equal.
  assert.ok(
    implicit
      .subarray(implicit.length - (original.length - a.datasetOffset))
      .equals(original.subarray(a.datasetOffset)),
  );
});

test('async writer streams bulk references without loading them first', async () => {
  const bytes = writePart10({ dataset: sample() }, '1.2.840.10008.1.2.1');
  const streamed = await readPart10Stream(
    (async function* () {
      yield bytes;
    })(),
    { bulkThreshold: 2, bulkSource: async (o, n) => bytes.subarray(o, o + n) },
  );
  assert.equal(streamed.dataset.get(Tag.PixelData)?.kind, 'bulk');
  const chunks: Buffer[] = [];
  for await (const c of part10Chunks(streamed)) chunks.push(c);
  assert.ok(Buffer.concat(chunks).equals(bytes));
});

/** Random data sets: strings of several VRs, numbers, binary values, nested sequences (depth <= 3). */
function arbitraryDataset(depth: number): fc.Arbitrary<Dataset> {
  return fc
    .record({
      name: fc.string({ maxLength: 20 }).map((s) => s.replace(/[^ -~]|[\\=^]/g, 'x').trimEnd()),
      ids: fc.array(
        fc.stringMatching(/^[A-Z0-9_ ]{0,16}$/).map((s) => s.trim()),
        { maxLength: 4 },
      ),
      numbers: fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 5 }),
      signed: fc.array(fc.integer({ min: -2147483648, max: 2147483647 }), { maxLength: 3 }),
      doubles: fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 3 }),
      bytes: fc.uint8Array({ maxLength: 64 }).map((b) => (b.length % 2 ? b.subarray(1) : b)),
      items: depth > 0 ? fc.array(arbitraryDataset(depth - 1), { maxLength: 2 }) : fc.constant<Dataset[]>([]),
      undefinedLength: fc.boolean(),
    })
    .map((r) => {
      const ds = new Dataset();
      ds.setValues(Tag.PatientName, [r.name === '' ? null : { Alphabetic: r.name }]);
      ds.setValues(
        Tag.ImageType,
        r.ids.map((s) => (s === '' ? null : s)),
      );
      ds.setValues(Tag.AcquisitionMatrix, r.numbers, 'US');
      ds.setValues(Tag.ReferencePixelX0, r.signed, 'SL');
      ds.setValues(Tag.DiffusionBValue, r.doubles, 'FD');
      ds.setBytes(Tag.EncapsulatedDocument, 'OB', Buffer.from(r.bytes));
      ds.setSequence(Tag.ReferencedSeriesSequence, r.items, r.undefinedLength);
      return ds;
    });
}

test('property: read(write(ds)) has the same DICOM JSON in every syntax', () => {
  fc.assert(
    fc.property(arbitraryDataset(3), fc.constantFrom(...SYNTAXES), (ds, uid) => {
      const back = readPart10(writePart10({ dataset: ds }, uid)).dataset;
      // Compared as JSON text: a failure then prints two strings, not the data set objects.
      assert.equal(JSON.stringify(datasetToJson(back)), JSON.stringify(datasetToJson(ds)));
    }),
    { numRuns: 300 },
  );
});

test('part10Header writes the File Meta Information the general writer does, byte for byte', () => {
  const cases = [
    {
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: '1.2.3.4',
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      sourceAETitle: 'ODDAE',
    },
    {
      sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      sopInstanceUid: '1.2.3.45',
      transferSyntaxUid: '1.2.840.10008.1.2',
      sourceAETitle: 'EVEN',
    },
    { sopClassUid: undefined, sopInstanceUid: undefined, transferSyntaxUid: '1.2.840.10008.1.2.4.50' },
  ];
  for (const c of cases) {
    const meta = new Dataset({ littleEndian: true });
    meta.setValues(0x00020000, [0], 'UL');
    meta.setBytes(0x00020001, 'OB', Buffer.from([0, 1]));
    if (c.sopClassUid) meta.setValues(0x00020002, [c.sopClassUid], 'UI');
    if (c.sopInstanceUid) meta.setValues(0x00020003, [c.sopInstanceUid], 'UI');
    meta.setValues(0x00020010, [c.transferSyntaxUid], 'UI');
    meta.setValues(0x00020012, [IMPLEMENTATION_CLASS_UID], 'UI');
    meta.setValues(0x00020013, [IMPLEMENTATION_VERSION_NAME], 'SH');
    if (c.sourceAETitle) meta.setValues(0x00020016, [c.sourceAETitle], 'AE');
    // An empty data set: the general writer's file is its header alone.
    const reference = writePart10({ dataset: new Dataset(), meta }, c.transferSyntaxUid);
    assert.deepEqual(part10Header(c), reference, JSON.stringify(c));
  }
});
