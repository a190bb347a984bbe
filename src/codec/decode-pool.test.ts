/**
 * The decode workers: frames decoded in a worker thread are the frames decoded here, byte for byte;
 * a multi-frame data set decompresses through them; errors keep their code; released, the pool stops
 * and frames decode on this thread again.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { threadId } from 'node:worker_threads';
import { formatOf, framesOf, readCorpus } from '../../test/helpers/frames.ts';
import { PixelDataTag } from '../core/index.ts';
import { decodeWorkerStats, startDecodeWorkers } from './decode-pool.ts';
import { decodeFrame, decompressDataset } from './index.ts';
import { decodeFrameHere } from './pixel-decode.ts';

const FILES = [
  'transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm',
  'transfer-syntax/ct1-rle-multi-fragment-fo.dcm',
  'transfer-syntax/ct1-j2k-lossy-wg04.dcm',
  'transfer-syntax/mr-jpeg-lossless-sv1-dcm4che.dcm',
  'transfer-syntax/mr4-jpeg-extended-wg04.dcm',
  'multiframe/enhanced-ct-2f-jpegls-near-lossless.dcm',
];

describe('decode workers', { timeout: 120_000 }, () => {
  test('frames decoded in a worker thread equal those decoded here; errors keep their code; release stops it', async () => {
    const release = startDecodeWorkers(2);
    try {
      assert.equal(decodeWorkerStats().on, true);
      let frames = 0;
      for (const rel of FILES) {
        const { ds, ts } = readCorpus(rel);
        const format = formatOf(ds);
        const all = framesOf(ds);
        const off = await Promise.all(all.map((f) => decodeFrame(f, ts, format)));
        for (const [i, f] of all.entries()) {
          const here = await decodeFrameHere(f, ts, format);
          assert.ok(off[i]!.pixels.equals(here.pixels), `${rel} frame ${i + 1}`);
          assert.equal(off[i]!.photometricInterpretation, here.photometricInterpretation);
          assert.equal(off[i]!.planarConfiguration, here.planarConfiguration);
          frames++;
        }
        // The whole data set through the workers (frames in parallel) equals its decompression here.
        const viaWorkers = (await decompressDataset(ds, ts)).bytes(PixelDataTag)!;
        assert.ok(
          viaWorkers.equals(
            Buffer.concat(
              await Promise.all(all.map((f) => decodeFrameHere(f, ts, format))).then((d) =>
                d.map((x) => x.pixels),
              ),
            ),
          ),
        );
      }
      const stats = decodeWorkerStats();
      assert.ok(
        stats.decoded >= frames * 2,
        `${stats.decoded} frames decoded by the workers, ${frames * 2} expected`,
      );
      assert.ok(stats.workers >= 1 && stats.workers <= 2, `${stats.workers} workers`);
      assert.ok(
        stats.threadIds.length >= 1 && !stats.threadIds.includes(threadId),
        `threads ${stats.threadIds}`,
      );
      // A corrupt frame: the worker's CodecError, code and all.
      const { ds, ts } = readCorpus(FILES[0]!);
      await assert.rejects(decodeFrame(Buffer.from('not a JPEG-LS stream at all'), ts, formatOf(ds)), {
        code: 'ERR_CODEC_DECODE',
      });
    } finally {
      await release();
    }
    assert.equal(decodeWorkerStats().on, false);
    // Off again: decoded on this thread, and the same.
    const { ds, ts } = readCorpus(FILES[1]!);
    const [f] = framesOf(ds);
    const again = await decodeFrame(f!, ts, formatOf(ds));
    assert.ok(again.pixels.equals((await decodeFrameHere(f!, ts, formatOf(ds))).pixels));
    assert.equal(decodeWorkerStats().decoded, 0);
  });
});
