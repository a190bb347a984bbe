import { CodecError, PixelDataTag } from '../core/index.ts';
import type { Dataset, EncapsulatedElement, Fragment } from './dataset.ts';

const NumberOfFrames = 0x00280008;
const ExtendedOffsetTable = 0x7fe00001;

/** Where one frame's bytes are in the data set's encoding: a byte range for native Pixel Data. */
export interface NativeFrame {
  readonly offset: number;
  readonly length: number;
}

/** The number of frames (0028,0008), 1 when absent (PS3.3 C.7.6.6). */
export function numberOfFrames(ds: Dataset): number {
  const n = ds.has(NumberOfFrames) ? ds.number(NumberOfFrames) : undefined;
  return n !== undefined && Number.isInteger(n) && n > 0 ? n : 1;
}

/**
 * For encapsulated Pixel Data, the fragment indexes of each frame (PS3.5 §A.4): from the Extended
 * Offset Table or the Basic Offset Table when present; else one frame for all fragments, one fragment
 * per frame when the counts match, or frame starts found by JPEG / JPEG 2000 start markers.
 */
export function frameFragments(ds: Dataset, el: EncapsulatedElement = encapsulated(ds)): number[][] {
  const frames = numberOfFrames(ds);
  const fragments = el.fragments;
  const starts = fragmentOffsets(fragments);
  const eot = ds.get(ExtendedOffsetTable);
  if (eot?.kind === 'value' && eot.bytes.length >= 8) {
    const offsets: number[] = [];
    for (let i = 0; i + 8 <= eot.bytes.length; i += 8) offsets.push(Number(eot.bytes.readBigUInt64LE(i)));
    return byOffsets(offsets, starts);
  }
  const bot = el.offsetTable;
  if (bot.length >= 4 && bot.bytes) {
    const offsets: number[] = [];
    for (let i = 0; i + 4 <= bot.bytes.length; i += 4) offsets.push(bot.bytes.readUInt32LE(i));
    return byOffsets(offsets, starts);
  }
  if (frames === 1) return [fragments.map((_, i) => i)];
  if (fragments.length === frames) return fragments.map((_, i) => [i]);
  const out: number[][] = [];
  fragments.forEach((f, i) => {
    if (out.length === 0 || (out.length < frames && startsFrame(f))) out.push([i]);
    else out[out.length - 1]!.push(i);
  });
  if (out.length !== frames) {
    throw new CodecError(
      'ERR_CODEC_FRAMES',
      `cannot split ${fragments.length} fragments into ${frames} frames without an offset table`,
      {
        tag: PixelDataTag,
      },
    );
  }
  return out;
}

/** Byte ranges of each frame of native Pixel Data (frames are contiguous and of equal size). */
export function nativeFrames(ds: Dataset, valueLength: number): NativeFrame[] {
  const frames = numberOfFrames(ds);
  const rows = ds.number(0x00280010) ?? 0;
  const columns = ds.number(0x00280011) ?? 0;
  const samples = ds.number(0x00280002) ?? 1;
  const bits = ds.number(0x00280100) ?? 8;
  const pixels = rows * columns * samples;
  // Bits Allocated 1 packs pixels across frame boundaries (PS3.5 §8.1.1).
  const frameBits = pixels * bits;
  const out: NativeFrame[] = [];
  for (let i = 0; i < frames; i++) {
    const start = Math.floor((i * frameBits) / 8);
    const end = Math.ceil(((i + 1) * frameBits) / 8);
    if (end > valueLength) {
      throw new CodecError(
        'ERR_CODEC_FRAMES',
        `frame ${i + 1} ends at byte ${end} but Pixel Data has ${valueLength}`,
        { tag: PixelDataTag },
      );
    }
    out.push({ offset: start, length: end - start });
  }
  return out;
}

function encapsulated(ds: Dataset): EncapsulatedElement {
  const el = ds.get(PixelDataTag);
  if (el?.kind !== 'encapsulated')
    throw new CodecError('ERR_CODEC_FRAMES', 'Pixel Data is not encapsulated', { tag: PixelDataTag });
  return el;
}

/** Offset of each fragment's item tag relative to the first fragment's, as offset tables count. */
function fragmentOffsets(fragments: readonly Fragment[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const f of fragments) {
    out.push(at);
    at += 8 + f.length;
  }
  return out;
}

function byOffsets(offsets: readonly number[], starts: readonly number[]): number[][] {
  const index = new Map(starts.map((s, i) => [s, i]));
  return offsets.map((off, k) => {
    const first = index.get(off);
    if (first === undefined)
      throw new CodecError(
        'ERR_CODEC_FRAMES',
        `offset table entry ${k} (${off}) is not at a fragment start`,
        { tag: PixelDataTag },
      );
    const next = k + 1 < offsets.length ? index.get(offsets[k + 1]!) : starts.length;
    if (next === undefined || next < first)
      throw new CodecError('ERR_CODEC_FRAMES', `offset table entry ${k + 1} is not at a fragment start`, {
        tag: PixelDataTag,
      });
    return Array.from({ length: next - first }, (_, i) => first + i);
  });
}

/** JPEG SOI (FFD8), JPEG 2000 codestream SOC+SIZ (FF4F FF51) or a JP2 signature box. */
function startsFrame(f: Fragment): boolean {
  const b = f.bytes ?? f.head;
  if (!b || b.length < 4) return false;
  if (b[0] === 0xff && b[1] === 0xd8) return true;
  if (b[0] === 0xff && b[1] === 0x4f && b[2] === 0xff && b[3] === 0x51) return true;
  return b.length >= 12 && b.readUInt32BE(4) === 0x6a502020;
}
