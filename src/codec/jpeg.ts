/**
 * JPEG (ISO/IEC 10918-1, ITU-T T.81) stream inspection and a decoder for the one variant no maintained
 * package decodes: 12-bit sequential DCT (Process 4, DICOM JPEG Extended 1.2.840.10008.1.2.4.51), one
 * component, Huffman coded. Its inverse DCT is IJG's integer "islow" one (jidctint.c, the default of the
 * IJG library that DCMTK's dcmdjpeg is built on), computed in the same integer arithmetic, so decoded
 * samples are those of dcmdjpeg. Pure over bytes; malformed input throws JpegError (never reads past the end).
 */

/** A malformed or unsupported JPEG stream; the caller turns it into its own error. */
export class JpegError extends Error {
  override readonly name = 'JpegError';
}

export interface JpegComponent {
  readonly id: number;
  /** Horizontal and vertical sampling factors (1-4). */
  readonly h: number;
  readonly v: number;
  /** Quantization table selector. */
  readonly tq: number;
}

/** What the markers of a JPEG stream say, up to its first scan. */
export interface JpegInfo {
  /** The Start Of Frame marker's low byte: 0 baseline, 1 extended, 2 progressive, 3 lossless, ... */
  readonly sof: number;
  readonly precision: number;
  readonly width: number;
  /** 0 when the height is defined by a DNL marker after the first scan. */
  readonly height: number;
  readonly components: readonly JpegComponent[];
  readonly jfif: boolean;
  /** The Adobe APP14 marker's color transform (0 none, 1 YCbCr, 2 YCCK), when present. */
  readonly adobeTransform: number | undefined;
  /**
   * Walking the stream marker by marker (over entropy-coded data) reaches an End Of Image marker: false
   * for a truncated stream. Bytes after EOI (padding, junk some writers leave) do not matter.
   */
  readonly complete: boolean;
}

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DQT = 0xdb;
const DHT = 0xc4;
const DRI = 0xdd;
const DNL = 0xdc;

/** Whether a marker's low byte starts a frame (SOF0-SOF15 less DHT, JPG and DAC), or 0xF7 (JPEG-LS SOF55). */
function isSof(m: number): boolean {
  return m >= 0xc0 && m <= 0xcf && m !== DHT && m !== 0xc8 && m !== 0xcc;
}

function u16(b: Uint8Array, at: number): number {
  if (at + 2 > b.length) throw new JpegError(`stream ends inside a marker segment at byte ${at}`);
  return (b[at]! << 8) | b[at + 1]!;
}

/** The payload of the marker segment whose marker is at `at`, checked against the stream's end. */
function segment(b: Uint8Array, at: number): Uint8Array {
  const length = u16(b, at + 2);
  if (length < 2 || at + 2 + length > b.length) {
    throw new JpegError(
      `marker segment FF${b[at + 1]!.toString(16).toUpperCase()} at byte ${at} overruns the stream`,
    );
  }
  return b.subarray(at + 4, at + 2 + length);
}

/**
 * Whether the stream reaches EOI: marker segments are skipped by their lengths, entropy-coded data up to
 * the next marker that is not a restart marker (T.81 §B.1.1.5) or, for JPEG-LS, a bit-stuffed FF
 * (T.87 §9.1: FF followed by a byte below 0x80 is data).
 */
function reachesEoi(b: Uint8Array, jpegLs: boolean): boolean {
  let at = 2;
  while (at + 1 < b.length) {
    if (b[at] !== 0xff) return false;
    const m = b[at + 1]!;
    if (m === 0xff) {
      at++;
      continue;
    }
    if (m === EOI) return true;
    if (at + 4 > b.length) return false;
    at += 2 + u16(b, at + 2);
    if (m !== SOS) continue;
    for (; at + 1 < b.length; at++) {
      if (b[at] !== 0xff) continue;
      const next = b[at + 1]!;
      if (next === 0 || (next >= 0xd0 && next <= 0xd7) || (jpegLs && next < 0x80)) continue;
      if (next !== 0xff) break;
    }
  }
  return false;
}

/** Reads the markers of a JPEG stream up to its first SOS: the frame header and the color markers. */
export function jpegInfo(b: Uint8Array): JpegInfo {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== SOI) throw new JpegError('no JPEG Start Of Image marker');
  let at = 2;
  let frame: Omit<JpegInfo, 'jfif' | 'adobeTransform' | 'complete'> | undefined;
  let jfif = false;
  let adobeTransform: number | undefined;
  for (;;) {
    if (at + 4 > b.length) throw new JpegError('stream ends before the first scan');
    if (b[at] !== 0xff) throw new JpegError(`expected a marker at byte ${at}`);
    const m = b[at + 1]!;
    if (m === 0xff) {
      at++; // fill byte (T.81 §B.1.1.2)
      continue;
    }
    if (m === SOS || m === EOI) break;
    const p = segment(b, at);
    if (isSof(m) || m === 0xf7) {
      if (p.length < 6) throw new JpegError('frame header too short');
      const n = p[5]!;
      if (n === 0 || p.length < 6 + 3 * n) throw new JpegError('frame header too short');
      const components: JpegComponent[] = [];
      for (let i = 0; i < n; i++) {
        const c = 6 + 3 * i;
        components.push({ id: p[c]!, h: p[c + 1]! >> 4, v: p[c + 1]! & 15, tq: p[c + 2]! });
      }
      frame = { sof: m & 0x0f, precision: p[0]!, height: u16(p, 1), width: u16(p, 3), components };
      if (m === 0xf7) frame = { ...frame, sof: 0x37 };
    } else if (m === 0xe0 && p.length >= 5 && String.fromCharCode(...p.subarray(0, 5)) === 'JFIF\0') {
      jfif = true;
    } else if (m === 0xee && p.length >= 12 && String.fromCharCode(...p.subarray(0, 5)) === 'Adobe') {
      adobeTransform = p[11]!;
    }
    at += 2 + u16(b, at + 2);
  }
  if (!frame) throw new JpegError('no Start Of Frame marker before the first scan');
  return { ...frame, jfif, adobeTransform, complete: reachesEoi(b, frame.sof === 0x37) };
}

/** Huffman decoding tables (T.81 Annex C, F.2.2.3): IJG's maxcode / valoffset form. */
interface Huffman {
  readonly maxcode: Int32Array; // by code length 1-16; -1 when no code of that length
  readonly valoffset: Int32Array;
  readonly values: Uint8Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valoffset = new Int32Array(17);
  let code = 0;
  let k = 0;
  for (let l = 1; l <= 16; l++) {
    const n = counts[l - 1]!;
    if (n) {
      valoffset[l] = k - code;
      code += n;
      k += n;
      if (code > 1 << l) throw new JpegError('bad Huffman table');
      maxcode[l] = code - 1;
    }
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff; // sentinel: a code longer than 16 bits is corrupt data
  return { maxcode, valoffset, values };
}

/** Natural (row-major) index of each zig-zag position (T.81 Figure A.6). */
const ZIGZAG = Uint8Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7,
  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46,
  53, 60, 61, 54, 47, 55, 62, 63,
]);

/** Reads entropy-coded bits (T.81 §F.2.2.5), unstuffing FF00; a marker or the end of data is an error. */
class BitReader {
  private bits = 0;
  private count = 0;

  constructor(
    private readonly b: Uint8Array,
    public at: number,
  ) {}

  bit(): number {
    if (this.count === 0) {
      const at = this.at;
      if (at >= this.b.length) throw new JpegError('entropy-coded data ends before the image is complete');
      const byte = this.b[at]!;
      if (byte === 0xff) {
        const next = this.b[at + 1];
        if (next !== 0) {
          throw new JpegError(
            next === undefined
              ? 'entropy-coded data ends before the image is complete'
              : `marker FF${next.toString(16).toUpperCase()} inside entropy-coded data at byte ${at}`,
          );
        }
        this.at += 2;
      } else this.at++;
      this.bits = byte;
      this.count = 8;
    }
    this.count--;
    return (this.bits >> this.count) & 1;
  }

  receive(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 1) | this.bit();
    return v;
  }

  /** RECEIVE then EXTEND (T.81 §F.2.2.1): an n-bit magnitude category to a signed value. */
  extend(n: number): number {
    if (n === 0) return 0;
    const v = this.receive(n);
    return v < 1 << (n - 1) ? v - (1 << n) + 1 : v;
  }

  decode(h: Huffman): number {
    let code = this.bit();
    let l = 1;
    while (code > h.maxcode[l]!) {
      if (l === 16) throw new JpegError('bad Huffman code in entropy-coded data');
      code = (code << 1) | this.bit();
      l++;
    }
    const v = h.values[code + h.valoffset[l]!];
    if (v === undefined) throw new JpegError('bad Huffman code in entropy-coded data');
    return v;
  }

  /** Byte-aligns and expects the restart marker RSTn (T.81 §F.1.2.3). */
  restart(n: number): void {
    this.count = 0;
    if (this.b[this.at] !== 0xff || this.b[this.at + 1] !== 0xd0 + (n & 7)) {
      throw new JpegError(`expected restart marker RST${n & 7} at byte ${this.at}`);
    }
    this.at += 2;
  }
}

// IJG jidctint.c constants: FIX(x) = round(x * 2^13).
const CONST_BITS = 13;
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;

/** IJG's DESCALE: divide by 2^n rounding half up, as an arithmetic right shift (exact in doubles). */
function descale(x: number, n: number): number {
  return Math.floor((x + 2 ** (n - 1)) / 2 ** n);
}

/**
 * IJG's slow-but-accurate integer inverse DCT (jidctint.c, the LL&M algorithm) of one dequantized block
 * in natural order, written level-shifted and range-limited (jdmaster.c's table, including its wrap-around
 * for out-of-range values) to `out` at `offset`, `stride` samples per row.
 */
function idctIslow(
  coef: Float64Array,
  ws: Float64Array,
  precision: number,
  out: Uint16Array,
  offset: number,
  stride: number,
  rows: number,
  cols: number,
): void {
  const pass1 = precision === 8 ? 2 : 1;
  const max = (1 << precision) - 1;
  const center = 1 << (precision - 1);
  const mask = 4 * (max + 1) - 1;
  const limit = (x: number): number => {
    const t = ((x & mask) + center) & mask;
    return t <= max ? t : t < 2 * (max + 1) ? max : 0;
  };
  // Pass 1: columns from the input into the work array, scaled up by 2^pass1.
  for (let c = 0; c < 8; c++) {
    if (
      coef[8 + c] === 0 &&
      coef[16 + c] === 0 &&
      coef[24 + c] === 0 &&
      coef[32 + c] === 0 &&
      coef[40 + c] === 0 &&
      coef[48 + c] === 0 &&
      coef[56 + c] === 0
    ) {
      const dc = coef[c]! * 2 ** pass1;
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
      continue;
    }
    let z2 = coef[16 + c]!;
    let z3 = coef[48 + c]!;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = coef[c]!;
    z3 = coef[32 + c]!;
    let tmp0 = (z2 + z3) * 2 ** CONST_BITS;
    let tmp1 = (z2 - z3) * 2 ** CONST_BITS;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = coef[56 + c]!;
    tmp1 = coef[40 + c]!;
    tmp2 = coef[24 + c]!;
    tmp3 = coef[8 + c]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    const n = CONST_BITS - pass1;
    ws[c] = descale(tmp10 + tmp3, n);
    ws[56 + c] = descale(tmp10 - tmp3, n);
    ws[8 + c] = descale(tmp11 + tmp2, n);
    ws[48 + c] = descale(tmp11 - tmp2, n);
    ws[16 + c] = descale(tmp12 + tmp1, n);
    ws[40 + c] = descale(tmp12 - tmp1, n);
    ws[24 + c] = descale(tmp13 + tmp0, n);
    ws[32 + c] = descale(tmp13 - tmp0, n);
  }
  // Pass 2: rows from the work array to the output.
  const row = new Array<number>(8);
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    if (
      ws[w + 1] === 0 &&
      ws[w + 2] === 0 &&
      ws[w + 3] === 0 &&
      ws[w + 4] === 0 &&
      ws[w + 5] === 0 &&
      ws[w + 6] === 0 &&
      ws[w + 7] === 0
    ) {
      row.fill(limit(descale(ws[w]!, pass1 + 3)));
    } else {
      let z2 = ws[w + 2]!;
      let z3 = ws[w + 6]!;
      let z1 = (z2 + z3) * FIX_0_541196100;
      let tmp2 = z1 - z3 * FIX_1_847759065;
      let tmp3 = z1 + z2 * FIX_0_765366865;
      let tmp0 = (ws[w]! + ws[w + 4]!) * 2 ** CONST_BITS;
      let tmp1 = (ws[w]! - ws[w + 4]!) * 2 ** CONST_BITS;
      const tmp10 = tmp0 + tmp3;
      const tmp13 = tmp0 - tmp3;
      const tmp11 = tmp1 + tmp2;
      const tmp12 = tmp1 - tmp2;
      tmp0 = ws[w + 7]!;
      tmp1 = ws[w + 5]!;
      tmp2 = ws[w + 3]!;
      tmp3 = ws[w + 1]!;
      z1 = tmp0 + tmp3;
      z2 = tmp1 + tmp2;
      z3 = tmp0 + tmp2;
      let z4 = tmp1 + tmp3;
      const z5 = (z3 + z4) * FIX_1_175875602;
      tmp0 *= FIX_0_298631336;
      tmp1 *= FIX_2_053119869;
      tmp2 *= FIX_3_072711026;
      tmp3 *= FIX_1_501321110;
      z1 *= -FIX_0_899976223;
      z2 *= -FIX_2_562915447;
      z3 = z3 * -FIX_1_961570560 + z5;
      z4 = z4 * -FIX_0_390180644 + z5;
      tmp0 += z1 + z3;
      tmp1 += z2 + z4;
      tmp2 += z2 + z3;
      tmp3 += z1 + z4;
      const n = CONST_BITS + pass1 + 3;
      row[0] = limit(descale(tmp10 + tmp3, n));
      row[7] = limit(descale(tmp10 - tmp3, n));
      row[1] = limit(descale(tmp11 + tmp2, n));
      row[6] = limit(descale(tmp11 - tmp2, n));
      row[2] = limit(descale(tmp12 + tmp1, n));
      row[5] = limit(descale(tmp12 - tmp1, n));
      row[3] = limit(descale(tmp13 + tmp0, n));
      row[4] = limit(descale(tmp13 - tmp0, n));
    }
    if (r < rows) for (let c = 0; c < cols; c++) out[offset + r * stride + c] = row[c]!;
  }
}

/** A decoded single-component image: `width * height` samples of `precision` bits, row by row. */
export interface JpegGrayImage {
  readonly width: number;
  readonly height: number;
  readonly precision: number;
  readonly samples: Uint16Array;
}

/**
 * Decodes a one-component sequential DCT JPEG (SOF0 or SOF1, Huffman) of 8 or 12 bits (T.81 Annex F):
 * DQT (8- or 16-bit entries), DHT, DRI and restart markers, any number of scans (one for one component).
 */
export function decodeJpegDctGray(b: Uint8Array): JpegGrayImage {
  const info = jpegInfo(b);
  if (info.sof !== 0 && info.sof !== 1) {
    throw new JpegError(`SOF${info.sof} is not sequential DCT with Huffman coding`);
  }
  if (info.components.length !== 1) {
    throw new JpegError(`${info.components.length} components (only one is supported for this variant)`);
  }
  if (info.precision !== 8 && info.precision !== 12) {
    throw new JpegError(`sample precision ${info.precision} is not 8 or 12 (T.81 §B.2.2)`);
  }
  if (info.height === 0) throw new JpegError('image height given by a DNL marker is not supported');
  const { width, height, precision } = info;
  const component = info.components[0]!;
  const quant: (Uint16Array | undefined)[] = [];
  const dc: (Huffman | undefined)[] = [];
  const ac: (Huffman | undefined)[] = [];
  let restartInterval = 0;
  const samples = new Uint16Array(width * height);
  const blocksX = Math.ceil(width / 8);
  const blocksY = Math.ceil(height / 8);
  let scanned = false;
  let at = 2;
  for (;;) {
    if (at + 2 > b.length) throw new JpegError('stream ends without an End Of Image marker');
    if (b[at] !== 0xff) throw new JpegError(`expected a marker at byte ${at}`);
    const m = b[at + 1]!;
    if (m === 0xff) {
      at++;
      continue;
    }
    if (m === EOI) break;
    if (m === DNL) throw new JpegError('DNL marker is not supported');
    const p = segment(b, at);
    at += 2 + p.length + 2;
    if (m === DQT) {
      for (let i = 0; i < p.length; ) {
        const pq = p[i]! >> 4;
        const tq = p[i]! & 15;
        const n = pq ? 128 : 64;
        if (tq > 3 || pq > 1 || i + 1 + n > p.length) throw new JpegError('bad quantization table');
        const t = new Uint16Array(64);
        for (let k = 0; k < 64; k++) t[ZIGZAG[k]!] = pq ? u16(p, i + 1 + 2 * k) : p[i + 1 + k]!;
        quant[tq] = t;
        i += 1 + n;
      }
    } else if (m === DHT) {
      for (let i = 0; i < p.length; ) {
        const tc = p[i]! >> 4;
        const th = p[i]! & 15;
        if (tc > 1 || th > 3 || i + 17 > p.length) throw new JpegError('bad Huffman table');
        const counts = p.subarray(i + 1, i + 17);
        const total = counts.reduce((s, c) => s + c, 0);
        if (i + 17 + total > p.length) throw new JpegError('bad Huffman table');
        const table = buildHuffman(counts, p.subarray(i + 17, i + 17 + total));
        (tc === 0 ? dc : ac)[th] = table;
        i += 17 + total;
      }
    } else if (m === DRI) {
      restartInterval = u16(p, 0);
    } else if (m === SOS) {
      if (scanned) throw new JpegError('a second scan for the only component');
      if (p.length < 4 || p[0] !== 1 || p[1] !== component.id)
        throw new JpegError('scan header does not match the frame');
      const dcTable = dc[p[2]! >> 4];
      const acTable = ac[p[2]! & 15];
      const q = quant[component.tq];
      if (!dcTable || !acTable) throw new JpegError('scan uses an undefined Huffman table');
      if (!q) throw new JpegError('frame uses an undefined quantization table');
      const reader = new BitReader(b, at);
      const coef = new Float64Array(64);
      const ws = new Float64Array(64);
      let pred = 0;
      const total = blocksX * blocksY;
      for (let n = 0; n < total; n++) {
        if (restartInterval && n > 0 && n % restartInterval === 0) {
          reader.restart(n / restartInterval - 1);
          pred = 0;
        }
        coef.fill(0);
        pred += reader.extend(reader.decode(dcTable));
        coef[0] = pred * q[0]!;
        for (let k = 1; k < 64; k++) {
          const rs = reader.decode(acTable);
          const r = rs >> 4;
          const s = rs & 15;
          if (s === 0) {
            if (r !== 15) break; // EOB
            k += 15; // ZRL
            continue;
          }
          k += r;
          if (k > 63) throw new JpegError('AC coefficient index past 63 in entropy-coded data');
          const z = ZIGZAG[k]!;
          coef[z] = reader.extend(s) * q[z]!;
        }
        const bx = n % blocksX;
        const by = (n - bx) / blocksX;
        const x = bx * 8;
        const y = by * 8;
        idctIslow(
          coef,
          ws,
          precision,
          samples,
          y * width + x,
          width,
          Math.min(8, height - y),
          Math.min(8, width - x),
        );
      }
      at = reader.at;
      scanned = true;
    } else if (isSof(m) || (m >= 0xe0 && m <= 0xef) || m === 0xfe) {
      // frame header (read by jpegInfo), APPn, COM
    } else {
      throw new JpegError(`unexpected marker FF${m.toString(16).toUpperCase()}`);
    }
  }
  if (!scanned) throw new JpegError('no scan before the End Of Image marker');
  return { width, height, precision, samples };
}
