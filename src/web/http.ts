/**
 * Small HTTP pieces of the DICOMweb server: the error type routes throw (turned into a JSON body
 * with the status by one error handler), UID checks of path parameters, the service's base URL,
 * gzip of JSON bodies, and the Warning header of PS3.18 8.3.4.2.
 */
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DicomError, isValidUid } from '../core/index.ts';

/** An HTTP failure with a clear message (PS3.18 8.7: the status and a human-readable reason). */
export class HttpError extends DicomError {
  readonly statusCode: number;
  constructor(statusCode: number, message: string, code = 'ERR_WEB_HTTP') {
    super(code, message);
    this.name = 'HttpError';
    this.statusCode = statusCode;
  }
}

/** A path parameter that must be a UID: 400 naming it otherwise (never used in a path as is). */
export function uidParam(value: string | undefined, name: string): string {
  if (value === undefined || !isValidUid(value))
    throw new HttpError(
      400,
      `${name} "${value ?? ''}" is not a valid UID (digits and dots, at most 64 characters)`,
    );
  return value;
}

/**
 * The URL of the DICOMweb service as the client reached it (for RetrieveURL and BulkDataURI): the
 * configured public URL, else scheme and Host of the request and the base path.
 */
export function serviceUrl(request: FastifyRequest, basePath: string, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl.replace(/\/+$/u, '');
  const host = request.headers.host ?? `${request.hostname}`;
  return `${request.protocol}://${host}${basePath}`;
}

/** Whether the client takes gzip (Accept-Encoding, q > 0). */
export function acceptsGzip(request: FastifyRequest): boolean {
  const header = request.headers['accept-encoding'];
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().split(';');
    if (coding?.trim().toLowerCase() !== 'gzip') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/**
 * Sends a JSON body streamed from `chunks` (text pieces), gzip-compressed when the client accepts it.
 * `Vary: Accept-Encoding` either way (added to a Vary already set).
 */
export function sendJson(
  request: FastifyRequest,
  reply: FastifyReply,
  contentType: string,
  chunks: AsyncIterable<string> | Iterable<string>,
): FastifyReply {
  reply.header('content-type', contentType);
  // Added to what is there (CORS sets `Vary: Origin`), not in its place.
  const vary = reply.getHeader('vary');
  reply.header('vary', vary ? `${String(vary)}, Accept-Encoding` : 'Accept-Encoding');
  const body = Readable.from(toBuffers(chunks));
  if (acceptsGzip(request)) {
    reply.header('content-encoding', 'gzip');
    return reply.send(body.pipe(createGzip()));
  }
  return reply.send(body);
}

async function* toBuffers(chunks: AsyncIterable<string> | Iterable<string>): AsyncGenerator<Buffer> {
  let pending = '';
  for await (const c of chunks) {
    pending += c;
    if (pending.length >= 64 * 1024) {
      yield Buffer.from(pending, 'utf8');
      pending = '';
    }
  }
  if (pending) yield Buffer.from(pending, 'utf8');
}

/** A `Warning: 299` header value (PS3.18 8.3.4.2 / RFC 7234). */
export function warning(text: string): string {
  return `299 tessera "${text.replace(/["\\]/gu, ' ')}"`;
}
