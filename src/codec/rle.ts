/**
 * RLE Lossless (1.2.840.10008.1.2.5) decoding, PS3.5 Annex G. Pure over bytes.
 */

/** A malformed RLE frame; the caller turns it into its own error. */
export class RleError extends Error {
  override readonly name = 'RleError';
}

export interface RleFormat {
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly bitsAllocated: number;
  /** The layout of the output: 0 color-by-pixel, 1 color-by-plane. */
  readonly planarConfiguration: 0 | 1;
}

/**
 * Decodes one RLE frame to native little-endian pixels. PS3.5 §G.2: "Each RLE segment is a separate
 * PackBits byte stream; the first segment holds the most significant bytes of the first sample, ...";
 * the header (§G.5) is 16 UL values, the number of segments then the offset of each.
 */
export function decodeRle(frame: Uint8Array, format: RleFormat): Buffer {
  const { rows, columns, samplesPerPixel, bitsAllocated, planarConfiguration } = format;
  if (bitsAllocated % 8 !== 0 || bitsAllocated === 0) {
    throw new RleError(`Bits Allocated ${bitsAllocated} is not a whole number of bytes`);
  }
  const bytes = bitsAllocated / 8;
  const expected = samplesPerPixel * bytes;
  if (expected > 15) throw new RleError(`${expected} segments needed but the header holds at most 15`);
  if (frame.length < 64)
    throw new RleError(`frame of ${frame.length} bytes is shorter than the 64-byte RLE header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const segments = view.getUint32(0, true);
  if (segments !== expected) {
    throw new RleError(
      `header says ${segments} segments, but ${samplesPerPixel} samples of ${bitsAllocated} bits need ${expected}`,
    );
  }
  const offsets: number[] = [];
  for (let i = 0; i < segments; i++) offsets.push(view.getUint32(4 + 4 * i, true));
  offsets.push(frame.length);
  for (let i = 0; i < segments; i++) {
    if (offsets[i]! < 64 || offsets[i]! > offsets[i + 1]!) {
      throw new RleError(`segment ${i + 1} offset ${offsets[i]} is outside the frame or out of order`);
    }
  }
  const pixels = rows * columns;
  const out = Buffer.alloc(pixels * expected);
  for (let s = 0; s < samplesPerPixel; s++) {
    for (let j = 0; j < bytes; j++) {
      const segment = s * bytes + j;
      // Byte j of the sample, most significant first, lands at little-endian position bytes - 1 - j.
      const start =
        planarConfiguration === 0 ? s * bytes + (bytes - 1 - j) : s * pixels * bytes + (bytes - 1 - j);
      const stride = planarConfiguration === 0 ? expected : bytes;
      unpackBits(frame, offsets[segment]!, offsets[segment + 1]!, out, start, stride, pixels, segment + 1);
    }
  }
  return out;
}

/**
 * PackBits (PS3.5 §G.3.1): a header byte n in 0..127 copies the next n+1 bytes, -127..-1 repeats the
 * next byte -n+1 times, -128 does nothing. Writes `count` bytes to `out` from `start`, `stride` apart.
 * A segment may end with a few bytes past what it needs (an even-length pad); fewer bytes, or more
 * left over than padding explains (a frame of other dimensions), is an error.
 */
function unpackBits(
  src: Uint8Array,
  from: number,
  to: number,
  out: Uint8Array,
  start: number,
  stride: number,
  count: number,
  segment: number,
): void {
  let i = from;
  let o = start;
  let n = 0;
  while (n < count) {
    if (i >= to) {
      throw new RleError(`segment ${segment} ends after ${n} of ${count} bytes`);
    }
    const h = src[i++]!;
    if (h < 128) {
      const run = Math.min(h + 1, count - n);
      if (i + h + 1 > to) throw new RleError(`segment ${segment}: a literal run overruns the segment`);
      for (let k = 0; k < run; k++, o += stride) out[o] = src[i + k]!;
      i += h + 1;
      n += run;
    } else if (h > 128) {
      if (i >= to) throw new RleError(`segment ${segment}: a replicate run overruns the segment`);
      const v = src[i++]!;
      const run = Math.min(257 - h, count - n);
      for (let k = 0; k < run; k++, o += stride) out[o] = v;
      n += run;
    }
  }
  if (to - i > 3) {
    throw new RleError(`segment ${segment} has ${to - i} bytes left after its ${count} samples`);
  }
}
