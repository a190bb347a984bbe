import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tag } from '../dictionary/index.ts';
import { Dataset } from './dataset.ts';
import { datasetFromJson, datasetToJson } from './json.ts';
import { readPart10 } from './part10.ts';
import { encodeDataset, writePart10 } from './writer.ts';

test('BulkDataURI: a caller-supplied builder replaces large binary values; a resolver reads them back', async () => {
  const ds = new Dataset();
  ds.setValues(Tag.SOPInstanceUID, ['1.2.3']);
  const pixels = Buffer.alloc(4096, 7);
  ds.setBytes(Tag.PixelData, 'OW', pixels);
  ds.setBytes(Tag.EncapsulatedDocument, 'OB', Buffer.from('tiny'));
  const paths: string[] = [];
  const json = datasetToJson(ds, {
    bulkThreshold: 1024,
    bulkDataUri: (el, path) => {
      paths.push(path.map((p) => p.toString(16)).join('/'));
      return `https://pacs.example/bulk/${el.tag.toString(16)}`;
    },
  });
  assert.deepEqual(json['7FE00010'], { vr: 'OW', BulkDataURI: 'https://pacs.example/bulk/7fe00010' });
  assert.deepEqual(json['00420011'], { vr: 'OB', InlineBinary: Buffer.from('tiny').toString('base64') });
  assert.deepEqual(paths, ['7fe00010']);
  const back = datasetFromJson(json, {
    bulkDataResolver: async (uri) => {
      assert.equal(uri, 'https://pacs.example/bulk/7fe00010');
      return pixels;
    },
  });
  const el = back.get(Tag.PixelData);
  assert.ok(el?.kind === 'bulk');
  assert.ok((await el.bulk.read()).equals(pixels));
});

test('PN component groups, AT, numbers, empty values and nested sequences in the JSON model', () => {
  const ds = new Dataset();
  ds.setValues(Tag.SpecificCharacterSet, ['ISO_IR 192']);
  ds.setValues(Tag.PatientName, [
    { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' },
  ]);
  ds.setValues(Tag.FrameIncrementPointer, [Tag.FrameTime], 'AT');
  ds.setValues(Tag.SliceThickness, [2.5]);
  ds.setValues(Tag.InstanceNumber, [3]);
  ds.setValues(Tag.ImageType, ['ORIGINAL', null, 'AXIAL']);
  ds.setValues(Tag.StudyDescription, []);
  const item = new Dataset();
  item.setValues(Tag.CodeValue, ['T-A0100']);
  ds.setSequence(Tag.AnatomicRegionSequence, [item]);
  ds.setSequence(Tag.ReferencedImageSequence, []);
  const json = datasetToJson(ds);
  assert.deepEqual(json['00100010'], {
    vr: 'PN',
    Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }],
  });
  assert.deepEqual(json['00280009'], { vr: 'AT', Value: ['00181063'] });
  assert.deepEqual(json['00180050'], { vr: 'DS', Value: [2.5] });
  assert.deepEqual(json['00200013'], { vr: 'IS', Value: [3] });
  assert.deepEqual(json['00080008'], { vr: 'CS', Value: ['ORIGINAL', null, 'AXIAL'] });
  assert.deepEqual(json['00081030'], { vr: 'LO' });
  assert.deepEqual(json['00082218'], { vr: 'SQ', Value: [{ '00080100': { vr: 'SH', Value: ['T-A0100'] } }] });
  assert.deepEqual(json['00081140'], { vr: 'SQ' });
  // And back: the same JSON, and the same bytes in each syntax.
  const back = datasetFromJson(json);
  assert.deepEqual(datasetToJson(back), json);
  assert.ok(encodeDataset(back, '1.2.840.10008.1.2.1').equals(encodeDataset(ds, '1.2.840.10008.1.2.1')));
});

test('JSON without Specific Character Set but with non-ASCII text is declared ISO_IR 192', () => {
  const ds = datasetFromJson({ '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Müller^Zoë' }] } });
  assert.deepEqual(ds.strings(Tag.SpecificCharacterSet), ['ISO_IR 192']);
  const file = readPart10(writePart10({ dataset: ds }, '1.2.840.10008.1.2.1'));
  assert.equal(file.dataset.string(Tag.PatientName), 'Müller^Zoë');
});

test('malformed DICOM JSON is a CodecError naming the attribute', () => {
  assert.throws(() => datasetFromJson([]), { code: 'ERR_CODEC_JSON' });
  assert.throws(() => datasetFromJson({ '0010001': { vr: 'PN' } }), { code: 'ERR_CODEC_JSON' });
  assert.throws(
    () => datasetFromJson({ '00100010': { vr: 'XX' } }),
    (e: unknown) =>
      (e as { code: string; tag: number }).code === 'ERR_CODEC_JSON' &&
      (e as { tag: number }).tag === 0x00100010,
  );
  assert.throws(() => datasetFromJson({ '00280009': { vr: 'AT', Value: ['zz'] } }), {
    code: 'ERR_CODEC_JSON',
  });
  assert.throws(() => datasetFromJson({ '00280010': { vr: 'US', Value: ['abc'] } }), {
    code: 'ERR_CODEC_NOT_ENCODABLE',
  });
});
