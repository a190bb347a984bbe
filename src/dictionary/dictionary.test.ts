import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ELEMENTS, REPEATERS } from './generated/elements.ts';
import { UIDS } from './generated/uids.ts';
import {
  isStorageSopClass,
  lookupKeyword,
  lookupTag,
  lookupUid,
  Tag,
  transferSyntaxUids,
  UID,
  uidName,
  vrOf,
} from './index.ts';

test('tables have a plausible size', () => {
  assert.ok(ELEMENTS.length > 4000, `${ELEMENTS.length} elements`);
  assert.ok(REPEATERS.length > 50, `${REPEATERS.length} repeaters`);
  assert.ok(UIDS.length > 300, `${UIDS.length} UIDs`);
  assert.ok(Object.keys(Tag).length > 4000);
  assert.ok(Object.keys(UID).length > 300);
});

test('PatientName is (0010,0010) PN 1', () => {
  const t: Tag = Tag.PatientName;
  assert.equal(t, 0x00100010);
  const e = lookupTag(0x00100010);
  assert.ok(e);
  assert.equal(e.keyword, 'PatientName');
  assert.equal(e.name, "Patient's Name");
  assert.equal(e.vr, 'PN');
  assert.deepEqual(e.vrs, ['PN']);
  assert.equal(e.vm, '1');
  assert.equal(e.mask, 0xffffffff);
  assert.equal(e.retired, false);
  assert.equal(vrOf(Tag.PatientName), 'PN');
});

test('multi-VR elements list their VRs, default first', () => {
  const pixel = lookupTag(Tag.PixelData);
  assert.equal(Tag.PixelData, 0x7fe00010);
  assert.deepEqual(pixel?.vrs, ['OB', 'OW']);
  assert.equal(pixel?.vr, 'OB');

  const lut = lookupTag(0x00283006);
  assert.equal(lut?.keyword, 'LUTData');
  assert.deepEqual(lut?.vrs, ['US', 'OW']);
  assert.equal(vrOf(0x00283006), 'US');

  // (0028,0106) Smallest Image Pixel Value: US or SS
  assert.deepEqual(lookupTag(0x00280106)?.vrs, ['US', 'SS']);
  for (const e of ELEMENTS) assert.ok(typeof e[1] === 'string' || e[1].length > 1);
});

test('repeating groups: overlay data in any even 60xx group', () => {
  for (const t of [0x60003000, 0x60023000, 0x601e3000]) {
    const e = lookupTag(t);
    assert.equal(e?.keyword, 'OverlayData', t.toString(16));
    assert.equal(e?.tag, 0x60003000);
    assert.equal(e?.mask, 0xff00ffff);
    assert.deepEqual(e?.vrs, ['OB', 'OW']);
  }
  assert.equal(Tag.OverlayData, 0x60003000);
  assert.equal(lookupTag(0x60020010)?.keyword, 'OverlayRows');
  // (6001,3000) is in a private group, not an overlay
  assert.equal(lookupTag(0x60013000), undefined);
});

test('fixed tags win over repeating-group patterns that cover them', () => {
  assert.equal(lookupTag(0x00280400)?.keyword, 'TransformLabel');
  assert.equal(lookupTag(0x00280410)?.keyword, 'RowsForNthOrderCoefficients');
  assert.equal(lookupTag(0x00280420)?.keyword, 'RowsForNthOrderCoefficients');
  assert.equal(Tag.RowsForNthOrderCoefficients, 0x00280410);
  assert.equal(lookupTag(0x7fe00010)?.keyword, 'PixelData');
  assert.equal(lookupTag(0x7f000010)?.keyword, 'VariablePixelData');
  assert.equal(lookupTag(0x7f020010)?.retired, true);
  for (const [t, , , , , keyword] of REPEATERS) assert.equal(lookupTag(t)?.keyword, keyword, t.toString(16));
});

test('curve data (50xx,xxxx) is retired', () => {
  const e = lookupTag(0x50023000);
  assert.equal(e?.keyword, 'CurveData');
  assert.equal(e?.retired, true);
  assert.equal(lookupTag(0x50000005)?.keyword, 'CurveDimensions');
  assert.equal(lookupTag(0x50000005)?.retired, true);
});

test('group length: in the table for 0000 and 0002, synthetic elsewhere, also in private groups', () => {
  assert.equal(lookupTag(0x00000000)?.keyword, 'CommandGroupLength');
  assert.equal(lookupTag(0x00020000)?.keyword, 'FileMetaInformationGroupLength');
  for (const t of [0x00280000, 0x00090000]) {
    const e = lookupTag(t);
    assert.ok(e, t.toString(16));
    assert.equal(e.tag, t);
    assert.equal(e.vr, 'UL');
    assert.equal(e.keyword, 'GroupLength');
    assert.equal(e.name, 'Group Length');
    assert.equal(vrOf(t), 'UL');
  }
  assert.equal(lookupKeyword('GroupLength'), undefined);
});

test('private creator and other private tags', () => {
  for (const t of [0x00090010, 0x001900ff, 0x7fe10010]) {
    const e = lookupTag(t);
    assert.equal(e?.keyword, 'PrivateCreator', t.toString(16));
    assert.equal(e?.name, 'Private Creator');
    assert.equal(e?.vr, 'LO');
    assert.equal(e?.tag, t);
  }
  assert.equal(lookupTag(0x00091001), undefined);
  assert.equal(vrOf(0x00091001), undefined);
  assert.equal(lookupTag(0x00090100), undefined);
});

test('item and delimitation tags have no VR and are not in the dictionary', () => {
  assert.equal(lookupTag(0xfffee000), undefined);
  assert.equal(lookupTag(0xfffee00d), undefined);
  assert.equal(lookupTag(0xfffee0dd), undefined);
  assert.equal(lookupKeyword('Item'), undefined);
});

test('unknown public tags are undefined', () => {
  assert.equal(lookupTag(0x0010ffff), undefined);
  assert.equal(lookupKeyword('NoSuchKeyword'), undefined);
});

test('every keyword round-trips: tag -> keyword -> same tag', () => {
  let n = 0;
  for (const [keyword, t] of Object.entries(Tag)) {
    const e = lookupTag(t);
    assert.equal(e?.keyword, keyword, `${keyword} ${t.toString(16)}`);
    assert.equal(lookupKeyword(keyword), e);
    assert.equal(lookupKeyword(keyword)?.tag, t);
    n++;
  }
  const withKeyword = [...ELEMENTS, ...REPEATERS].filter((r) => r[r.length - 2] !== '').length;
  assert.equal(n, withKeyword);
  for (const [t, , , , keyword] of ELEMENTS) {
    if (keyword === '') continue;
    assert.equal(lookupKeyword(lookupTag(t)!.keyword)?.tag, t);
  }
});

test('UIDs', () => {
  assert.equal(UID.ExplicitVRLittleEndian, '1.2.840.10008.1.2.1');
  assert.equal(UID.ImplicitVRLittleEndian, '1.2.840.10008.1.2');
  assert.equal(uidName('1.2.840.10008.5.1.4.1.1.2'), 'CT Image Storage');
  assert.equal(uidName('1.2.3.4'), undefined);
  const ct = lookupUid(UID.CTImageStorage);
  assert.deepEqual(ct, {
    uid: '1.2.840.10008.5.1.4.1.1.2',
    name: 'CT Image Storage',
    type: 'SOP Class',
    keyword: 'CTImageStorage',
    retired: false,
  });
  assert.equal(lookupUid(UID.ExplicitVRBigEndian)?.retired, true);
  for (const [keyword, uid] of Object.entries(UID)) assert.equal(lookupUid(uid)?.keyword, keyword);
});

test('transfer syntaxes include deflate, JPEG 2000, and those added after pydicom 2.3.1', () => {
  const ts = new Map(transferSyntaxUids().map((u) => [u.uid, u]));
  assert.ok(ts.size > 40);
  for (const u of transferSyntaxUids()) assert.equal(u.type, 'Transfer Syntax');
  const expected: [string, string][] = [
    ['1.2.840.10008.1.2', 'ImplicitVRLittleEndian'],
    ['1.2.840.10008.1.2.1.99', 'DeflatedExplicitVRLittleEndian'],
    ['1.2.840.10008.1.2.4.90', 'JPEG2000Lossless'],
    ['1.2.840.10008.1.2.4.91', 'JPEG2000'],
    // supplementary rows (PS3.6 Table A-1; Sup 225, 232, 235, 244)
    ['1.2.840.10008.1.2.4.100.1', 'MPEG2MPMLF'],
    ['1.2.840.10008.1.2.4.106.1', 'MPEG4HP42STEREOF'],
    ['1.2.840.10008.1.2.4.110', 'JPEGXLLossless'],
    ['1.2.840.10008.1.2.4.112', 'JPEGXL'],
    ['1.2.840.10008.1.2.4.201', 'HTJ2KLossless'],
    ['1.2.840.10008.1.2.4.202', 'HTJ2KLosslessRPCL'],
    ['1.2.840.10008.1.2.4.203', 'HTJ2K'],
    ['1.2.840.10008.1.2.4.204', 'JPIPHTJ2KReferenced'],
    ['1.2.840.10008.1.2.4.205', 'JPIPHTJ2KReferencedDeflate'],
    ['1.2.840.10008.1.2.8.1', 'DeflatedImageFrameCompression'],
  ];
  for (const [uid, keyword] of expected) {
    assert.equal(ts.get(uid)?.keyword, keyword, uid);
    assert.equal(ts.get(uid)?.retired, false, uid);
  }
  assert.equal(UID.HTJ2K, '1.2.840.10008.1.2.4.203');
  assert.equal(uidName(UID.HTJ2KLossless), 'High-Throughput JPEG 2000 Image Compression (Lossless Only)');
  assert.equal(ts.has(UID.CTImageStorage), false);
});

test('isStorageSopClass', () => {
  assert.equal(isStorageSopClass('1.2.840.10008.5.1.4.1.1.2'), true); // CT Image Storage
  assert.equal(isStorageSopClass(UID.DigitalXRayImageStorageForPresentation), true);
  assert.equal(isStorageSopClass(UID.EnhancedMRImageStorage), true);
  assert.equal(isStorageSopClass(UID.Verification), false);
  assert.equal(uidName(UID.Verification), 'Verification SOP Class');
  assert.equal(isStorageSopClass(UID.StorageCommitmentPushModel), false);
  assert.equal(uidName(UID.StorageCommitmentPushModel), 'Storage Commitment Push Model SOP Class');
  assert.equal(isStorageSopClass(UID.MediaStorageDirectoryStorage), false);
  assert.equal(isStorageSopClass(UID.Storage), false); // Storage Service Class
  assert.equal(isStorageSopClass(UID.ExplicitVRLittleEndian), false);
  assert.equal(isStorageSopClass('1.2.3.4'), false);
});
