import { DicomError } from '../../core/index.ts';
import { checkPduHeader, checkPdvItem, decodePdu, PDU_HEADER_LENGTH } from './decode.ts';
import { ProtocolError } from './errors.ts';
import type { PDataTf, Pdu, PduType, Pdv } from './types.ts';

export interface PduReaderOptions {
  /**
   * The largest PDU-length (the bytes after the 6-byte header) accepted for any PDU. A header above it
   * raises `ERR_UL_PDU_TOO_LARGE` (A-ABORT reason 6, invalid-PDU-parameter value) before anything is
   * allocated or awaited for the body. Set it to at least our Maximum Length Sub-Item, with room for
   * the A-ASSOCIATE PDUs, which that limit does not cover.
   */
  readonly maxPduLength: number;
  /**
   * A P-DATA-TF that spans pushed chunks is not copied into one buffer: a PDV whose data lies in
   * several chunks comes as consecutive PDVs of the same presentation context and kind, one per chunk,
   * the last-fragment bit on the final one only. The message they make up is the same (PS3.8 Annex
   * E.2 fragments are concatenated), and the data set bytes of a C-STORE are never copied on their
   * way from the socket. Off by default: then the PDUs are the same whatever the chunking.
   */
  readonly splitPData?: boolean;
}

/**
 * The sans-IO PDU reader (PS3.8 §9.3): bytes in with `push()`, whole PDUs out with `next()`, which
 * returns `undefined` while the next PDU is incomplete. It holds the chunks pushed, never more than
 * the PDU being read and what arrived after it, and copies nothing when a PDU sits whole in one chunk
 * (then P-DATA fragments are slices of that chunk: do not reuse pushed buffers). The header is checked
 * as soon as its 6 bytes are in (unknown type, too large, wrong fixed length): such an error leaves
 * the stream without framing, so the reader stays failed and `next()` throws it again.
 */
export class PduReader {
  private readonly maxPduLength: number;
  private readonly splitPData: boolean;
  /** The PDU-length (after the 6-byte header) of the PDU `next()` returned last. */
  lastPduLength = 0;
  private chunks: Buffer[] = [];
  /** Index of the first chunk still held, and the offset of the first unread byte in it. */
  private head = 0;
  private offset = 0;
  private total = 0;
  /** The header of the PDU at the front, once read. */
  private pending: { readonly name: PduType; readonly size: number } | undefined;
  private failed: ProtocolError | undefined;

  constructor(options: PduReaderOptions) {
    const max = options.maxPduLength;
    if (!Number.isInteger(max) || max < 4 || max > 0xffffffff) {
      throw new DicomError('ERR_UL_PDU_READER_OPTIONS', `maxPduLength ${max} is not an integer 4-4294967295`);
    }
    this.maxPduLength = max;
    this.splitPData = options.splitPData === true;
  }

  /** Bytes held: the PDU being read and anything after it. */
  get buffered(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The next whole PDU, or `undefined` when more bytes are needed. Throws `ProtocolError`. */
  next(): Pdu | undefined {
    if (this.failed) throw this.failed;
    if (this.pending === undefined) {
      if (this.total < PDU_HEADER_LENGTH) return undefined;
      const header = this.peek(PDU_HEADER_LENGTH);
      try {
        const name = checkPduHeader(header[0]!, header.readUInt32BE(2), this.maxPduLength);
        this.pending = { name, size: PDU_HEADER_LENGTH + header.readUInt32BE(2) };
      } catch (err) {
        if (err instanceof ProtocolError) this.failed = err;
        throw err;
      }
    }
    if (this.total < this.pending.size) return undefined;
    const { name, size } = this.pending;
    this.pending = undefined;
    this.lastPduLength = size - PDU_HEADER_LENGTH;
    // The framing is intact whatever the body holds, so a decode error does not fail the reader.
    if (name === 'P-DATA-TF' && this.splitPData && this.chunks[this.head]!.length - this.offset < size)
      return this.takePData(size);
    return decodePdu(this.take(size));
  }

  /**
   * Consumes a P-DATA-TF of `size` bytes that spans chunks, its PDVs' data as slices of the chunks (see
   * `splitPData`). A malformed PDV item drops the rest of the PDU, so the next one is still read.
   */
  private takePData(size: number): PDataTf {
    this.skip(PDU_HEADER_LENGTH);
    let left = size - PDU_HEADER_LENGTH;
    const pdvs: Pdv[] = [];
    try {
      while (left > 0) {
        const length = checkPdvItem(this.peek(Math.min(left, 4)), 0, left, size - left);
        const head = this.take(6);
        left -= 6;
        const contextId = head[4]!;
        // PS3.8 E.2: bit 0 command/data set, bit 1 last fragment; bits 2-7 are 0 and not tested.
        const command = (head[5]! & 1) !== 0;
        const last = (head[5]! & 2) !== 0;
        let data = length - 2;
        if (data === 0) pdvs.push({ contextId, command, last, data: EMPTY });
        while (data > 0) {
          const piece = this.takeSome(data);
          data -= piece.length;
          left -= piece.length;
          pdvs.push({ contextId, command, last: last && data === 0, data: piece });
        }
      }
    } catch (err) {
      this.skip(left);
      throw err;
    }
    return { type: 'P-DATA-TF', pdvs };
  }

  /** Consumes up to `max` bytes from the first chunk held (at least one byte, never a copy). */
  private takeSome(max: number): Buffer {
    const first = this.chunks[this.head]!;
    const n = Math.min(max, first.length - this.offset);
    const out = first.subarray(this.offset, this.offset + n);
    this.offset += n;
    this.total -= n;
    if (this.offset === first.length) this.dropHead();
    return out;
  }

  /** Consumes `n` buffered bytes (n <= total) without reading them. */
  private skip(n: number): void {
    for (let left = n; left > 0; ) left -= this.takeSome(left).length;
  }

  /** The first `n` buffered bytes (n <= total), without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    return this.copy(n, false);
  }

  /** Consumes the first `n` buffered bytes: a slice when they sit in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      this.total -= n;
      if (this.offset === first.length) this.dropHead();
      return out;
    }
    return this.copy(n, true);
  }

  private copy(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let index = this.head;
    let offset = this.offset;
    while (written < n) {
      const chunk = this.chunks[index]!;
      const count = Math.min(chunk.length - offset, n - written);
      chunk.copy(out, written, offset, offset + count);
      written += count;
      offset += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) {
      for (let drop = index - this.head; drop > 0; drop--) this.dropHead();
      this.offset = offset;
      this.total -= n;
    }
    return out;
  }

  private dropHead(): void {
    this.chunks[this.head] = EMPTY;
    this.head++;
    this.offset = 0;
    // Compact now and then rather than shifting the array on every chunk.
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);
