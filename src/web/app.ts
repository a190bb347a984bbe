/**
 * The DICOMweb origin server (PS3.18): STOW-RS, WADO-RS (instances, metadata, frames, bulk data,
 * rendered and thumbnails), QIDO-RS and DELETE over the archive's ports, under one base path
 * (`/dicomweb` by default). Bodies stream both ways: a STOW request goes part by part into the same
 * ingest as C-STORE, and a retrieval streams each blob from the blob store into the multipart body.
 *
 * Requests are published on the `tessera:web:request` diagnostics channel (method, route, status,
 * ms) for the server's logs and metrics.
 */
import { channel } from 'node:diagnostics_channel';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  type BlobStore,
  canConvert,
  type DuplicatePolicy,
  deleteInstances,
  type Index,
  type IndexedInstance,
  type Ingest,
  prepareQuery,
  prepareRetrieve,
  QueryError,
  type QueryLevel,
  type RetrieveItem,
  runQuery,
  selectInstances,
  WHOLE_READ_LIMIT,
} from '../archive/index.ts';
import {
  canDecode,
  Dataset,
  datasetToJson,
  decodeFrame,
  decompressDataset,
  isNativeTransferSyntax,
  readPart10,
  TRANSFER_SYNTAXES,
  writePart10,
} from '../codec/index.ts';
import { DicomError, isDicomError } from '../core/index.ts';
import {
  MediaType,
  type MediaTypeOffer,
  multipartBody,
  multipartContentType,
  negotiate,
  newBoundary,
  type OutgoingPart,
  parseContentType,
  parseMultipart,
  parseQidoQuery,
  type QidoLevel,
  type StowFailed,
  type StowReferenced,
  stowHttpStatus,
  stowResponse,
} from '../dicomweb/index.ts';
import { Tag } from '../dictionary/index.ts';
import { HttpError, sendJson, serviceUrl, uidParam, warning } from './http.ts';
import { canRender, type Palette, type PaletteLut, type PixelDescription, renderFrame } from './render.ts';

const requestChannel = channel('tessera:web:request');

/** What the DICOMweb server needs of the archive: its two ports and the ingest pipeline. */
export interface WebArchive {
  readonly index: Index;
  readonly blobs: BlobStore;
  readonly ingest: Ingest;
}

export interface DicomWebOptions {
  readonly archive: WebArchive;
  /** Where the services live (default `/dicomweb`). */
  readonly basePath?: string;
  /** The URL clients reach the service at, for RetrieveURL/BulkDataURI (default: from the request). */
  readonly publicUrl?: string | undefined;
  /** Duplicate SOP Instance UID policy of STOW-RS (default accept-if-identical). */
  readonly duplicates?: DuplicatePolicy;
  readonly caseInsensitivePersonNames?: boolean;
  /** The largest QIDO `limit` (and the default one); more matches give a Warning header (default 10000). */
  readonly maxQueryResults?: number;
  /** Largest STOW-RS request body in bytes (default 8 GiB): 413 beyond. */
  readonly maxRequestBytes?: number;
  /** Requests served at once; beyond: 503 with Retry-After (default 64). */
  readonly maxConcurrentRequests?: number;
  /** CORS: the origins allowed (`*` for any); absent: no CORS headers. */
  readonly corsOrigins?: '*' | readonly string[] | undefined;
  /** Checks the Authorization header; false answers 401 (default: everything allowed). */
  readonly authorize?: ((authorization: string | undefined) => Promise<boolean>) | undefined;
}

export const DICOMWEB_DEFAULTS = {
  basePath: '/dicomweb',
  maxQueryResults: 10_000,
  maxRequestBytes: 8 * 1024 ** 3,
  maxConcurrentRequests: 64,
} as const;

const NATIVE = TRANSFER_SYNTAXES.filter((t) => !t.encapsulated && !t.deflated).map((t) => t.uid);
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** The image media type of an encapsulated syntax's frames (PS3.18 Table 8.7.3-5). */
const FRAME_MEDIA_TYPES: Record<string, string> = {
  '1.2.840.10008.1.2.4.50': 'image/jpeg',
  '1.2.840.10008.1.2.4.51': 'image/jpeg',
  '1.2.840.10008.1.2.4.57': 'image/jpeg',
  '1.2.840.10008.1.2.4.70': 'image/jpeg',
  '1.2.840.10008.1.2.5': 'image/dicom-rle',
  '1.2.840.10008.1.2.4.80': 'image/jls',
  '1.2.840.10008.1.2.4.81': 'image/jls',
  '1.2.840.10008.1.2.4.90': 'image/jp2',
  '1.2.840.10008.1.2.4.91': 'image/jp2',
  '1.2.840.10008.1.2.4.92': 'image/jpx',
  '1.2.840.10008.1.2.4.93': 'image/jpx',
  '1.2.840.10008.1.2.4.201': 'image/jphc',
  '1.2.840.10008.1.2.4.202': 'image/jphc',
  '1.2.840.10008.1.2.4.203': 'image/jphc',
};

interface Params {
  study?: string;
  series?: string;
  instance?: string;
  frames?: string;
  '*'?: string;
}

type Req = FastifyRequest<{ Params: Params; Querystring: Record<string, string | string[]> }>;

/** Builds the DICOMweb application (not listening): mount it with `app.routing` or `app.listen`. */
export async function createDicomWebApp(options: DicomWebOptions): Promise<FastifyInstance> {
  const base = (options.basePath ?? DICOMWEB_DEFAULTS.basePath).replace(/\/+$/u, '');
  const { index, blobs, ingest } = options.archive;
  const maxResults = options.maxQueryResults ?? DICOMWEB_DEFAULTS.maxQueryResults;
  const maxBytes = options.maxRequestBytes ?? DICOMWEB_DEFAULTS.maxRequestBytes;
  const maxConcurrent = options.maxConcurrentRequests ?? DICOMWEB_DEFAULTS.maxConcurrentRequests;
  const app = Fastify({ logger: false, exposeHeadRoutes: true, bodyLimit: 1024 * 1024 });
  const routes: { method: string; url: string }[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });
  // Request bodies are streamed by the routes that take them (STOW-RS): no parsing here.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  let inFlight = 0;
  app.addHook('onRequest', async (request, reply) => {
    (request as FastifyRequest & { started?: number }).started = performance.now();
    if (options.corsOrigins) cors(request, reply, options.corsOrigins);
    if (request.method === 'OPTIONS') return;
    if (inFlight >= maxConcurrent) {
      reply.header('retry-after', '1');
      throw new HttpError(503, `more than ${maxConcurrent} requests at once: retry later`);
    }
    inFlight++;
    // Released when the response is done or the connection goes (a client that hangs up mid-request
    // gets no onResponse: counting down there alone leaked a slot per aborted request).
    let released = false;
    reply.raw.once('close', () => {
      if (!released) inFlight--;
      released = true;
    });
    if (options.authorize && !(await options.authorize(request.headers.authorization))) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpError(401, 'missing or invalid bearer token');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    const started = (request as FastifyRequest & { started?: number }).started ?? performance.now();
    requestChannel.publish({
      method: request.method,
      url: request.url,
      route: request.routeOptions.url,
      status: reply.statusCode,
      ms: performance.now() - started,
      remoteAddress: request.ip,
    });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `no such resource: ${request.method} ${request.url}` });
  });
  app.setErrorHandler((err, _request, reply) => {
    const status =
      err instanceof HttpError
        ? err.statusCode
        : err instanceof QueryError
          ? 400
          : isDicomError(err) && err.code === 'ERR_DICOMWEB_BAD_PARAMETER'
            ? 400
            : isDicomError(err) && err.code === 'ERR_WEB_RENDER_UNSUPPORTED'
              ? 406
              : typeof (err as { statusCode?: number }).statusCode === 'number' &&
                  (err as { statusCode: number }).statusCode < 500
                ? (err as { statusCode: number }).statusCode
                : 500;
    if (!reply.sent)
      reply
        .code(status)
        .type('application/json')
        .send({
          error: (err as Error).message,
          ...(isDicomError(err) ? { code: err.code } : {}),
        });
  });

  const url = (request: FastifyRequest): string => serviceUrl(request, base, options.publicUrl);

  // ---------------------------------------------------------------- STOW-RS (PS3.18 10.5)
  const stow = async (request: Req, reply: FastifyReply): Promise<FastifyReply> => {
    const studyInstanceUid =
      request.params.study === undefined ? undefined : uidParam(request.params.study, 'Study Instance UID');
    const contentType = request.headers['content-type'];
    if (!contentType) throw new HttpError(415, 'a STOW-RS request needs a Content-Type');
    let media: ReturnType<typeof parseContentType>;
    try {
      media = parseContentType(contentType);
    } catch (err) {
      throw new HttpError(415, (err as Error).message);
    }
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
    const raw = request.body as Readable;
    const limit = { exceeded: false };
    const body = limited(raw, maxBytes, limit);
    const source = { address: request.ip };
    const policy = options.duplicates ?? 'accept-if-identical';
    const referenced: StowReferenced[] = [];
    const failed: StowFailed[] = [];
    const expected = studyInstanceUid ? { studyInstanceUid } : {};
    // The error that made a part's body fail (a missing close delimiter): the part's own failure
    // reports it, so the parser throwing it again afterwards adds no second FailedSOPSequence item.
    let partError: unknown;
    const watched = async function* (part: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      try {
        yield* part;
      } catch (err) {
        partError = err;
        throw err;
      }
    };
    const one = async (part: AsyncIterable<Uint8Array>): Promise<void> => {
      const result = await ingest.ingestPart10(watched(part), { source, policy, expected });
      if (
        result.status === 0 &&
        result.sopInstanceUid &&
        result.studyInstanceUid &&
        result.seriesInstanceUid
      ) {
        referenced.push({
          sopClassUid: result.sopClassUid ?? '',
          sopInstanceUid: result.sopInstanceUid,
          retrieveUrl: `${url(request)}/studies/${result.studyInstanceUid}/series/${result.seriesInstanceUid}/instances/${result.sopInstanceUid}`,
        });
      } else {
        failed.push({
          ...(result.sopClassUid ? { sopClassUid: result.sopClassUid } : {}),
          ...(result.sopInstanceUid ? { sopInstanceUid: result.sopInstanceUid } : {}),
          failureReason: result.status === 0 ? 0x0110 : result.status,
        });
      }
    };
    if (media.type === MediaType.DICOM) {
      await one(body);
      // Ingest turns the error of its input into a failure status: the cause is the size here.
      if (limit.exceeded) throw tooLarge(maxBytes);
    } else if (media.type === MediaType.MULTIPART_RELATED) {
      const partType = media.params.type?.toLowerCase();
      if (partType !== undefined && partType !== MediaType.DICOM)
        throw new HttpError(
          415,
          `multipart/related of type "${partType}" is not supported: send application/dicom parts`,
        );
      const boundary = media.params.boundary;
      if (!boundary) throw new HttpError(400, 'multipart/related without a boundary parameter');
      try {
        for await (const part of parseMultipart(body, boundary)) {
          const type = part.headers['content-type'];
          if (type && parseContentType(type).type !== MediaType.DICOM) {
            failed.push({ failureReason: 0x0122 });
            continue;
          }
          await one(part.body);
        }
      } catch (err) {
        if (err instanceof HttpError) throw err;
        // A malformed body after some parts: what was stored stays stored; the rest failed.
        if (referenced.length === 0 && failed.length === 0) throw new HttpError(400, (err as Error).message);
        if (err !== partError) failed.push({ failureReason: 0xc000 });
      }
    } else {
      throw new HttpError(
        415,
        `Content-Type ${media.type} is not supported: use multipart/related; type="application/dicom" or application/dicom`,
      );
    }
    const studies = new Set(referenced.map((r) => r.retrieveUrl?.split('/series/')[0]));
    // PS3.18 10.5.3: 400 when nothing could be stored for the request's form (here: no part at all).
    if (referenced.length === 0 && failed.length === 0)
      throw new HttpError(400, 'the multipart body has no part: nothing to store');
    const status = stowHttpStatus(referenced.length, failed.length);
    return reply
      .code(status)
      .type(MediaType.DICOM_JSON)
      .send(
        JSON.stringify(
          stowResponse({
            retrieveBase: studies.size === 1 ? [...studies][0] : undefined,
            referenced,
            failed,
          }),
        ),
      );
  };
  app.post(`${base}/studies`, stow);
  app.post(`${base}/studies/:study`, stow);

  // ---------------------------------------------------------------- selection helpers
  const select = async (
    level: 'STUDY' | 'SERIES' | 'IMAGE',
    params: Params,
  ): Promise<{ items: RetrieveItem[]; prepared: ReturnType<typeof prepareRetrieve> }> => {
    const identifier = new Dataset();
    identifier.setString(Tag.QueryRetrieveLevel, level);
    identifier.setString(Tag.StudyInstanceUID, uidParam(params.study, 'Study Instance UID'));
    if (level !== 'STUDY')
      identifier.setString(Tag.SeriesInstanceUID, uidParam(params.series, 'Series Instance UID'));
    if (level === 'IMAGE')
      identifier.setString(Tag.SOPInstanceUID, uidParam(params.instance, 'SOP Instance UID'));
    const prepared = prepareRetrieve(identifier, { level, model: 'STUDY_ROOT' });
    const items: RetrieveItem[] = [];
    for await (const item of selectInstances(index, prepared)) items.push(item);
    if (items.length === 0) throw new HttpError(404, `no such ${describe(level, params)}`);
    return { items, prepared };
  };

  const instanceRow = async (params: Params): Promise<IndexedInstance> => {
    const sop = uidParam(params.instance, 'SOP Instance UID');
    const row = await index.instance(sop);
    if (
      !row ||
      row.studyInstanceUid !== uidParam(params.study, 'Study Instance UID') ||
      row.seriesInstanceUid !== uidParam(params.series, 'Series Instance UID')
    )
      throw new HttpError(404, `no such ${describe('IMAGE', params)}`);
    return row;
  };

  // ---------------------------------------------------------------- WADO-RS instances (10.4.1.1.1)
  const retrieve =
    (level: 'STUDY' | 'SERIES' | 'IMAGE') =>
    async (request: Req, reply: FastifyReply): Promise<FastifyReply> => {
      const { items } = await select(level, request.params);
      const offers: MediaTypeOffer[] = [
        {
          type: MediaType.MULTIPART_RELATED,
          params: { type: MediaType.DICOM },
          transferSyntaxes: ['*', ...NATIVE, ...new Set(items.map((i) => i.transferSyntaxUid))],
        },
      ];
      const chosen = negotiate(request.headers.accept, offers);
      if (!chosen.ok) throw new HttpError(406, chosen.message);
      const ts = chosen.transferSyntax ?? '*';
      if (ts !== '*') {
        const stuck = items.filter((i) => !canConvert(i.transferSyntaxUid, ts));
        if (stuck.length > 0)
          throw new HttpError(
            406,
            `${stuck.length} instance(s) are stored in ${stuck[0]!.transferSyntaxUid} and cannot be converted to ${ts} (no codec for compressed pixel data); ask for transfer-syntax=*`,
          );
      }
      if (level === 'IMAGE') {
        const row = await index.instance(items[0]!.sopInstanceUid);
        if (row && etagMatches(request, reply, row)) return reply.code(304).send();
      }
      const boundary = newBoundary();
      // Small instances are read whole (one read) and the next one is read while the current one is
      // written out; large ones stream.
      const body = (item: RetrieveItem): Promise<Uint8Array | AsyncIterable<Uint8Array>> => {
        const target = ts === '*' ? item.transferSyntaxUid : ts;
        if (target !== item.transferSyntaxUid) return converted(blobs, item, target);
        if (item.size <= WHOLE_READ_LIMIT) return blobs.readBytes(item.blobKey, 0, item.size);
        return Promise.resolve(blobs.read(item.blobKey) as AsyncIterable<Uint8Array>);
      };
      const parts = async function* (): AsyncGenerator<OutgoingPart> {
        let next = items.length > 0 ? body(items[0]!) : undefined;
        for (const [i, item] of items.entries()) {
          const current = next!;
          next = i + 1 < items.length ? body(items[i + 1]!) : undefined;
          // A failed read ahead is reported when its part is reached, not as an unhandled rejection.
          next?.catch(() => undefined);
          const target = ts === '*' ? item.transferSyntaxUid : ts;
          yield {
            headers: {
              'Content-Type': `${MediaType.DICOM}; transfer-syntax=${target}`,
              'Content-Location': `${url(request)}/studies/${item.studyInstanceUid}/series/${item.seriesInstanceUid}/instances/${item.sopInstanceUid}`,
            },
            body: await current,
          };
        }
      };
      return reply
        .type(`${multipartContentType(MediaType.DICOM, boundary)}; transfer-syntax=${ts}`)
        .send(Readable.from(multipartBody(parts(), boundary)));
    };
  app.get(`${base}/studies/:study`, retrieve('STUDY'));
  app.get(`${base}/studies/:study/series/:series`, retrieve('SERIES'));
  app.get(`${base}/studies/:study/series/:series/instances/:instance`, retrieve('IMAGE'));

  // ---------------------------------------------------------------- metadata (10.4.1.1.2)
  const metadata =
    (level: 'STUDY' | 'SERIES' | 'IMAGE') =>
    async (request: Req, reply: FastifyReply): Promise<FastifyReply> => {
      const chosen = negotiate(request.headers.accept, [
        { type: MediaType.DICOM_JSON },
        { type: MediaType.JSON },
      ]);
      if (!chosen.ok) throw new HttpError(406, chosen.message);
      const { items } = await select(level, request.params);
      if (level === 'IMAGE') {
        const row = await index.instance(items[0]!.sopInstanceUid);
        if (row && etagMatches(request, reply, row)) return reply.code(304).send();
      }
      const service = url(request);
      const docs = async function* (): AsyncGenerator<string> {
        yield '[';
        let first = true;
        for (const item of items) {
          const row = await index.instance(item.sopInstanceUid);
          if (!row) continue;
          const prefix = `${service}/studies/${row.studyInstanceUid}/series/${row.seriesInstanceUid}/instances/${row.sopInstanceUid}/`;
          yield (first ? '' : ',') +
            row.metadata.replaceAll('"BulkDataURI":"bulk/', `"BulkDataURI":"${prefix}bulk/`);
          first = false;
        }
        yield ']';
      };
      return sendJson(request, reply, chosen.mediaType, docs());
    };
  app.get(`${base}/studies/:study/metadata`, metadata('STUDY'));
  app.get(`${base}/studies/:study/series/:series/metadata`, metadata('SERIES'));
  app.get(`${base}/studies/:study/series/:series/instances/:instance/metadata`, metadata('IMAGE'));

  // ---------------------------------------------------------------- frames (10.4.1.1.4)
  app.get(
    `${base}/studies/:study/series/:series/instances/:instance/frames/:frames`,
    async (request: Req, reply) => {
      const row = await instanceRow(request.params);
      const numbers = frameList(request.params.frames);
      const frames = await frameLocations(blobs, row);
      for (const n of numbers)
        if (n > frames.length)
          throw new HttpError(404, `frame ${n} does not exist: the instance has ${frames.length} frame(s)`);
      const stored = row.transferSyntaxUid;
      const native = isNativeTransferSyntax(stored);
      const offers: MediaTypeOffer[] = native
        ? [
            {
              type: MediaType.MULTIPART_RELATED,
              params: { type: MediaType.OCTET_STREAM },
              transferSyntaxes:
                stored === '1.2.840.10008.1.2.2' ? ['*'] : ['*', EXPLICIT_LE, '1.2.840.10008.1.2'],
            },
          ]
        : [
            {
              type: MediaType.MULTIPART_RELATED,
              params: { type: MediaType.OCTET_STREAM },
              // Decodable frames can also be had uncompressed (octet-stream's default, PS3.18 8.7.3.5.2).
              transferSyntaxes: [
                '*',
                stored,
                ...(canDecode(stored) ? [EXPLICIT_LE, '1.2.840.10008.1.2'] : []),
              ],
            },
            ...(FRAME_MEDIA_TYPES[stored]
              ? [
                  {
                    type: MediaType.MULTIPART_RELATED,
                    params: { type: FRAME_MEDIA_TYPES[stored]! },
                    transferSyntaxes: ['*', stored],
                  },
                ]
              : []),
          ];
      const chosen = negotiate(request.headers.accept, offers);
      if (!chosen.ok)
        throw new HttpError(
          406,
          `${chosen.message} (frames are stored in ${stored}${canDecode(stored) ? '; they can be had as stored or uncompressed' : '; no codec decodes it here'})`,
        );
      const partType = chosen.offer.params?.type ?? MediaType.OCTET_STREAM;
      // Compressed frames are decoded when a native syntax is asked for, explicitly or as the default of
      // application/octet-stream (Explicit VR Little Endian, PS3.18 8.7.3.5.2).
      const asked = chosen.transferSyntax;
      const decode =
        !native &&
        partType === MediaType.OCTET_STREAM &&
        asked !== undefined &&
        asked !== '*' &&
        asked !== stored &&
        isNativeTransferSyntax(asked);
      const ts = native ? (asked === '*' ? stored : (asked ?? stored)) : decode ? asked! : stored;
      const format = decode ? pixelDescription(row) : undefined;
      if (decode && format === undefined)
        throw new HttpError(
          406,
          'the instance lacks the pixel attributes (Rows, Columns, Bits Allocated) to decode its frames',
        );
      const boundary = newBoundary();
      const base2 = `${url(request)}/studies/${row.studyInstanceUid}/series/${row.seriesInstanceUid}/instances/${row.sopInstanceUid}/frames/`;
      const parts = async function* (): AsyncGenerator<OutgoingPart> {
        for (const n of numbers) {
          const ranges = frames[n - 1]!;
          const body = await Promise.all(
            ranges.map(([offset, length]) => blobs.readBytes(row.blobKey, offset, length)),
          );
          const bytes = body.length === 1 ? body[0]! : Buffer.concat(body);
          yield {
            headers: {
              'Content-Type': `${partType}; transfer-syntax=${ts}`,
              'Content-Location': `${base2}${n}`,
            },
            body: format ? (await decodeFrame(bytes, stored, format)).pixels : bytes,
          };
        }
      };
      return reply
        .type(`${multipartContentType(partType, boundary)}; transfer-syntax=${ts}`)
        .send(Readable.from(multipartBody(parts(), boundary)));
    },
  );

  // ---------------------------------------------------------------- bulk data (10.4.1.1.5)
  app.get(`${base}/studies/:study/series/:series/instances/:instance/bulk/*`, async (request: Req, reply) => {
    const row = await instanceRow(request.params);
    const path = (request.params['*'] ?? '').split('/').filter((p) => p !== '');
    if (
      path.length === 0 ||
      path.length % 2 === 0 ||
      path.some((p, i) => (i % 2 === 0 ? !/^[0-9A-Fa-f]{8}$/u.test(p) : !/^\d+$/u.test(p)))
    )
      throw new HttpError(
        400,
        `bulk data path "${path.join('/')}" is not tag[/item/tag...] (8 hex digits, item numbers)`,
      );
    const size = await blobs.size(row.blobKey);
    if (size === undefined) throw new HttpError(404, 'the instance blob is missing');
    const top = Number.parseInt(path[0]!, 16);
    const send = (body: Buffer | AsyncIterable<Uint8Array>): FastifyReply => {
      const boundary = newBoundary();
      return reply.type(multipartContentType(MediaType.OCTET_STREAM, boundary)).send(
        Readable.from(
          multipartBody(
            [
              {
                headers: {
                  'Content-Type': `${MediaType.OCTET_STREAM}; transfer-syntax=${row.transferSyntaxUid}`,
                },
                body,
              },
            ],
            boundary,
          ),
        ),
      );
    };
    let ds: Dataset;
    if (size <= WHOLE_READ_LIMIT) ds = readPart10(await blobs.readBytes(row.blobKey, 0, size)).dataset;
    else {
      // A large instance is never read whole: Pixel Data streams from its frame ranges (the frames'
      // bytes, fragments without their item headers), the elements before it come from the header.
      const frames = row.frameOffsets ? await frameLocations(blobs, row) : undefined;
      const pixelStart = frames?.[0]?.[0]?.[0];
      if (frames && path.length === 1 && top === Tag.PixelData) {
        return send(
          (async function* () {
            for (const frame of frames)
              for (const [start, length] of frame)
                yield* blobs.read(row.blobKey, { start, end: start + length }) as AsyncIterable<Uint8Array>;
          })(),
        );
      }
      if (pixelStart === undefined || top >= Tag.PixelData)
        throw new HttpError(
          406,
          `bulk data ${path.join('/')} of an instance of ${size} bytes: only Pixel Data and the elements before it are served from instances over ${WHOLE_READ_LIMIT} bytes`,
        );
      ds = readPart10(await blobs.readBytes(row.blobKey, 0, pixelStart), {
        stopBeforeTag: Tag.PixelData,
      }).dataset;
    }
    for (let i = 0; i < path.length - 1; i += 2) {
      const items = ds.items(Number.parseInt(path[i]!, 16));
      const item = items[Number(path[i + 1])];
      if (!item) throw new HttpError(404, `no item ${path[i + 1]} in ${path[i]}`);
      ds = item;
    }
    const el = ds.get(Number.parseInt(path[path.length - 1]!, 16));
    if (!el) throw new HttpError(404, `no element ${path[path.length - 1]} in the instance`);
    let bytes: Buffer;
    if (el.kind === 'value') bytes = el.bytes;
    else if (el.kind === 'bulk') bytes = await el.bulk.read();
    else if (el.kind === 'encapsulated')
      bytes = Buffer.concat(el.fragments.map((f) => f.bytes ?? Buffer.alloc(0)));
    else throw new HttpError(400, 'a sequence is not bulk data');
    return send(bytes);
  });

  // ---------------------------------------------------------------- rendered, thumbnail (10.4.1.1.3)
  const rendered =
    (thumbnail: boolean, withFrames: boolean) =>
    async (request: Req, reply: FastifyReply): Promise<FastifyReply> => {
      const row = await instanceRow(request.params);
      const chosen = negotiate(request.headers.accept, [{ type: 'image/jpeg' }, { type: 'image/png' }]);
      if (!chosen.ok) throw new HttpError(406, chosen.message);
      const described = pixelDescription(row);
      if (!described) throw new HttpError(406, 'the instance has no image pixel data to render');
      if (!canRender(described.transferSyntaxUid))
        throw new HttpError(406, `cannot render ${described.transferSyntaxUid}: no decoder for it here`);
      const frame = withFrames ? frameList(request.params.frames)[0]! : 1;
      const frames = await frameLocations(blobs, row);
      if (frame > frames.length) throw new HttpError(404, `frame ${frame} does not exist`);
      const px =
        described.photometricInterpretation === 'PALETTE COLOR'
          ? { ...described, palette: await paletteOf(blobs, row, frames) }
          : described;
      const bytes = Buffer.concat(
        await Promise.all(frames[frame - 1]!.map(([o, l]) => blobs.readBytes(row.blobKey, o, l))),
      );
      const q = request.query;
      const image = await renderFrame(bytes, px, {
        mediaType: chosen.offer.type as 'image/jpeg' | 'image/png',
        window: windowParam(q.window),
        viewport: viewportParam(q.viewport) ?? (thumbnail ? { width: 128, height: 128 } : undefined),
        quality: qualityParam(q.quality),
      });
      return reply.type(chosen.offer.type).send(image);
    };
  const inst = `${base}/studies/:study/series/:series/instances/:instance`;
  app.get(`${inst}/rendered`, rendered(false, false));
  app.get(`${inst}/thumbnail`, rendered(true, false));
  app.get(`${inst}/frames/:frames/rendered`, rendered(false, true));
  app.get(`${inst}/frames/:frames/thumbnail`, rendered(true, true));

  // ---------------------------------------------------------------- QIDO-RS (10.6)
  const qido =
    (level: QidoLevel) =>
    async (request: Req, reply: FastifyReply): Promise<FastifyReply> => {
      const chosen = negotiate(request.headers.accept, [
        { type: MediaType.DICOM_JSON },
        { type: MediaType.JSON },
      ]);
      if (!chosen.ok) throw new HttpError(406, chosen.message);
      const scope = {
        ...(request.params.study === undefined
          ? {}
          : { studyInstanceUid: uidParam(request.params.study, 'Study Instance UID') }),
        ...(request.params.series === undefined
          ? {}
          : { seriesInstanceUid: uidParam(request.params.series, 'Series Instance UID') }),
      };
      const search = new URLSearchParams(
        request.url.slice(request.url.indexOf('?') + 1 || request.url.length),
      );
      const q = parseQidoQuery(search, level, scope);
      const limit = Math.min(q.limit ?? maxResults, maxResults);
      // The unique keys above the level are always returned: RetrieveURL is built from them.
      if (level !== 'STUDY' && !q.identifier.has(Tag.StudyInstanceUID))
        q.identifier.setString(Tag.StudyInstanceUID, '');
      if (level === 'IMAGE' && !q.identifier.has(Tag.SeriesInstanceUID))
        q.identifier.setString(Tag.SeriesInstanceUID, '');
      if (q.includeAll) for (const t of ALL_KEYS[level]) if (!q.identifier.has(t)) setEmpty(q.identifier, t);
      const prepared = prepareQuery(q.identifier, {
        level,
        model: 'STUDY_ROOT',
        relational: true,
        caseInsensitivePersonNames: options.caseInsensitivePersonNames !== false,
        fuzzyPersonNames: q.fuzzymatching,
        limit: limit + 1,
        ...(q.offset === undefined ? {} : { offset: q.offset }),
      });
      const warnings = [...q.ignored.map((w) => warning(w))];
      if (prepared.unsupportedKeys.length > 0)
        warnings.push(
          warning(
            `matching is not supported on ${prepared.unsupportedKeys.map((t) => t.toString(16).padStart(8, '0').toUpperCase()).join(', ')}: ignored`,
          ),
        );
      const service = url(request);
      const results: string[] = [];
      let more = false;
      for await (const ds of runQuery(index, prepared)) {
        if (results.length >= limit) {
          more = true;
          break;
        }
        ds.setString(Tag.RetrieveURL, retrieveUrl(service, level, ds));
        // QueryRetrieveLevel is a DIMSE attribute: not part of a QIDO-RS response.
        ds.delete(Tag.QueryRetrieveLevel);
        results.push(JSON.stringify(datasetToJson(ds)));
      }
      if (more)
        warnings.push(
          warning(
            `The number of results exceeded the limit of ${limit}: use offset=${(q.offset ?? 0) + limit} for the next ones`,
          ),
        );
      if (warnings.length > 0) reply.header('warning', warnings.join(', '));
      if (results.length === 0 && q.offset === undefined) {
        // PS3.18 10.6.3.2: no match is 200 with an empty array (some servers send 204).
      }
      return sendJson(request, reply, chosen.mediaType, ['[', results.join(','), ']']);
    };
  app.get(`${base}/studies`, qido('STUDY'));
  app.get(`${base}/series`, qido('SERIES'));
  app.get(`${base}/instances`, qido('IMAGE'));
  app.get(`${base}/studies/:study/series`, qido('SERIES'));
  app.get(`${base}/studies/:study/instances`, qido('IMAGE'));
  app.get(`${base}/studies/:study/series/:series/instances`, qido('IMAGE'));

  // ---------------------------------------------------------------- DELETE
  const remove =
    (level: 'STUDY' | 'SERIES' | 'IMAGE') =>
    async (request: Req, reply: FastifyReply): Promise<FastifyReply> => {
      const { items } = await select(level, request.params);
      await deleteInstances(index, blobs, toAsync(items));
      return reply.code(204).send();
    };
  app.delete(`${base}/studies/:study`, remove('STUDY'));
  app.delete(`${base}/studies/:study/series/:series`, remove('SERIES'));
  app.delete(`${base}/studies/:study/series/:series/instances/:instance`, remove('IMAGE'));

  // ---------------------------------------------------------------- OpenAPI description
  app.get(`${base}/openapi.json`, async (_request, reply) =>
    reply.type('application/json').send(openApi(base, routes)),
  );
  if (options.corsOrigins) app.options(`${base}/*`, async (_request, reply) => reply.code(204).send());

  await app.ready();
  return app;
}

function describe(level: QueryLevel, p: Params): string {
  if (level === 'STUDY') return `study ${p.study}`;
  if (level === 'SERIES') return `series ${p.series} in study ${p.study}`;
  return `instance ${p.instance} in series ${p.series} of study ${p.study}`;
}

async function* toAsync<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, `the request body is larger than ${max} bytes`);
}

/** Counts the body's bytes: beyond `max`, the request fails with 413 (and nothing of it is kept). */
async function* limited(
  body: AsyncIterable<Uint8Array>,
  max: number,
  state: { exceeded: boolean },
): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > max) {
      state.exceeded = true;
      throw tooLarge(max);
    }
    yield chunk;
  }
}

function cors(request: FastifyRequest, reply: FastifyReply, origins: '*' | readonly string[]): void {
  const origin = request.headers.origin;
  if (origins === '*') reply.header('access-control-allow-origin', '*');
  else if (origin && origins.includes(origin)) {
    reply.header('access-control-allow-origin', origin);
    reply.header('vary', 'Origin');
  } else return;
  reply.header('access-control-allow-methods', 'GET, HEAD, POST, DELETE, OPTIONS');
  reply.header('access-control-allow-headers', 'Authorization, Content-Type, Accept');
  reply.header('access-control-expose-headers', 'Warning, Content-Location, ETag');
}

/** ETag/Last-Modified of one instance (its content checksum, its receipt); true when If-None-Match matches. */
function etagMatches(request: FastifyRequest, reply: FastifyReply, row: IndexedInstance): boolean {
  const etag = `"${row.checksum.slice(0, 32)}"`;
  reply.header('etag', etag);
  reply.header('last-modified', new Date(row.receivedAt).toUTCString());
  const inm = request.headers['if-none-match'];
  return inm?.split(',').some((t) => t.trim() === etag || t.trim() === '*') === true;
}

/** `1,3,5` -> [1,3,5] (1-based, PS3.18 10.4.1.1.4); 400 otherwise. */
function frameList(text: string | undefined): number[] {
  const parts = (text ?? '').split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => !/^[1-9]\d{0,8}$/u.test(p)))
    throw new HttpError(
      400,
      `frame list "${text ?? ''}" is not a comma-separated list of frame numbers from 1`,
    );
  return parts.map(Number);
}

/** [offset, length] ranges of each frame in the blob: from the offsets stored at ingest, else by parsing. */
async function frameLocations(_blobs: BlobStore, row: IndexedInstance): Promise<[number, number][][]> {
  if (row.frameOffsets) {
    const parsed = JSON.parse(row.frameOffsets) as ([number, number] | [number, number][])[];
    return parsed.map((f) => (Array.isArray(f[0]) ? (f as [number, number][]) : [f as [number, number]]));
  }
  throw new HttpError(
    406,
    'the frames of this instance were not located at ingest (deflated or malformed pixel data): retrieve the instance instead',
  );
}

async function converted(blobs: BlobStore, item: RetrieveItem, target: string): Promise<Uint8Array> {
  const size = await blobs.size(item.blobKey);
  if (size === undefined)
    throw new DicomError('ERR_ARCHIVE_BLOB_NOT_FOUND', `blob ${item.blobKey} is missing`);
  const file = readPart10(await blobs.readBytes(item.blobKey, 0, size));
  const dataset = isNativeTransferSyntax(item.transferSyntaxUid)
    ? file.dataset
    : await decompressDataset(file.dataset, item.transferSyntaxUid);
  return writePart10({ dataset, meta: file.meta }, target);
}

/**
 * The Palette Color Lookup Tables of an instance (PS3.3 C.7.9): descriptors from its metadata document;
 * data from it too when inline (up to 1 KiB: 8-bit palettes of 256 entries), else from the blob's header
 * (the bytes before Pixel Data). Segmented palettes (0028,1221-1223) are not supported: 406.
 */
async function paletteOf(
  blobs: BlobStore,
  row: IndexedInstance,
  frames: [number, number][][],
): Promise<Palette> {
  const json = JSON.parse(row.metadata) as Record<string, { Value?: unknown[]; InlineBinary?: string }>;
  let header: Dataset | undefined;
  const lut = async (descriptorTag: string, dataTag: string, segmentedTag: string): Promise<PaletteLut> => {
    const d = json[descriptorTag]?.Value;
    if (!d || d.length < 3 || !d.every((x) => typeof x === 'number'))
      throw new HttpError(
        406,
        `PALETTE COLOR without a lookup table descriptor (${descriptorTag}): cannot render`,
      );
    let data: Buffer | undefined;
    const inline = json[dataTag]?.InlineBinary;
    if (typeof inline === 'string') data = Buffer.from(inline, 'base64');
    else if (json[dataTag] !== undefined) {
      if (header === undefined) {
        const end = frames[0]?.[0]?.[0];
        if (end === undefined)
          throw new HttpError(406, 'the pixel data of this instance was not located at ingest');
        header = readPart10(await blobs.readBytes(row.blobKey, 0, end), {
          stopBeforeTag: 0x7fe00010,
        }).dataset;
      }
      const el = header.get(Number.parseInt(dataTag, 16));
      data = el?.kind === 'value' ? el.bytes : el?.kind === 'bulk' ? await el.bulk.read() : undefined;
      // Lookup table data is OW: little endian is what paletteTo8Bit reads.
      if (data && row.transferSyntaxUid === '1.2.840.10008.1.2.2') data = Buffer.from(data).swap16();
    } else if (json[segmentedTag] !== undefined)
      throw new HttpError(406, 'segmented palette color lookup tables are not supported for rendering');
    if (!data)
      throw new HttpError(406, `PALETTE COLOR without its lookup table data (${dataTag}): cannot render`);
    const [entries, firstMapped, bits] = d as number[];
    if (bits !== 8 && bits !== 16)
      throw new HttpError(
        406,
        `a palette lookup table of ${bits} bits per entry (8 or 16 expected): cannot render`,
      );
    return { entries: entries === 0 ? 65536 : entries!, firstMapped: firstMapped!, bits, data };
  };
  return {
    red: await lut('00281101', '00281201', '00281221'),
    green: await lut('00281102', '00281202', '00281222'),
    blue: await lut('00281103', '00281203', '00281223'),
  };
}

function first(json: Record<string, { Value?: unknown[] }>, tag: string): unknown {
  return json[tag]?.Value?.[0];
}

/** The pixel attributes of an instance, from its metadata document. */
function pixelDescription(row: IndexedInstance): PixelDescription | undefined {
  const json = JSON.parse(row.metadata) as Record<string, { Value?: unknown[] }>;
  const num = (tag: string, fallback?: number): number | undefined => {
    const v = first(json, tag);
    const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : Number.NaN;
    return Number.isFinite(n) ? n : fallback;
  };
  const rows = num('00280010');
  const columns = num('00280011');
  const bitsAllocated = num('00280100');
  if (rows === undefined || columns === undefined || bitsAllocated === undefined) return undefined;
  const wc = num('00281050');
  const ww = num('00281051');
  return {
    rows,
    columns,
    bitsAllocated,
    samplesPerPixel: num('00280002', 1)!,
    bitsStored: num('00280101', bitsAllocated)!,
    pixelRepresentation: num('00280103', 0)!,
    photometricInterpretation: String(first(json, '00280004') ?? 'MONOCHROME2'),
    planarConfiguration: num('00280006', 0)!,
    rescaleSlope: num('00281053', 1)!,
    rescaleIntercept: num('00281052', 0)!,
    windowCenter: wc,
    windowWidth: ww,
    transferSyntaxUid: row.transferSyntaxUid,
  };
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function windowParam(v: string | string[] | undefined): { center: number; width: number } | undefined {
  const text = single(v);
  if (text === undefined) return undefined;
  const [c, w, fn] = text.split(',');
  const center = Number(c);
  const width = Number(w);
  if (!Number.isFinite(center) || !Number.isFinite(width) || width < 1)
    throw new HttpError(400, `window "${text}" is not center,width[,function] with a width of at least 1`);
  if (fn !== undefined && fn.toUpperCase() !== 'LINEAR')
    throw new HttpError(400, `window function "${fn}" is not supported (only LINEAR)`);
  return { center, width };
}

function viewportParam(v: string | string[] | undefined): { width: number; height: number } | undefined {
  const text = single(v);
  if (text === undefined) return undefined;
  const [w, h] = text.split(',').map(Number);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w! < 1 || h! < 1 || w! > 8192 || h! > 8192)
    throw new HttpError(400, `viewport "${text}" is not width,height (1-8192 each)`);
  return { width: w!, height: h! };
}

function qualityParam(v: string | string[] | undefined): number | undefined {
  const text = single(v);
  if (text === undefined) return undefined;
  const q = Number(text);
  if (!Number.isInteger(q) || q < 1 || q > 100) throw new HttpError(400, `quality "${text}" is not 1-100`);
  return q;
}

function retrieveUrl(service: string, level: QidoLevel, ds: Dataset): string {
  const study = `${service}/studies/${ds.string(Tag.StudyInstanceUID) ?? ''}`;
  if (level === 'STUDY') return study;
  const series = `${study}/series/${ds.string(Tag.SeriesInstanceUID) ?? ''}`;
  if (level === 'SERIES') return series;
  return `${series}/instances/${ds.string(Tag.SOPInstanceUID) ?? ''}`;
}

function setEmpty(ds: Dataset, t: number): void {
  ds.setBytes(t, (TAG_VR.get(t) ?? 'LO') as 'LO', Buffer.alloc(0));
}

const TAG_VR = new Map<number, string>([
  [Tag.NumberOfStudyRelatedSeries, 'IS'],
  [Tag.NumberOfStudyRelatedInstances, 'IS'],
  [Tag.NumberOfSeriesRelatedInstances, 'IS'],
  [Tag.NumberOfPatientRelatedStudies, 'IS'],
  [Tag.Rows, 'US'],
  [Tag.Columns, 'US'],
  [Tag.BitsAllocated, 'US'],
  [Tag.NumberOfFrames, 'IS'],
  [Tag.InstanceNumber, 'IS'],
  [Tag.SeriesNumber, 'IS'],
  [Tag.StudyDate, 'DA'],
  [Tag.StudyTime, 'TM'],
  [Tag.SeriesDate, 'DA'],
  [Tag.SeriesTime, 'TM'],
  [Tag.ContentDate, 'DA'],
  [Tag.ContentTime, 'TM'],
  [Tag.PatientBirthDate, 'DA'],
  [Tag.PatientName, 'PN'],
  [Tag.ReferringPhysicianName, 'PN'],
  [Tag.StudyInstanceUID, 'UI'],
  [Tag.SeriesInstanceUID, 'UI'],
  [Tag.SOPInstanceUID, 'UI'],
  [Tag.SOPClassUID, 'UI'],
  [Tag.ModalitiesInStudy, 'CS'],
  [Tag.Modality, 'CS'],
  [Tag.PatientSex, 'CS'],
  [Tag.AvailableTransferSyntaxUID, 'UI'],
]);

/** `includefield=all`: every attribute the index holds for the level and the levels above it. */
const ALL_KEYS: Record<QidoLevel, readonly number[]> = (() => {
  const patient = [Tag.PatientName, Tag.PatientID, Tag.PatientBirthDate, Tag.PatientSex];
  const study = [
    ...patient,
    Tag.StudyInstanceUID,
    Tag.StudyDate,
    Tag.StudyTime,
    Tag.AccessionNumber,
    Tag.StudyID,
    Tag.StudyDescription,
    Tag.ReferringPhysicianName,
    Tag.ModalitiesInStudy,
    Tag.NumberOfStudyRelatedSeries,
    Tag.NumberOfStudyRelatedInstances,
  ];
  const series = [
    Tag.SeriesInstanceUID,
    Tag.Modality,
    Tag.SeriesNumber,
    Tag.SeriesDescription,
    Tag.SeriesDate,
    Tag.SeriesTime,
    Tag.NumberOfSeriesRelatedInstances,
  ];
  const image = [
    Tag.SOPInstanceUID,
    Tag.SOPClassUID,
    Tag.InstanceNumber,
    Tag.Rows,
    Tag.Columns,
    Tag.BitsAllocated,
    Tag.NumberOfFrames,
    Tag.AvailableTransferSyntaxUID,
  ];
  return { STUDY: study, SERIES: [...study, ...series], IMAGE: [...study, ...series, ...image] };
})();

/** A minimal OpenAPI 3.1 description of the registered routes. */
function openApi(base: string, routes: readonly { method: string; url: string }[]): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    if (!r.url.startsWith(base)) continue;
    const path = r.url.replace(/:([a-z]+)/gu, '{$1}').replace('/*', '/{path}');
    const params = [...path.matchAll(/\{([a-z]+)\}/gu)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    paths[path] ??= {};
    paths[path]![r.method.toLowerCase()] = {
      summary: summaryOf(r.method, path),
      parameters: params,
      responses: { default: { description: 'PS3.18 response' } },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Tessera DICOMweb (PS3.18)', version: '0.1.0' },
    paths,
  };
}

function summaryOf(method: string, path: string): string {
  if (method === 'POST') return 'STOW-RS: store instances';
  if (method === 'DELETE') return 'Delete the resource and its instances';
  if (path.endsWith('/metadata')) return 'WADO-RS: metadata (application/dicom+json)';
  if (path.includes('/frames/') && path.endsWith('/rendered')) return 'WADO-RS: rendered frame';
  if (path.endsWith('/rendered')) return 'WADO-RS: rendered instance';
  if (path.endsWith('/thumbnail')) return 'WADO-RS: thumbnail';
  if (path.includes('/frames/')) return 'WADO-RS: frames';
  if (path.includes('/bulk/')) return 'WADO-RS: bulk data';
  if (path.endsWith('/openapi.json')) return 'This description';
  if (/\/(studies|series|instances)$/u.test(path)) return 'QIDO-RS: search';
  return 'WADO-RS: retrieve instances (multipart/related; type="application/dicom")';
}
