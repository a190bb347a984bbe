import {
  CodecError,
  hasLongLength,
  ItemDelimitationTag,
  ItemTag,
  isPrivateCreator,
  isVR,
  PixelDataTag,
  SequenceDelimitationTag,
  type Tag,
  UndefinedLength,
  type VR,
} from '../core/index.ts';
import { lookupTag } from '../dictionary/index.ts';

/**
 * The sans-IO token reader of a data set (PS3.5 §7): bytes in with `push()`, tokens out with `next()`.
 * It never touches a file or a socket, holds at most one small value plus its look-ahead, and streams
 * any value it does not have whole as `value-chunk` tokens, so a 1 GB Pixel Data passes through in
 * the chunks it arrived in. Nesting is an explicit stack, never recursion.
 */
export type Token =
  | ElementToken
  | { readonly kind: 'value-chunk'; readonly bytes: Buffer }
  | { readonly kind: 'value-end' }
  | SequenceStartToken
  | { readonly kind: 'item-start'; readonly offset: number; readonly length: number }
  | { readonly kind: 'item-end'; readonly offset: number }
  | { readonly kind: 'sequence-end'; readonly offset: number }
  | { readonly kind: 'fragments-start'; readonly tag: Tag; readonly vr: VR; readonly offset: number }
  | FragmentToken
  | { readonly kind: 'fragments-end'; readonly offset: number }
  | { readonly kind: 'stopped'; readonly tag: Tag; readonly offset: number };

export interface ElementToken {
  readonly kind: 'element';
  readonly tag: Tag;
  readonly vr: VR;
  /** Value length as encoded (may be odd). */
  readonly length: number;
  /** Offset of the element header. */
  readonly offset: number;
  readonly valueOffset: number;
  /** The whole value when it was available at once; otherwise `value-chunk` tokens and a `value-end` follow. */
  readonly value: Buffer | undefined;
  /** True when the VR came from the dictionary (implicit VR) rather than from the bytes. */
  readonly vrFromDictionary: boolean;
}

export interface SequenceStartToken {
  readonly kind: 'sequence-start';
  readonly tag: Tag;
  /** SQ, or UN for a sequence of undefined length encoded as UN (read as implicit VR LE, CP-246). */
  readonly vr: VR;
  readonly offset: number;
  readonly length: number;
  /** Encoding of the items of this sequence (changes for UN sequences). */
  readonly explicitVR: boolean;
  readonly littleEndian: boolean;
}

export interface FragmentToken {
  readonly kind: 'fragment';
  readonly offset: number;
  readonly valueOffset: number;
  readonly length: number;
  readonly value: Buffer | undefined;
}

export interface TokenReaderOptions {
  readonly explicitVR: boolean;
  readonly littleEndian: boolean;
  /** Absolute offset of the first byte pushed, so token offsets are file offsets. */
  readonly baseOffset?: number;
  /**
   * Values longer than this that are not yet whole in the buffer are streamed as chunks instead of
   * waited for. Values at or under it are held until complete (so one value's memory is bounded by it).
   */
  readonly streamThreshold?: number;
  /** Stop at the first top-level element whose tag is >= this one, without consuming it. */
  readonly stopBeforeTag?: Tag;
  /** Nesting limit for sequences (hostile files nest thousands deep). */
  readonly maxDepth?: number;
  /** Resolves the VR of an implicit VR element; defaults to the dictionary with PS3.5 Annex A rules. */
  readonly implicitVR?: (tag: Tag, length: number) => VR;
}

export const TOKEN_DEFAULTS = { streamThreshold: 256 * 1024, maxDepth: 64 } as const;

interface Frame {
  readonly type: 'sequence' | 'item' | 'fragments';
  /** Absolute end offset, or undefined for undefined length. */
  readonly end: number | undefined;
  readonly explicitVR: boolean;
  readonly littleEndian: boolean;
  readonly tag: Tag;
}

interface Streaming {
  readonly end: number;
  /** Where the element (or fragment item) being streamed starts, and its tag, for error messages. */
  readonly start: number;
  readonly tag: Tag | undefined;
}

export class TokenReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Absolute offset of buf[0]. */
  private bufOffset: number;
  private readonly pending: Buffer[] = [];
  private pendingLength = 0;
  private ended = false;
  private finished = false;
  private readonly stack: Frame[] = [];
  private streaming: Streaming | undefined;
  private readonly streamThreshold: number;
  private readonly maxDepth: number;
  private explicitVR: boolean;
  private littleEndian: boolean;
  private readonly rootExplicitVR: boolean;
  private readonly rootLittleEndian: boolean;
  private readonly stopBeforeTag: Tag | undefined;
  private readonly resolveImplicitVR: (tag: Tag, length: number) => VR;
  private lastTag: Tag | undefined;

  constructor(options: TokenReaderOptions) {
    this.explicitVR = this.rootExplicitVR = options.explicitVR;
    this.littleEndian = this.rootLittleEndian = options.littleEndian;
    this.bufOffset = options.baseOffset ?? 0;
    this.streamThreshold = options.streamThreshold ?? TOKEN_DEFAULTS.streamThreshold;
    this.maxDepth = options.maxDepth ?? TOKEN_DEFAULTS.maxDepth;
    this.stopBeforeTag = options.stopBeforeTag;
    this.resolveImplicitVR = options.implicitVR ?? defaultImplicitVR;
  }

  /** Absolute offset of the next unread byte. */
  get offset(): number {
    return this.bufOffset + this.pos;
  }

  /** True once the data set ended (or stopped) and every token was read. */
  get done(): boolean {
    return this.finished;
  }

  /** Bytes pushed but not consumed (after a stop: the rest of the input from the stop point). */
  remainder(): Buffer {
    this.absorbPending();
    return this.buf.subarray(this.pos);
  }

  push(chunk: Uint8Array): void {
    if (this.ended) throw new CodecError('ERR_CODEC_PUSH_AFTER_END', 'bytes pushed after the end of input');
    if (chunk.length === 0) return;
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.pos >= this.buf.length && this.pending.length === 0) {
      this.bufOffset += this.buf.length;
      this.buf = b;
      this.pos = 0;
    } else {
      this.pending.push(b);
      this.pendingLength += b.length;
    }
  }

  /** Signals the end of input: from now on, missing bytes are a truncation error, not a wait. */
  end(): void {
    this.ended = true;
  }

  /** The next token, or undefined when more input is needed (or when done). */
  next(): Token | undefined {
    if (this.finished) return undefined;
    if (this.streaming) return this.nextChunk(this.streaming);
    const frame = this.stack[this.stack.length - 1];
    if (frame?.end !== undefined && this.offset >= frame.end) {
      if (this.offset > frame.end) {
        throw new CodecError('ERR_CODEC_LENGTH_OVERRUN', `contents overrun the ${frame.type} length`, {
          offset: frame.end,
          tag: frame.tag,
        });
      }
      return this.pop();
    }
    if (frame === undefined) return this.nextTopLevel();
    if (frame.type === 'item') return this.nextElement(frame);
    return this.nextItem(frame);
  }

  private nextTopLevel(): Token | undefined {
    if (!this.available(1)) {
      if (this.ended) this.finished = true;
      return undefined;
    }
    if (!this.available(8)) {
      if (!this.ended) return undefined;
      // Trailing zero padding after the last element is tolerated; anything else is a truncation.
      const rest = this.remainder();
      if (rest.every((b) => b === 0)) {
        this.pos = this.buf.length;
        this.finished = true;
        return undefined;
      }
      throw this.truncated(8, this.lastTag);
    }
    if (this.stopBeforeTag !== undefined) {
      const t = this.peekTag();
      if (
        t >= this.stopBeforeTag &&
        t !== ItemTag &&
        t !== ItemDelimitationTag &&
        t !== SequenceDelimitationTag
      ) {
        this.finished = true;
        return { kind: 'stopped', tag: t, offset: this.offset };
      }
    }
    return this.nextElement(undefined);
  }

  private nextElement(frame: Frame | undefined): Token | undefined {
    if (!this.available(8)) {
      if (this.ended) throw this.truncated(8, frame?.tag ?? this.lastTag);
      return undefined;
    }
    const start = this.offset;
    const t = this.peekTag();
    if (t === ItemDelimitationTag) {
      if (frame?.end !== undefined || frame === undefined) {
        // A stray delimiter in a defined-length item or at top level: tolerated by skipping it (DCMTK does).
        this.pos += 8;
        return this.next();
      }
      this.pos += 8;
      this.stack.pop();
      this.restoreEncoding();
      return { kind: 'item-end', offset: start };
    }
    if (t === ItemTag || t === SequenceDelimitationTag) {
      if (t === SequenceDelimitationTag && frame === undefined) {
        // Seen after the end of a data set in the wild; skip like a stray item delimiter.
        this.pos += 8;
        return this.next();
      }
      throw new CodecError(
        'ERR_CODEC_UNEXPECTED_ITEM',
        'an item tag appears where a data element is expected',
        {
          offset: start,
          tag: t,
        },
      );
    }
    let vr: VR;
    let length: number;
    let headerLength: number;
    let vrFromDictionary = false;
    if (this.explicitVR) {
      const c0 = this.buf[this.pos + 4]!;
      const c1 = this.buf[this.pos + 5]!;
      const vrText = String.fromCharCode(c0, c1);
      if (isVR(vrText)) {
        vr = vrText;
        if (hasLongLength(vr)) {
          if (!this.available(12)) {
            if (this.ended) throw this.truncated(12, t);
            return undefined;
          }
          length = this.u32(this.pos + 8);
          headerLength = 12;
        } else {
          length = this.u16(this.pos + 6);
          headerLength = 8;
        }
      } else {
        // Non-standard VR bytes (e.g. two spaces): assume a 2-byte length field and the dictionary VR, as DCMTK does.
        vr = this.resolveImplicitVR(t, 0);
        vrFromDictionary = true;
        length = this.u16(this.pos + 6);
        headerLength = 8;
      }
    } else {
      length = this.u32(this.pos + 4);
      headerLength = 8;
      vr = this.resolveImplicitVR(t, length);
      vrFromDictionary = true;
    }
    this.lastTag = t;
    const valueOffset = start + headerLength;

    if (length === UndefinedLength) {
      if (t === PixelDataTag || vr === 'OB' || vr === 'OW') {
        this.pos += headerLength;
        this.pushFrame(
          {
            type: 'fragments',
            end: undefined,
            explicitVR: this.explicitVR,
            littleEndian: this.littleEndian,
            tag: t,
          },
          start,
        );
        return { kind: 'fragments-start', tag: t, vr: vrFromDictionary ? 'OB' : vr, offset: start };
      }
      if (vr === 'SQ' || vr === 'UN' || vrFromDictionary) {
        // PS3.5 §6.2.2 note / CP-246: a UN element of undefined length is a sequence in implicit VR LE.
        const itemsExplicit = vr === 'SQ' ? this.explicitVR : false;
        const itemsLE = vr === 'SQ' ? this.littleEndian : true;
        this.pos += headerLength;
        this.pushFrame(
          { type: 'sequence', end: undefined, explicitVR: itemsExplicit, littleEndian: itemsLE, tag: t },
          start,
        );
        const seqVR: VR = vr === 'UN' && !vrFromDictionary ? 'UN' : 'SQ';
        return {
          kind: 'sequence-start',
          tag: t,
          vr: seqVR,
          offset: start,
          length,
          explicitVR: itemsExplicit,
          littleEndian: itemsLE,
        };
      }
      throw new CodecError('ERR_CODEC_UNDEFINED_LENGTH', `undefined length is not allowed for VR ${vr}`, {
        offset: start,
        tag: t,
      });
    }

    if (vr === 'SQ') {
      // Implicit VR guesses SQ from the dictionary; a value that does not start with an item is not a sequence
      // (e.g. (0040,A170) written as CS). Recover by reading it as UN.
      if (vrFromDictionary && length > 0) {
        if (!this.available(headerLength + 4)) {
          if (this.ended) throw this.truncated(headerLength + 4, t);
          return undefined;
        }
        const first = this.u16(this.pos + headerLength) * 0x10000 + this.u16(this.pos + headerLength + 2);
        if (first !== ItemTag && first !== SequenceDelimitationTag) {
          return this.valueElement(t, 'UN', length, start, headerLength, true);
        }
      }
      this.checkFits(start, valueOffset, length, t);
      this.pos += headerLength;
      this.pushFrame(
        {
          type: 'sequence',
          end: valueOffset + length,
          explicitVR: this.explicitVR,
          littleEndian: this.littleEndian,
          tag: t,
        },
        start,
      );
      return {
        kind: 'sequence-start',
        tag: t,
        vr: 'SQ',
        offset: start,
        length,
        explicitVR: this.explicitVR,
        littleEndian: this.littleEndian,
      };
    }
    return this.valueElement(t, vr, length, start, headerLength, vrFromDictionary);
  }

  private valueElement(
    t: Tag,
    vr: VR,
    length: number,
    start: number,
    headerLength: number,
    vrFromDictionary: boolean,
  ): Token | undefined {
    const valueOffset = start + headerLength;
    this.checkFits(start, valueOffset, length, t);
    if (this.available(headerLength + length)) {
      const value = this.buf.subarray(this.pos + headerLength, this.pos + headerLength + length);
      this.pos += headerLength + length;
      return { kind: 'element', tag: t, vr, length, offset: start, valueOffset, value, vrFromDictionary };
    }
    if (this.ended) throw this.truncated(headerLength + length, t, start);
    if (length <= this.streamThreshold) return undefined;
    this.pos += headerLength;
    this.streaming = { end: valueOffset + length, start, tag: t };
    return {
      kind: 'element',
      tag: t,
      vr,
      length,
      offset: start,
      valueOffset,
      value: undefined,
      vrFromDictionary,
    };
  }

  private nextItem(frame: Frame): Token | undefined {
    if (!this.available(8)) {
      if (this.ended) throw this.truncated(8, frame.tag);
      return undefined;
    }
    const start = this.offset;
    const t = this.peekTag();
    const length = this.u32(this.pos + 4);
    if (t === SequenceDelimitationTag) {
      this.pos += 8;
      return this.pop();
    }
    if (t !== ItemTag) {
      throw new CodecError(
        'ERR_CODEC_EXPECTED_ITEM',
        `expected an item tag (FFFE,E000), found ${hexTag(t)}`,
        {
          offset: start,
          tag: frame.tag,
        },
      );
    }
    if (frame.type === 'fragments') {
      if (length === UndefinedLength) {
        throw new CodecError('ERR_CODEC_UNDEFINED_LENGTH', 'a fragment has undefined length', {
          offset: start,
          tag: frame.tag,
        });
      }
      this.checkFits(start, start + 8, length, frame.tag);
      if (this.available(8 + length)) {
        const value = this.buf.subarray(this.pos + 8, this.pos + 8 + length);
        this.pos += 8 + length;
        return { kind: 'fragment', offset: start, valueOffset: start + 8, length, value };
      }
      if (this.ended) throw this.truncated(8 + length, frame.tag, start);
      if (length <= this.streamThreshold) return undefined;
      this.pos += 8;
      this.streaming = { end: start + 8 + length, start, tag: frame.tag };
      return { kind: 'fragment', offset: start, valueOffset: start + 8, length, value: undefined };
    }
    this.pos += 8;
    const end = length === UndefinedLength ? undefined : start + 8 + length;
    if (end !== undefined) this.checkFits(start, start + 8, length, frame.tag);
    this.pushFrame(
      { type: 'item', end, explicitVR: frame.explicitVR, littleEndian: frame.littleEndian, tag: frame.tag },
      start,
    );
    return { kind: 'item-start', offset: start, length };
  }

  /**
   * While a value is being streamed: skips the rest of it. Returns the absolute offset the source must
   * continue from when the skipped bytes are not buffered (a seekable source jumps there), or
   * undefined when the buffered input already covered them. The next token is `value-end`.
   */
  skipValue(): number | undefined {
    const s = this.streaming;
    if (!s) return undefined;
    const remaining = s.end - this.offset;
    if (this.buf.length - this.pos + this.pendingLength >= remaining) {
      this.absorbPending();
      this.pos += remaining;
      return undefined;
    }
    this.bufOffset = s.end;
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.pending.length = 0;
    this.pendingLength = 0;
    return s.end;
  }

  private nextChunk(s: Streaming): Token | undefined {
    const remaining = s.end - this.offset;
    if (remaining === 0) {
      this.streaming = undefined;
      return { kind: 'value-end' };
    }
    if (this.pos >= this.buf.length && this.pending.length > 0) {
      // Move on to the next chunk without copying: a streamed value never needs contiguous bytes.
      this.bufOffset += this.buf.length;
      this.buf = this.pending.shift()!;
      this.pendingLength -= this.buf.length;
      this.pos = 0;
    }
    const have = this.buf.length - this.pos;
    if (have === 0) {
      if (this.ended) throw this.truncated(s.end - s.start, s.tag, s.start);
      return undefined;
    }
    const n = Math.min(have, remaining);
    const bytes = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return { kind: 'value-chunk', bytes };
  }

  private pop(): Token {
    const frame = this.stack.pop()!;
    this.restoreEncoding();
    const offset = this.offset;
    if (frame.type === 'item') return { kind: 'item-end', offset };
    if (frame.type === 'fragments') return { kind: 'fragments-end', offset };
    return { kind: 'sequence-end', offset };
  }

  private pushFrame(frame: Frame, offset: number): void {
    if (this.stack.length >= this.maxDepth * 2) {
      throw new CodecError('ERR_CODEC_TOO_DEEP', `sequences nested deeper than ${this.maxDepth} levels`, {
        offset,
        tag: frame.tag,
      });
    }
    this.stack.push(frame);
    this.explicitVR = frame.explicitVR;
    this.littleEndian = frame.littleEndian;
  }

  private restoreEncoding(): void {
    const top = this.stack[this.stack.length - 1];
    this.explicitVR = top ? top.explicitVR : this.rootExplicitVR;
    this.littleEndian = top ? top.littleEndian : this.rootLittleEndian;
  }

  /** A defined length must fit in its enclosing defined-length item or sequence. */
  private checkFits(start: number, valueOffset: number, length: number, t: Tag): void {
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const end = this.stack[i]!.end;
      if (end !== undefined) {
        if (valueOffset + length > end) {
          throw new CodecError(
            'ERR_CODEC_LENGTH_OVERRUN',
            `value length ${length} runs past the end of its enclosing ${this.stack[i]!.type} (${end - valueOffset} bytes left)`,
            { offset: start, tag: t },
          );
        }
        return;
      }
    }
  }

  /** The input ended `needed` bytes into what starts here (or at `at`, the start of the element). */
  private truncated(needed: number, t: Tag | undefined, at = this.offset): CodecError {
    this.absorbPending();
    const left = this.buf.length - this.pos + (this.offset - at);
    return new CodecError('ERR_CODEC_TRUNCATED', `data ends early: ${needed} bytes needed, ${left} left`, {
      offset: at,
      tag: t,
    });
  }

  /** True when n bytes from pos are in buf, merging pending chunks only when that makes them available. */
  private available(n: number): boolean {
    const have = this.buf.length - this.pos;
    if (have >= n) return true;
    if (have + this.pendingLength < n) return false;
    this.absorbPending();
    return true;
  }

  private absorbPending(): void {
    if (this.pending.length === 0) return;
    const rest = this.buf.subarray(this.pos);
    this.bufOffset += this.pos;
    this.buf = Buffer.concat([rest, ...this.pending], rest.length + this.pendingLength);
    this.pos = 0;
    this.pending.length = 0;
    this.pendingLength = 0;
  }

  private peekTag(): Tag {
    return (this.u16(this.pos) * 0x10000 + this.u16(this.pos + 2)) >>> 0;
  }

  private u16(at: number): number {
    return this.littleEndian ? this.buf.readUInt16LE(at) : this.buf.readUInt16BE(at);
  }

  private u32(at: number): number {
    return this.littleEndian ? this.buf.readUInt32LE(at) : this.buf.readUInt32BE(at);
  }
}

function hexTag(t: Tag): string {
  const h = t.toString(16).toUpperCase().padStart(8, '0');
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}

/**
 * The VR of an implicit VR element (PS3.5 §A.1): the dictionary's; for "OB or OW" Pixel Data, OW; for
 * "US or SS" the caller may refine with Pixel Representation; private creators are LO; unknown tags UN.
 */
export function defaultImplicitVR(t: Tag, _length: number): VR {
  const entry = lookupTag(t);
  if (entry) {
    if (entry.vrs.length > 1 && entry.vrs.includes('OW')) return 'OW';
    return entry.vr;
  }
  if (isPrivateCreator(t)) return 'LO';
  return 'UN';
}
