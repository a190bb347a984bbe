import assert from 'node:assert/strict';
import { test } from 'node:test';
import { datasetFromJson } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';
import {
  parseStowResponse,
  StowFailureReason,
  StowWarningReason,
  stowHttpStatus,
  stowResponse,
} from './stow.ts';

const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const BLUE = '1.2.826.0.1.3680043.8.498.13273713909719068980354078852867170114';
const GREEN = '1.2.826.0.1.3680043.8.498.12714725698140337137334606354172323212';
const BASE = 'http://127.0.0.1:8042/dicom-web';

test('stowResponse: the Store Instances Response Module as DICOM JSON (PS3.18 Table I.1-1)', () => {
  const json = stowResponse({
    retrieveBase: `${BASE}/studies/${STUDY}`,
    referenced: [
      {
        sopClassUid: SC,
        sopInstanceUid: BLUE,
        retrieveUrl: `${BASE}/studies/${STUDY}/series/1.2/instances/${BLUE}`,
      },
      {
        sopClassUid: SC,
        sopInstanceUid: GREEN,
        retrieveUrl: `${BASE}/studies/${STUDY}/series/1.2/instances/${GREEN}`,
        warningReason: StowWarningReason.CoercionOfDataElements,
      },
    ],
    failed: [
      { sopClassUid: SC, sopInstanceUid: '1.2.3', failureReason: StowFailureReason.OutOfResources },
      { failureReason: StowFailureReason.CannotUnderstand },
    ],
  });
  assert.deepEqual(json, {
    '00081190': { vr: 'UR', Value: [`${BASE}/studies/${STUDY}`] },
    '00081198': {
      vr: 'SQ',
      Value: [
        {
          '00081150': { vr: 'UI', Value: [SC] },
          '00081155': { vr: 'UI', Value: ['1.2.3'] },
          '00081197': { vr: 'US', Value: [0xa700] },
        },
        { '00081197': { vr: 'US', Value: [0xc000] } },
      ],
    },
    '00081199': {
      vr: 'SQ',
      Value: [
        {
          '00081150': { vr: 'UI', Value: [SC] },
          '00081155': { vr: 'UI', Value: [BLUE] },
          '00081190': { vr: 'UR', Value: [`${BASE}/studies/${STUDY}/series/1.2/instances/${BLUE}`] },
        },
        {
          '00081150': { vr: 'UI', Value: [SC] },
          '00081155': { vr: 'UI', Value: [GREEN] },
          '00081190': { vr: 'UR', Value: [`${BASE}/studies/${STUDY}/series/1.2/instances/${GREEN}`] },
          '00081196': { vr: 'US', Value: [0xb000] },
        },
      ],
    },
  });
  // It is valid DICOM JSON for the codec, with the dictionary's VRs.
  const ds = datasetFromJson(json);
  assert.equal(ds.items(Tag.ReferencedSOPSequence).length, 2);
  assert.equal(ds.items(Tag.FailedSOPSequence)[0]!.number(Tag.FailureReason), 0xa700);
  // And parseStowResponse reads it back.
  const back = parseStowResponse(json);
  assert.equal(back.retrieveBase, `${BASE}/studies/${STUDY}`);
  assert.deepEqual(
    back.referenced.map((r) => [r.sopInstanceUid, r.warningReason]),
    [
      [BLUE, undefined],
      [GREEN, 0xb000],
    ],
  );
  assert.deepEqual(back.failed, [
    { sopClassUid: SC, sopInstanceUid: '1.2.3', failureReason: 0xa700 },
    { sopClassUid: undefined, sopInstanceUid: undefined, failureReason: 0xc000 },
  ]);
});

test('stowResponse: Retrieve URL is Type 2 (empty when unknown); no sequences when empty', () => {
  assert.deepEqual(stowResponse({ referenced: [], failed: [] }), { '00081190': { vr: 'UR' } });
});

test('parseStowResponse is lenient: an array, lower-case keys, strings for numbers, junk', () => {
  const parsed = parseStowResponse([
    {
      '00081198': {
        vr: 'SQ',
        Value: [{ '00081155': { vr: 'UI', Value: ['1.2'] }, '00081197': { vr: 'US', Value: ['272'] } }],
      },
    },
  ]);
  assert.deepEqual(parsed.failed, [{ sopClassUid: undefined, sopInstanceUid: '1.2', failureReason: 272 }]);
  assert.deepEqual(parseStowResponse('not json'), { retrieveBase: undefined, referenced: [], failed: [] });
});

test('stowHttpStatus (PS3.18 Table 10.5.3-1)', () => {
  assert.equal(stowHttpStatus(3, 0), 200);
  assert.equal(stowHttpStatus(2, 1), 202);
  assert.equal(stowHttpStatus(3, 0, 1), 202);
  assert.equal(stowHttpStatus(0, 3), 409);
  assert.equal(stowHttpStatus(0, 0), 400);
});
