import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Dataset } from '../codec/index.ts';
import { buildIdentifier, formatCell, parseKey } from './qr.ts';

test('parseKey: keywords, tags, return keys and errors naming the key', () => {
  assert.deepEqual(parseKey('PatientName=DOE*'), { tag: 0x00100010, vr: 'PN', value: 'DOE*' });
  assert.deepEqual(parseKey('(0008,0020)=20240101-'), { tag: 0x00080020, vr: 'DA', value: '20240101-' });
  assert.deepEqual(parseKey('0020000D'), { tag: 0x0020000d, vr: 'UI', value: undefined });
  assert.throws(() => parseKey('NoSuchKeyword=1'), /"NoSuchKeyword" is neither a keyword nor a tag/);
});

test('buildIdentifier: level, unique key, defaults, and UTF-8 for non-ASCII values', () => {
  const ds = buildIdentifier('SERIES', [parseKey('StudyInstanceUID=1.2.3'), parseKey('Modality=CT')], false);
  assert.equal(ds.string(0x00080052), 'SERIES');
  assert.equal(ds.string(0x0020000d), '1.2.3');
  assert.equal(ds.string(0x00080060), 'CT');
  assert.ok(ds.has(0x0020000e), 'the level unique key is always asked for');
  assert.equal(ds.has(0x0008103e), false, 'no default return keys with --no-defaults');
  const withDefaults = buildIdentifier('STUDY', [parseKey('PatientName=Müller*')], true);
  assert.equal(withDefaults.string(0x00080005), 'ISO_IR 192');
  assert.equal(withDefaults.string(0x00100010), 'Müller*');
  assert.ok(withDefaults.has(0x00201208), 'NumberOfStudyRelatedInstances is a default return key');
});

test('formatCell: a person name in its DICOM form (as findscu shows it), not as JSON; empty values of several as nothing', () => {
  const ds = new Dataset();
  ds.setValues(0x00100010, ['SMITH^ANNA'], 'PN');
  assert.equal(formatCell(ds.values(0x00100010)), 'SMITH^ANNA');
  ds.setValues(0x00080005, ['ISO_IR 192'], 'CS');
  ds.setValues(0x00100010, ['Yamada^Tarou=山田^太郎=やまだ^たろう'], 'PN');
  assert.equal(formatCell(ds.values(0x00100010)), 'Yamada^Tarou=山田^太郎=やまだ^たろう');
  ds.setValues(0x00080061, ['CT', '', 'MR'], 'CS');
  assert.equal(formatCell(ds.values(0x00080061)), 'CT\\\\MR');
  ds.setValues(0x00201208, ['42'], 'IS');
  assert.equal(formatCell(ds.values(0x00201208)), '42');
});
