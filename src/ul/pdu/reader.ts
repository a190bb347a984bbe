import { DicomError } from '../../core/index.ts';
import { checkPduHeader, decodePdu, PDU_HEADER_LENGTH } from './decode.ts';
import { ProtocolError } from './errors.ts';
import type { Pdu, PduType } from './types.ts';

export interface PduReaderOptions {
  /**
   * The largest PDU-length (the bytes after the 6-byte header) accepted for any PDU. A header above it
   * raises `ERR_UL_PDU_TOO_LARGE` (A-ABORT reason 6, invalid-PDU-parameter value) before anything is
   * allocated or awaited for the body. Set it to at least our Maximum Length Sub-Item, with room for
   * the A-ASSOCIATE PDUs, which that limit does not cover.
   */
  readonly maxPduLength: number;
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
    const bytes = this.take(this.pending.size);
    this.pending = undefined;
    // The framing is intact whatever the body holds, so a decode error does not fail the reader.
    return decodePdu(bytes);
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
