/**
 * Stream reading keeps only the header: a large Pixel Data passes through as references, a header-only
 * read stops pulling from the source, and bulk values are read back from the source on demand.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CodecError } from '../core/index.ts';
import { Tag } from '../dictionary/index.ts';
import { Dataset } from './dataset.ts';
import { readPart10File, readPart10Stream } from './part10.ts';
import { writePart10 } from './writer.ts';

/** A Part 10 header whose last element is the start of an OW Pixel Data of `pixelBytes` bytes. */
function header(pixelBytes: number): Buffer {
  const ds = new Dataset();
  ds.setValues(Tag.SOPClassUID, ['1.2.840.10008.5.1.4.1.1.7.3']);
  ds.setValues(Tag.SOPInstanceUID, ['1.2.3.4']);
  ds.setValues(Tag.PatientName, [{ Alphabetic: 'Stream^Test' }]);
  ds.setValues(Tag.NumberOfFrames, [pixelBytes / (512 * 512 * 2)], 'IS');
  ds.setValues(Tag.Rows, [512]);
  ds.setValues(Tag.Columns, [512]);
  ds.setValues(Tag.BitsAllocated, [16]);
  const head = writePart10({ dataset: ds }, '1.2.840.10008.1.2.1');
  const pixel = Buffer.alloc(12);
  pixel.writeUInt32LE(0x00107fe0, 0);
  pixel.write('OW', 4, 'latin1');
  pixel.writeUInt32LE(pixelBytes, 8);
  return Buffer.concat([head, pixel]);
}

test('a 256 MB Pixel Data streams through with memory bounded by the header', async () => {
  const pixelBytes = 512 * 512 * 2 * 512; // 256 MiB
  const head = header(pixelBytes);
  const chunk = Buffer.alloc(64 * 1024, 0x5a); // one buffer, sliced: the source allocates nothing
  let pulled = 0;
  async function* source(): AsyncGenerator<Buffer> {
    yield head;
    for (let sent = 0; sent < pixelBytes; sent += chunk.length) {
      pulled += chunk.length;
      yield chunk.subarray(0, Math.min(chunk.length, pixelBytes - sent));
    }
  }
  global.gc?.();
  const before = process.memoryUsage();
  const file = await readPart10Stream(source());
  const after = process.memoryUsage();
  assert.equal(pulled, pixelBytes);
  const pixel = file.dataset.get(Tag.PixelData);
  assert.ok(pixel?.kind === 'bulk');
  assert.equal(pixel.bulk.offset, head.length);
  assert.equal(pixel.bulk.length, pixelBytes);
  assert.equal(file.dataset.string(Tag.SOPInstanceUID), '1.2.3.4');
  // Nothing of the 256 MiB is retained: growth stays far below the value's size.
  const grown = after.arrayBuffers + after.heapUsed - (before.arrayBuffers + before.heapUsed);
  assert.ok(grown < 32 * 1024 * 1024, `memory grew by ${grown} bytes`);
});

test('a header-only stream read stops pulling from the source at Pixel Data', async () => {
  const head = header(512 * 512 * 2 * 4);
  let pulledAfterHeader = 0;
  async function* source(): AsyncGenerator<Buffer> {
    yield head;
    for (let i = 0; i < 1000; i++) {
      pulledAfterHeader++;
      yield Buffer.alloc(64 * 1024);
    }
  }
  const file = await readPart10Stream(source(), { stopBeforeTag: Tag.PixelData });
  assert.equal(file.stoppedAt, Tag.PixelData);
  assert.equal(file.dataset.has(Tag.PixelData), false);
  assert.ok(pulledAfterHeader <= 1, `pulled ${pulledAfterHeader} chunks past the header`);
});

test('readPart10File leaves Pixel Data on disk and reads it back on demand', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-stream-'));
  try {
    const pixels = Buffer.alloc(512 * 512 * 2 * 3);
    for (let i = 0; i < pixels.length; i += 2) pixels.writeUInt16LE(i & 0xffff, i);
    const path = join(dir, 'big.dcm');
    await writeFile(path, Buffer.concat([header(pixels.length), pixels]));
    const file = await readPart10File(path);
    const pixel = file.dataset.get(Tag.PixelData);
    assert.ok(pixel?.kind === 'bulk');
    assert.ok((await pixel.bulk.read()).equals(pixels));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('readPart10File on a truncated file names the element that runs past the end', async () => {
  const path = new URL('../../../shared/data/dicom/malformed/truncated-3gb-bulk-dcm4che.dcm', import.meta.url)
    .pathname;
  await assert.rejects(readPart10File(path), (err: unknown) => {
    assert.ok(err instanceof CodecError);
    assert.equal(err.code, 'ERR_CODEC_TRUNCATED');
    assert.equal(err.tag, Tag.PixelData);
    assert.equal(err.offset, 1908);
    return true;
  });
});
