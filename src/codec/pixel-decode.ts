/**
 * Decoders for encapsulated (compressed) Pixel Data (PS3.5 §8.2, Annex A.4): one frame at a time to
 * native little-endian pixels, or a whole data set to a native copy.
 *
 *   RLE Lossless                         1.2.840.10008.1.2.5      rle.ts (PS3.5 Annex G)
 *   JPEG Baseline / Extended, 8-bit      .4.50 / .4.51            libjpeg-turbo (WASM)
 *   JPEG Extended, 12-bit                .4.51                    jpeg.ts (IJG's integer IDCT, as dcmdjpeg)
 *   JPEG Lossless (any predictor / SV1)  .4.57 / .4.70            @cornerstonejs/jpeg-lossless-decoder-js
 *   JPEG-LS lossless / near-lossless     .4.80 / .4.81            CharLS (WASM)
 *   JPEG 2000 lossless / lossy           .4.90 / .4.91            OpenJPEG (WASM)
 *   HTJ2K (lossless, RPCL, lossy)        .4.201 / .4.202 / .4.203 OpenJPH (WASM)
 *
 * A JPEG frame goes to the decoder its Start Of Frame marker names (a 12-bit stream in a file labelled
 * Baseline still decodes). Photometric Interpretation and Planar Configuration follow DCMTK's decompressors
 * (dcmdjpeg, dcmdjpls, dcmdrle with their defaults): YBR_FULL / YBR_FULL_422 JPEG comes out RGB, color-by-
 * pixel, and the JPEG color space is taken from the Photometric Interpretation, not guessed from the stream
 * (dcmdjpeg's --conv-photometric); JPEG-LS and RLE keep the data set's Planar Configuration; JPEG 2000
 * YBR_RCT / YBR_ICT come out RGB (the decoder undoes the component transform).
 *
 * Signed pixels (Pixel Representation 1) are sign-extended from Bits Stored to Bits Allocated, so a 12-bit
 * signed value comes out as its 16-bit two's complement whatever the codec left in the high bits.
 *
 * The WASM codecs are Emscripten builds loaded on first use, once per process (a failed load is retried on
 * the next call); their console output is captured and reported in the error when a decode fails.
 */
import { createRequire } from 'node:module';
import { CodecError, PixelDataTag, type Tag } from '../core/index.ts';
import { Dataset, type Element, type EncapsulatedElement, type Fragment } from './dataset.ts';
import { decodeInWorker, decodeWorkersOn } from './decode-pool.ts';
import { frameFragments } from './frames.ts';
import { decodeJpegDctGray, type JpegInfo, jpegInfo } from './jpeg.ts';
import { decodeRle } from './rle.ts';
import { transferSyntax } from './transfer-syntax.ts';

export interface PixelFormat {
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly pixelRepresentation: number; // 0 unsigned, 1 signed
  readonly photometricInterpretation: string;
  readonly planarConfiguration?: number; // 0 or 1
}

export interface DecodedFrame {
  /** Native pixel data of one frame, little endian, rows*columns*samplesPerPixel*(bitsAllocated/8) bytes (bitsAllocated 1 is not supported for encapsulated data). */
  readonly pixels: Buffer;
  /** The Photometric Interpretation the native data set must carry (e.g. JPEG Baseline YBR_FULL_422 decoded to RGB becomes RGB). */
  readonly photometricInterpretation: string;
  /** The Planar Configuration of `pixels` (0: interleaved, 1: by plane); only meaningful when samplesPerPixel > 1. */
  readonly planarConfiguration: 0 | 1;
}

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

type Family = 'rle' | 'jpeg' | 'jpeg-ls' | 'j2k' | 'htj2k';

const FAMILY: ReadonlyMap<string, Family> = new Map<string, Family>([
  [RLE, 'rle'],
  [JPEG_BASELINE, 'jpeg'],
  [JPEG_EXTENDED, 'jpeg'],
  [JPEG_LOSSLESS, 'jpeg'],
  [JPEG_LOSSLESS_SV1, 'jpeg'],
  [JPEG_LS, 'jpeg-ls'],
  [JPEG_LS_NEAR, 'jpeg-ls'],
  [J2K_LOSSLESS, 'j2k'],
  [J2K, 'j2k'],
  [HTJ2K_LOSSLESS, 'htj2k'],
  [HTJ2K_RPCL, 'htj2k'],
  [HTJ2K, 'htj2k'],
]);

/** Whether frames of this transfer syntax can be decoded here. */
export function canDecode(transferSyntaxUid: string): boolean {
  return FAMILY.has(transferSyntaxUid);
}

/** Why a frame cannot be decoded; decodeFrame turns it into ERR_CODEC_DECODE naming the syntax. */
class DecodeFailure extends Error {}

function fail(why: string): never {
  throw new DecodeFailure(why);
}

/**
 * Decodes one frame (the frame's fragments' bytes concatenated, as stored) to native pixels. Throws
 * CodecError ERR_CODEC_DECODE naming the syntax and why, for corrupt input or an unsupported variant
 * (e.g. a bit depth a decoder cannot do).
 */
export function decodeFrame(
  frame: Uint8Array,
  transferSyntaxUid: string,
  format: PixelFormat,
): Promise<DecodedFrame> {
  // With the decode workers on (decode-pool.ts), off this thread; unknown syntaxes fail here at once.
  if (decodeWorkersOn() && FAMILY.has(transferSyntaxUid))
    return decodeInWorker(frame, transferSyntaxUid, format);
  return decodeFrameHere(frame, transferSyntaxUid, format);
}

/** `decodeFrame` on the calling thread (what a decode worker runs). */
export async function decodeFrameHere(
  frame: Uint8Array,
  transferSyntaxUid: string,
  format: PixelFormat,
): Promise<DecodedFrame> {
  const family = FAMILY.get(transferSyntaxUid);
  const name = `${transferSyntax(transferSyntaxUid).name} (${transferSyntaxUid})`;
  try {
    if (!family) fail('no decoder for this transfer syntax');
    checkFormat(format, family);
    const decoded = await decodeBy(family, frame, format);
    const expected = format.rows * format.columns * format.samplesPerPixel * (format.bitsAllocated / 8);
    if (decoded.pixels.length !== expected) {
      fail(`decoded ${decoded.pixels.length} bytes where the frame has ${expected}`);
    }
    return decoded;
  } catch (err) {
    if (err instanceof CodecError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new CodecError(
      'ERR_CODEC_DECODE',
      `cannot decode a frame of ${name}: ${why}`,
      { tag: PixelDataTag },
      {
        cause: err,
      },
    );
  }
}

function checkFormat(f: PixelFormat, family: Family): void {
  const positive = (n: number) => Number.isInteger(n) && n > 0;
  if (!positive(f.rows) || !positive(f.columns)) fail(`bad Rows/Columns ${f.rows}x${f.columns}`);
  if (!positive(f.samplesPerPixel)) fail(`bad Samples per Pixel ${f.samplesPerPixel}`);
  if (f.bitsAllocated === 1) fail('Bits Allocated 1 is not supported for encapsulated Pixel Data');
  const allocated = family === 'rle' ? [8, 16, 32] : [8, 16];
  if (!allocated.includes(f.bitsAllocated)) fail(`Bits Allocated ${f.bitsAllocated} is not supported`);
  if (!positive(f.bitsStored) || f.bitsStored > f.bitsAllocated) {
    fail(`Bits Stored ${f.bitsStored} does not fit Bits Allocated ${f.bitsAllocated}`);
  }
}

async function decodeBy(family: Family, frame: Uint8Array, f: PixelFormat): Promise<DecodedFrame> {
  switch (family) {
    case 'rle': {
      // dcmdrle restores the data set's Planar Configuration (color-by-pixel when it is 0 or absent).
      const planar = f.samplesPerPixel > 1 && f.planarConfiguration === 1 ? 1 : 0;
      let pixels: Buffer;
      try {
        pixels = decodeRle(frame, { ...f, planarConfiguration: planar });
      } catch (err) {
        fail((err as Error).message);
      }
      return {
        pixels: signExtend(pixels, f),
        photometricInterpretation: f.photometricInterpretation,
        planarConfiguration: planar,
      };
    }
    case 'jpeg':
      return decodeJpeg(frame, f);
    case 'jpeg-ls':
      return decodeJpegLs(frame, f);
    case 'j2k':
    case 'htj2k':
      return decodeJ2k(frame, f, family === 'htj2k');
  }
}

// --- Samples to native pixels ---------------------------------------------------------------------------

/** Decoded samples as a codec gives them: one typed array, interleaved or by plane. */
interface Samples {
  readonly data: Uint8Array | Uint16Array | Int16Array;
  readonly width: number;
  readonly height: number;
  readonly components: number;
  /** Bits per sample the stream declared. */
  readonly precision: number;
  readonly planar: 0 | 1;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Checks decoded samples against the data set and writes them as native pixels in `planar` layout. */
function toNative(s: Samples, f: PixelFormat, planar: 0 | 1): Buffer {
  if (s.width !== f.columns || s.height !== f.rows) {
    fail(`the stream is ${s.width}x${s.height} but Columns/Rows say ${f.columns}x${f.rows}`);
  }
  if (s.components !== f.samplesPerPixel) {
    fail(`the stream has ${s.components} components but Samples per Pixel is ${f.samplesPerPixel}`);
  }
  if (s.precision > f.bitsAllocated) {
    fail(`the stream has ${s.precision}-bit samples but Bits Allocated is ${f.bitsAllocated}`);
  }
  const pixels = f.rows * f.columns;
  const n = pixels * s.components;
  if (s.data.length < n) fail(`the decoder gave ${s.data.length} samples where the frame has ${n}`);
  const out = f.bitsAllocated === 8 ? new Uint8Array(n) : new Uint16Array(n);
  const c = s.components;
  if (c === 1 || s.planar === planar) out.set(s.data.subarray(0, n));
  else if (planar === 1) {
    for (let p = 0, i = 0; p < pixels; p++) for (let k = 0; k < c; k++) out[k * pixels + p] = s.data[i++]!;
  } else {
    for (let p = 0, o = 0; p < pixels; p++) for (let k = 0; k < c; k++) out[o++] = s.data[k * pixels + p]!;
  }
  if (out instanceof Uint16Array && !LITTLE_ENDIAN_HOST) {
    return signExtend(Buffer.from(out.buffer, out.byteOffset, out.byteLength).swap16(), f);
  }
  return signExtend(Buffer.from(out.buffer, out.byteOffset, out.byteLength), f);
}

/** Pixel Representation 1: sign-extends each little-endian sample from Bits Stored to Bits Allocated. */
function signExtend(pixels: Buffer, f: PixelFormat): Buffer {
  if (f.pixelRepresentation !== 1 || f.bitsStored >= f.bitsAllocated) return pixels;
  const shift = 32 - f.bitsStored;
  if (f.bitsAllocated === 8) {
    for (let i = 0; i < pixels.length; i++) pixels[i] = ((pixels[i]! << shift) >> shift) & 0xff;
  } else if (f.bitsAllocated === 16) {
    for (let i = 0; i + 1 < pixels.length; i += 2) {
      pixels.writeUInt16LE(((pixels.readUInt16LE(i) << shift) >> shift) & 0xffff, i);
    }
  } else if (f.bitsAllocated === 32) {
    for (let i = 0; i + 3 < pixels.length; i += 4)
      pixels.writeInt32LE((pixels.readInt32LE(i) << shift) >> shift, i);
  }
  return pixels;
}

// --- WASM codecs, loaded once on first use --------------------------------------------------------------

interface FrameInfo {
  readonly width: number;
  readonly height: number;
  readonly bitsPerSample: number;
  readonly componentCount: number;
  readonly isSigned?: boolean;
}

/** The embind decoder classes of the cornerstonejs codec builds (their C++ headers' methods we use). */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): FrameInfo;
  delete(): void;
}

interface JpegLsDecoder extends WasmDecoder {
  /** 0: none (component planes one after the other), 1: line, 2: sample (interleaved). */
  getInterleaveMode(): number;
}

interface EmscriptenModule {
  getExceptionMessage?: (e: unknown) => string | string[];
}

type Factory<M> = (options: {
  print: (line: string) => void;
  printErr: (line: string) => void;
}) => Promise<M>;

interface Loaded<M> {
  readonly module: M;
  /** What the codec printed during the current call ([INFO] lines left out). */
  readonly messages: string[];
}

const require = createRequire(import.meta.url);

/** Loads an Emscripten module on first use, once; a failed load is forgotten so a later call retries. */
function lazy<M>(load: () => Factory<M>): () => Promise<Loaded<M>> {
  let loading: Promise<Loaded<M>> | undefined;
  return () => {
    loading ??= (async () => {
      const messages: string[] = [];
      const keep = (line: string) => {
        if (!line.startsWith('[INFO]')) messages.push(line);
      };
      // A fresh options object per module: Emscripten uses it as the module object itself.
      const module = await load()({ print: keep, printErr: keep });
      return { module, messages };
    })().catch((err: unknown) => {
      loading = undefined;
      throw new CodecError('ERR_CODEC_DECODE', `cannot load the decoder: ${String(err)}`, {}, { cause: err });
    });
    return loading;
  };
}

const libjpegTurbo = lazy<{ JPEGDecoder: new () => WasmDecoder } & EmscriptenModule>(() =>
  require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'),
);
const charls = lazy<{ JpegLSDecoder: new () => JpegLsDecoder } & EmscriptenModule>(() =>
  require('@cornerstonejs/codec-charls/decodewasmjs'),
);
const openjpeg = lazy<{ J2KDecoder: new () => WasmDecoder } & EmscriptenModule>(() =>
  require('@cornerstonejs/codec-openjpeg/decodewasmjs'),
);
const openjph = lazy<{ HTJ2KDecoder: new () => WasmDecoder } & EmscriptenModule>(() =>
  require('@cornerstonejs/codec-openjph'),
);

type LosslessModule = typeof import('@cornerstonejs/jpeg-lossless-decoder-js');
let losslessModule: Promise<LosslessModule> | undefined;
function jpegLossless(): Promise<LosslessModule> {
  losslessModule ??= import('@cornerstonejs/jpeg-lossless-decoder-js').catch((err: unknown) => {
    losslessModule = undefined;
    throw err;
  });
  return losslessModule;
}

/** Runs one decode in a WASM codec: copies the frame in, the samples out, and always frees the decoder. */
function runWasm<D extends WasmDecoder, T>(
  codec: Loaded<EmscriptenModule>,
  decoder: D,
  frame: Uint8Array,
  read: (d: D, info: FrameInfo) => T,
): T {
  codec.messages.length = 0;
  try {
    decoder.getEncodedBuffer(frame.length).set(frame);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (!info.width || !info.height || codec.messages.some((m) => m.includes('[ERROR]'))) {
      fail(codec.messages.join('; ') || 'the decoder produced no image');
    }
    return read(decoder, info);
  } catch (err) {
    if (err instanceof DecodeFailure) throw err;
    const said = codec.messages.join('; ');
    const message =
      err instanceof Error
        ? err.message
        : exceptionMessage(codec.module, err) || said || 'the decoder rejected the stream';
    fail(message);
  } finally {
    decoder.delete();
  }
}

function exceptionMessage(module: EmscriptenModule, err: unknown): string {
  try {
    const m = module.getExceptionMessage?.(err);
    return Array.isArray(m) ? m.filter(Boolean).join(': ') : (m ?? '');
  } catch {
    return '';
  }
}

/** The decoded buffer (a view of WASM memory) copied out as samples of 1 or 2 bytes. */
function copySamples(
  view: Uint8Array,
  bitsPerSample: number,
  signed: boolean,
): Uint8Array | Uint16Array | Int16Array {
  const copy = view.slice();
  if (bitsPerSample <= 8) return copy;
  return signed
    ? new Int16Array(copy.buffer, 0, copy.length >> 1)
    : new Uint16Array(copy.buffer, 0, copy.length >> 1);
}

// --- JPEG (ISO 10918-1) ---------------------------------------------------------------------------------

async function decodeJpeg(frame: Uint8Array, f: PixelFormat): Promise<DecodedFrame> {
  let info: JpegInfo;
  try {
    info = jpegInfo(frame);
  } catch (err) {
    fail((err as Error).message);
  }
  if (!info.complete) fail('the JPEG stream is truncated (no End Of Image marker after its scans)');
  const pi = f.photometricInterpretation;
  if (info.sof === 3) {
    const samples = decodeJpegLossless(frame, info, await jpegLossless());
    return { pixels: toNative(samples, f, 0), photometricInterpretation: pi, planarConfiguration: 0 };
  }
  if (info.sof !== 0 && info.sof !== 1) fail(`JPEG process SOF${info.sof} is not supported`);
  if (info.precision === 12) {
    if (info.components.length !== 1)
      fail(`12-bit JPEG with ${info.components.length} components is not supported`);
    let image: ReturnType<typeof decodeJpegDctGray>;
    try {
      image = decodeJpegDctGray(frame);
    } catch (err) {
      fail((err as Error).message);
    }
    const samples: Samples = { ...image, data: image.samples, components: 1, planar: 0 };
    return { pixels: toNative(samples, f, 0), photometricInterpretation: pi, planarConfiguration: 0 };
  }
  if (info.precision !== 8) fail(`JPEG sample precision ${info.precision} is not supported`);
  // dcmdjpeg --conv-photometric: the Photometric Interpretation says whether the components are YCbCr.
  const ycbcr = pi.startsWith('YBR');
  const stream = info.components.length === 3 ? withColorSpace(frame, info, ycbcr ? 1 : 0) : frame;
  const codec = await libjpegTurbo();
  const samples = runWasm(codec, new codec.module.JPEGDecoder(), stream, (d, i) => ({
    data: copySamples(d.getDecodedBuffer(), 8, false),
    width: i.width,
    height: i.height,
    components: i.componentCount,
    precision: i.bitsPerSample,
    planar: 0 as const,
  }));
  return {
    pixels: toNative(samples, f, 0),
    photometricInterpretation: info.components.length === 3 && ycbcr ? 'RGB' : pi,
    planarConfiguration: 0,
  };
}

/**
 * The color space libjpeg infers for a 3-component stream (jdapimin.c default_decompress_parms): JFIF
 * means YCbCr, else an Adobe marker's transform, else component IDs 'R','G','B' mean RGB; else YCbCr.
 * When that is not what the Photometric Interpretation says, an Adobe APP14 marker with the right
 * transform is inserted (and a JFIF marker renamed) so that libjpeg-turbo converts exactly when dcmdjpeg does.
 */
function withColorSpace(frame: Uint8Array, info: JpegInfo, transform: 0 | 1): Uint8Array {
  const ids = info.components.map((c) => c.id);
  const inferred = info.jfif
    ? 1
    : info.adobeTransform !== undefined
      ? info.adobeTransform === 0
        ? 0
        : 1
      : ids[0] === 0x52 && ids[1] === 0x47 && ids[2] === 0x42
        ? 0
        : 1;
  if (inferred === transform) return frame;
  const copy = Buffer.from(frame);
  // Rename JFIF and Adobe markers' identifiers so that only the inserted marker counts.
  for (let at = 2; at + 4 <= copy.length && copy[at] === 0xff; ) {
    const m = copy[at + 1]!;
    if (m === 0xda) break;
    if (
      (m === 0xe0 && copy.toString('latin1', at + 4, at + 8) === 'JFIF') ||
      (m === 0xee && copy.toString('latin1', at + 4, at + 9) === 'Adobe')
    ) {
      copy[at + 4] = 0x58; // 'X'
    }
    at += 2 + copy.readUInt16BE(at + 2);
  }
  // APP14 "Adobe": version 100, flags0 0, flags1 0, transform.
  const adobe = Buffer.from([
    0xff,
    0xee,
    0x00,
    0x0e,
    0x41,
    0x64,
    0x6f,
    0x62,
    0x65,
    0x00,
    0x64,
    0,
    0,
    0,
    0,
    transform,
  ]);
  return Buffer.concat([copy.subarray(0, 2), adobe, copy.subarray(2)]);
}

function decodeJpegLossless(frame: Uint8Array, info: JpegInfo, lib: LosslessModule): Samples {
  if (info.components.length !== 1 && !(info.components.length === 3 && info.precision <= 8)) {
    fail(
      `lossless JPEG with ${info.components.length} components of ${info.precision} bits is not supported`,
    );
  }
  if (info.precision < 2 || info.precision > 16) fail(`lossless JPEG sample precision ${info.precision}`);
  let data: Uint8Array | Uint16Array;
  try {
    const decoder = new lib.Decoder();
    const copy = Uint8Array.from(frame); // the decoder reads an ArrayBuffer from offset 0
    data = decoder.decode(copy.buffer, 0, copy.length, info.precision <= 8 ? 1 : 2);
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  return {
    data,
    width: info.width,
    height: info.height,
    components: info.components.length,
    precision: info.precision,
    planar: 0,
  };
}

// --- JPEG-LS (ISO 14495-1) ------------------------------------------------------------------------------

async function decodeJpegLs(frame: Uint8Array, f: PixelFormat): Promise<DecodedFrame> {
  // The marker structure first: CharLS can take seconds to reject a stream with a marker in its scan data.
  let info: JpegInfo;
  try {
    info = jpegInfo(frame);
  } catch (err) {
    fail((err as Error).message);
  }
  if (info.sof !== 0x37) fail('not a JPEG-LS stream (no SOF55 marker)');
  if (!info.complete)
    fail('the JPEG-LS stream is truncated or has a marker inside its scan data (no End Of Image)');
  const codec = await charls();
  const samples = runWasm(codec, new codec.module.JpegLSDecoder(), frame, (d, i) => ({
    data: copySamples(d.getDecodedBuffer(), i.bitsPerSample, false),
    width: i.width,
    height: i.height,
    components: i.componentCount,
    precision: i.bitsPerSample,
    // CharLS gives interleave mode "none" as planes, "line" and "sample" as interleaved pixels.
    planar: (i.componentCount > 1 && d.getInterleaveMode() === 0 ? 1 : 0) as 0 | 1,
  }));
  // dcmdjpls --planar-restore (its default): the data set's Planar Configuration.
  const planar = f.samplesPerPixel > 1 && f.planarConfiguration === 1 ? 1 : 0;
  return {
    pixels: toNative(samples, f, planar),
    photometricInterpretation: f.photometricInterpretation,
    planarConfiguration: planar,
  };
}

// --- JPEG 2000 (ISO 15444-1) and HTJ2K (ISO 15444-15) ---------------------------------------------------

async function decodeJ2k(frame: Uint8Array, f: PixelFormat, ht: boolean): Promise<DecodedFrame> {
  const read = (d: WasmDecoder, i: FrameInfo): Samples => ({
    data: copySamples(d.getDecodedBuffer(), i.bitsPerSample, i.isSigned === true),
    width: i.width,
    height: i.height,
    components: i.componentCount,
    precision: i.bitsPerSample,
    planar: 0,
  });
  let samples: Samples;
  if (ht) {
    const codec = await openjph();
    samples = runWasm(codec, new codec.module.HTJ2KDecoder(), frame, read);
  } else {
    const codec = await openjpeg();
    samples = runWasm(codec, new codec.module.J2KDecoder(), frame, read);
  }
  const pi = f.photometricInterpretation;
  // PS3.5 §8.2.4: YBR_RCT / YBR_ICT mean the codestream's component transform, which the decoder undoes.
  const photometricInterpretation = pi === 'YBR_RCT' || pi === 'YBR_ICT' ? 'RGB' : pi;
  return { pixels: toNative(samples, f, 0), photometricInterpretation, planarConfiguration: 0 };
}

// --- Data sets ------------------------------------------------------------------------------------------

const SamplesPerPixel = 0x00280002;
const PhotometricInterpretation = 0x00280004;
const PlanarConfiguration = 0x00280006;
const Rows = 0x00280010;
const Columns = 0x00280011;
const BitsAllocated = 0x00280100;
const BitsStored = 0x00280101;
const PixelRepresentation = 0x00280103;
const LossyImageCompression = 0x00282110;
const ExtendedOffsetTable = 0x7fe00001;
const ExtendedOffsetTableLengths = 0x7fe00002;

/** The Image Pixel module attributes of a data set that has Pixel Data (PS3.3 §C.7.6.3). */
function pixelFormat(ds: Dataset): PixelFormat {
  const bitsAllocated = ds.number(BitsAllocated) ?? 0;
  const planar = ds.number(PlanarConfiguration);
  return {
    rows: ds.number(Rows) ?? 0,
    columns: ds.number(Columns) ?? 0,
    samplesPerPixel: ds.number(SamplesPerPixel) ?? 1,
    bitsAllocated,
    bitsStored: ds.number(BitsStored) ?? bitsAllocated,
    pixelRepresentation: ds.number(PixelRepresentation) ?? 0,
    photometricInterpretation: ds.string(PhotometricInterpretation) ?? '',
    ...(planar === undefined ? {} : { planarConfiguration: planar }),
  };
}

async function fragmentBytes(f: Fragment, tag: Tag): Promise<Buffer> {
  if (f.bytes) return f.bytes;
  if (f.bulk) return f.bulk.read();
  throw new CodecError('ERR_CODEC_NO_VALUE', 'a fragment has neither bytes nor a reference', { tag });
}

/**
 * A native copy of a data set whose Pixel Data is encapsulated in `transferSyntaxUid`: every frame decoded,
 * Pixel Data (7FE0,0010) replaced by the concatenated native frames (VR OW when bitsAllocated > 8, else OB),
 * Photometric Interpretation and Planar Configuration set as decoded, and Lossy Image Compression (0028,2110)
 * set to "01" when the syntax is lossy (JPEG Baseline/Extended, JPEG-LS near-lossless .81, JPEG 2000 .91, ...) and
 * the data set did not say so already. The input is not modified. Data sets without encapsulated Pixel Data
 * come back as they are. The Pixel Data values must be in memory (read the file with bulk data inline).
 */
export async function decompressDataset(ds: Dataset, transferSyntaxUid: string): Promise<Dataset> {
  if (!hasEncapsulated(ds)) return ds;
  if (!canDecode(transferSyntaxUid)) {
    throw new CodecError(
      'ERR_CODEC_DECODE',
      `cannot decode ${transferSyntax(transferSyntaxUid).name} (${transferSyntaxUid}): no decoder for this transfer syntax`,
      { tag: PixelDataTag },
    );
  }
  return copyDecoded(ds, transferSyntaxUid, ds.parent);
}

/** Whether the data set or any item in it has encapsulated Pixel Data (an Icon Image Sequence may). */
function hasEncapsulated(ds: Dataset): boolean {
  for (const el of ds) {
    if (el.kind === 'encapsulated') return true;
    if (el.kind === 'sequence' && el.items.some(hasEncapsulated)) return true;
  }
  return false;
}

/** A structural copy (new Datasets and sequences, value bytes shared) with encapsulated Pixel Data decoded. */
async function copyDecoded(ds: Dataset, uid: string, parent: Dataset | undefined): Promise<Dataset> {
  const out = new Dataset({ littleEndian: ds.littleEndian, parent });
  out.undefinedLength = ds.undefinedLength;
  let pixelData: EncapsulatedElement | undefined;
  for (const el of ds) {
    if (el.kind === 'sequence') {
      const items: Dataset[] = [];
      for (const item of el.items) items.push(await copyDecoded(item, uid, out));
      out.set({ ...el, items } satisfies Element);
    } else if (el.kind === 'encapsulated' && el.tag === PixelDataTag) {
      pixelData = el;
    } else out.set(el);
  }
  if (!pixelData) return out;
  const format = pixelFormat(ds);
  const frames = frameFragments(ds, pixelData);
  // Frames are decoded a few at a time: in parallel on the decode workers when they are on.
  const decoded: DecodedFrame[] = new Array(frames.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let k = next++; k < frames.length; k = next++) {
      const parts: Buffer[] = [];
      for (const i of frames[k]!) parts.push(await fragmentBytes(pixelData!.fragments[i]!, PixelDataTag));
      decoded[k] = await decodeFrame(parts.length === 1 ? parts[0]! : Buffer.concat(parts), uid, format);
    }
  };
  const lanes = decodeWorkersOn() ? Math.min(frames.length, 8) : 1;
  await Promise.all(Array.from({ length: lanes }, worker));
  const first = decoded[0];
  out.setBytes(
    PixelDataTag,
    format.bitsAllocated > 8 ? 'OW' : 'OB',
    Buffer.concat(decoded.map((d) => d.pixels)),
  );
  out.delete(ExtendedOffsetTable);
  out.delete(ExtendedOffsetTableLengths);
  if (first) {
    out.setValues(PhotometricInterpretation, [first.photometricInterpretation], 'CS');
    if (format.samplesPerPixel > 1) out.setValues(PlanarConfiguration, [first.planarConfiguration], 'US');
  }
  if (transferSyntax(uid).lossy && ds.string(LossyImageCompression) !== '01') {
    out.setValues(LossyImageCompression, ['01'], 'CS');
  }
  return out;
}
