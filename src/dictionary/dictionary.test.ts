import assert from 'node:assert/strict';
import { test } from 'node:test';
import { elementRows, repeaterRows } from './generated/elements.ts';
import { privateRows } from './generated/private.ts';
import { uidRows } from './generated/uids.ts';

const ELEMENTS = elementRows();
const REPEATERS = repeaterRows();
const PRIVATE = privateRows();
const UIDS = uidRows();

import {
  isStorageSopClass,
  lookupKeyword,
  lookupPrivate,
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

test('private dictionary has a plausible size and every row is found', () => {
  assert.ok(PRIVATE.length > 350, `${PRIVATE.length} creators`);
  const rows = PRIVATE.reduce((n, [, r]) => n + r.length, 0);
  assert.ok(rows > 7000, `${rows} private elements`);
  const creators = PRIVATE.map(([c]) => c);
  assert.deepEqual([...creators].sort(), creators);
  assert.equal(new Set(creators).size, creators.length);
  for (const [creator, entries] of PRIVATE) {
    assert.ok(entries.length > 0, creator);
    for (const [t, vr, vm, name, retired] of entries) {
      const e = lookupPrivate(creator, t);
      assert.ok(e, `${creator} ${t.toString(16)}`);
      assert.equal(e.creator, creator);
      assert.deepEqual(e.vrs, typeof vr === 'string' ? [vr] : vr);
      assert.equal(e.vr, e.vrs[0]);
      assert.ok(!e.vrs.includes('UN'), `${creator} ${t.toString(16)}`);
      assert.equal(e.vm, vm);
      assert.equal(e.name, name);
      assert.equal(e.retired, retired === 1);
    }
  }
});

test('private: GEMS_IDEN_01 in group 0009', () => {
  // creator at (0009,0010): block 0x10
  const full = lookupPrivate('GEMS_IDEN_01', 0x00091001);
  assert.deepEqual(full, {
    creator: 'GEMS_IDEN_01',
    vr: 'LO',
    vrs: ['LO'],
    vm: '1',
    name: 'Full fidelity',
    retired: false,
  });
  assert.ok(Object.isFrozen(full));
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091002)?.vr, 'SH');
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091002)?.name, 'Suite id');
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091027)?.vr, 'SL');
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091027)?.name, 'Image actual date');
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x000910e3)?.vr, 'UI');
  // no such element byte for this creator
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091003), undefined);
  // the same element bytes in another group are not GEMS_IDEN_01's
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00191001), undefined);
});

test('private: the block byte is not compared, the element byte and group are', () => {
  // creator at (0009,0011) and (0009,00ff): blocks 0x11 and 0xff
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091101), lookupPrivate('GEMS_IDEN_01', 0x00091001));
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00091101)?.name, 'Full fidelity');
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x0009ff27)?.vr, 'SL');
  // (gggg,0000-00FF) are group lengths and the creators themselves, not block elements
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00090001), undefined);
  assert.equal(lookupPrivate('GEMS_IDEN_01', 0x00090010), undefined);
});

test('private: Siemens CSA headers are OB', () => {
  const image = lookupPrivate('SIEMENS CSA HEADER', 0x00291010);
  assert.equal(image?.vr, 'OB');
  assert.equal(image?.name, 'CSA Image Header Info');
  assert.equal(lookupPrivate('SIEMENS CSA HEADER', 0x00291020)?.name, 'CSA Series Header Info');
  assert.equal(lookupPrivate('SIEMENS CSA HEADER', 0x00291120)?.vr, 'OB');
  assert.equal(lookupPrivate('SIEMENS CSA HEADER', 0x00291008)?.vr, 'CS');
});

test('private: creator padding is trimmed, otherwise the creator must match exactly', () => {
  const e = lookupPrivate('GEMS_IDEN_01', 0x00091001);
  assert.ok(e);
  assert.equal(lookupPrivate('GEMS_IDEN_01 ', 0x00091001), e);
  assert.equal(lookupPrivate('GEMS_IDEN_01   ', 0x00091001), e);
  assert.equal(lookupPrivate('GEMS_IDEN_01\0', 0x00091001), e);
  assert.equal(lookupPrivate('GEMS_IDEN_01 \0 ', 0x00091001), e);
  assert.equal(lookupPrivate('SIEMENS CSA HEADER ', 0x00291010)?.creator, 'SIEMENS CSA HEADER');
  assert.equal(lookupPrivate('gems_iden_01', 0x00091001), undefined);
  assert.equal(lookupPrivate(' GEMS_IDEN_01', 0x00091001), undefined);
  assert.equal(lookupPrivate('NO SUCH CREATOR', 0x00091001), undefined);
  assert.equal(lookupPrivate('', 0x00091001), undefined);
  assert.equal(lookupPrivate('   ', 0x00091001), undefined);
});

test('private: (ggxx,xxee) rows match every private group of the range', () => {
  // PAPYRUS 3.0 60xxxx10: Overlay Rows
  for (const t of [0x60011010, 0x60031110, 0x60ff2010]) {
    const e = lookupPrivate('PAPYRUS 3.0', t);
    assert.equal(e?.name, 'Overlay Rows', t.toString(16));
    assert.equal(e?.vr, 'US');
  }
  assert.equal(lookupPrivate('PAPYRUS 3.0', 0x60011000)?.name, 'Overlay ID');
  assert.equal(lookupPrivate('PAPYRUS 3.0', 0x600110c0)?.vr, 'SQ');
  // (6000,1010) is in an even group, which holds no private elements; 61xx is outside the range
  assert.equal(lookupPrivate('PAPYRUS 3.0', 0x60001010), undefined);
  assert.equal(lookupPrivate('PAPYRUS 3.0', 0x61011010), undefined);
  assert.equal(lookupPrivate('DLX_LKUP_01', 0x60111002)?.vr, 'LT');
});

test('private: VR alternatives, and rows left out', () => {
  // pydicom writes 'OB_OW' for TOSHIBA_MEC_OT3 (7019,xx80)
  const e = lookupPrivate('TOSHIBA_MEC_OT3', 0x70191080);
  assert.deepEqual(e?.vrs, ['OB', 'OW']);
  assert.equal(e?.vr, 'OB');
  // VR 'UN' in pydicom: no usable VR, left out (ACUSON 0009xx02)
  assert.equal(lookupPrivate('ACUSON', 0x00091002), undefined);
  // fixed tags (0019,0001) in pydicom, which pydicom never matches to a block element either
  assert.equal(lookupPrivate('PMTF INFORMATION DATA^10', 0x00191001), undefined);
  assert.equal(lookupPrivate('PMTF INFORMATION DATA^10', 0x00190001), undefined);
  // a row for group 0003, which is not private (PS3.5 §7.1): ELSCINT1 0003xx01
  assert.equal(lookupPrivate('ELSCINT1', 0x00031001), undefined);
  // an even group: FDMS 1.0 0032xx32
  assert.equal(lookupPrivate('FDMS 1.0', 0x00321032), undefined);
});
