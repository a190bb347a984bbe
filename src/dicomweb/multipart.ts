/**
 * multipart/related (RFC 2046 5.1, RFC 2387) as DICOMweb uses it (PS3.18 8.6.1.2): a streaming
 * parser and a streaming writer over Uint8Array chunks.
 *
 * No Node API (no Buffer, no streams): the browser client uses the same code. Node's Buffers are
 * Uint8Arrays, so a server passes its request chunks as they come; the body chunks of a part are
 * views into those chunks (no copy), except the few bytes held back while a possible boundary
 * straddles two input chunks.
 *
 * Memory: the parser holds at most one input chunk, a header block (bounded by `maxHeaderBytes`) and
 * fewer bytes than the delimiter; never a whole part.
 *
 * Why hand-written: busboy/dicer handle multipart/form-data only and need Node streams;
 * @mjackson/multipart-parser and meros buffer each part whole; it-multipart reads a Node
 * IncomingMessage. None streams a part's body from a generic async iterable in the browser too.
 */
import { DicomError } from '../core/index.ts';

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const SP = 0x20;
const HT = 0x09;
const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

/** One body part: its header fields and its content, streamed. */
export interface MultipartPart {
  /** Header fields by lower-cased name; a repeated field's values are joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * The part's content, read once. Not reading it (or stopping early) and asking for the next part
   * skips the rest. A body cut short (no closing delimiter) throws ERR_DICOMWEB_MULTIPART_TRUNCATED
   * from this iterator, so nothing of it should be kept.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

export interface MultipartLimits {
  /** Largest header block of one part, in bytes (default 16 KiB): ERR_DICOMWEB_MULTIPART_HEADER_TOO_LARGE. */
  readonly maxHeaderBytes?: number;
  /** Most parts in one body (default: no limit): ERR_DICOMWEB_MULTIPART_TOO_MANY_PARTS. */
  readonly maxParts?: number;
}

export const MULTIPART_DEFAULTS = { maxHeaderBytes: 16 * 1024 } as const;

const BCHARS = /^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$/;

/**
 * RFC 2046 5.1.1: 1 to 70 characters of bchars, not ending with a space. `max` is 70 for what we
 * write; the parser accepts up to 200 (some servers' boundaries run a little past 70).
 */
export function checkBoundary(boundary: string, max = 70): void {
  if (boundary.length > max || !BCHARS.test(boundary)) {
    throw new DicomError(
      'ERR_DICOMWEB_BAD_BOUNDARY',
      `multipart boundary "${boundary.slice(0, 80)}" is not 1-${max} characters of RFC 2046 bchars (letters, digits, '()+_,-./:=? and inner spaces)`,
    );
  }
}

/** A fresh random boundary (128 bits), safe to use unquoted. */
export function newBoundary(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return `tessera-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Boyer-Moore-Horspool search of `needle` (at most 255 bytes) in `hay` from `from`; -1 when absent. */
function searcher(needle: Uint8Array): (hay: Uint8Array, from: number) => number {
  const m = needle.length;
  const skip = new Uint8Array(256).fill(m);
  for (let i = 0; i < m - 1; i++) skip[needle[i]!] = m - 1 - i;
  const last = needle[m - 1]!;
  return (hay, from) => {
    const end = hay.length - m;
    let i = from;
    while (i <= end) {
      const c = hay[i + m - 1]!;
      if (c === last) {
        let j = m - 2;
        while (j >= 0 && hay[i + j] === needle[j]) j--;
        if (j < 0) return i;
      }
      i += skip[c]!;
    }
    return -1;
  };
}

/** A Uint8Array (or Buffer), also from another realm (iframe, vm context), where instanceof fails. */
function isBytes(value: unknown): value is Uint8Array {
  return Object.prototype.toString.call(value) === '[object Uint8Array]';
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function truncated(what: string): DicomError {
  return new DicomError('ERR_DICOMWEB_MULTIPART_TRUNCATED', `multipart body ends ${what}`);
}

function malformed(what: string): DicomError {
  return new DicomError('ERR_DICOMWEB_MULTIPART_MALFORMED', `multipart body: ${what}`);
}

/** The pull side of the parser: the unread bytes of the current input chunk, refilled on demand. */
class Parser {
  private buf: Uint8Array = EMPTY;
  private eof = false;
  /** Bytes at the end of the last chunk that may begin a delimiter (fewer than the delimiter's length). */
  private held: Uint8Array;
  private readonly delimiter: Uint8Array;
  private readonly find: (hay: Uint8Array, from: number) => number;
  /** Serializes reads: the consumer of a body and the part generator draining it share the input. */
  private queue: Promise<unknown> = Promise.resolve();
  private failure: unknown;

  constructor(
    private readonly input: AsyncIterator<Uint8Array>,
    boundary: string,
  ) {
    // The delimiter is CRLF "--" boundary (RFC 2046 5.1.1); the CRLF belongs to it, not to the part.
    this.delimiter = encoder.encode(`\r\n--${boundary}`);
    this.find = searcher(this.delimiter);
    // The first boundary may open the body with no CRLF before it: act as if one preceded the body.
    this.held = this.delimiter.subarray(0, 2);
  }

  /** Makes `buf` non-empty; false at the end of the input. */
  private async fill(): Promise<boolean> {
    while (this.buf.length === 0) {
      if (this.eof) return false;
      const next = await this.input.next();
      if (next.done) {
        this.eof = true;
        return false;
      }
      if (!isBytes(next.value)) throw malformed('an input chunk is not bytes (Uint8Array)');
      this.buf = next.value;
    }
    return true;
  }

  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.failure !== undefined) throw this.failure;
      return fn().catch((err: unknown) => {
        this.failure = err;
        throw err;
      });
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The next bytes of content before the next delimiter, or null once the delimiter is consumed.
   * `where` names the place for a truncation error.
   */
  async content(where: string): Promise<Uint8Array | null> {
    const dlen = this.delimiter.length;
    for (;;) {
      if (!(await this.fill())) throw truncated(where);
      if (this.held.length > 0) {
        const held = this.held;
        const chunk = this.buf;
        if (held.length + chunk.length < 2 * dlen) {
          // Small pieces: join them (fewer than two delimiters' worth) and scan the result.
          this.buf = concat(held, chunk);
          this.held = EMPTY;
        } else {
          // A delimiter starting in `held` ends within the chunk's first dlen - 1 bytes.
          const head = concat(held, chunk.subarray(0, dlen - 1));
          const at = this.find(head, 0);
          this.held = EMPTY;
          if (at >= 0) {
            this.buf = chunk.subarray(at + dlen - held.length);
            return this.emitThenDelimiter(head.subarray(0, at));
          }
          return held;
        }
      }
      const chunk = this.buf;
      const at = this.find(chunk, 0);
      if (at >= 0) {
        this.buf = chunk.subarray(at + dlen);
        return this.emitThenDelimiter(chunk.subarray(0, at));
      }
      // Hold back a tail that could begin a delimiter continued in the next chunk.
      let keep = chunk.length;
      for (let q = Math.max(0, chunk.length - dlen + 1); q < chunk.length; q++) {
        if (chunk[q] !== CR) continue;
        let j = 1;
        while (q + j < chunk.length && chunk[q + j] === this.delimiter[j]) j++;
        if (q + j === chunk.length) {
          keep = q;
          break;
        }
      }
      this.held = chunk.subarray(keep);
      this.buf = EMPTY;
      if (keep > 0) return chunk.subarray(0, keep);
    }
  }

  private pendingDelimiter = false;

  /** Returns `data` if non-empty and reports the delimiter on the next call; else null now. */
  private emitThenDelimiter(data: Uint8Array): Uint8Array | null {
    if (data.length === 0) return null;
    this.pendingDelimiter = true;
    return data;
  }

  /** content() with the delimiter reported after the data before it. */
  async next(where: string): Promise<Uint8Array | null> {
    if (this.pendingDelimiter) {
      this.pendingDelimiter = false;
      return null;
    }
    return this.content(where);
  }

  private async byte(where: string): Promise<number> {
    if (!(await this.fill())) throw truncated(where);
    const b = this.buf[0]!;
    this.buf = this.buf.subarray(1);
    return b;
  }

  /**
   * After a delimiter: `--` closes the body (false); otherwise transport padding (spaces and tabs)
   * and CRLF, then a part follows (true).
   */
  async afterDelimiter(): Promise<boolean> {
    const where = 'inside a boundary line';
    let b = await this.byte(where);
    if (b === DASH) {
      if ((await this.byte(where)) !== DASH) throw malformed('a boundary followed by a single "-"');
      return false; // the epilogue is ignored: not even read
    }
    while (b === SP || b === HT) b = await this.byte(where);
    if (b !== CR || (await this.byte(where)) !== LF) {
      throw malformed('a boundary followed by something other than transport padding and CRLF');
    }
    return true;
  }

  /** Reads a part's header block, up to and including the empty line. */
  async headers(maxBytes: number): Promise<Record<string, string>> {
    const TERM = [CR, LF, CR, LF];
    const bytes: number[] = [];
    let matched = 2; // the CRLF ending the boundary line starts the CRLF CRLF that ends the headers
    for (;;) {
      if (!(await this.fill())) throw truncated('inside the headers of a part');
      const chunk = this.buf;
      for (let i = 0; i < chunk.length; i++) {
        const c = chunk[i]!;
        bytes.push(c);
        if (c === TERM[matched]) matched++;
        else matched = c === CR ? 1 : 0;
        if (matched === 4) {
          this.buf = chunk.subarray(i + 1);
          return parseHeaderBlock(new Uint8Array(bytes));
        }
        if (bytes.length > maxBytes) {
          throw new DicomError(
            'ERR_DICOMWEB_MULTIPART_HEADER_TOO_LARGE',
            `the headers of a part exceed ${maxBytes} bytes`,
          );
        }
      }
      this.buf = EMPTY;
    }
  }

  /** Reads the input to its end (the epilogue), so that a request body is wholly consumed. */
  async drain(): Promise<void> {
    this.buf = EMPTY;
    while (!this.eof) {
      const next = await this.input.next();
      if (next.done) this.eof = true;
    }
  }
}

function parseHeaderBlock(bytes: Uint8Array): Record<string, string> {
  const text = new TextDecoder('utf-8').decode(bytes).replace(/\r\n(\r\n)?$/, '');
  const headers: Record<string, string> = {};
  if (text === '') return headers;
  // Obsolete line folding (a line starting with a space or tab continues the previous one).
  for (const line of text.split(/\r\n(?![ \t])/)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
      throw malformed(`header line "${line.slice(0, 80)}" is not "Name: value"`);
    }
    const value = line
      .slice(colon + 1)
      .replace(/\r\n[ \t]+/g, ' ')
      .trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

/**
 * Parses a multipart/related body as it arrives. Parts come one at a time; each part's body must be
 * read (or is skipped) before the next part is produced. The preamble and epilogue are ignored;
 * transport padding after a boundary is allowed; boundary-like bytes and CRLFs inside content are
 * content. Errors (DicomError): ERR_DICOMWEB_MULTIPART_TRUNCATED when the input ends before the
 * closing delimiter (thrown by the body being read, else by the part iterator),
 * ERR_DICOMWEB_MULTIPART_MALFORMED, ERR_DICOMWEB_MULTIPART_HEADER_TOO_LARGE,
 * ERR_DICOMWEB_MULTIPART_TOO_MANY_PARTS, ERR_DICOMWEB_BAD_BOUNDARY.
 *
 * `boundary` is the unquoted parameter value (see parseContentType).
 *
 * The input is read to its end after the close delimiter (the epilogue is dropped), so a request is
 * wholly consumed. It is never closed by the parser: when parsing stops early (an error, or the
 * consumer leaving the loop), whoever owns `body` decides what to do with the rest (a server may
 * still answer 400 on that connection; a client cancels the response).
 */
export async function* parseMultipart(
  body: AsyncIterable<Uint8Array>,
  boundary: string,
  limits: MultipartLimits = {},
): AsyncGenerator<MultipartPart, void, undefined> {
  checkBoundary(boundary, 200);
  const maxHeaderBytes = limits.maxHeaderBytes ?? MULTIPART_DEFAULTS.maxHeaderBytes;
  const parser = new Parser(body[Symbol.asyncIterator](), boundary);
  while ((await parser.serial(() => parser.next('before the first boundary'))) !== null) {
    // the preamble is read and dropped
  }
  let count = 0;
  while (await parser.serial(() => parser.afterDelimiter())) {
    const headers = await parser.serial(() => parser.headers(maxHeaderBytes));
    if (limits.maxParts !== undefined && ++count > limits.maxParts) {
      throw new DicomError('ERR_DICOMWEB_MULTIPART_TOO_MANY_PARTS', `more than ${limits.maxParts} parts`);
    }
    let ended = false;
    const read = () =>
      parser.serial(async () => {
        if (ended) return null;
        const chunk = await parser.next('inside a part (no closing boundary)');
        if (chunk === null) ended = true;
        return chunk;
      });
    yield {
      headers,
      body: {
        async *[Symbol.asyncIterator]() {
          for (let chunk = await read(); chunk !== null; chunk = await read()) yield chunk;
        },
      },
    };
    while ((await read()) !== null) {
      // the rest of a part the consumer did not read
    }
  }
  await parser.serial(() => parser.drain());
}

/** A part to write: header fields and content (bytes or a stream of them). */
export interface OutgoingPart {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/**
 * The bytes that open a part: the delimiter (with its leading CRLF unless `first`), the header
 * fields and the empty line. Throws ERR_DICOMWEB_BAD_HEADER for a header name that is not a token
 * or a value with CR, LF or NUL (header injection).
 */
export function partHead(
  boundary: string,
  headers: Readonly<Record<string, string>>,
  first: boolean,
): Uint8Array {
  let text = `${first ? '' : '\r\n'}--${boundary}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
      throw new DicomError('ERR_DICOMWEB_BAD_HEADER', `invalid part header "${name}: ${value.slice(0, 80)}"`);
    }
    text += `${name}: ${value}\r\n`;
  }
  return encoder.encode(`${text}\r\n`);
}

/** The close delimiter that ends a body (`first`: the body has no part). */
export function multipartEnd(boundary: string, first = false): Uint8Array {
  return encoder.encode(`${first ? '' : '\r\n'}--${boundary}--\r\n`);
}

/**
 * Writes a multipart/related body as the parts come: each part's content is passed through chunk by
 * chunk, never joined. The boundary must not occur in any content: use newBoundary().
 */
export async function* multipartBody(
  parts: AsyncIterable<OutgoingPart> | Iterable<OutgoingPart>,
  boundary: string,
): AsyncGenerator<Uint8Array, void, undefined> {
  checkBoundary(boundary);
  let first = true;
  for await (const part of parts) {
    yield partHead(boundary, part.headers, first);
    first = false;
    if (isBytes(part.body)) {
      if (part.body.length > 0) yield part.body;
    } else {
      for await (const chunk of part.body) if (chunk.length > 0) yield chunk;
    }
  }
  yield multipartEnd(boundary, first);
}
