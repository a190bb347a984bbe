/**
 * Decoding off the event loop: how long the event loop goes without turning while compressed frames
 * decode on it, and while they decode in the decode workers (src/codec/decode-pool.ts), same frames,
 * same run.
 *
 *   npm run bench:decode -- [--size 3000] [--frames 4]
 *
 * Frames: one JPEG 2000 frame of the corpus (ct1, 512x512 16-bit, OpenJPEG) for the per-frame time, and
 * a generated SIZE x SIZE 16-bit frame encoded here as HTJ2K lossless with OpenJPH's encoder (the
 * corpus has no large compressed frame), decoded FRAMES times in turn as a multi-frame decompression
 * does. A 1 ms interval timer records the longest gap between its ticks while they decode; the decoded
 * pixels are checked against the source after the clock stopped.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFrame, frameFragments, readPart10, startDecodeWorkers } from '../src/codec/index.ts';
import { decodeFrameHere } from '../src/codec/pixel-decode.ts';
import { readFlags } from './common.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let SIZE = 3000;
let FRAMES = 4;
readFlags(process.argv.slice(2), (flag, read) => {
  if (flag === '--size') SIZE = read.int(64, 8192);
  else if (flag === '--frames') FRAMES = read.int(1, 100);
  else return false;
  return true;
});
const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';

const j2k = readPart10(
  readFileSync(path.join(ROOT, '..', 'shared/data/dicom/transfer-syntax/ct1-j2k-lossy-wg04.dcm')),
);
const el = j2k.dataset.get(0x7fe00010);
if (el?.kind !== 'encapsulated') throw new Error('ct1-j2k: no encapsulated Pixel Data');
const j2kFrame = Buffer.concat(frameFragments(j2k.dataset, el)[0]!.map((i) => el.fragments[i]!.bytes!));
const j2kFormat = {
  rows: 512,
  columns: 512,
  samplesPerPixel: 1,
  bitsAllocated: 16,
  bitsStored: 16,
  pixelRepresentation: 1,
  photometricInterpretation: 'MONOCHROME2',
};
await decodeFrameHere(j2kFrame, j2k.transferSyntax.uid, j2kFormat);
let t = performance.now();
for (let i = 0; i < 10; i++) await decodeFrameHere(j2kFrame, j2k.transferSyntax.uid, j2kFormat);
console.log(
  `JPEG 2000 512x512 16-bit (ct1): ${((performance.now() - t) / 10).toFixed(1)} ms per frame on the calling thread`,
);

// A large frame: a ramp with noise, 12 bits stored, encoded losslessly with OpenJPH.
const pixels = Buffer.alloc(SIZE * SIZE * 2);
let seed = 1;
for (let i = 0; i < SIZE * SIZE; i++) {
  seed = (seed * 1103515245 + 12345) >>> 0;
  pixels.writeUInt16LE(((i % SIZE) * 4 + (seed >>> 24)) & 0x0fff, 2 * i);
}
interface Encoder {
  getDecodedBuffer(info: object): Uint8Array;
  setQuality(lossless: boolean, step: number): void;
  encode(): void;
  getEncodedBuffer(): Uint8Array;
  delete(): void;
}
const factory = createRequire(import.meta.url)('@cornerstonejs/codec-openjph');
const codec = (await factory({ print: () => {}, printErr: () => {} })) as { HTJ2KEncoder: new () => Encoder };
const encoder = new codec.HTJ2KEncoder();
encoder
  .getDecodedBuffer({
    width: SIZE,
    height: SIZE,
    bitsPerSample: 16,
    componentCount: 1,
    isSigned: false,
    isUsingColorTransform: false,
  })
  .set(pixels);
encoder.setQuality(true, 0);
encoder.encode();
const big = Buffer.from(encoder.getEncodedBuffer());
encoder.delete();
const format = { ...j2kFormat, rows: SIZE, columns: SIZE, pixelRepresentation: 0 };
await decodeFrameHere(big, HTJ2K_LOSSLESS, format);

for (const mode of ['on the event loop', 'in the decode workers'] as const) {
  const release = mode === 'in the decode workers' ? startDecodeWorkers() : undefined;
  if (release) await decodeFrame(big, HTJ2K_LOSSLESS, format); // the worker starts and loads its codec
  let last = performance.now();
  let longest = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  t = performance.now();
  const out = [];
  for (let i = 0; i < FRAMES; i++) out.push(await decodeFrame(big, HTJ2K_LOSSLESS, format));
  const ms = (performance.now() - t) / FRAMES;
  await new Promise((r) => setTimeout(r, 20));
  clearInterval(tick);
  for (const d of out)
    if (!d.pixels.equals(pixels)) throw new Error(`${mode}: decoded pixels differ from the source`);
  console.log(
    `HTJ2K ${SIZE}x${SIZE} 16-bit (${(big.length / 2 ** 20).toFixed(1)} MiB), ${FRAMES} frames ${mode}: ` +
      `${ms.toFixed(0)} ms per frame; the event loop went ${longest.toFixed(1)} ms at most without turning`,
  );
  await release?.();
}
