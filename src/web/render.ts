/**
 * Rendered and thumbnail resources (PS3.18 10.4.1.1.3, 8.3.5): one frame turned into an 8-bit
 * consumer image (image/jpeg or image/png) with the VOI LUT of PS3.3 C.11.2 (window center/width,
 * linear, from the request, else the instance's first Window Center/Width, else the frame's range
 * after the Modality LUT), MONOCHROME1 inverted, RGB and YBR_FULL colour, PALETTE COLOR through its red,
 * green and blue lookup tables (PS3.3 C.7.6.3.1.5-6; segmented palettes are refused), then scaled to the viewport
 * keeping the aspect ratio. Native pixel data is read here; 8-bit JPEG frames are decoded by libvips
 * (sharp); the other compressed syntaxes the codec can decode (RLE, JPEG 12-bit and lossless, JPEG-LS,
 * JPEG 2000) are decoded to native pixels first; the rest are refused (406).
 */
import type { Sharp } from 'sharp';
import { canDecode, decodeFrame } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';

/** The image pixel attributes a frame needs to be rendered (PS3.3 C.7.6.3). */
export interface PixelDescription {
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: number;
  readonly photometricInterpretation: string;
  readonly planarConfiguration: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
  /** The instance's own first window, if any. */
  readonly windowCenter?: number | undefined;
  readonly windowWidth?: number | undefined;
  readonly transferSyntaxUid: string;
  /** PALETTE COLOR: the instance's red, green and blue lookup tables. */
  readonly palette?: Palette | undefined;
}

/** One Palette Color Lookup Table (PS3.3 C.7.6.3.1.5): its descriptor and its data. */
export interface PaletteLut {
  /** Entries (a descriptor's 0 means 65536). */
  readonly entries: number;
  /** The stored pixel value mapped to the first entry; lower values map to it, higher ones to the last. */
  readonly firstMapped: number;
  /** 8 or 16 bits per entry. */
  readonly bits: number;
  /** The Lookup Table Data as stored (OW, little endian). */
  readonly data: Buffer;
}

export interface Palette {
  readonly red: PaletteLut;
  readonly green: PaletteLut;
  readonly blue: PaletteLut;
}

/**
 * A lookup table's entries as 8-bit intensities. 16-bit entries span 0-65535 (PS3.3 C.7.6.3.1.6) and
 * keep their high byte; 8-bit entries are one byte each, unless the data holds a 16-bit word per entry
 * (a common encoding of 8-bit tables, as DCMTK and pydicom accept), whose low byte is the entry.
 */
export function paletteTo8Bit(lut: PaletteLut): Uint8Array {
  const { entries, data } = lut;
  const out = new Uint8Array(entries);
  const words = lut.bits === 16 || data.length >= 2 * entries;
  if (data.length < (words ? 2 * entries : entries))
    throw new DicomError(
      'ERR_WEB_RENDER_UNSUPPORTED',
      `a palette lookup table holds ${data.length} bytes for ${entries} entries of ${lut.bits} bits`,
    );
  for (let i = 0; i < entries; i++) {
    if (!words) out[i] = data[i]!;
    else if (lut.bits === 16) out[i] = data[2 * i + 1]!;
    else out[i] = data.readUInt16LE(2 * i) & 0xff;
  }
  return out;
}

export interface RenderOptions {
  readonly mediaType: 'image/jpeg' | 'image/png';
  /** `window=center,width,function` (PS3.18 8.3.5.1.4); only LINEAR. */
  readonly window?: { readonly center: number; readonly width: number } | undefined;
  /** `viewport=vw,vh` (PS3.18 8.3.5.1.3): the largest output size, aspect kept. */
  readonly viewport?: { readonly width: number; readonly height: number } | undefined;
  /** 1-100, JPEG only. */
  readonly quality?: number | undefined;
}

const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const JPEG_EXTENDED = '1.2.840.10008.1.2.4.51';
const NATIVE_BIG_ENDIAN = '1.2.840.10008.1.2.2';
const ENCAPSULATED_PREFIX = '1.2.840.10008.1.2.4.';
const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** Whether a frame of this syntax can be rendered here. */
export function canRender(transferSyntaxUid: string): boolean {
  if (transferSyntaxUid === JPEG_BASELINE || transferSyntaxUid === JPEG_EXTENDED) return true;
  const encapsulated =
    transferSyntaxUid.startsWith(ENCAPSULATED_PREFIX) || transferSyntaxUid === RLE_LOSSLESS;
  return !encapsulated || canDecode(transferSyntaxUid);
}

/** A compressed frame decoded to native pixels, and the description of those pixels. */
async function decoded(
  frame: Buffer,
  px: PixelDescription,
): Promise<{ frame: Buffer; px: PixelDescription }> {
  let out: Awaited<ReturnType<typeof decodeFrame>>;
  try {
    out = await decodeFrame(frame, px.transferSyntaxUid, px);
  } catch (err) {
    throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', `cannot decode the frame: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return {
    frame: out.pixels,
    px: {
      ...px,
      photometricInterpretation: out.photometricInterpretation,
      planarConfiguration: out.planarConfiguration,
      transferSyntaxUid: EXPLICIT_LE,
    },
  };
}

/** Renders one frame: `frame` is the frame's bytes as stored (native pixels, or one JPEG stream). */
export async function renderFrame(
  frame: Buffer,
  px: PixelDescription,
  options: RenderOptions,
): Promise<Buffer> {
  // libvips is loaded on the first rendering only: it is tens of MiB a server may never need.
  const sharp = (await import('sharp')).default;
  let image: Sharp;
  // libvips decodes 8-bit JPEG itself; 12-bit JPEG and the other compressed syntaxes go through the codec.
  const jpeg =
    (px.transferSyntaxUid === JPEG_BASELINE || px.transferSyntaxUid === JPEG_EXTENDED) && px.bitsStored <= 8;
  if (jpeg) {
    image = sharp(frame);
  } else if (!canRender(px.transferSyntaxUid)) {
    throw new DicomError(
      'ERR_WEB_RENDER_UNSUPPORTED',
      `no decoder for transfer syntax ${px.transferSyntaxUid} here: cannot render`,
    );
  } else {
    const native =
      px.transferSyntaxUid.startsWith(ENCAPSULATED_PREFIX) || px.transferSyntaxUid === RLE_LOSSLESS
        ? await decoded(frame, px)
        : { frame, px };
    const { data, channels } = toEightBit(native.frame, native.px, options.window);
    image = sharp(data, { raw: { width: native.px.columns, height: native.px.rows, channels } });
    // A grey image stays grey in the output (libvips would write three equal channels).
    if (channels === 1) image = image.toColourspace('b-w');
  }
  if (options.viewport) {
    image = image.resize(options.viewport.width, options.viewport.height, {
      fit: 'inside',
      withoutEnlargement: false,
    });
  }
  try {
    return await (options.mediaType === 'image/png'
      ? image.png().toBuffer()
      : image.jpeg({ quality: options.quality ?? 90 }).toBuffer());
  } catch (err) {
    if (!jpeg) throw err;
    throw new DicomError(
      'ERR_WEB_RENDER_UNSUPPORTED',
      `cannot decode the JPEG frame: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** Native pixels -> 8-bit grey (1 channel) or RGB (3 channels). */
export function toEightBit(
  frame: Buffer,
  px: PixelDescription,
  window?: { readonly center: number; readonly width: number },
): { data: Buffer; channels: 1 | 3 } {
  const n = px.rows * px.columns;
  const bigEndian = px.transferSyntaxUid === NATIVE_BIG_ENDIAN;
  if (px.samplesPerPixel === 3) {
    if (px.bitsAllocated !== 8)
      throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', `colour with ${px.bitsAllocated} bits allocated`);
    if (frame.length < n * 3)
      throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', 'the frame is shorter than its pixels');
    const out = Buffer.alloc(n * 3);
    const ybr = px.photometricInterpretation === 'YBR_FULL';
    for (let i = 0; i < n; i++) {
      let a: number;
      let b: number;
      let c: number;
      if (px.planarConfiguration === 1) {
        a = frame[i]!;
        b = frame[n + i]!;
        c = frame[2 * n + i]!;
      } else {
        a = frame[3 * i]!;
        b = frame[3 * i + 1]!;
        c = frame[3 * i + 2]!;
      }
      if (ybr) {
        // PS3.3 C.7.6.3.1.2: YBR_FULL to RGB.
        const r = a + 1.402 * (c - 128);
        const g = a - 0.344136 * (b - 128) - 0.714136 * (c - 128);
        const bl = a + 1.772 * (b - 128);
        a = clamp(r);
        b = clamp(g);
        c = clamp(bl);
      }
      out[3 * i] = a;
      out[3 * i + 1] = b;
      out[3 * i + 2] = c;
    }
    return { data: out, channels: 3 };
  }
  if (px.samplesPerPixel !== 1)
    throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', `${px.samplesPerPixel} samples per pixel`);
  const bytesPer = px.bitsAllocated / 8;
  if (![1, 2, 4].includes(bytesPer))
    throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', `${px.bitsAllocated} bits allocated`);
  if (frame.length < n * bytesPer)
    throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', 'the frame is shorter than its pixels');
  const signed = px.pixelRepresentation === 1;
  const bits = px.bitsStored;
  const values = storedValues(frame, n, bytesPer, bigEndian, bits, signed);
  if (px.photometricInterpretation === 'PALETTE COLOR') {
    // PS3.3 C.7.6.3.1.5: stored values index the tables directly (no Modality or VOI LUT).
    if (!px.palette)
      throw new DicomError('ERR_WEB_RENDER_UNSUPPORTED', 'PALETTE COLOR without its lookup tables');
    const luts = [px.palette.red, px.palette.green, px.palette.blue];
    const tables = luts.map(paletteTo8Bit);
    const out = Buffer.alloc(n * 3);
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      for (let c = 0; c < 3; c++) {
        const lut = luts[c]!;
        const k = Math.min(Math.max(v - lut.firstMapped, 0), lut.entries - 1);
        out[3 * i + c] = tables[c]![k]!;
      }
    }
    return { data: out, channels: 3 };
  }
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  const slope = px.rescaleSlope;
  const intercept = px.rescaleIntercept;
  const modality = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const m = values[i]! * slope + intercept;
    modality[i] = m;
    if (m < min) min = m;
    if (m > max) max = m;
  }
  const center = window?.center ?? px.windowCenter ?? (min + max) / 2;
  const width = window?.width ?? px.windowWidth ?? Math.max(1, max - min);
  const invert = px.photometricInterpretation === 'MONOCHROME1';
  const out = Buffer.alloc(n);
  // PS3.3 C.11.2.1.2.1: the linear VOI function.
  const low = center - 0.5 - (width - 1) / 2;
  const high = center - 0.5 + (width - 1) / 2;
  for (let i = 0; i < n; i++) {
    const x = modality[i]!;
    let y: number;
    if (x <= low) y = 0;
    else if (x > high) y = 255;
    else y = ((x - (center - 0.5)) / Math.max(width - 1, 1) + 0.5) * 255;
    const b = clamp(y);
    out[i] = invert ? 255 - b : b;
  }
  return { data: out, channels: 1 };
}

/**
 * The stored values of a frame (masked to Bits Stored, sign-extended when signed), read through a typed
 * array view where the data allows it: a per-pixel read through a Buffer method costs several times more.
 */
function storedValues(
  frame: Buffer,
  n: number,
  bytesPer: number,
  bigEndian: boolean,
  bits: number,
  signed: boolean,
): Float64Array | Int32Array {
  const out = new Int32Array(n);
  if (bytesPer === 4) {
    const wide = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const raw = bigEndian ? frame.readUInt32BE(4 * i) : frame.readUInt32LE(4 * i);
      const v = bits >= 32 ? raw : raw % 2 ** bits;
      wide[i] = signed ? (bits >= 32 ? raw | 0 : v >= 2 ** (bits - 1) ? v - 2 ** bits : v) : v;
    }
    return wide;
  }
  let raw: Uint8Array | Uint16Array;
  if (bytesPer === 1) raw = frame;
  else {
    // A 16-bit view needs an even offset and the machine's (little-endian) byte order: else a copy.
    const aligned = frame.byteOffset % 2 === 0 ? frame : Buffer.from(frame.subarray(0, 2 * n));
    const copy = bigEndian ? Buffer.from(aligned.subarray(0, 2 * n)).swap16() : aligned;
    raw = new Uint16Array(copy.buffer, copy.byteOffset, n);
  }
  const mask = 2 ** bits - 1;
  const half = 2 ** (bits - 1);
  const full = 2 ** bits;
  for (let i = 0; i < n; i++) {
    const v = raw[i]! & mask;
    out[i] = signed && v >= half ? v - full : v;
  }
  return out;
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}
