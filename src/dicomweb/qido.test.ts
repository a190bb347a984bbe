import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Dataset } from '../codec/index.ts';
import { isDicomError, type Tag as TagNumber } from '../core/index.ts';
import { Tag } from '../dictionary/index.ts';
import {
  parseQidoQuery,
  QIDO_INSTANCE_RETURN_KEYS,
  QIDO_SERIES_RETURN_KEYS,
  QIDO_STUDY_RETURN_KEYS,
} from './qido.ts';

const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const q = (s: string) => new URLSearchParams(s);

/** Tags of the identifier with their string values ('' for return keys). */
function keys(ds: Dataset): Map<TagNumber, string> {
  const out = new Map<TagNumber, string>();
  for (const el of ds)
    out.set(el.tag, el.kind === 'sequence' ? `SQ(${el.items.length})` : ds.strings(el.tag).join('\\'));
  return out;
}

function badParameter(fn: () => unknown, name: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isDicomError(err));
    assert.equal(err.code, 'ERR_DICOMWEB_BAD_PARAMETER');
    assert.ok(err.message.includes(`"${name}"`), `${err.message} names ${name}`);
    return true;
  });
}

describe('parseQidoQuery', () => {
  test('studies: matching keys, includefield (list and repeated), limit, offset, fuzzymatching', () => {
    const r = parseQidoQuery(
      q(
        'PatientName=Anony*&StudyDate=20200101-20201231&includefield=00081030,ModalitiesInStudy&includefield=StudyDescription&limit=10&offset=5&fuzzymatching=true',
      ),
      'STUDY',
    );
    assert.equal(r.limit, 10);
    assert.equal(r.offset, 5);
    assert.equal(r.fuzzymatching, true);
    assert.equal(r.includeAll, false);
    assert.deepEqual(r.ignored, []);
    const k = keys(r.identifier);
    assert.equal(k.get(Tag.QueryRetrieveLevel), 'STUDY');
    assert.equal(k.get(Tag.PatientName), 'Anony*');
    assert.equal(k.get(Tag.StudyDate), '20200101-20201231');
    assert.equal(k.get(Tag.StudyDescription), '');
    assert.equal(k.get(Tag.ModalitiesInStudy), '');
    // Every default return attribute of Table 10.6.3-3, and nothing of lower levels.
    for (const t of QIDO_STUDY_RETURN_KEYS) assert.ok(k.has(t), `study key ${t.toString(16)}`);
    assert.equal(k.get(Tag.StudyInstanceUID), '');
    assert.equal(k.has(Tag.Modality), false);
    assert.equal(k.has(Tag.SpecificCharacterSet), false, 'ASCII values: no Specific Character Set');
    assert.equal(r.identifier.vr(Tag.NumberOfStudyRelatedInstances), 'IS');
  });

  test('series of a study: the path UID is a key, study defaults are not asked; RequestAttributesSequence item', () => {
    const r = parseQidoQuery(q('Modality=OT'), 'SERIES', { studyInstanceUid: STUDY });
    const k = keys(r.identifier);
    assert.equal(k.get(Tag.QueryRetrieveLevel), 'SERIES');
    assert.equal(k.get(Tag.StudyInstanceUID), STUDY);
    assert.equal(k.get(Tag.Modality), 'OT');
    for (const t of QIDO_SERIES_RETURN_KEYS) assert.ok(k.has(t));
    assert.equal(k.has(Tag.PatientName), false);
    const [item, ...more] = r.identifier.items(Tag.RequestAttributesSequence);
    assert.equal(more.length, 0);
    assert.deepEqual([...keys(item!).keys()], [Tag.ScheduledProcedureStepID, Tag.RequestedProcedureID]);
  });

  test('all series (/series) also return the study attributes (PS3.18 10.6.3.3.2)', () => {
    const k = keys(parseQidoQuery(q(''), 'SERIES').identifier);
    for (const t of [...QIDO_STUDY_RETURN_KEYS, ...QIDO_SERIES_RETURN_KEYS]) assert.ok(k.has(t));
    assert.equal(k.get(Tag.StudyInstanceUID), '');
  });

  test('instances: all, of a study, of a series', () => {
    const all = keys(parseQidoQuery(q('SOPInstanceUID=1.2.3'), 'IMAGE').identifier);
    for (const t of [...QIDO_STUDY_RETURN_KEYS, ...QIDO_SERIES_RETURN_KEYS, ...QIDO_INSTANCE_RETURN_KEYS])
      assert.ok(all.has(t));
    assert.equal(all.get(Tag.QueryRetrieveLevel), 'IMAGE');
    const ofStudy = keys(parseQidoQuery(q(''), 'IMAGE', { studyInstanceUid: STUDY }).identifier);
    assert.ok(ofStudy.has(Tag.Modality));
    assert.equal(ofStudy.has(Tag.PatientName), false);
    const ofSeries = keys(
      parseQidoQuery(q(''), 'IMAGE', { studyInstanceUid: STUDY, seriesInstanceUid: SERIES }).identifier,
    );
    assert.equal(ofSeries.get(Tag.SeriesInstanceUID), SERIES);
    assert.equal(ofSeries.has(Tag.Modality), false);
    assert.ok(ofSeries.has(Tag.NumberOfFrames));
  });

  test('UID lists (comma, backslash, repeated), tags by hex (any case), numbers for binary VRs', () => {
    const r = parseQidoQuery(
      q(
        'SOPInstanceUID=1.2.3,1.2.4&SOPInstanceUID=1.2.5\\1.2.6&00100020=ID1&0020000d=1.2.9&Rows=979&00280011=985',
      ),
      'IMAGE',
    );
    const ds = r.identifier;
    assert.deepEqual(ds.strings(Tag.SOPInstanceUID), ['1.2.3', '1.2.4', '1.2.5', '1.2.6']);
    assert.equal(ds.string(Tag.PatientID), 'ID1');
    assert.equal(ds.string(Tag.StudyInstanceUID), '1.2.9');
    assert.equal(ds.vr(Tag.Rows), 'US');
    assert.equal(ds.number(Tag.Rows), 979);
    assert.equal(ds.number(Tag.Columns), 985);
  });

  test('dotted paths become keys of one sequence item', () => {
    const r = parseQidoQuery(
      q('RequestAttributesSequence.RequestedProcedureID=RP1&00400275.00400009=SPS*'),
      'SERIES',
      { studyInstanceUid: STUDY },
    );
    const items = r.identifier.items(Tag.RequestAttributesSequence);
    assert.equal(items.length, 1);
    assert.equal(items[0]!.string(Tag.RequestedProcedureID), 'RP1');
    assert.equal(items[0]!.string(Tag.ScheduledProcedureStepID), 'SPS*');
  });

  test('non-ASCII values: Specific Character Set ISO_IR 192 is set before the values are encoded', () => {
    const r = parseQidoQuery(
      q('PatientName=M%C3%BCller%5EHans&RequestAttributesSequence.RequestedProcedureID=%C3%A9'),
      'SERIES',
    );
    const ds = r.identifier;
    assert.equal(ds.string(Tag.SpecificCharacterSet), 'ISO_IR 192');
    assert.equal(ds.string(Tag.PatientName), 'Müller^Hans');
    assert.deepEqual([...ds.bytes(Tag.PatientName)!], [...Buffer.from('Müller^Hans', 'utf8')]);
    assert.equal(ds.items(Tag.RequestAttributesSequence)[0]!.string(Tag.RequestedProcedureID), 'é');
  });

  test('includefield=all; an empty matching value is a return key', () => {
    const r = parseQidoQuery(q('includefield=all&PatientBirthDate='), 'STUDY');
    assert.equal(r.includeAll, true);
    assert.equal(keys(r.identifier).get(Tag.PatientBirthDate), '');
  });

  test('ignored parameters are listed for a Warning header; accept and charset are the caller’s', () => {
    const r = parseQidoQuery(
      q(
        `_=1712345&00091010=x&00100000=1&StudyInstanceUID=1.2.3&PixelData=abc&accept=application/dicom%2Bjson&charset=utf-8`,
      ),
      'SERIES',
      { studyInstanceUid: STUDY },
    );
    assert.deepEqual(r.ignored, [
      '_: not a query parameter of PS3.18 10.6.1.2',
      '00091010: private data element',
      '00100000: group length',
      `StudyInstanceUID: the path already gives ${STUDY}`,
      'PixelData: values of VR OB cannot be matched',
    ]);
    assert.equal(r.identifier.string(Tag.StudyInstanceUID), STUDY);
  });

  test('bad parameters are refused, naming the parameter', () => {
    badParameter(() => parseQidoQuery(q('PatientNme=x'), 'STUDY'), 'PatientNme');
    badParameter(() => parseQidoQuery(q('0010001=x'), 'STUDY'), '0010001');
    badParameter(() => parseQidoQuery(q('00101234=x'), 'STUDY'), '00101234');
    badParameter(() => parseQidoQuery(q('limit=abc'), 'STUDY'), 'limit');
    badParameter(() => parseQidoQuery(q('limit=0'), 'STUDY'), 'limit');
    badParameter(() => parseQidoQuery(q('offset=-1'), 'STUDY'), 'offset');
    badParameter(() => parseQidoQuery(q('fuzzymatching=yes'), 'STUDY'), 'fuzzymatching');
    badParameter(() => parseQidoQuery(q('includefield=NoSuchKeyword'), 'STUDY'), 'includefield');
    badParameter(() => parseQidoQuery(q('ReferencedStudySequence=1.2'), 'STUDY'), 'ReferencedStudySequence');
    badParameter(() => parseQidoQuery(q('PatientName.PatientID=x'), 'STUDY'), 'PatientName.PatientID');
    badParameter(() => parseQidoQuery(q('Rows=many'), 'IMAGE'), 'Rows');
    badParameter(() => parseQidoQuery(q('StudyDate=2020%C3%A9'), 'STUDY'), 'StudyDate');
    badParameter(() => parseQidoQuery(q(''), 'SERIES', { studyInstanceUid: '../etc' }), 'StudyInstanceUID');
  });
});
