import { open } from 'node:fs/promises';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import { CodecError, isPrivateTag, isVR, type Tag, type VR } from '../core/index.ts';
import { lookupPrivate, lookupTag } from '../dictionary/index.ts';
import { type BulkSource, DatasetBuilder } from './builder.ts';
import type { Dataset } from './dataset.ts';
import { defaultImplicitVR, TokenReader } from './tokens.ts';
import {
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  type TransferSyntax,
  transferSyntax,
} from './transfer-syntax.ts';

/** A Part 10 file as read: preamble, File Meta Information, and the data set (PS3.10 §7.1). */
export interface Part10 {
  /** The 128-byte preamble, or undefined when the file had none. */
  readonly preamble: Buffer | undefined;
  /** Group 0002 elements; empty when the file had no File Meta Information. */
  readonly meta: Dataset;
  readonly dataset: Dataset;
  /** The transfer syntax the data set was decoded with (detected when the meta was absent or wrong). */
  readonly transferSyntax: TransferSyntax;
  /** The Transfer Syntax UID the meta declared, if any. */
  readonly declaredTransferSyntaxUid: string | undefined;
  /** Offset of the data set's first byte (for deflated files, offsets inside it are in the inflated stream). */
  readonly datasetOffset: number;
  /** The tag reading stopped before, when `stopBeforeTag` applied. */
  readonly stoppedAt: Tag | undefined;
}

export interface ReadOptions {
  /** Stop before the first top-level element with a tag >= this one (e.g. Pixel Data: header only). */
  readonly stopBeforeTag?: Tag;
  /** Bulk-capable values longer than this are kept as references (stream reads). Default 64 KiB. */
  readonly bulkThreshold?: number;
  /** Sequence nesting limit. Default 64. */
  readonly maxDepth?: number;
}

export const READ_DEFAULTS = { bulkThreshold: 64 * 1024 } as const;

const TransferSyntaxUID = 0x00020010;
const PixelRepresentation = 0x00280103;
/** Enough bytes to see the preamble, the DICM prefix and the first header. */
const HEAD = 132 + 12;

interface Layout {
  readonly preamble: boolean;
  /** Offset where group 0002 starts, or undefined without File Meta Information. */
  readonly metaOffset: number | undefined;
}

/** Where the File Meta Information is (PS3.10 §7.1), without trusting a "DICM" that is really data. */
export function detectLayout(head: Uint8Array): Layout {
  const b = Buffer.from(head.buffer, head.byteOffset, head.length);
  if (b.length >= 136 && b.toString('latin1', 128, 132) === 'DICM' && b.readUInt16LE(132) === 0x0002) {
    return { preamble: true, metaOffset: 132 };
  }
  if (b.length >= 8 && b.toString('latin1', 0, 4) === 'DICM' && b.readUInt16LE(4) === 0x0002) {
    return { preamble: false, metaOffset: 4 };
  }
  if (b.length >= 6 && b.readUInt16LE(0) === 0x0002 && isVR(b.toString('latin1', 4, 6))) {
    return { preamble: false, metaOffset: 0 };
  }
  return { preamble: false, metaOffset: undefined };
}

/**
 * The encoding of a data set from its first element header: explicit VR if the bytes after the tag are
 * VR letters, byte order from which reading of the group number is plausible. `declared` is kept when
 * the bytes agree with it (the GH177 files declare one syntax and use another).
 */
export function detectEncoding(head: Uint8Array, declared: TransferSyntax | undefined): TransferSyntax {
  if (head.length < 8) return declared ?? ImplicitVRLittleEndian;
  const b = Buffer.from(head.buffer, head.byteOffset, head.length);
  const explicit = isVR(b.toString('latin1', 4, 6));
  const le = b.readUInt16LE(0);
  const be = b.readUInt16BE(0);
  const little = le <= be;
  if (declared && declared.explicitVR === explicit && declared.littleEndian === little) return declared;
  if (declared && declared.explicitVR === explicit && le === be) return declared;
  if (declared?.deflated) return declared;
  if (!explicit) return ImplicitVRLittleEndian;
  if (!little) return ExplicitVRBigEndian;
  return declared?.explicitVR && declared.littleEndian ? declared : ExplicitVRLittleEndian;
}

/**
 * Implicit VR resolution that knows the data set being built: US or SS from Pixel Representation, and
 * private elements from the private dictionary through their block's Private Creator (PS3.5 §7.8.1).
 */
function implicitVRFor(builder: () => DatasetBuilder): (t: Tag, length: number) => VR {
  return (t, length) => {
    const vr = defaultImplicitVR(t, length);
    if (vr === 'UN' && isPrivateTag(t) && (t & 0xffff) >= 0x1000) {
      const creator = builder().current.get(((t & 0xffff0000) | ((t >>> 8) & 0xff)) >>> 0);
      if (creator?.kind === 'value') {
        const entry = lookupPrivate(creator.bytes.toString('latin1'), t);
        if (entry) return entry.vrs.includes('OW') && entry.vrs.length > 1 ? 'OW' : entry.vr;
      }
      return vr;
    }
    if (vr === 'US' || vr === 'SS') {
      const entry = lookupTag(t);
      if (entry?.vrs.includes('US') && entry.vrs.includes('SS')) {
        const pr = builder().root.get(PixelRepresentation);
        return pr?.kind === 'value' && pr.bytes.length >= 2 && pr.bytes.readUInt16LE(0) === 1 ? 'SS' : 'US';
      }
    }
    return vr;
  };
}

function drain(reader: TokenReader, builder: DatasetBuilder): Tag | undefined {
  for (let token = reader.next(); token !== undefined; token = reader.next()) {
    if (token.kind === 'stopped') return token.tag;
    builder.accept(token);
  }
  return undefined;
}

function metaReader(offset: number): { reader: TokenReader; builder: DatasetBuilder } {
  return {
    reader: new TokenReader({
      explicitVR: true,
      littleEndian: true,
      baseOffset: offset,
      stopBeforeTag: 0x00030000,
    }),
    builder: new DatasetBuilder({
      bulkThreshold: Number.POSITIVE_INFINITY,
      bulk: 'inline',
      littleEndian: true,
    }),
  };
}

function declaredSyntax(meta: Dataset): { uid: string | undefined; ts: TransferSyntax | undefined } {
  const uid = meta.string(TransferSyntaxUID);
  return { uid, ts: uid ? transferSyntax(uid) : undefined };
}

/**
 * Reads a whole Part 10 file (or a bare data set) held in memory. Values stay zero-copy slices of
 * `bytes`. Throws a CodecError naming the offset and tag for malformed input.
 */
export function readPart10(bytes: Uint8Array, options: ReadOptions = {}): Part10 {
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const layout = detectLayout(input);
  let meta: Dataset;
  let datasetOffset = 0;
  if (layout.metaOffset !== undefined) {
    const m = metaReader(layout.metaOffset);
    m.reader.push(input.subarray(layout.metaOffset));
    m.reader.end();
    drain(m.reader, m.builder);
    meta = m.builder.root;
    datasetOffset = m.reader.offset;
  } else {
    meta = metaReader(0).builder.root;
  }
  const declared = declaredSyntax(meta);
  const body = input.subarray(datasetOffset);
  const parsed = parseInMemory(
    body,
    declared.ts ?? detectEncoding(body, undefined),
    datasetOffset,
    options,
    true,
  );
  const syntax = parsed.syntax;
  const builder = parsed.builder;
  const stoppedAt = parsed.stoppedAt;
  return {
    preamble: layout.preamble ? input.subarray(0, 128) : undefined,
    meta,
    dataset: builder.root,
    transferSyntax: syntax,
    declaredTransferSyntaxUid: declared.uid,
    datasetOffset,
    stoppedAt,
  };
}

export interface StreamReadOptions extends ReadOptions {
  /** Reads bytes back from the source for bulk references (e.g. a file); without it they cannot be read. */
  readonly bulkSource?: BulkSource;
  /**
   * For a seekable source (a file): called with the absolute offset to continue from when a bulk value
   * is skipped, so its bytes are never read. The source's next chunk must start there.
   */
  readonly seek?: (offset: number) => void;
  /** Total length of a seekable source: a skipped value that runs past it is a truncation. */
  readonly sourceLength?: number;
}

/**
 * Reads a Part 10 file from a stream of chunks with memory bounded by its header: values over
 * `bulkThreshold` are left as references (offset, length), read later through `bulkSource`.
 * With `stopBeforeTag` it stops reading the source as soon as that tag is reached.
 */
export async function readPart10Stream(
  source: AsyncIterable<Uint8Array>,
  options: StreamReadOptions = {},
): Promise<Part10> {
  const iterator = source[Symbol.asyncIterator]();
  let done = false;
  const pull = async (): Promise<Buffer | undefined> => {
    if (done) return undefined;
    const r = await iterator.next();
    if (r.done) {
      done = true;
      return undefined;
    }
    const c = r.value;
    return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
  };
  try {
    // 1. Enough of the head to find the preamble and the meta.
    let head: Buffer = Buffer.alloc(0);
    while (head.length < HEAD) {
      const c = await pull();
      if (!c) break;
      head = head.length === 0 ? c : Buffer.concat([head, c]);
    }
    const layout = detectLayout(head);
    let meta: Dataset;
    let rest: Buffer;
    let datasetOffset = 0;
    if (layout.metaOffset !== undefined) {
      const m = metaReader(layout.metaOffset);
      m.reader.push(head.subarray(layout.metaOffset));
      for (;;) {
        drain(m.reader, m.builder);
        if (m.reader.done) break;
        const c = await pull();
        if (!c) m.reader.end();
        else m.reader.push(c);
      }
      meta = m.builder.root;
      datasetOffset = m.reader.offset;
      rest = m.reader.remainder();
    } else {
      meta = metaReader(0).builder.root;
      rest = head;
    }
    const declared = declaredSyntax(meta);
    let syntax = declared.ts ?? ExplicitVRLittleEndian;

    // 2. The data set, through inflate for deflated syntaxes.
    let chunks: AsyncIterator<Buffer>;
    let base = datasetOffset;
    let bulkSource = options.bulkSource;
    if (syntax.deflated) {
      const inflate = createInflateRaw();
      const feed = (async () => {
        try {
          if (rest.length) inflate.write(rest);
          for (let c = await pull(); c; c = await pull()) {
            if (!inflate.write(c)) await new Promise((r) => inflate.once('drain', r));
          }
          inflate.end();
        } catch (err) {
          inflate.destroy(err as Error);
        }
      })();
      chunks = wrapInflate(inflate, datasetOffset)[Symbol.asyncIterator]();
      void feed;
      base = 0;
      bulkSource = undefined;
    } else {
      const first = rest;
      let sentFirst = first.length === 0;
      chunks = {
        next: async () => {
          if (!sentFirst) {
            sentFirst = true;
            return { done: false, value: first };
          }
          const c = await pull();
          return c ? { done: false, value: c } : { done: true, value: undefined };
        },
      };
    }
    // First chunk of the data set decides the actual encoding.
    let firstChunk = await chunks.next();
    let pending: Buffer[] = [];
    let pendingLength = 0;
    while (!firstChunk.done && pendingLength + firstChunk.value.length < 8) {
      pending.push(firstChunk.value);
      pendingLength += firstChunk.value.length;
      firstChunk = await chunks.next();
    }
    if (!firstChunk.done) {
      pending.push(firstChunk.value);
      pendingLength += firstChunk.value.length;
    }
    const start = Buffer.concat(pending, pendingLength);
    pending = [];
    syntax = detectEncoding(
      start.subarray(0, 8),
      declared.ts ?? (layout.metaOffset === undefined ? undefined : syntax),
    );
    let builder: DatasetBuilder | undefined;
    const bulk = bulkSource || !syntax.deflated ? 'reference' : 'inline';
    builder = new DatasetBuilder({
      bulkThreshold: options.bulkThreshold ?? READ_DEFAULTS.bulkThreshold,
      bulk,
      bulkSource,
      littleEndian: syntax.littleEndian,
      copyValues: true,
    });
    const seek = bulk === 'reference' && !syntax.deflated ? options.seek : undefined;
    const reader = new TokenReader({
      explicitVR: syntax.explicitVR,
      littleEndian: syntax.littleEndian,
      baseOffset: base,
      streamThreshold: options.bulkThreshold ?? READ_DEFAULTS.bulkThreshold,
      implicitVR: implicitVRFor(() => builder!),
      ...(options.stopBeforeTag === undefined ? {} : { stopBeforeTag: options.stopBeforeTag }),
      ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    });
    reader.push(start);
    let stoppedAt: Tag | undefined;
    for (;;) {
      for (let token = reader.next(); token !== undefined; token = reader.next()) {
        if (token.kind === 'stopped') {
          stoppedAt = token.tag;
          break;
        }
        builder.accept(token);
        // A bulk value that is only referenced: on a seekable source, jump over it instead of reading it.
        if (seek && (token.kind === 'element' || token.kind === 'fragment') && token.value === undefined) {
          const resumeAt = reader.skipValue();
          if (
            resumeAt !== undefined &&
            options.sourceLength !== undefined &&
            resumeAt > options.sourceLength
          ) {
            const what = token.kind === 'element' ? token.tag : undefined;
            throw new CodecError(
              'ERR_CODEC_TRUNCATED',
              `data ends early: ${token.length} bytes needed, ${options.sourceLength - token.valueOffset} left`,
              {
                offset: token.kind === 'element' ? token.offset : token.offset,
                tag: what,
              },
            );
          }
          if (resumeAt !== undefined) seek(resumeAt);
        }
      }
      if (reader.done) break;
      const c = await chunks.next();
      if (c.done) reader.end();
      else reader.push(c.value);
    }
    return {
      preamble: layout.preamble ? Buffer.from(head.subarray(0, 128)) : undefined,
      meta,
      dataset: builder.root,
      transferSyntax: syntax,
      declaredTransferSyntaxUid: declared.uid,
      datasetOffset,
      stoppedAt,
    };
  } finally {
    if (!done) await iterator.return?.();
  }
}

async function* wrapInflate(
  inflate: ReturnType<typeof createInflateRaw>,
  offset: number,
): AsyncGenerator<Buffer> {
  try {
    for await (const c of inflate) yield c as Buffer;
  } catch (err) {
    throw new CodecError(
      'ERR_CODEC_DEFLATE',
      'the deflated data set cannot be inflated',
      { offset },
      { cause: err },
    );
  }
}

/**
 * Reads a Part 10 file from disk as a stream, with bulk values left in the file and read back on demand.
 */
export async function readPart10File(
  path: string,
  options: ReadOptions = {},
): Promise<Part10 & { readonly fileSize: number }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    let position = 0;
    const chunkSize = 64 * 1024;
    // Chunks read at `position`, which `seek` moves past skipped bulk values: they are never read.
    async function* chunks(): AsyncGenerator<Buffer> {
      while (position < size) {
        const buf = Buffer.allocUnsafe(Math.min(chunkSize, size - position));
        const { bytesRead } = await fh.read(buf, 0, buf.length, position);
        if (bytesRead === 0) return;
        position += bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    }
    const bulkSource: BulkSource = async (offset, length) => {
      const again = await open(path, 'r');
      try {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await again.read(buf, 0, length, offset);
        if (bytesRead !== length) {
          throw new CodecError(
            'ERR_CODEC_TRUNCATED',
            `bulk value ends early: ${bytesRead} of ${length} bytes`,
            { offset },
          );
        }
        return buf;
      } finally {
        await again.close();
      }
    };
    const file = await readPart10Stream(chunks(), {
      ...options,
      bulkSource,
      sourceLength: size,
      seek: (offset) => {
        position = offset;
      },
    });
    return { ...file, fileSize: size };
  } finally {
    await fh.close();
  }
}

/**
 * Decodes a bare data set held in memory, in a known transfer syntax (a DIMSE command set, a C-FIND
 * identifier). Values are zero-copy slices of `bytes`.
 */
export function decodeDataset(
  bytes: Uint8Array,
  transferSyntaxUid: string,
  options: ReadOptions = {},
): Dataset {
  const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return parseInMemory(
    body,
    transferSyntax(transferSyntaxUid),
    0,
    { ...options, bulkThreshold: Number.POSITIVE_INFINITY },
    false,
  ).builder.root;
}

/**
 * Parses a data set held in memory (the shared core of `readPart10` and `decodeDataset`): inflates a
 * deflated one, optionally checks the encoding against the first element header, and keeps every
 * value as a zero-copy slice.
 */
function parseInMemory(
  input: Buffer,
  declared: TransferSyntax,
  offset: number,
  options: ReadOptions,
  detect: boolean,
): { syntax: TransferSyntax; builder: DatasetBuilder; stoppedAt: Tag | undefined } {
  let body = input;
  let base = offset;
  if (declared.deflated) {
    try {
      body = inflateRawSync(body);
    } catch (err) {
      throw new CodecError(
        'ERR_CODEC_DEFLATE',
        'the deflated data set cannot be inflated',
        { offset },
        { cause: err },
      );
    }
    base = 0;
  }
  const syntax = detect ? detectEncoding(body.subarray(0, 8), declared) : declared;
  let builder: DatasetBuilder | undefined;
  builder = new DatasetBuilder({
    bulkThreshold: options.bulkThreshold ?? READ_DEFAULTS.bulkThreshold,
    bulk: 'inline',
    littleEndian: syntax.littleEndian,
  });
  const reader = new TokenReader({
    explicitVR: syntax.explicitVR,
    littleEndian: syntax.littleEndian,
    baseOffset: base,
    streamThreshold: Number.POSITIVE_INFINITY,
    implicitVR: implicitVRFor(() => builder!),
    ...(options.stopBeforeTag === undefined ? {} : { stopBeforeTag: options.stopBeforeTag }),
    ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
  });
  reader.push(body);
  reader.end();
  const stoppedAt = drain(reader, builder);
  return { syntax, builder, stoppedAt };
}
