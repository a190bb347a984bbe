/**
 * toEightBit and renderFrame (rendered resources, PS3.18 10.4.1.1.3): the linear VOI function of
 * PS3.3 C.11.2.1.2.1 with the values worked out by hand, MONOCHROME1 inversion, signed stored values
 * through the Modality LUT (rescale), bits above Bits Stored ignored, big endian, RGB planar
 * configurations and YBR_FULL to RGB (PS3.3 C.7.6.3.1.2).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { isDicomError } from '../core/index.ts';
import { canRender, type PixelDescription, paletteTo8Bit, renderFrame, toEightBit } from './render.ts';

const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';

/** A 1-row grey description of `columns` pixels. */
function grey(columns: number, over: Partial<PixelDescription> = {}): PixelDescription {
  return {
    rows: 1,
    columns,
    samplesPerPixel: 1,
    bitsAllocated: 16,
    bitsStored: 16,
    pixelRepresentation: 0,
    photometricInterpretation: 'MONOCHROME2',
    planarConfiguration: 0,
    rescaleSlope: 1,
    rescaleIntercept: 0,
    transferSyntaxUid: EXPLICIT_LE,
    ...over,
  };
}

function u16(values: readonly number[], bigEndian = false): Buffer {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => {
    if (bigEndian) b.writeUInt16BE(v & 0xffff, 2 * i);
    else b.writeUInt16LE(v & 0xffff, 2 * i);
  });
  return b;
}

const unsupported = (err: unknown): boolean => isDicomError(err) && err.code === 'ERR_WEB_RENDER_UNSUPPORTED';

describe('toEightBit: the linear VOI function (PS3.3 C.11.2.1.2.1)', () => {
  test('window center 100, width 11: below, the ramp, above', () => {
    // low = c - 0.5 - (w-1)/2 = 94.5, high = c - 0.5 + (w-1)/2 = 104.5,
    // y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255 in between.
    const px = grey(7);
    const { data, channels } = toEightBit(u16([0, 94, 95, 100, 104, 105, 65535]), px, {
      center: 100,
      width: 11,
    });
    assert.equal(channels, 1);
    // 95: (-4.5/10 + 0.5) * 255 = 12.75; 100: 0.55 * 255 = 140.25; 104: 0.95 * 255 = 242.25
    assert.deepEqual([...data], [0, 0, 13, 140, 242, 255, 255]);
  });

  test('the full 12-bit range (c 2048, w 4096) maps 0 to 0 and 4095 to 255', () => {
    const { data } = toEightBit(u16([0, 2048, 4095]), grey(3, { bitsStored: 12 }), {
      center: 2048,
      width: 4096,
    });
    // 2048: ((2048 - 2047.5) / 4095 + 0.5) * 255 = 127.53
    assert.deepEqual([...data], [0, 128, 255]);
  });

  test('width 1 is a threshold at center - 0.5', () => {
    const { data } = toEightBit(u16([8, 9, 10, 11]), grey(4), { center: 10, width: 1 });
    assert.deepEqual([...data], [0, 0, 255, 255]);
  });

  test("the instance's own window when the request gives none; else the range of the frame", () => {
    const own = toEightBit(u16([94, 100, 105]), grey(3, { windowCenter: 100, windowWidth: 11 }));
    assert.deepEqual([...own.data], [0, 140, 255]);
    const asked = toEightBit(u16([94, 100, 105]), grey(3, { windowCenter: 100, windowWidth: 11 }), {
      center: 0,
      width: 1,
    });
    assert.deepEqual([...asked.data], [255, 255, 255], 'the request wins');
    // No window at all: center (min+max)/2 = 50, width max-min = 100 -> 0 and 100 at the ends.
    const range = toEightBit(u16([0, 50, 100]), grey(3));
    // 50: ((50 - 49.5) / 99 + 0.5) * 255 = 128.79
    assert.deepEqual([...range.data], [0, 129, 255]);
  });

  test('MONOCHROME1 is inverted (minimum white)', () => {
    const px = grey(5, { photometricInterpretation: 'MONOCHROME1' });
    const { data } = toEightBit(u16([0, 95, 100, 104, 200]), px, { center: 100, width: 11 });
    assert.deepEqual([...data], [255, 255 - 13, 255 - 140, 255 - 242, 0]);
  });

  test('8 bits allocated', () => {
    const px = grey(3, { bitsAllocated: 8, bitsStored: 8 });
    const { data } = toEightBit(Buffer.from([0, 128, 255]), px, { center: 128, width: 256 });
    // 128: ((128 - 127.5) / 255 + 0.5) * 255 = 128
    assert.deepEqual([...data], [0, 128, 255]);
  });
});

describe('toEightBit: stored values through the Modality LUT', () => {
  test('signed 16-bit with rescale intercept -1024: a soft tissue window (c 40, w 400)', () => {
    const px = grey(5, { pixelRepresentation: 1, rescaleIntercept: -1024 });
    // stored -1024, 0, 1024, 1064, 3071 -> HU -2048, -1024, 0, 40, 2047
    const { data } = toEightBit(u16([-1024, 0, 1024, 1064, 3071]), px, { center: 40, width: 400 });
    // low = -160, high = 239; 0 HU: ((0 - 39.5) / 399 + 0.5) * 255 = 102.25; 40 HU: 127.82
    assert.deepEqual([...data], [0, 0, 102, 128, 255]);
  });

  test('signed 12 bits stored in 16: sign from bit 11, bits above Bits Stored ignored', () => {
    const px = grey(4, { bitsStored: 12, pixelRepresentation: 1 });
    // 0x0FFF -> -1; 0xF000 | 0x001 -> 1 (high bits are not pixel data); 0x0800 -> -2048; 0xF7FF -> 2047
    const { data } = toEightBit(u16([0x0fff, 0xf001, 0x0800, 0xf7ff]), px, { center: 0.5, width: 2 });
    // c 0.5, w 2: low = -0.5, high = 0.5: -1 -> 0, 1 -> 255
    assert.deepEqual([...data], [0, 255, 0, 255]);
  });

  test('rescale slope and intercept apply before the window', () => {
    const px = grey(3, { rescaleSlope: 2, rescaleIntercept: -100 });
    // stored 50, 100, 150 -> 0, 100, 200; window c 100.5, w 2: low 99, high 101
    const { data } = toEightBit(u16([50, 100, 150]), px, { center: 100.5, width: 2 });
    // 100: ((100 - 100) / 1 + 0.5) * 255 = 127.5 -> 128
    assert.deepEqual([...data], [0, 128, 255]);
  });

  test('big endian 16-bit (Explicit VR Big Endian)', () => {
    const px = grey(3, { transferSyntaxUid: EXPLICIT_BE });
    const { data } = toEightBit(u16([94, 100, 105], true), px, { center: 100, width: 11 });
    assert.deepEqual([...data], [0, 140, 255]);
  });
});

describe('toEightBit: colour', () => {
  const colour = (over: Partial<PixelDescription>): PixelDescription =>
    grey(2, {
      samplesPerPixel: 3,
      bitsAllocated: 8,
      bitsStored: 8,
      photometricInterpretation: 'RGB',
      ...over,
    });

  test('a frame at an odd offset of its buffer (a 16-bit view needs an even one) reads the same', () => {
    const px = grey(4);
    const even = u16([0, 1000, 2000, 4095]);
    const odd = Buffer.concat([Buffer.alloc(1), even]).subarray(1);
    assert.equal(odd.byteOffset % 2, 1);
    assert.deepEqual(
      toEightBit(odd, px, { center: 2048, width: 4096 }),
      toEightBit(even, px, { center: 2048, width: 4096 }),
    );
  });

  test('PALETTE COLOR: stored values through the red, green and blue tables; out of range clamps', () => {
    // 16-bit entries: the high byte; first mapped value 10.
    const table = (f: (i: number) => number): Buffer => u16(Array.from({ length: 4 }, (_, i) => f(i)));
    const lut = (data: Buffer) => ({ entries: 4, firstMapped: 10, bits: 16, data });
    const px = grey(6, {
      photometricInterpretation: 'PALETTE COLOR',
      palette: {
        red: lut(table((i) => i * 0x4000)),
        green: lut(table((i) => 0xffff - i * 0x4000)),
        blue: lut(table(() => 0x8000)),
      },
    });
    const { data, channels } = toEightBit(u16([9, 10, 11, 12, 13, 200]), px);
    assert.equal(channels, 3);
    assert.deepEqual(
      [...data],
      [0, 255, 128, 0, 255, 128, 64, 191, 128, 128, 127, 128, 192, 63, 128, 192, 63, 128],
    );
    // 8-bit entries, one byte each or one per 16-bit word (both are found in files).
    assert.deepEqual(
      [...paletteTo8Bit({ entries: 3, firstMapped: 0, bits: 8, data: Buffer.from([1, 2, 3, 0]) })],
      [1, 2, 3],
    );
    assert.deepEqual(
      [...paletteTo8Bit({ entries: 3, firstMapped: 0, bits: 8, data: u16([1, 2, 3]) })],
      [1, 2, 3],
    );
  });

  test('RGB, interleaved (planar configuration 0) and by plane (1)', () => {
    const interleaved = toEightBit(Buffer.from([255, 0, 0, 0, 0, 255]), colour({}));
    assert.equal(interleaved.channels, 3);
    assert.deepEqual([...interleaved.data], [255, 0, 0, 0, 0, 255]);
    // R plane, G plane, B plane
    const planar = toEightBit(Buffer.from([255, 0, 0, 0, 0, 255]), colour({ planarConfiguration: 1 }));
    assert.deepEqual([...planar.data], [255, 0, 0, 0, 0, 255]);
  });

  test('YBR_FULL to RGB (PS3.3 C.7.6.3.1.2)', () => {
    // Grey: Y 128, Cb = Cr = 128 -> 128, 128, 128. Red: Y 76, Cb 85, Cr 255 ->
    // R = 76 + 1.402 * 127 = 254.05; G = 76 + 0.344136 * 43 - 0.714136 * 127 = 0.10; B = 76 - 1.772 * 43 = -0.20
    const { data, channels } = toEightBit(
      Buffer.from([128, 128, 128, 76, 85, 255]),
      colour({
        photometricInterpretation: 'YBR_FULL',
      }),
    );
    assert.equal(channels, 3);
    assert.deepEqual([...data], [128, 128, 128, 254, 0, 0]);
    const planar = toEightBit(
      Buffer.from([128, 76, 128, 85, 128, 255]),
      colour({ photometricInterpretation: 'YBR_FULL', planarConfiguration: 1 }),
    );
    assert.deepEqual([...planar.data], [128, 128, 128, 254, 0, 0]);
  });

  test('what cannot be converted is ERR_WEB_RENDER_UNSUPPORTED', () => {
    assert.throws(
      () => toEightBit(Buffer.alloc(12), colour({ bitsAllocated: 16, bitsStored: 16 })),
      unsupported,
    );
    assert.throws(() => toEightBit(Buffer.alloc(5), colour({})), unsupported);
    assert.throws(() => toEightBit(Buffer.alloc(3), grey(2)), unsupported);
    assert.throws(() => toEightBit(Buffer.alloc(8), grey(2, { samplesPerPixel: 2 })), unsupported);
    assert.throws(() => toEightBit(Buffer.alloc(6), grey(2, { bitsAllocated: 12 })), unsupported);
  });
});

describe('renderFrame and canRender', () => {
  test('canRender: native, and every compressed syntax the codec decodes; not MPEG-2 or deflated frames', () => {
    assert.equal(canRender('1.2.840.10008.1.2'), true);
    assert.equal(canRender(EXPLICIT_LE), true);
    assert.equal(canRender(EXPLICIT_BE), true);
    for (const ts of ['.4.50', '.4.51', '.4.57', '.4.70', '.4.80', '.4.81', '.4.90', '.4.91', '.5'])
      assert.equal(canRender(`1.2.840.10008.1.2${ts}`), true, ts);
    assert.equal(canRender('1.2.840.10008.1.2.4.100'), false);
    assert.equal(canRender('1.2.840.10008.1.2.4.92'), false);
  });

  test('a PNG of the windowed frame, scaled into the viewport with its aspect kept', async () => {
    const px = { ...grey(4), rows: 2 };
    const png = await renderFrame(u16([0, 100, 200, 300, 300, 200, 100, 0]), px, {
      mediaType: 'image/png',
      window: { center: 150.5, width: 300 },
    });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [4, 2]);
    const first = [0, 1, 2, 3].map((i) => data[i * info.channels]);
    // low = 0.5, high = 299.5 -> 0; 100: ((100 - 150) / 299 + 0.5) * 255 = 84.86; 200: 170.14; 300: 255
    assert.deepEqual(first, [0, 85, 170, 255]);
    const scaled = await renderFrame(u16(new Array(8).fill(7)), px, {
      mediaType: 'image/jpeg',
      viewport: { width: 40, height: 40 },
    });
    const meta = await sharp(scaled).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 40, 20]);
  });

  test('RLE and a JPEG that is not decodable: ERR_WEB_RENDER_UNSUPPORTED', async () => {
    await assert.rejects(
      renderFrame(Buffer.alloc(64), grey(2, { transferSyntaxUid: '1.2.840.10008.1.2.5' }), {
        mediaType: 'image/png',
      }),
      unsupported,
    );
    await assert.rejects(
      renderFrame(
        Buffer.from([0xff, 0xd8, 0xff, 0xc1, 0, 2, 0, 0]),
        grey(2, { transferSyntaxUid: '1.2.840.10008.1.2.4.50' }),
        {
          mediaType: 'image/png',
        },
      ),
      unsupported,
    );
  });
});
