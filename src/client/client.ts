/**
 * A DICOMweb client (PS3.18: STOW-RS, WADO-RS, QIDO-RS, and the DELETE of the Azure/dcm4chee/Google
 * APIs) over `fetch`: no Node API, so it runs in Node 18+ and in browsers. Bodies are Uint8Arrays and
 * Blobs; multipart responses are parsed as they stream in (dicomweb's parser works on Uint8Array),
 * one part in memory at a time for the byte-array methods, none for `retrieveParts`.
 *
 *   const client = new DicomWebClient({ baseUrl: 'https://host/dicom-web', token });
 *   await client.store([bytes]);
 *   for await (const file of client.retrieveStudy(studyUid)) ...
 */
import type { JsonDataset } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import {
  formatMediaType,
  MediaType,
  multipartContentType,
  multipartEnd,
  newBoundary,
  parseContentType,
  parseMultipart,
  parseStowResponse,
  partHead,
  type StowOutcome,
} from '../dicomweb/index.ts';

/**
 * An HTTP request that failed: `status` (0 when no response came: refused connection, DNS, TLS),
 * and the server's own words in `serverMessage` (its body, or the Message/Details of a JSON error).
 * Code ERR_DICOMWEB_HTTP, or ERR_DICOMWEB_NETWORK when status is 0.
 */
export class DicomWebError extends DicomError {
  readonly status: number;
  readonly statusText: string;
  readonly method: string;
  readonly url: string;
  readonly serverMessage: string;

  constructor(
    fields: { status: number; statusText: string; method: string; url: string; serverMessage: string },
    options?: { cause?: unknown },
  ) {
    const what = fields.status === 0 ? 'no response' : `HTTP ${fields.status} ${fields.statusText}`.trim();
    const message = `${fields.method} ${fields.url}: ${what}${fields.serverMessage ? `: ${fields.serverMessage}` : ''}`;
    super(fields.status === 0 ? 'ERR_DICOMWEB_NETWORK' : 'ERR_DICOMWEB_HTTP', message, options);
    this.name = 'DicomWebError';
    this.status = fields.status;
    this.statusText = fields.statusText;
    this.method = fields.method;
    this.url = fields.url;
    this.serverMessage = fields.serverMessage;
  }
}

export interface DicomWebClientOptions {
  /** The service root, e.g. `https://host/dicom-web` (`/studies` is appended). */
  readonly baseUrl: string;
  /** Bearer token, or a function giving one per request (refreshing it as needed). */
  readonly token?: string | (() => string | Promise<string>) | undefined;
  /** A fetch implementation (default: the global one). */
  readonly fetch?: typeof globalThis.fetch | undefined;
  /** Extra headers on every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
}

export type QueryLevel = 'studies' | 'series' | 'instances';
export type QueryValue = string | number | boolean | readonly (string | number)[] | undefined;
export type QueryParams = URLSearchParams | Readonly<Record<string, QueryValue>>;

export interface QueryScope {
  readonly study?: string | undefined;
  readonly series?: string | undefined;
}

export interface QueryResult {
  readonly matches: JsonDataset[];
  /** `Warning` headers of the response (e.g. parameters the server ignored). */
  readonly warnings: string[];
}

export interface StoreResult extends StowOutcome {
  /** 200 all stored, 202 some failed or have warnings, 409 none stored. */
  readonly status: number;
  readonly warnings: string[];
  /** The response body as received. */
  readonly json: JsonDataset;
}

export interface RetrieveOptions {
  /** Transfer syntax UID to ask for; default `*` (as the server has it). */
  readonly transferSyntax?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface FramesOptions extends RetrieveOptions {
  /** Media type of the frames; default application/octet-stream (uncompressed or as stored). */
  readonly mediaType?: string | undefined;
}

/** A part of a WADO-RS response, its content streamed. */
export interface RetrievedPart {
  readonly headers: Readonly<Record<string, string>>;
  readonly contentType: string | undefined;
  readonly body: AsyncIterable<Uint8Array>;
}

export interface RetrieveTarget {
  readonly study: string;
  readonly series?: string | undefined;
  readonly instance?: string | undefined;
}

/** A UID goes into a URL path: digits and dots only (PS3.5 9.1), so it can never alter the path. */
function uid(value: string, what: string): string {
  if (!/^[0-9]+(\.[0-9]+)*$/.test(value) || value.length > 64) {
    throw new DicomError(
      'ERR_DICOMWEB_BAD_UID',
      `${what} "${value.slice(0, 80)}" is not a UID (digits and dots)`,
    );
  }
  return value;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return concat(chunks);
}

/** A response body as chunks, with a cancel for when the reader stops early. */
function bodyOf(res: Response): { chunks: AsyncIterable<Uint8Array>; cancel(): Promise<void> } {
  const stream = res.body;
  if (!stream) return { chunks: (async function* () {})(), cancel: async () => {} };
  const reader = stream.getReader();
  let done = false;
  return {
    chunks: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          const next = await reader.read();
          if (next.done) {
            done = true;
            return;
          }
          yield next.value;
        }
      },
    },
    cancel: async () => {
      if (!done) await reader.cancel().catch(() => undefined);
    },
  };
}

function warningsOf(res: Response): string[] {
  const header = res.headers.get('warning');
  // Several Warning headers arrive joined with ", "; each starts with a 3-digit code.
  return header ? header.split(/,\s*(?=\d{3}\s)/).map((w) => w.trim()) : [];
}

/** The server's explanation of an error: Orthanc/dcm4chee JSON (Message, Details, errorMessage) or text. */
async function serverMessage(res: Response): Promise<string> {
  let text = '';
  try {
    text = (await res.text()).trim();
  } catch {
    return '';
  }
  try {
    const json = JSON.parse(text) as Record<string, unknown>;
    const parts = ['Message', 'message', 'Details', 'errorMessage', 'error']
      .map((k) => json[k])
      .filter((v): v is string => typeof v === 'string' && v !== '');
    if (parts.length > 0) return [...new Set(parts)].join(': ').slice(0, 2000);
  } catch {
    // not JSON
  }
  return text.slice(0, 2000);
}

/** What `new Blob([...])` takes (the DOM's BlobPart; this project compiles without the DOM lib). */
type BlobPart = NonNullable<ConstructorParameters<typeof Blob>[0]>[number];

function badResponse(what: string): DicomError {
  return new DicomError('ERR_DICOMWEB_BAD_RESPONSE', what);
}

export class DicomWebClient {
  private readonly base: string;
  private readonly fetcher: typeof globalThis.fetch;

  constructor(private readonly options: DicomWebClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  private url(segments: readonly string[], query?: URLSearchParams): string {
    // Segments are fixed words, checked UIDs (digits and dots) and frame lists (digits and commas).
    const path = segments.join('/');
    const q = query?.toString();
    return `${this.base}/${path}${q ? `?${q}` : ''}`;
  }

  /** Sends a request; answers outside `accept` (default: 2xx) become a DicomWebError. */
  private async request(
    method: string,
    url: string,
    init: {
      headers?: Record<string, string>;
      body?: Blob;
      signal?: AbortSignal | undefined;
      accept?: (s: number) => boolean;
    } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...this.options.headers, ...init.headers };
    const token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await this.fetcher(url, {
        method,
        headers,
        ...(init.body ? { body: init.body } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const cause = (err as { cause?: { message?: string } }).cause?.message;
      const message = [(err as Error).message, cause].filter(Boolean).join(': ');
      throw new DicomWebError(
        { status: 0, statusText: '', method, url, serverMessage: message },
        { cause: err },
      );
    }
    if (!(init.accept ?? ((s: number) => s >= 200 && s < 300))(res.status)) {
      throw new DicomWebError({
        status: res.status,
        statusText: res.statusText,
        method,
        url,
        serverMessage: await serverMessage(res),
      });
    }
    return res;
  }

  private async json(res: Response, url: string): Promise<unknown> {
    const text = await res.text();
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw badResponse(`${url}: the response is not JSON (${(err as Error).message})`);
    }
  }

  /**
   * STOW-RS (PS3.18 10.5): stores Part 10 files in one multipart/related request (a Blob: files given
   * as Blobs, e.g. File objects or Node's fs.openAsBlob, are streamed by fetch, not read first).
   * Returns the parsed response for 200, 202 and 409 (some or all failed: see `failed`).
   */
  async store(
    files: readonly (Uint8Array | Blob)[],
    options: { studyInstanceUid?: string | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<StoreResult> {
    if (files.length === 0) throw new DicomError('ERR_DICOMWEB_BAD_PARAMETER', 'store: no files to send');
    const boundary = newBoundary();
    const parts: BlobPart[] = [];
    files.forEach((file, i) => {
      parts.push(partHead(boundary, { 'Content-Type': MediaType.DICOM }, i === 0), file);
    });
    parts.push(multipartEnd(boundary));
    const contentType = multipartContentType(MediaType.DICOM, boundary);
    const segments = [
      'studies',
      ...(options.studyInstanceUid ? [uid(options.studyInstanceUid, 'Study Instance UID')] : []),
    ];
    const url = this.url(segments);
    const res = await this.request('POST', url, {
      headers: { 'Content-Type': contentType, Accept: MediaType.DICOM_JSON },
      body: new Blob(parts, { type: contentType }),
      signal: options.signal,
      accept: (s) => (s >= 200 && s < 300) || s === 409,
    });
    const json = await this.json(res, url);
    if (res.status === 409 && (typeof json !== 'object' || json === null)) {
      throw new DicomWebError({
        status: 409,
        statusText: res.statusText,
        method: 'POST',
        url,
        serverMessage: String(json ?? ''),
      });
    }
    const body = (Array.isArray(json) ? json[0] : json) as JsonDataset | undefined;
    return {
      status: res.status,
      warnings: warningsOf(res),
      json: body ?? {},
      ...parseStowResponse(body ?? {}),
    };
  }

  private targetSegments(target: RetrieveTarget): string[] {
    const segments = ['studies', uid(target.study, 'Study Instance UID')];
    if (target.series !== undefined) segments.push('series', uid(target.series, 'Series Instance UID'));
    if (target.instance !== undefined) {
      if (target.series === undefined)
        throw new DicomError('ERR_DICOMWEB_BAD_UID', 'an instance needs its series');
      segments.push('instances', uid(target.instance, 'SOP Instance UID'));
    }
    return segments;
  }

  /** The parts of a multipart response (or the whole body as one part when it is not multipart). */
  private async *parts(res: Response, url: string): AsyncGenerator<RetrievedPart, void, undefined> {
    const body = bodyOf(res);
    try {
      const header = res.headers.get('content-type');
      if (!header) throw badResponse(`${url}: the response has no Content-Type`);
      const ct = parseContentType(header);
      if (ct.type !== MediaType.MULTIPART_RELATED) {
        yield { headers: { 'content-type': header }, contentType: header, body: body.chunks };
        return;
      }
      const boundary = ct.params.boundary;
      if (!boundary) throw badResponse(`${url}: multipart/related without a boundary`);
      for await (const part of parseMultipart(body.chunks, boundary)) {
        yield { headers: part.headers, contentType: part.headers['content-type'], body: part.body };
      }
    } finally {
      await body.cancel();
    }
  }

  /**
   * WADO-RS retrieve (PS3.18 10.4) of a study, series or instance as streamed parts: nothing is held
   * in memory; each part's body must be read before the next part comes (or it is skipped).
   */
  async *retrieveParts(
    target: RetrieveTarget,
    options: RetrieveOptions = {},
  ): AsyncGenerator<RetrievedPart, void, undefined> {
    const url = this.url(this.targetSegments(target));
    const accept = formatMediaType(MediaType.MULTIPART_RELATED, {
      type: MediaType.DICOM,
      'transfer-syntax': options.transferSyntax ?? '*',
    });
    const res = await this.request('GET', url, { headers: { Accept: accept }, signal: options.signal });
    yield* this.parts(res, url);
  }

  private async *files(
    target: RetrieveTarget,
    options: RetrieveOptions,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const part of this.retrieveParts(target, options)) yield await collect(part.body);
  }

  /** The Part 10 files of a study, one byte array per instance, as they arrive. */
  retrieveStudy(study: string, options: RetrieveOptions = {}): AsyncIterable<Uint8Array> {
    return this.files({ study }, options);
  }

  retrieveSeries(study: string, series: string, options: RetrieveOptions = {}): AsyncIterable<Uint8Array> {
    return this.files({ study, series }, options);
  }

  retrieveInstance(
    study: string,
    series: string,
    instance: string,
    options: RetrieveOptions = {},
  ): AsyncIterable<Uint8Array> {
    return this.files({ study, series, instance }, options);
  }

  /** WADO-RS metadata (PS3.18 10.4.1.1.2): one DICOM JSON object per instance, bulk data as BulkDataURIs. */
  async retrieveMetadata(
    study: string,
    series?: string,
    instance?: string,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<JsonDataset[]> {
    const url = this.url([...this.targetSegments({ study, series, instance }), 'metadata']);
    const res = await this.request('GET', url, {
      headers: { Accept: MediaType.DICOM_JSON },
      signal: options.signal,
    });
    const json = await this.json(res, url);
    if (!Array.isArray(json)) throw badResponse(`${url}: the metadata is not a JSON array`);
    return json as JsonDataset[];
  }

  /** WADO-RS frames (PS3.18 10.4.1.1.3): the frames asked for (numbered from 1), in order. */
  async retrieveFrames(
    study: string,
    series: string,
    instance: string,
    frames: readonly number[],
    options: FramesOptions = {},
  ): Promise<Uint8Array[]> {
    if (frames.length === 0 || frames.some((f) => !Number.isInteger(f) || f < 1)) {
      throw new DicomError(
        'ERR_DICOMWEB_BAD_PARAMETER',
        `frame numbers must be integers >= 1: ${frames.join(',')}`,
      );
    }
    const url = this.url([...this.targetSegments({ study, series, instance }), 'frames', frames.join(',')]);
    const type = options.mediaType ?? MediaType.OCTET_STREAM;
    const accept = formatMediaType(MediaType.MULTIPART_RELATED, {
      type,
      'transfer-syntax': options.transferSyntax ?? '*',
    });
    const res = await this.request('GET', url, { headers: { Accept: accept }, signal: options.signal });
    const out: Uint8Array[] = [];
    for await (const part of this.parts(res, url)) out.push(await collect(part.body));
    return out;
  }

  /**
   * QIDO-RS (PS3.18 10.6): `params` are attribute keys (`PatientName: 'Doe*'`, `'00100020': 'ID1'`)
   * and the query parameters includefield (an array repeats it), limit, offset, fuzzymatching.
   */
  async query(level: QueryLevel, params: QueryParams = {}, scope: QueryScope = {}): Promise<QueryResult> {
    const segments: string[] = [];
    if (scope.study !== undefined) segments.push('studies', uid(scope.study, 'Study Instance UID'));
    if (scope.series !== undefined) {
      if (scope.study === undefined)
        throw new DicomError('ERR_DICOMWEB_BAD_UID', 'a series scope needs its study');
      segments.push('series', uid(scope.series, 'Series Instance UID'));
    }
    segments.push(level);
    let search: URLSearchParams;
    if (Object.prototype.toString.call(params) === '[object URLSearchParams]')
      search = params as URLSearchParams;
    else {
      search = new URLSearchParams();
      for (const [name, value] of Object.entries(params as Readonly<Record<string, QueryValue>>)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) search.append(name, String(v));
      }
    }
    const url = this.url(segments, search);
    const res = await this.request('GET', url, { headers: { Accept: MediaType.DICOM_JSON } });
    const json = res.status === 204 ? [] : ((await this.json(res, url)) ?? []);
    if (!Array.isArray(json)) throw badResponse(`${url}: the query result is not a JSON array`);
    return { matches: json as JsonDataset[], warnings: warningsOf(res) };
  }

  private async delete(target: RetrieveTarget): Promise<void> {
    const url = this.url(this.targetSegments(target));
    const res = await this.request('DELETE', url);
    await res.body?.cancel();
  }

  /** DELETE of a study (not in PS3.18; the Azure, dcm4chee and Google APIs have it). */
  deleteStudy(study: string): Promise<void> {
    return this.delete({ study });
  }

  deleteSeries(study: string, series: string): Promise<void> {
    return this.delete({ study, series });
  }

  deleteInstance(study: string, series: string, instance: string): Promise<void> {
    return this.delete({ study, series, instance });
  }
}
