import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { readPart10 } from '../codec/index.ts';
import { type AnalysisParams, type AnalysisResult, INGEST_STATUS, InstanceAnalysis } from './analysis.ts';
import { blobKeyFor } from './keys.ts';

const corpus = new URL('../../../shared/data/dicom/', import.meta.url);
const FILES = [
  'transfer-syntax/ct1-explicit-vr-le.dcm',
  'transfer-syntax/ct1-implicit-vr-le.dcm',
  'transfer-syntax/ct1-explicit-vr-be.dcm',
  'multiframe/enhanced-ct-2f-rle-bot.dcm',
  'multiframe/nm-heart-13frames-dcm4che.dcm',
  'multiframe/enhanced-ct-2f-jpegls-near-lossless.dcm',
];

/** The data set bytes of a Part 10 file and its transfer syntax. */
function datasetOf(name: string): { bytes: Buffer; transferSyntaxUid: string } {
  const file = readFileSync(new URL(name, corpus));
  const metaEnd = 144 + file.readUInt32LE(140);
  return { bytes: file.subarray(metaEnd), transferSyntaxUid: readPart10(file).transferSyntax.uid };
}

function analyse(bytes: Buffer, params: AnalysisParams, chunk: number): AnalysisResult {
  const a = new InstanceAnalysis(params);
  for (let at = 0; at < bytes.length; at += chunk) a.push(bytes.subarray(at, at + chunk));
  assert.equal(a.bytes, bytes.length);
  return a.end();
}

describe('InstanceAnalysis', () => {
  for (const name of FILES) {
    test(`${name}: the same record whatever the chunking, SHA-256 of the bytes, blob key and size`, () => {
      const { bytes, transferSyntaxUid } = datasetOf(name);
      const params: AnalysisParams = {
        transferSyntaxUid,
        headerLength: 300,
        source: { aeTitle: 'MODALITY' },
      };
      const whole = analyse(bytes, params, bytes.length);
      assert.equal(whole.kind, 'record');
      if (whole.kind !== 'record') return;
      const checksum = createHash('sha256').update(bytes).digest('hex');
      const i = whole.record.instance;
      assert.equal(i.checksum, checksum);
      assert.equal(i.blobKey, blobKeyFor(i.sopInstanceUid, checksum));
      assert.equal(i.size, 300 + bytes.length);
      assert.equal(i.sourceAETitle, 'MODALITY');
      assert.ok(i.metadata.length > 100);
      for (const size of [1, 7, 4096]) {
        const r = analyse(bytes, params, size);
        assert.equal(r.kind, 'record');
        if (r.kind !== 'record') continue;
        const { receivedAt: _a, ...a } = r.record.instance;
        const { receivedAt: _b, ...b } = whole.record.instance;
        assert.deepEqual({ ...r.record, instance: a }, { ...whole.record, instance: b }, `chunks of ${size}`);
      }
    });
  }

  test('frames located without an offset table: 8 fragments of 2 JPEG-LS frames, split where each frame starts', () => {
    const { bytes, transferSyntaxUid } = datasetOf('multiframe/enhanced-ct-2f-jpegls-near-lossless.dcm');
    for (const size of [1, 7, 4096, bytes.length]) {
      const r = analyse(bytes, { transferSyntaxUid, headerLength: 0, source: {} }, size);
      assert.equal(r.kind, 'record');
      if (r.kind !== 'record') continue;
      const frames = JSON.parse(r.record.instance.frameOffsets ?? 'null') as [number, number][][] | null;
      assert.ok(frames, `chunks of ${size}: frames located`);
      assert.deepEqual(
        frames!.map((f) => f.map(([, length]) => length)),
        [
          [8192, 8192, 8192, 5964],
          [8192, 8192, 8192, frames![1]![3]![1]],
        ],
      );
      // Each frame starts with a JPEG SOI marker where its first fragment is.
      for (const f of frames!) assert.equal(bytes.readUInt16BE(f[0]![0]), 0xffd8);
    }
  });

  test('a data set that is not what the request announced is rejected (A900), a malformed one C000', () => {
    const { bytes, transferSyntaxUid } = datasetOf(FILES[0]!);
    const base = { transferSyntaxUid, headerLength: 0, source: {} };
    const other = analyse(bytes, { ...base, expected: { sopInstanceUid: '1.2.3' } }, 4096);
    assert.deepEqual(other, {
      kind: 'rejected',
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: 'SOP Instance UID of the data set differs from the request',
    });
    // An element header whose length runs past the end of the data.
    const broken = Buffer.from([0x08, 0x00, 0x16, 0x00, 0x55, 0x49, 0xff, 0x7f, 0x31, 0x2e]);
    const r = analyse(broken, base, 3);
    assert.equal(r.kind, 'rejected');
    if (r.kind === 'rejected') {
      assert.equal(r.status, INGEST_STATUS.CannotUnderstand);
      assert.match(r.comment, /^cannot parse the data set: /);
    }
  });
});
