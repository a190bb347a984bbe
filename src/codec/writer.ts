import { deflateRawSync } from 'node:zlib';
import {
  ByteSink,
  binaryWordSize,
  CodecError,
  hasLongLength,
  ItemDelimitationTag,
  isGroupLength,
  SequenceDelimitationTag,
  swapBytes,
  type Tag,
  UndefinedLength,
  type VR,
} from '../core/index.ts';
import type { BulkRef, Dataset, Element, Fragment } from './dataset.ts';
import { Dataset as DatasetClass } from './dataset.ts';
import { type TransferSyntax, transferSyntax } from './transfer-syntax.ts';

/** Tessera's Implementation Class UID (a 2.25 UUID-derived UID, PS3.5 §B.2) and version name. */
export const IMPLEMENTATION_CLASS_UID = '2.25.211526430283742515618620286426413926513';
export const IMPLEMENTATION_VERSION_NAME = 'TESSERA_010';

interface Encoding {
  readonly explicitVR: boolean;
  readonly littleEndian: boolean;
}

const IMPLICIT_LE: Encoding = { explicitVR: false, littleEndian: true };

/** A piece of output: bytes, or a bulk value still to be read (and maybe byte-swapped). */
type Piece = Buffer | { readonly bulk: BulkRef; readonly swap: number };

/**
 * Encodes a data set (PS3.5 §7). Values are written as held when the byte order matches (bit-preserving
 * for same-syntax writes) and swapped per VR otherwise. Sequence and item lengths that are defined are
 * recomputed for the target encoding; group lengths (gggg,0000) are recalculated.
 */
class DatasetEncoder {
  private readonly sink = new ByteSink();
  private readonly pieces: Piece[] = [];

  constructor(
    private readonly allowBulk: boolean,
    private readonly recalculateGroupLengths: boolean,
  ) {}

  dataset(ds: Dataset, enc: Encoding): void {
    const groupLengths = this.groupLengths(ds, enc);
    for (const el of ds) {
      if (isGroupLength(el.tag) && el.kind === 'value' && groupLengths.has(el.tag >>> 16)) {
        this.header(el.tag, 'UL', 4, enc);
        this.sink.uint32(groupLengths.get(el.tag >>> 16)!, enc.littleEndian);
        continue;
      }
      this.element(el, ds, enc);
    }
  }

  private groupLengths(ds: Dataset, enc: Encoding): Map<number, number> {
    const out = new Map<number, number>();
    if (!this.recalculateGroupLengths) return out;
    let hasAny = false;
    for (const el of ds) {
      if (isGroupLength(el.tag)) {
        hasAny = true;
        out.set(el.tag >>> 16, 0);
      }
    }
    if (!hasAny) return out;
    for (const el of ds) {
      const g = el.tag >>> 16;
      if (!isGroupLength(el.tag) && out.has(g)) out.set(g, out.get(g)! + elementLength(el, enc));
    }
    return out;
  }

  element(el: Element, ds: Dataset, enc: Encoding): void {
    switch (el.kind) {
      case 'value': {
        const bytes = convert(el.bytes, el.vr, ds.littleEndian, enc.littleEndian);
        const vr = writtenVR(el.vr, bytes.length, enc);
        this.header(el.tag, vr, bytes.length, enc);
        this.sink.bytes(bytes);
        return;
      }
      case 'bulk': {
        if (el.bulk.length < 0) {
          throw new CodecError(
            'ERR_CODEC_BULK_NOT_LOADED',
            'a BulkDataURI value of unknown length; call loadBulk() first',
            { tag: el.tag },
          );
        }
        const vr = writtenVR(el.vr, el.bulk.length, enc);
        this.header(el.tag, vr, el.bulk.length, enc);
        this.bulk(el.bulk, ds.littleEndian === enc.littleEndian ? 0 : binaryWordSize(el.vr), el.tag);
        return;
      }
      case 'sequence': {
        const itemEnc = el.vr === 'UN' ? IMPLICIT_LE : enc;
        const length = el.undefinedLength ? UndefinedLength : sequenceContentLength(el.items, itemEnc);
        this.header(el.tag, el.vr, length, enc);
        for (const item of el.items) {
          const itemLength = item.undefinedLength ? UndefinedLength : datasetLength(item, itemEnc);
          this.sink.uint16(0xfffe, itemEnc.littleEndian);
          this.sink.uint16(0xe000, itemEnc.littleEndian);
          this.sink.uint32(itemLength, itemEnc.littleEndian);
          this.dataset(item, itemEnc);
          if (item.undefinedLength) this.delimiter(ItemDelimitationTag, itemEnc);
        }
        if (el.undefinedLength) this.delimiter(SequenceDelimitationTag, itemEnc);
        return;
      }
      case 'encapsulated': {
        this.header(el.tag, el.vr, UndefinedLength, enc);
        for (const f of [el.offsetTable, ...el.fragments]) {
          this.sink.uint16(0xfffe, enc.littleEndian);
          this.sink.uint16(0xe000, enc.littleEndian);
          this.sink.uint32(f.length, enc.littleEndian);
          this.fragment(f, el.tag);
        }
        this.delimiter(SequenceDelimitationTag, enc);
        return;
      }
    }
  }

  private fragment(f: Fragment, t: Tag): void {
    if (f.bytes) this.sink.bytes(f.bytes);
    else if (f.bulk) this.bulk(f.bulk, 0, t);
    else if (f.length !== 0)
      throw new CodecError('ERR_CODEC_NO_VALUE', 'a fragment has neither bytes nor a reference', { tag: t });
  }

  private bulk(ref: BulkRef, swap: number, t: Tag): void {
    if (!this.allowBulk) {
      throw new CodecError(
        'ERR_CODEC_BULK_NOT_LOADED',
        'a bulk value is still a reference; write with the async writer',
        { tag: t },
      );
    }
    this.pieces.push(...this.sink.take(), { bulk: ref, swap });
  }

  private header(t: Tag, vr: VR, length: number, enc: Encoding): void {
    const le = enc.littleEndian;
    this.sink.uint16(t >>> 16, le);
    this.sink.uint16(t & 0xffff, le);
    if (!enc.explicitVR) {
      this.sink.uint32(length, le);
    } else if (hasLongLength(vr)) {
      this.sink.ascii(vr);
      this.sink.uint16(0, le);
      this.sink.uint32(length, le);
    } else {
      this.sink.ascii(vr);
      this.sink.uint16(length, le);
    }
  }

  private delimiter(t: Tag, enc: Encoding): void {
    this.sink.uint16(t >>> 16, enc.littleEndian);
    this.sink.uint16(t & 0xffff, enc.littleEndian);
    this.sink.uint32(0, enc.littleEndian);
  }

  finish(): Piece[] {
    this.pieces.push(...this.sink.take());
    return this.pieces;
  }
}

/** A value whose length does not fit a 16-bit length field is written as UN (as DCMTK does). */
function writtenVR(vr: VR, length: number, enc: Encoding): VR {
  return enc.explicitVR && !hasLongLength(vr) && length > 0xffff ? 'UN' : vr;
}

function convert(bytes: Buffer, vr: VR, fromLE: boolean, toLE: boolean): Buffer {
  if (fromLE === toLE) return bytes;
  const size = binaryWordSize(vr);
  return size > 1 ? swapBytes(bytes, size) : bytes;
}

function headerLength(vr: VR, enc: Encoding): number {
  return !enc.explicitVR || !hasLongLength(vr) ? 8 : 12;
}

/** Encoded length of an element (header and value) in an encoding. */
export function elementLength(el: Element, enc: Encoding): number {
  switch (el.kind) {
    case 'value': {
      const vr = writtenVR(el.vr, el.bytes.length, enc);
      return headerLength(vr, enc) + el.bytes.length;
    }
    case 'bulk': {
      const vr = writtenVR(el.vr, el.bulk.length, enc);
      return headerLength(vr, enc) + el.bulk.length;
    }
    case 'sequence': {
      const itemEnc = el.vr === 'UN' ? IMPLICIT_LE : enc;
      return (
        headerLength('SQ', enc) + sequenceContentLength(el.items, itemEnc) + (el.undefinedLength ? 8 : 0)
      );
    }
    case 'encapsulated': {
      let n = headerLength('OB', enc) + 8;
      for (const f of [el.offsetTable, ...el.fragments]) n += 8 + f.length;
      return n;
    }
  }
}

function sequenceContentLength(items: readonly Dataset[], enc: Encoding): number {
  let n = 0;
  for (const item of items) n += 8 + datasetLength(item, enc) + (item.undefinedLength ? 8 : 0);
  return n;
}

/** Encoded length of a data set's elements in an encoding. */
export function datasetLength(ds: Dataset, enc: Encoding): number {
  let n = 0;
  for (const el of ds) n += elementLength(el, enc);
  return n;
}

function checkWritable(ds: Dataset, ts: TransferSyntax): void {
  const pixel = ds.get(0x7fe00010);
  if (pixel?.kind === 'encapsulated' && !ts.encapsulated) {
    throw new CodecError(
      'ERR_CODEC_TRANSCODE_UNSUPPORTED',
      `Pixel Data is encapsulated (compressed); writing it as ${ts.name} needs decompression, which the codec does not do`,
      { tag: 0x7fe00010 },
    );
  }
  if (pixel && pixel.kind !== 'encapsulated' && ts.encapsulated) {
    throw new CodecError(
      'ERR_CODEC_TRANSCODE_UNSUPPORTED',
      `native Pixel Data cannot be written as ${ts.name} without compressing it`,
      {
        tag: 0x7fe00010,
      },
    );
  }
}

export interface EncodeOptions {
  /**
   * Group lengths (gggg,0000) of the data set, retired since 1993 (PS3.5 §7.2): 'keep' writes them as
   * held (bit-preserving, right when the encoding is unchanged), 'recalculate' recomputes them for the
   * target encoding. The File Meta group length is always recalculated.
   */
  readonly groupLengths?: 'keep' | 'recalculate';
}

function encodePieces(ds: Dataset, ts: TransferSyntax, allowBulk: boolean, options: EncodeOptions): Piece[] {
  checkWritable(ds, ts);
  const encoder = new DatasetEncoder(allowBulk, options.groupLengths !== 'keep');
  encoder.dataset(ds, ts);
  return encoder.finish();
}

/** Encodes a data set (without File Meta) in a transfer syntax; every value must be in memory. */
export function encodeDataset(ds: Dataset, transferSyntaxUid: string, options: EncodeOptions = {}): Buffer {
  const ts = transferSyntax(transferSyntaxUid);
  const bytes = Buffer.concat(encodePieces(ds, ts, false, options) as Buffer[]);
  return ts.deflated ? deflateRawSync(bytes) : bytes;
}

export interface Part10Input {
  readonly dataset: Dataset;
  /** File Meta Information to keep (its Transfer Syntax UID is updated if it differs); generated when absent. */
  readonly meta?: Dataset | undefined;
  readonly preamble?: Buffer | undefined;
  /** The syntax the data set was read in (a Part10 has it): group lengths are kept when writing in it. */
  readonly transferSyntax?: TransferSyntax | undefined;
}

function optionsFor(input: Part10Input, uid: string): EncodeOptions {
  return { groupLengths: input.transferSyntax?.uid === uid ? 'keep' : 'recalculate' };
}

const MediaStorageSOPClassUID = 0x00020002;
const MediaStorageSOPInstanceUID = 0x00020003;
const TransferSyntaxUID = 0x00020010;

/**
 * The File Meta Information for a data set (PS3.10 §7.1): group length, version, SOP class and instance
 * from (0008,0016)/(0008,0018), transfer syntax, and Tessera's implementation class UID and version name.
 */
export function buildFileMeta(dataset: Dataset, transferSyntaxUid: string, base?: Dataset): Dataset {
  if (!base) {
    return generatedMeta({
      sopClassUid: dataset.string(0x00080016),
      sopInstanceUid: dataset.string(0x00080018),
      transferSyntaxUid,
    });
  }
  const meta = new DatasetClass({ littleEndian: true });
  for (const el of base) meta.set(el);
  if (meta.string(TransferSyntaxUID) !== transferSyntaxUid)
    meta.setValues(TransferSyntaxUID, [transferSyntaxUid], 'UI');
  if (base.has(0x00020000)) meta.setValues(0x00020000, [0], 'UL');
  return meta;
}

interface MetaFields {
  readonly sopClassUid: string | undefined;
  readonly sopInstanceUid: string | undefined;
  readonly transferSyntaxUid: string;
  readonly sourceAETitle?: string | undefined;
}

/** File Meta Information written by Tessera; (0002,0000) is recalculated when encoded. */
function generatedMeta(m: MetaFields): Dataset {
  const meta = new DatasetClass({ littleEndian: true });
  meta.setValues(0x00020000, [0], 'UL');
  meta.setBytes(0x00020001, 'OB', Buffer.from([0x00, 0x01]));
  if (m.sopClassUid) meta.setValues(MediaStorageSOPClassUID, [m.sopClassUid], 'UI');
  if (m.sopInstanceUid) meta.setValues(MediaStorageSOPInstanceUID, [m.sopInstanceUid], 'UI');
  meta.setValues(TransferSyntaxUID, [m.transferSyntaxUid], 'UI');
  meta.setValues(0x00020012, [IMPLEMENTATION_CLASS_UID], 'UI');
  meta.setValues(0x00020013, [IMPLEMENTATION_VERSION_NAME], 'SH');
  if (m.sourceAETitle) meta.setValues(0x00020016, [m.sourceAETitle], 'AE');
  return meta;
}

function encodeMeta(meta: Dataset): Buffer {
  const encoder = new DatasetEncoder(false, true);
  encoder.dataset(meta, { explicitVR: true, littleEndian: true });
  return Buffer.concat(encoder.finish() as Buffer[]);
}

function part10Head(input: Part10Input, transferSyntaxUid: string): Buffer {
  const meta = buildFileMeta(
    input.dataset,
    transferSyntaxUid,
    input.meta && input.meta.size > 0 ? input.meta : undefined,
  );
  const preamble = input.preamble ?? Buffer.alloc(128);
  return Buffer.concat([preamble, Buffer.from('DICM', 'latin1'), encodeMeta(meta)]);
}

/**
 * Writes a Part 10 file: preamble, "DICM", File Meta Information, then the data set in the transfer
 * syntax (the meta's own when not given). Every value must be in memory; see `part10Chunks` otherwise.
 */
export function writePart10(input: Part10Input, transferSyntaxUid?: string): Buffer {
  const uid = transferSyntaxUid ?? input.meta?.string(TransferSyntaxUID) ?? '1.2.840.10008.1.2.1';
  return Buffer.concat([part10Head(input, uid), encodeDataset(input.dataset, uid, optionsFor(input, uid))]);
}

/**
 * The bytes of a Part 10 file as a stream of chunks: bulk references are read one at a time, so a file
 * whose Pixel Data stayed on disk is written with memory bounded by the largest single value.
 */
export async function* part10Chunks(input: Part10Input, transferSyntaxUid?: string): AsyncGenerator<Buffer> {
  const uid = transferSyntaxUid ?? input.meta?.string(TransferSyntaxUID) ?? '1.2.840.10008.1.2.1';
  const ts = transferSyntax(uid);
  yield part10Head(input, uid);
  const pieces = encodePieces(input.dataset, ts, true, optionsFor(input, uid));
  if (ts.deflated) {
    const parts: Buffer[] = [];
    for (const p of pieces) parts.push(Buffer.isBuffer(p) ? p : await resolve(p));
    yield deflateRawSync(Buffer.concat(parts));
    return;
  }
  for (const p of pieces) yield Buffer.isBuffer(p) ? p : await resolve(p);
}

async function resolve(p: { readonly bulk: BulkRef; readonly swap: number }): Promise<Buffer> {
  const bytes = await p.bulk.read();
  return p.swap > 1 ? swapBytes(bytes, p.swap) : bytes;
}

/**
 * The head of a Part 10 file (preamble, "DICM", File Meta Information) for a data set that will be
 * written after it as received: what a storage SCP puts in front of a C-STORE data set (PS3.10 §7.1).
 */
export function part10Header(meta: MetaFields): Buffer {
  // Written directly (ingest writes one per instance): the same bytes as encoding generatedMeta(meta).
  const elements: [number, string, Buffer][] = [[0x00020001, 'OB', Buffer.from([0x00, 0x01])]];
  const text = (tag: number, vr: string, value: string, pad: string): void => {
    elements.push([tag, vr, Buffer.from(value.length % 2 === 1 ? value + pad : value, 'latin1')]);
  };
  if (meta.sopClassUid) text(MediaStorageSOPClassUID, 'UI', meta.sopClassUid, '\0');
  if (meta.sopInstanceUid) text(MediaStorageSOPInstanceUID, 'UI', meta.sopInstanceUid, '\0');
  text(TransferSyntaxUID, 'UI', meta.transferSyntaxUid, '\0');
  text(0x00020012, 'UI', IMPLEMENTATION_CLASS_UID, '\0');
  text(0x00020013, 'SH', IMPLEMENTATION_VERSION_NAME, ' ');
  if (meta.sourceAETitle) text(0x00020016, 'AE', meta.sourceAETitle, ' ');
  let groupLength = 0;
  for (const [, vr, value] of elements) groupLength += (vr === 'OB' ? 12 : 8) + value.length;
  const out = Buffer.alloc(132 + 12 + groupLength);
  out.write('DICM', 128, 'latin1');
  let at = 132;
  const head = (tag: number, vr: string, length: number): void => {
    out.writeUInt16LE(tag >>> 16, at);
    out.writeUInt16LE(tag & 0xffff, at + 2);
    out.write(vr, at + 4, 'latin1');
    if (vr === 'OB') {
      out.writeUInt32LE(length, at + 8);
      at += 12;
    } else {
      out.writeUInt16LE(length, at + 6);
      at += 8;
    }
  };
  head(0x00020000, 'UL', 4);
  out.writeUInt32LE(groupLength, at);
  at += 4;
  for (const [tag, vr, value] of elements) {
    head(tag, vr, value.length);
    value.copy(out, at);
    at += value.length;
  }
  return out;
}
