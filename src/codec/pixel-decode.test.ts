/**
 * Decoding encapsulated Pixel Data without outside tools: RLE from hand-made segments (PS3.5 Annex G),
 * the corpus's compressed ct1 and mr4 files against their native or differently compressed twins,
 * HTJ2K through OpenJPH's own encoder (no HTJ2K file in the corpus), data set decompression, and corrupt
 * input. The comparisons with DCMTK's and GDCM's decompressors are in pixel-decode.int.test.ts.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { formatOf, framesOf, readCorpus } from '../../test/helpers/frames.ts';
import { PixelDataTag } from '../core/index.ts';
import {
  canDecode,
  decodeFrame,
  decompressDataset,
  encodeDataset,
  type PixelFormat,
  readPart10,
} from './index.ts';

const TIMEOUT = { timeout: 60_000 };

const RLE = '1.2.840.10008.1.2.5';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const JPEG_EXTENDED = '1.2.840.10008.1.2.4.51';
const JPEG_LOSSLESS = '1.2.840.10008.1.2.4.57';
const JPEG_LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';
const JPEG_LS = '1.2.840.10008.1.2.4.80';
const JPEG_LS_NEAR = '1.2.840.10008.1.2.4.81';
const J2K_LOSSLESS = '1.2.840.10008.1.2.4.90';
const J2K = '1.2.840.10008.1.2.4.91';
const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';
const HTJ2K_RPCL = '1.2.840.10008.1.2.4.202';
const HTJ2K = '1.2.840.10008.1.2.4.203';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** The native Pixel Data of a file, decompressed when it is encapsulated. */
async function nativePixels(rel: string): Promise<Buffer> {
  const { ds, ts } = readCorpus(rel);
  return (await decompressDataset(ds, ts)).bytes(PixelDataTag)!;
}

/** Max and mean absolute difference of two 16-bit little-endian sample arrays. */
function difference(a: Buffer, b: Buffer, signed: boolean): { max: number; mean: number } {
  assert.equal(a.length, b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i += 2) {
    const d = Math.abs(signed ? a.readInt16LE(i) - b.readInt16LE(i) : a.readUInt16LE(i) - b.readUInt16LE(i));
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / (a.length / 2) };
}

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal((err as { code?: string }).code, 'ERR_CODEC_DECODE', String(err));
    assert.equal((err as Error).name, 'CodecError');
    assert.match((err as Error).message, pattern);
    return true;
  });
}

describe('canDecode', () => {
  test('the supported encapsulated syntaxes, and nothing else', () => {
    for (const uid of [
      RLE,
      JPEG_BASELINE,
      JPEG_EXTENDED,
      JPEG_LOSSLESS,
      JPEG_LOSSLESS_SV1,
      JPEG_LS,
      JPEG_LS_NEAR,
      J2K_LOSSLESS,
      J2K,
      HTJ2K_LOSSLESS,
      HTJ2K_RPCL,
      HTJ2K,
    ]) {
      assert.equal(canDecode(uid), true, uid);
    }
    for (const uid of [
      '1.2.840.10008.1.2',
      EXPLICIT_LE,
      '1.2.840.10008.1.2.4.100',
      '1.2.840.10008.1.2.4.92',
      '1.2.3',
    ]) {
      assert.equal(canDecode(uid), false, uid);
    }
  });
});

/** An RLE frame (PS3.5 §G.5): the 64-byte header of segment offsets, then the segments. */
function rleFrame(segments: readonly number[][]): Buffer {
  const header = Buffer.alloc(64);
  header.writeUInt32LE(segments.length, 0);
  let at = 64;
  segments.forEach((s, i) => {
    header.writeUInt32LE(at, 4 + 4 * i);
    at += s.length;
  });
  return Buffer.concat([header, ...segments.map((s) => Buffer.from(s))]);
}

const mono8: PixelFormat = {
  rows: 2,
  columns: 3,
  samplesPerPixel: 1,
  bitsAllocated: 8,
  bitsStored: 8,
  pixelRepresentation: 0,
  photometricInterpretation: 'MONOCHROME2',
};

describe('RLE Lossless (PS3.5 Annex G)', () => {
  test('PackBits literal and replicate runs, a -128 no-op, and a pad byte past the end', async () => {
    // 2 literal (1 -> copy 2), no-op (0x80), replicate 9 x 3 (-2 = 0xFE), literal 1 (0 -> copy 1), pad
    const frame = rleFrame([[0x01, 5, 6, 0x80, 0xfe, 9, 0x00, 7, 0x00]]);
    const out = await decodeFrame(frame, RLE, mono8);
    assert.deepEqual([...out.pixels], [5, 6, 9, 9, 9, 7]);
    assert.equal(out.photometricInterpretation, 'MONOCHROME2');
  });

  test('16-bit samples: most significant byte segment first, written little endian', async () => {
    const frame = rleFrame([
      [0x01, 0x12, 0xab],
      [0x01, 0x34, 0xcd],
    ]);
    const f = { ...mono8, rows: 1, columns: 2, bitsAllocated: 16, bitsStored: 16 };
    const out = await decodeFrame(frame, RLE, f);
    assert.deepEqual([...out.pixels], [0x34, 0x12, 0xcd, 0xab]);
  });

  test('signed 12-bit samples come out sign-extended to 16 bits', async () => {
    // 0x0FFF is -1 and 0x0800 is -2048 in 12 bits; 0x07FF is 2047
    const frame = rleFrame([
      [0x02, 0x0f, 0x08, 0x07],
      [0x02, 0xff, 0x00, 0xff],
    ]);
    const f = { ...mono8, rows: 1, columns: 3, bitsAllocated: 16, bitsStored: 12, pixelRepresentation: 1 };
    const out = await decodeFrame(frame, RLE, f);
    assert.deepEqual(
      [out.pixels.readInt16LE(0), out.pixels.readInt16LE(2), out.pixels.readInt16LE(4)],
      [-1, -2048, 2047],
    );
  });

  test('color: one segment per sample; the data set Planar Configuration decides the layout (as dcmdrle)', async () => {
    const frame = rleFrame([
      [0x01, 1, 2],
      [0x01, 3, 4],
      [0x01, 5, 6],
    ]);
    const rgb = { ...mono8, rows: 1, columns: 2, samplesPerPixel: 3, photometricInterpretation: 'RGB' };
    const byPixel = await decodeFrame(frame, RLE, { ...rgb, planarConfiguration: 0 });
    assert.deepEqual([...byPixel.pixels], [1, 3, 5, 2, 4, 6]);
    assert.equal(byPixel.planarConfiguration, 0);
    assert.equal(byPixel.photometricInterpretation, 'RGB');
    const absent = await decodeFrame(frame, RLE, rgb);
    assert.deepEqual([...absent.pixels], [1, 3, 5, 2, 4, 6]);
    const byPlane = await decodeFrame(frame, RLE, { ...rgb, planarConfiguration: 1 });
    assert.deepEqual([...byPlane.pixels], [1, 2, 3, 4, 5, 6]);
    assert.equal(byPlane.planarConfiguration, 1);
  });

  test('malformed frames are ERR_CODEC_DECODE naming the syntax', async () => {
    await rejects(
      decodeFrame(rleFrame([[0x00, 5]]), RLE, mono8),
      /RLE Lossless.*segment 1 ends after 1 of 6 bytes/,
    );
    await rejects(
      decodeFrame(rleFrame([[0xfb, 1, 0xfb, 1, 0xfb, 1]]), RLE, mono8),
      /segment 1 has 4 bytes left after its 6 samples/,
    );
    await rejects(decodeFrame(rleFrame([[0x05, 1, 2]]), RLE, mono8), /literal run overruns the segment/);
    await rejects(decodeFrame(rleFrame([[0xfb]]), RLE, mono8), /replicate run overruns/);
    await rejects(
      decodeFrame(
        rleFrame([
          [0xfb, 1],
          [0xfb, 1],
        ]),
        RLE,
        mono8,
      ),
      /header says 2 segments.*need 1/,
    );
    await rejects(decodeFrame(Buffer.alloc(20), RLE, mono8), /shorter than the 64-byte RLE header/);
    const bad = rleFrame([[0xfb, 1]]);
    bad.writeUInt32LE(9999, 4);
    await rejects(decodeFrame(bad, RLE, mono8), /segment 1 offset 9999 is outside the frame/);
  });
});

describe('lossless syntaxes give the native original back', () => {
  const original = 'transfer-syntax/ct1-implicit-vr-le.dcm';
  for (const rel of [
    'transfer-syntax/ct1-rle-multi-fragment-fo.dcm',
    'transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm',
  ]) {
    test(`${rel} decodes to the Pixel Data of ${original} (signed 16-bit)`, TIMEOUT, async () => {
      const native = readCorpus(original).ds.bytes(PixelDataTag)!;
      const { ds, ts } = readCorpus(rel);
      const frames = framesOf(ds);
      assert.equal(frames.length, 1);
      const out = await decodeFrame(frames[0]!, ts, formatOf(ds));
      assert.equal(out.pixels.length, 512 * 512 * 2);
      assert.ok(out.pixels.equals(native), 'pixels differ from the native original');
      assert.equal(out.photometricInterpretation, 'MONOCHROME2');
    });
  }
});

describe('lossy and cross-codec comparisons without outside tools', () => {
  test('JPEG 2000 lossy ct1 is close to the native original', TIMEOUT, async () => {
    const native = await nativePixels('transfer-syntax/ct1-implicit-vr-le.dcm');
    const lossy = await nativePixels('transfer-syntax/ct1-j2k-lossy-wg04.dcm');
    // Observed: max 352, mean 25.9 over values -2000..2278 (a 37:1 compression); garbage or a byte-order or
    // sign error gives a mean in the hundreds or thousands.
    const d = difference(lossy, native, true);
    assert.ok(d.max <= 400, `max abs difference ${d.max}`);
    assert.ok(d.mean <= 30, `mean abs difference ${d.mean}`);
  });

  test('JPEG 2000 lossless mr4 is close to the JPEG Extended (12-bit lossy) mr4', TIMEOUT, async () => {
    const j2k = await nativePixels('transfer-syntax/mr4-j2k-lossless-wg04.dcm');
    const jpeg = await nativePixels('transfer-syntax/mr4-jpeg-extended-wg04.dcm');
    // Observed: max 40, mean 3.06 over values 0..2150.
    const d = difference(j2k, jpeg, false);
    assert.ok(d.max <= 64, `max abs difference ${d.max}`);
    assert.ok(d.mean <= 5, `mean abs difference ${d.mean}`);
  });
});

describe('HTJ2K (encoded here with OpenJPH, the corpus has none)', () => {
  interface Encoder {
    getDecodedBuffer(info: object): Uint8Array;
    encode(): void;
    getEncodedBuffer(): Uint8Array;
    setQuality(lossless: boolean, step: number): void;
    delete(): void;
  }
  async function htj2k(pixels: Buffer, info: Record<string, number | boolean>): Promise<Buffer> {
    const factory = createRequire(import.meta.url)('@cornerstonejs/codec-openjph');
    const m = (await factory({ print: () => {}, printErr: () => {} })) as { HTJ2KEncoder: new () => Encoder };
    const encoder = new m.HTJ2KEncoder();
    try {
      encoder.getDecodedBuffer(info).set(pixels);
      encoder.setQuality(true, 0);
      encoder.encode();
      return Buffer.from(encoder.getEncodedBuffer());
    } finally {
      encoder.delete();
    }
  }

  test('signed 16-bit ct1 round trips losslessly, in each HTJ2K syntax', TIMEOUT, async () => {
    const { ds } = readCorpus('transfer-syntax/ct1-implicit-vr-le.dcm');
    const native = ds.bytes(PixelDataTag)!;
    const stream = await htj2k(native, {
      width: 512,
      height: 512,
      bitsPerSample: 16,
      componentCount: 1,
      isSigned: true,
      isUsingColorTransform: false,
    });
    for (const uid of [HTJ2K_LOSSLESS, HTJ2K_RPCL, HTJ2K]) {
      const out = await decodeFrame(stream, uid, formatOf(ds));
      assert.ok(out.pixels.equals(native), uid);
    }
  });

  test(
    'RGB with the reversible color transform: YBR_RCT comes out RGB, color-by-pixel',
    TIMEOUT,
    async () => {
      const rgb = Buffer.alloc(64 * 48 * 3);
      for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 7 + (i >> 5)) & 0xff;
      const stream = await htj2k(rgb, {
        width: 64,
        height: 48,
        bitsPerSample: 8,
        componentCount: 3,
        isSigned: false,
        isUsingColorTransform: true,
      });
      const format: PixelFormat = {
        rows: 48,
        columns: 64,
        samplesPerPixel: 3,
        bitsAllocated: 8,
        bitsStored: 8,
        pixelRepresentation: 0,
        photometricInterpretation: 'YBR_RCT',
        planarConfiguration: 0,
      };
      const out = await decodeFrame(stream, HTJ2K_LOSSLESS, format);
      assert.ok(out.pixels.equals(rgb));
      assert.equal(out.photometricInterpretation, 'RGB');
      assert.equal(out.planarConfiguration, 0);
    },
  );
});

describe('decompressDataset', () => {
  test(
    'multi-frame JPEG Extended: 2 native frames, Lossy Image Compression kept at 01, OW',
    TIMEOUT,
    async () => {
      const { ds, ts } = readCorpus('multiframe/enhanced-ct-2f-jpeg-extended.dcm');
      const out = await decompressDataset(ds, ts);
      const el = out.get(PixelDataTag);
      assert.equal(el?.kind, 'value');
      assert.equal(el?.vr, 'OW');
      assert.equal(out.bytes(PixelDataTag)!.length, 512 * 512 * 1 * 2 * 2);
      assert.equal(out.string(0x00280004), 'MONOCHROME2');
      assert.equal(out.has(0x00280006), false);
      assert.equal(out.string(0x00282110), '01');
      // the input is not modified
      assert.equal(ds.get(PixelDataTag)?.kind, 'encapsulated');
    },
  );

  test(
    'multi-frame JPEG Baseline YBR_FULL_422 becomes RGB, color-by-pixel, lossy flag set',
    TIMEOUT,
    async () => {
      const { ds, ts } = readCorpus('multiframe/lena-2f-jpeg-fragments-orthanc.dcm');
      assert.equal(ds.has(0x00282110), false);
      const out = await decompressDataset(ds, ts);
      assert.equal(out.bytes(PixelDataTag)!.length, 512 * 512 * 3 * 1 * 2);
      assert.equal(out.get(PixelDataTag)?.vr, 'OB');
      assert.equal(out.string(0x00280004), 'RGB');
      assert.equal(out.number(0x00280006), 0);
      assert.equal(out.string(0x00282110), '01');
      assert.equal(ds.string(0x00280004), 'YBR_FULL_422');
      assert.equal(ds.has(0x00282110), false);
      // encodes in a native syntax and reads back with the same pixels
      const back = readPart10(encodeDataset(out, EXPLICIT_LE)).dataset;
      assert.ok(back.bytes(PixelDataTag)!.equals(out.bytes(PixelDataTag)!));
    },
  );

  test('multi-frame lossless syntaxes keep Lossy Image Compression as they had it', TIMEOUT, async () => {
    for (const [rel, frames, lossy] of [
      ['multiframe/enhanced-ct-2f-jpeg-lossless-p14.dcm', 2, '00'],
      ['multiframe/enhanced-ct-2f-rle-bot.dcm', 2, '00'],
      ['multiframe/us-palette-10f-rle-dcm4che.dcm', 10, undefined],
      ['multiframe/enhanced-ct-2f-jpegls-near-lossless.dcm', 2, '01'],
    ] as const) {
      const { ds, ts } = readCorpus(rel);
      const out = await decompressDataset(ds, ts);
      const f = formatOf(ds);
      assert.equal(
        out.bytes(PixelDataTag)!.length,
        f.rows * f.columns * f.samplesPerPixel * (f.bitsAllocated / 8) * frames,
        rel,
      );
      assert.equal(out.string(0x00282110), lossy, rel);
      assert.equal(out.string(0x00280004), ds.string(0x00280004), rel);
      assert.doesNotThrow(() => encodeDataset(out, EXPLICIT_LE), rel);
    }
  });

  test('a data set without encapsulated Pixel Data comes back as it is', async () => {
    const { ds } = readCorpus('transfer-syntax/ct1-implicit-vr-le.dcm');
    assert.equal(await decompressDataset(ds, '1.2.840.10008.1.2'), ds);
  });

  test('a syntax without decoder is ERR_CODEC_DECODE', async () => {
    const { ds } = readCorpus('transfer-syntax/ct1-rle-multi-fragment-fo.dcm');
    await rejects(decompressDataset(ds, '1.2.840.10008.1.2.4.100'), /MPEG2.*no decoder/);
    await rejects(decodeFrame(Buffer.alloc(10), '1.2.3.4', mono8), /no decoder/);
  });
});

describe('corrupt input is ERR_CODEC_DECODE, never a crash or a hang', () => {
  const files = [
    'transfer-syntax/ct1-rle-multi-fragment-fo.dcm',
    'transfer-syntax/us-jpeg-baseline-ybr.dcm',
    'transfer-syntax/mr4-jpeg-extended-wg04.dcm',
    'transfer-syntax/mr-jpeg-lossless-sv1-dcm4che.dcm',
    'multiframe/enhanced-ct-2f-jpeg-lossless-p14.dcm',
    'transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm',
    'transfer-syntax/ct2-jpegls-near-lossless-wg04.dcm',
    'transfer-syntax/mr4-j2k-lossless-wg04.dcm',
    'transfer-syntax/ct1-j2k-lossy-wg04.dcm',
  ];
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff));
  for (const rel of files) {
    test(rel, TIMEOUT, async () => {
      const { ds, ts } = readCorpus(rel);
      const frame = framesOf(ds)[0]!;
      const format = formatOf(ds);
      await rejects(decodeFrame(frame.subarray(0, frame.length >> 1), ts, format), /cannot decode a frame/);
      await rejects(decodeFrame(frame.subarray(0, 100), ts, format), /cannot decode a frame/);
      await rejects(decodeFrame(garbage, ts, format), /cannot decode a frame/);
      await rejects(decodeFrame(Buffer.concat([frame.subarray(0, 2), garbage]), ts, format), /cannot decode/);
      await rejects(decodeFrame(Buffer.alloc(0), ts, format), /cannot decode a frame/);
      // a frame that does not match the data set's attributes
      await rejects(
        decodeFrame(frame, ts, { ...format, rows: format.rows / 2 }),
        /Rows|decoded \d+ bytes|ends after|left after/,
      );
      await rejects(
        decodeFrame(frame, ts, { ...format, bitsAllocated: 1 }),
        /Bits Allocated 1 is not supported/,
      );
    });
  }

  test(
    'JPEG-LS: a marker inside the scan data is refused before CharLS (which took 5-10 s over such frames)',
    TIMEOUT,
    async () => {
      const { ds, ts } = readCorpus('transfer-syntax/ct1-jpegls-lossless-fragmented-bot.dcm');
      const frame = Buffer.from(framesOf(ds)[0]!);
      frame[50_000] = 0xff;
      frame[50_001] = 0x90;
      await rejects(decodeFrame(frame, ts, formatOf(ds)), /marker inside its scan data/);
    },
  );

  test('12-bit JPEG Extended: bit errors in the entropy-coded data are caught', TIMEOUT, async () => {
    const { ds, ts } = readCorpus('transfer-syntax/mr4-jpeg-extended-wg04.dcm');
    const frame = Buffer.from(framesOf(ds)[0]!);
    frame[4000] = 0xff; // an End Of Image marker inside the scan
    frame[4001] = 0xd9;
    await rejects(decodeFrame(frame, ts, formatOf(ds)), /marker FFD9 inside entropy-coded data/);
  });
});
