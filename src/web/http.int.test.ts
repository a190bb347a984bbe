/**
 * The DICOMweb origin server at the HTTP level, as curl sees it: raw request bodies and headers, the
 * status codes of PS3.18 (200, 202, 204, 304, 400, 401, 404, 406, 409, 413, 415, 503), multipart edge
 * cases (preamble, epilogue, quoted boundary, boundary-like bytes in the content, a missing close
 * delimiter, a client that hangs up half way), HEAD, ETag, gzip, Accept negotiation, the QIDO-RS
 * parameters, rendered images decoded with sharp, CORS, bearer tokens and JWTs, OpenAPI and the
 * concurrency limit. Everything runs on 127.0.0.1 against archives started in-process.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import sharp from 'sharp';
import { newUid, sleep, writeInstance } from '../../test/helpers/interop.ts';
import {
  multipartRequest,
  responseParts,
  startWebArchive,
  stow,
  type WebArchive,
} from '../../test/helpers/web-archive.ts';
import { readPart10, writePart10 } from '../codec/index.ts';
import { Tag } from '../dictionary/index.ts';

const DATA = fileURLToPath(new URL('../../../shared/data/dicom/', import.meta.url));
const TUTORIAL = ['blue-circle', 'green-square', 'red-triangle'].map((n) =>
  join(DATA, 'ms-tutorial', `${n}.dcm`),
);
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const SERIES_GREEN_RED = '1.2.826.0.1.3680043.8.498.45787841905473114233124723359129632652';
const RED = '1.2.826.0.1.3680043.8.498.47359123102728459884412887463296905395';
const RED_URL = `/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${RED}`;
const MR_JPEG = join(DATA, 'transfer-syntax', 'mr-jpeg-lossless-sv1-dcm4che.dcm');
const CT = join(DATA, 'transfer-syntax', 'ct1-explicit-vr-le.dcm');
/** JPEG Extended, 12 bits: libvips cannot decode it. */
const MR_JPEG12 = join(DATA, 'transfer-syntax', 'mr4-jpeg-extended-wg04.dcm');
const MPEG2 = '1.2.840.10008.1.2.4.100';
/** JPEG Baseline, YBR_FULL_422, 600x600. */
const JPEG8 = join(DATA, 'transfer-syntax', 'jpeg-baseline-with-icon-fo.dcm');
const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457';
const CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457';
const CT_SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457';
const DICOM_MULTIPART = 'multipart/related; type="application/dicom"';

type Json = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>;
const value = (ds: Json | undefined, tag: string): unknown => ds?.[tag]?.Value?.[0];
const items = (ds: Json | undefined, tag: string): Json[] => (ds?.[tag]?.Value ?? []) as Json[];

interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request with node:http: the body exactly as given, the response body undecoded. */
function raw(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${url} in 30 s`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A POST with a chunked body (no Content-Length), sent in 1 KiB pieces. */
function chunked(url: string, contentType: string, body: Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: { 'content-type': contentType, 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer from ${url} in 30 s`)));
    // The server may answer (413) and close before every piece is written: not an error here.
    req.on('error', (err) => (req.writableEnded ? undefined : reject(err)));
    for (let at = 0; at < body.length; at += 1024) req.write(body.subarray(at, at + 1024));
    req.end();
  });
}

const json = (r: RawResponse): unknown => JSON.parse(r.body.toString('utf8'));
const errorOf = (r: RawResponse): string => (json(r) as { error: string }).error;

/** Files in the blob store's temp folder (<dataDir>/tmp, see FsBlobStore). */
async function temps(web: WebArchive): Promise<string[]> {
  try {
    return await readdir(join(web.dataDir, 'tmp'));
  } catch {
    return [];
  }
}

/** Waits (bounded) until `check` holds. */
async function until(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const multipartType = (boundary: string) => `${DICOM_MULTIPART}; boundary=${boundary}`;

describe('DICOMweb over HTTP: status codes, multipart, negotiation, QIDO, rendering', {
  timeout: 240_000,
}, () => {
  let web: WebArchive;
  let scratch = '';
  const tutorial: Buffer[] = [];

  before(async () => {
    web = await startWebArchive({ corsOrigins: ['http://viewer.test'] });
    scratch = await mkdtemp(join(tmpdir(), 'tessera-web-http-'));
    for (const f of TUTORIAL) tutorial.push(await readFile(f));
    const others = await Promise.all([CT, MR_JPEG, MR_JPEG12, JPEG8].map((f) => readFile(f)));
    const r = await stow(`${web.url}/studies`, [...tutorial, ...others]);
    assert.equal(r.status, 200, await r.text());
  });
  after(async () => {
    await web?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  async function generated(name: string, rows = 16, columns = 16): Promise<{ bytes: Buffer; sop: string }> {
    const g = await writeInstance(join(scratch, `${name}.dcm`), { rows, columns, patientName: name });
    return { bytes: await readFile(g.path), sop: g.sopInstanceUid };
  }

  // ------------------------------------------------------------------------------------ STOW-RS
  describe('STOW-RS', () => {
    test('200: every part stored', async () => {
      const a = await generated('Stow^Ok');
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType('b1') },
        body: multipartRequest([{ body: a.bytes }], 'b1'),
      });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^application\/dicom\+json/);
      const body = json(r) as Json;
      assert.equal(value(items(body, '00081199')[0], '00081155'), a.sop);
    });

    test('200: a single application/dicom body', async () => {
      const a = await generated('Stow^Single');
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': 'application/dicom' },
        body: a.bytes,
      });
      assert.equal(r.status, 200);
      assert.equal(value(items(json(r) as Json, '00081199')[0], '00081155'), a.sop);
    });

    test('202: one part stored, one part not DICOM (C000)', async () => {
      const before = (await web.counts()).instances;
      const a = await generated('Stow^Partial');
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType('b2') },
        body: multipartRequest(
          [{ body: a.bytes }, { body: Buffer.from('this is not a DICOM file at all. '.repeat(10)) }],
          'b2',
        ),
      });
      assert.equal(r.status, 202);
      const body = json(r) as Json;
      const referenced = items(body, '00081199');
      const failed = items(body, '00081198');
      assert.deepEqual(
        referenced.map((i) => value(i, '00081155')),
        [a.sop],
      );
      assert.equal(failed.length, 1);
      assert.equal(value(failed[0], '00081197'), 0xc000);
      assert.equal((await web.counts()).instances, before + 1);
    });

    test('409: every part failed; a study-targeted STOW of another study fails with A900', async () => {
      const before = (await web.counts()).instances;
      let r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType('b3') },
        body: multipartRequest([{ body: Buffer.alloc(300, 0x41) }], 'b3'),
      });
      assert.equal(r.status, 409);
      let failed = items(json(r) as Json, '00081198');
      assert.equal(failed.length, 1);
      assert.equal(value(failed[0], '00081197'), 0xc000);
      assert.equal((json(r) as Json)['00081199'], undefined);

      const other = await generated('Stow^OtherStudy');
      r = await raw(`${web.url}/studies/${STUDY}`, {
        method: 'POST',
        headers: { 'content-type': multipartType('b4') },
        body: multipartRequest([{ body: other.bytes }], 'b4'),
      });
      assert.equal(r.status, 409);
      failed = items(json(r) as Json, '00081198');
      assert.equal(failed.length, 1);
      assert.equal(value(failed[0], '00081197'), 0xa900);
      // The failed item names the instance (PS3.18 Table 10.5.3-2: Referenced SOP Instance UID).
      assert.equal(value(failed[0], '00081155'), other.sop);
      assert.equal((await web.counts()).instances, before);
      const found = await fetch(`${web.url}/instances?SOPInstanceUID=${other.sop}`);
      assert.deepEqual(await found.json(), []);
    });

    test('415: text/plain, and multipart/related of application/dicom+json', async () => {
      let r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: Buffer.from('hello'),
      });
      assert.equal(r.status, 415);
      assert.match(errorOf(r), /text\/plain is not supported/);
      r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': 'multipart/related; type="application/dicom+json"; boundary=b5' },
        body: multipartRequest([{ contentType: 'application/dicom+json', body: Buffer.from('[{}]') }], 'b5'),
      });
      assert.equal(r.status, 415);
      assert.match(errorOf(r), /application\/dicom\+json/);
    });

    test('400: multipart/related without a boundary', async () => {
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': DICOM_MULTIPART },
        body: multipartRequest([{ body: tutorial[0]! }], 'b6'),
      });
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /boundary/);
    });

    test('400: a multipart body without any part', async () => {
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType('empty') },
        body: Buffer.from('preamble only\r\n--empty--\r\n'),
      });
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /no part/);
    });

    test('multipart: preamble, epilogue, quoted boundary', async () => {
      const a = await generated('Stow^Preamble');
      const b = await generated('Stow^Epilogue');
      const boundary = 'a quoted:boundary (with spaces)';
      const body = multipartRequest([{ body: a.bytes }, { body: b.bytes }], boundary, {
        preamble: 'This is the preamble.\r\nIt is to be ignored.',
        epilogue: 'This is the epilogue, also ignored.\r\n--not a boundary--\r\n',
      });
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': `multipart/related; type="application/dicom"; boundary="${boundary}"` },
        body,
      });
      assert.equal(r.status, 200, r.body.toString());
      const referenced = items(json(r) as Json, '00081199');
      assert.deepEqual(referenced.map((i) => value(i, '00081155')).sort(), [a.sop, b.sop].sort());
    });

    test('multipart: CRLF and boundary-like bytes inside the DICOM data are content', async () => {
      const boundary = 'edge-boundary';
      const a = await generated('Stow^Boundary', 64, 64);
      // Pixel Data is last: overwrite some of its bytes with delimiter look-alikes. None is the
      // delimiter itself (CRLF "--" boundary), which RFC 2046 forbids inside a part.
      const tricky = Buffer.from(
        `\r\n\r\n--${boundary.slice(0, -1)}\r\n\r--${boundary}\n--${boundary}--x--${boundary}--\r\n-\r\n--\r\n\r\n`,
      );
      tricky.copy(a.bytes, a.bytes.length - tricky.length - 100);
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType(boundary) },
        body: multipartRequest([{ body: a.bytes }], boundary),
      });
      assert.equal(r.status, 200, r.body.toString());
      const file = readPart10(a.bytes);
      const url = `${web.url}/studies/${file.dataset.string(Tag.StudyInstanceUID)}/series/${file.dataset.string(Tag.SeriesInstanceUID)}/instances/${a.sop}`;
      const parts = await responseParts(
        await fetch(url, { headers: { accept: `${DICOM_MULTIPART}; transfer-syntax=*` } }),
      );
      assert.equal(parts.length, 1);
      const stored = readPart10(parts[0]!.body);
      assert.ok(parts[0]!.body.subarray(stored.datasetOffset).equals(a.bytes.subarray(file.datasetOffset)));
    });

    test('multipart without its close delimiter: that instance is not stored, no temp file left', async () => {
      const before = await web.counts();
      const a = await generated('Stow^Truncated', 128, 128);
      const r = await raw(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType('b7') },
        body: multipartRequest([{ body: a.bytes }], 'b7', { close: false }),
      });
      assert.equal(r.status, 409, r.body.toString());
      const failed = items(json(r) as Json, '00081198');
      assert.equal(failed.length, 1, 'one part, one failure');
      assert.equal(value(failed[0], '00081197'), 0xc000);
      const after = await web.counts();
      assert.equal(after.instances, before.instances);
      assert.equal(after.bytes, before.bytes);
      assert.deepEqual(await temps(web), []);
      const found = await fetch(`${web.url}/instances?SOPInstanceUID=${a.sop}`);
      assert.deepEqual(await found.json(), []);
    });

    test('a STOW aborted half way through a 20 MB instance stores nothing; the server still answers', async () => {
      const before = await web.counts();
      const big = await writeInstance(join(scratch, 'big.dcm'), { rows: 3200, columns: 3200 });
      const file = await readFile(big.path);
      assert.ok(file.length > 20_000_000);
      const boundary = 'abort-boundary';
      const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
      const req = httpRequest(`${web.url}/studies`, {
        method: 'POST',
        headers: { 'content-type': multipartType(boundary), 'transfer-encoding': 'chunked' },
      });
      const failed = new Promise<void>((resolve) => {
        req.on('error', () => resolve());
        req.on('close', () => resolve());
      });
      req.on('response', (res) => res.resume());
      req.write(head);
      const half = file.length / 2;
      for (let at = 0; at < half; at += 1024 * 1024) {
        if (!req.write(file.subarray(at, Math.min(at + 1024 * 1024, half)))) await once(req, 'drain');
      }
      // The ingest has begun (its temp blob exists): hang up.
      await until(async () => (await temps(web)).length > 0, 'the temp blob of the STOW');
      req.destroy();
      await failed;
      await until(async () => (await temps(web)).length === 0, 'the temp blob to be removed');
      const after = await web.counts();
      assert.equal(after.instances, before.instances);
      assert.equal(after.bytes, before.bytes);
      const found = await fetch(`${web.url}/instances?SOPInstanceUID=${big.sopInstanceUid}`);
      assert.equal(found.status, 200);
      assert.deepEqual(await found.json(), []);
      assert.equal((await fetch(`${web.origin}/healthz`)).status, 200);
      const again = await stow(`${web.url}/studies`, [(await generated('Stow^AfterAbort')).bytes]);
      assert.equal(again.status, 200);
    });
  });

  // ------------------------------------------------------------------------------------ errors
  describe('400, 404, 406', () => {
    test('400: bad QIDO parameters name the parameter; a malformed UID in a path', async () => {
      let r = await raw(`${web.url}/studies?limit=abc`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /"limit"/);
      r = await raw(`${web.url}/studies?PatientNam=Doe`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /"PatientNam"/);
      r = await raw(`${web.url}/studies?fuzzymatching=maybe`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /"fuzzymatching"/);
      r = await raw(`${web.url}/studies?StudyDate=2020-09-22`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /StudyDate/);
      r = await raw(`${web.url}/studies/1.2.abc/series`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /Study Instance UID "1\.2\.abc" is not a valid UID/);
      r = await raw(`${web.url}/studies/${STUDY}/series/01.2/instances/${RED}`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /Series Instance UID "01\.2"/);
    });

    test('404: unknown study, series, instance, with a JSON message', async () => {
      const unknown = newUid();
      let r = await raw(`${web.url}/studies/${unknown}`);
      assert.equal(r.status, 404);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      assert.equal(errorOf(r), `no such study ${unknown}`);
      r = await raw(`${web.url}/studies/${STUDY}/series/${unknown}/metadata`);
      assert.equal(r.status, 404);
      assert.equal(errorOf(r), `no such series ${unknown} in study ${STUDY}`);
      r = await raw(`${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${unknown}`);
      assert.equal(r.status, 404);
      assert.match(errorOf(r), new RegExp(`instance ${unknown}`));
      r = await raw(`${web.url}/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances/${unknown}/frames/1`);
      assert.equal(r.status, 404);
      r = await raw(`${web.url}${RED_URL}/frames/2`);
      assert.equal(r.status, 404);
      assert.match(errorOf(r), /frame 2 does not exist: the instance has 1 frame/);
      r = await raw(`${web.url}/nothing-here`);
      assert.equal(r.status, 404);
      assert.match(errorOf(r), /no such resource/);
    });

    test('406: application/dicom+xml on QIDO; an instance of a syntax no codec decodes (MPEG-2) asked in Explicit VR Little Endian', async () => {
      let r = await raw(`${web.url}/studies`, { headers: { accept: 'application/dicom+xml' } });
      assert.equal(r.status, 406);
      assert.match(errorOf(r), /application\/dicom\+json/);
      // The JPEG Lossless MR relabelled MPEG-2 (encapsulated, and no decoder for it here).
      const mpeg = readPart10(await readFile(MR_JPEG));
      mpeg.dataset.setString(Tag.SOPInstanceUID, '1.2.826.0.1.3680043.2.1125.99.4100');
      const stored = await stow(`${web.url}/studies`, [writePart10({ dataset: mpeg.dataset }, MPEG2)]);
      assert.equal(stored.status, 200, await stored.text());
      const mrUrl = `${web.url}/studies/${mpeg.dataset.string(Tag.StudyInstanceUID)}/series/${mpeg.dataset.string(Tag.SeriesInstanceUID)}/instances/1.2.826.0.1.3680043.2.1125.99.4100`;
      r = await raw(mrUrl, {
        headers: { accept: `${DICOM_MULTIPART}; transfer-syntax=1.2.840.10008.1.2.1` },
      });
      assert.equal(r.status, 406);
      assert.match(errorOf(r), /1\.2\.840\.10008\.1\.2\.4\.100/);
      // As stored (`*`) it is served, in its own syntax.
      const ok = await fetch(mrUrl, { headers: { accept: `${DICOM_MULTIPART}; transfer-syntax=*` } });
      assert.equal(ok.status, 200);
      const parts = await responseParts(ok);
      assert.equal(parts.length, 1);
      assert.equal(parts[0]!.headers['content-type'], `application/dicom; transfer-syntax=${MPEG2}`);
      assert.equal(readPart10(parts[0]!.body).transferSyntax.uid, MPEG2);
      // Its frames as stored only; rendered: no codec.
      r = await raw(`${mrUrl}/frames/1`, {
        headers: { accept: 'multipart/related; type="application/octet-stream"' },
      });
      assert.equal(r.status, 406);
      r = await raw(`${mrUrl}/rendered`);
      assert.equal(r.status, 406);
      assert.match(errorOf(r), /1\.2\.840\.10008\.1\.2\.4\.100/);
    });
  });

  // ------------------------------------------------------------------------------------ HTTP
  describe('HEAD, ETag, gzip, Accept q-values', () => {
    test('HEAD on a retrieve: the headers of the GET, no body', async () => {
      const r = await raw(`${web.url}${RED_URL}`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^multipart\/related; type="application\/dicom"/);
      assert.match(String(r.headers.etag), /^"[0-9a-f]{32}"$/);
      assert.equal(r.body.length, 0);
    });

    test('ETag and If-None-Match: 304 on the instance and its metadata', async () => {
      const first = await raw(`${web.url}${RED_URL}`);
      assert.equal(first.status, 200);
      const etag = String(first.headers.etag);
      let r = await raw(`${web.url}${RED_URL}`, { headers: { 'if-none-match': etag } });
      assert.equal(r.status, 304);
      assert.equal(r.body.length, 0);
      r = await raw(`${web.url}${RED_URL}`, { headers: { 'if-none-match': '"something-else"' } });
      assert.equal(r.status, 200);
      assert.ok(r.body.length > 2_800_000);
      r = await raw(`${web.url}${RED_URL}/metadata`, { headers: { 'if-none-match': etag } });
      assert.equal(r.status, 304);
    });

    test('gzip: metadata with Accept-Encoding: gzip is the same JSON, compressed', async () => {
      const plain = await raw(`${web.url}/studies/${STUDY}/metadata`);
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['content-encoding'], undefined);
      const zipped = await raw(`${web.url}/studies/${STUDY}/metadata`, {
        headers: { 'accept-encoding': 'gzip, deflate' },
      });
      assert.equal(zipped.status, 200);
      assert.equal(zipped.headers['content-encoding'], 'gzip');
      assert.match(String(zipped.headers.vary), /Accept-Encoding/i);
      const unzipped = gunzipSync(zipped.body);
      assert.ok(zipped.body.length < unzipped.length);
      assert.deepEqual(JSON.parse(unzipped.toString('utf8')), JSON.parse(plain.body.toString('utf8')));
      assert.equal((JSON.parse(unzipped.toString('utf8')) as unknown[]).length, 3);
      const refused = await raw(`${web.url}/studies/${STUDY}/metadata`, {
        headers: { 'accept-encoding': 'gzip;q=0' },
      });
      assert.equal(refused.headers['content-encoding'], undefined);
    });

    test('Accept with q-values: dicom+xml;q=0.9, dicom+json;q=0.5 gives JSON', async () => {
      const r = await raw(`${web.url}/studies?StudyInstanceUID=${STUDY}`, {
        headers: { accept: 'application/dicom+xml;q=0.9, application/dicom+json;q=0.5' },
      });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^application\/dicom\+json/);
      assert.equal((json(r) as unknown[]).length, 1);
      const plainJson = await raw(`${web.url}/studies?StudyInstanceUID=${STUDY}`, {
        headers: { accept: 'application/json' },
      });
      assert.match(String(plainJson.headers['content-type']), /^application\/json/);
      const none = await raw(`${web.url}/studies`, {
        headers: { accept: 'application/dicom+json;q=0, text/html' },
      });
      assert.equal(none.status, 406);
    });
  });

  // ------------------------------------------------------------------------------------ QIDO
  describe('QIDO-RS parameters', () => {
    test('limit and offset page through the matches; Warning when truncated', async () => {
      const all = (await (await fetch(`${web.url}/studies`)).json()) as Json[];
      assert.ok(all.length >= 5, `${all.length} studies`);
      const uids = all.map((s) => value(s, '0020000D'));
      let r = await raw(`${web.url}/studies?limit=2`);
      assert.equal(r.status, 200);
      assert.deepEqual(
        (json(r) as Json[]).map((s) => value(s, '0020000D')),
        uids.slice(0, 2),
      );
      assert.match(String(r.headers.warning), /^299 tessera ".*limit of 2: use offset=2/);
      r = await raw(`${web.url}/studies?limit=2&offset=2`);
      assert.deepEqual(
        (json(r) as Json[]).map((s) => value(s, '0020000D')),
        uids.slice(2, 4),
      );
      r = await raw(`${web.url}/studies?offset=${uids.length - 1}`);
      assert.deepEqual(
        (json(r) as Json[]).map((s) => value(s, '0020000D')),
        uids.slice(-1),
      );
      assert.equal(r.headers.warning, undefined);
      r = await raw(`${web.url}/studies?offset=${uids.length}`);
      assert.deepEqual(json(r), []);
    });

    test('includefield=all and a list add attributes to the default ones', async () => {
      const path = `/studies/${STUDY}/series/${SERIES_GREEN_RED}/instances?SOPInstanceUID=${RED}`;
      const plain = (await (await fetch(`${web.url}${path}`)).json()) as Json[];
      assert.equal(plain.length, 1);
      assert.equal(plain[0]!['00100010'], undefined, 'PatientName is not a default key under a series');
      assert.equal(plain[0]!['00080060'], undefined);
      assert.equal(value(plain[0], '00280010'), 979, 'Rows is a default instance key');
      const all = (await (await fetch(`${web.url}${path}&includefield=all`)).json()) as Json[];
      assert.deepEqual(value(all[0], '00100010'), { Alphabetic: 'Anony Mous' });
      assert.equal(value(all[0], '00080060'), 'OT');
      assert.equal(value(all[0], '00100020'), 'ID1');
      assert.equal(value(all[0], '00200011'), 1, 'Series Number');
      const listed = (await (
        await fetch(`${web.url}${path}&includefield=PatientID,00080060&includefield=StudyDate`)
      ).json()) as Json[];
      assert.equal(value(listed[0], '00100020'), 'ID1');
      assert.equal(value(listed[0], '00080060'), 'OT');
      assert.equal(value(listed[0], '00080020'), '20200922');
      assert.equal(listed[0]!['00100010'], undefined);
    });

    test('fuzzymatching=true finds a name by the prefix of a later word', async () => {
      const fuzzy = (await (
        await fetch(`${web.url}/studies?PatientName=mou&fuzzymatching=true`)
      ).json()) as Json[];
      assert.deepEqual(
        fuzzy.map((s) => value(s, '0020000D')),
        [STUDY],
      );
      const ct = (await (
        await fetch(`${web.url}/studies?PatientName=ct&fuzzymatching=true`)
      ).json()) as Json[];
      assert.deepEqual(
        ct.map((s) => value(s, '0020000D')),
        [CT_STUDY],
        'CompressedSamples^CT1: a prefix of a later component',
      );
      const strict = (await (await fetch(`${web.url}/studies?PatientName=mou`)).json()) as Json[];
      assert.deepEqual(strict, []);
    });

    test('Warning: 299 for a parameter that is ignored', async () => {
      const r = await raw(`${web.url}/studies?StudyInstanceUID=${STUDY}&_=1712345678`);
      assert.equal(r.status, 200);
      assert.equal((json(r) as unknown[]).length, 1);
      assert.match(String(r.headers.warning), /^299 tessera "_: not a query parameter/);
    });
  });

  // ------------------------------------------------------------------------------------ rendered
  describe('rendered and thumbnail', () => {
    test('rendered PNG of red-triangle: its size and its red', async () => {
      const r = await raw(`${web.url}${RED_URL}/rendered`, { headers: { accept: 'image/png' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'image/png');
      const { data, info } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height, info.channels], [985, 979, 3]);
      const at = (489 * 985 + 492) * 3;
      assert.deepEqual([...data.subarray(at, at + 3)], [237, 28, 36]);
      assert.deepEqual([...data.subarray(0, 3)], [195, 195, 195]);
    });

    test('rendered with a viewport, frame rendered, JPEG by default', async () => {
      let r = await raw(`${web.url}${RED_URL}/rendered?viewport=200,100`, {
        headers: { accept: 'image/png' },
      });
      let meta = await sharp(r.body).metadata();
      assert.equal(meta.height, 100);
      assert.ok(meta.width === 100 || meta.width === 101, `width ${meta.width}`);
      r = await raw(`${web.url}${RED_URL}/frames/1/rendered`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'image/jpeg');
      meta = await sharp(r.body).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 985, 979]);
      r = await raw(`${web.url}${RED_URL}/rendered?viewport=0,10`);
      assert.equal(r.status, 400);
      assert.match(errorOf(r), /viewport/);
    });

    test('thumbnail: at most 128x128, aspect kept, still red in the middle', async () => {
      const r = await raw(`${web.url}${RED_URL}/thumbnail`, { headers: { accept: 'image/png' } });
      assert.equal(r.status, 200);
      const { data, info } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
      assert.equal(info.width, 128);
      assert.ok(info.height === 127 || info.height === 128, `height ${info.height}`);
      const at = (Math.floor(info.height / 2) * info.width + 64) * info.channels;
      const [red, green, blue] = [...data.subarray(at, at + 3)];
      assert.ok(red! > 200 && green! < 60 && blue! < 70, `${red},${green},${blue}`);
    });

    test('compressed frames are rendered: JPEG Baseline (libvips), 12-bit JPEG and JPEG Lossless (the codec)', async () => {
      const urlOf = async (path: string): Promise<{ url: string; rows: number; columns: number }> => {
        const ds = readPart10(await readFile(path)).dataset;
        return {
          url: `${web.url}/studies/${ds.string(Tag.StudyInstanceUID)}/series/${ds.string(Tag.SeriesInstanceUID)}/instances/${ds.string(Tag.SOPInstanceUID)}`,
          rows: ds.number(Tag.Rows)!,
          columns: ds.number(Tag.Columns)!,
        };
      };
      let r = await raw(`${(await urlOf(JPEG8)).url}/rendered`, { headers: { accept: 'image/png' } });
      assert.equal(r.status, 200);
      let { info } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height, info.channels], [600, 600, 3]);
      for (const path of [MR_JPEG12, MR_JPEG]) {
        const u = await urlOf(path);
        r = await raw(`${u.url}/rendered`, { headers: { accept: 'image/png' } });
        assert.equal(r.status, 200, `${path}: ${r.body.toString()}`);
        const out = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
        info = out.info;
        assert.deepEqual([info.width, info.height], [u.columns, u.rows]);
        assert.ok(new Set(out.data).size > 16, `${path}: a blank image`);
        r = await raw(`${u.url}/thumbnail`);
        assert.equal(r.status, 200);
        assert.match(String(r.headers['content-type']), /^image\/jpeg/);
      }
    });

    test('window=center,width changes a grey (CT) image', async () => {
      const url = `${web.url}/studies/${CT_STUDY}/series/${CT_SERIES}/instances/${CT_SOP}/rendered`;
      const grey = async (query: string): Promise<Buffer> => {
        const r = await raw(`${url}${query}`, { headers: { accept: 'image/png' } });
        assert.equal(r.status, 200, r.body.toString());
        const { data, info } = await sharp(r.body).raw().toBuffer({ resolveWithObject: true });
        assert.deepEqual([info.width, info.height], [512, 512]);
        // Grey: one channel, or three equal ones.
        const n = info.channels;
        const grey = Buffer.alloc(info.width * info.height);
        for (let i = 0; i < grey.length; i++) {
          grey[i] = data[i * n]!;
          if (n >= 3) assert.ok(data[i * n] === data[i * n + 1] && data[i * n] === data[i * n + 2]);
        }
        return grey;
      };
      const plain = await grey('');
      const values = new Set(plain);
      assert.ok(values.size > 50, `${values.size} grey levels by default`);
      // Below every value: all white; above every value: all black (PS3.3 C.11.2.1.2.1).
      assert.ok((await grey('?window=-5000,1')).every((v) => v === 255));
      assert.ok((await grey('?window=50000,1')).every((v) => v === 0));
      const soft = await grey('?window=40,400');
      assert.notDeepEqual(soft, plain);
      const r = await raw(`${url}?window=40,0`);
      assert.equal(r.status, 400);
    });
  });

  // ------------------------------------------------------------------------------------ CORS, OpenAPI
  test('CORS: allowed origin echoed, other origins not; preflight', async () => {
    let r = await raw(`${web.url}/studies`, { headers: { origin: 'http://viewer.test' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'http://viewer.test');
    assert.match(String(r.headers.vary), /Origin/);
    assert.match(String(r.headers['access-control-expose-headers']), /Warning/);
    r = await raw(`${web.url}/studies`, { headers: { origin: 'http://evil.test' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    r = await raw(`${web.url}/studies`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://viewer.test',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], 'http://viewer.test');
    assert.match(String(r.headers['access-control-allow-methods']), /POST/);
    assert.match(String(r.headers['access-control-allow-headers']), /Content-Type/i);
  });

  test('bulk data of an instance over 16 MiB: Pixel Data streamed from its frames, elements before it from the header', async () => {
    const g = await generated('Bulk^Large', 3000, 3000);
    const file = readPart10(g.bytes);
    const ds = file.dataset;
    const privateBytes = Buffer.alloc(4096, 0);
    for (let i = 0; i < privateBytes.length; i++) privateBytes[i] = (i * 7) & 0xff;
    ds.setValues(0x00090010, ['TESSERA TEST'], 'LO');
    ds.setBytes(0x00091001, 'OB', privateBytes);
    ds.setBytes(0xfffcfffc, 'OB', Buffer.alloc(2048));
    const bytes = writePart10({ dataset: ds, meta: file.meta });
    assert.ok(bytes.length > 16 * 1024 * 1024);
    const stored = await stow(`${web.url}/studies`, [bytes]);
    assert.equal(stored.status, 200, await stored.text());
    const url = `${web.url}/studies/${ds.string(Tag.StudyInstanceUID)}/series/${ds.string(Tag.SeriesInstanceUID)}/instances/${g.sop}`;
    const meta = (await (await fetch(`${url}/metadata`)).json()) as Json[];
    const bulk = async (tag: string): Promise<Response> => {
      const uri = meta[0]?.[tag]?.BulkDataURI;
      assert.ok(uri, `BulkDataURI of ${tag}`);
      return fetch(uri!);
    };
    const pixels = ds.get(Tag.PixelData);
    assert.equal(pixels?.kind, 'value');
    const [px] = await responseParts(await bulk('7FE00010'));
    assert.ok(px!.body.equals((pixels as { bytes: Buffer }).bytes), 'Pixel Data bytes');
    const [priv] = await responseParts(await bulk('00091001'));
    assert.ok(priv!.body.equals(privateBytes), 'the private OB element before Pixel Data');
    const after = await bulk('FFFCFFFC');
    assert.equal(after.status, 406);
    assert.match(await after.text(), /only Pixel Data and the elements before it/);
  });

  test('OpenAPI: /dicomweb/openapi.json lists the routes', async () => {
    const r = await raw(`${web.url}/openapi.json`);
    assert.equal(r.status, 200);
    const doc = json(r) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.equal(doc.openapi, '3.1.0');
    const paths = doc.paths;
    assert.ok(paths['/dicomweb/studies']?.post && paths['/dicomweb/studies']?.get);
    assert.ok(paths['/dicomweb/studies/{study}']?.get && paths['/dicomweb/studies/{study}']?.delete);
    assert.ok(paths['/dicomweb/studies/{study}/metadata']?.get);
    assert.ok(paths['/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}']?.get);
    assert.ok(paths['/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered']?.get);
    assert.ok(paths['/dicomweb/studies/{study}/series/{series}/instances/{instance}/thumbnail']?.get);
    assert.ok(paths['/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulk/{path}']?.get);
    assert.ok(paths['/dicomweb/series']?.get && paths['/dicomweb/instances']?.get);
    assert.ok(paths['/dicomweb/studies/{study}/series/{series}/instances']?.get);
  });
});

describe('DICOMweb limits: maxRequestBytes (413), maxConcurrentRequests (503)', { timeout: 120_000 }, () => {
  let web: WebArchive;
  let scratch = '';
  before(async () => {
    web = await startWebArchive({ maxRequestBytes: 4096, maxConcurrentRequests: 1 });
    scratch = await mkdtemp(join(tmpdir(), 'tessera-web-limits-'));
  });
  after(async () => {
    await web?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  test('413: a STOW body larger than maxRequestBytes stores nothing', async () => {
    const g = await writeInstance(join(scratch, 'big.dcm'), { rows: 64, columns: 64 });
    const bytes = await readFile(g.path);
    let r = await raw(`${web.url}/studies`, {
      method: 'POST',
      headers: { 'content-type': multipartType('l1') },
      body: multipartRequest([{ body: bytes }], 'l1'),
    });
    assert.equal(r.status, 413);
    assert.match(errorOf(r), /larger than 4096 bytes/);
    // Without Content-Length (chunked), the size is found while reading: 413 all the same.
    r = await chunked(`${web.url}/studies`, 'application/dicom', bytes);
    assert.equal(r.status, 413);
    assert.match(errorOf(r), /larger than 4096 bytes/);
    r = await chunked(`${web.url}/studies`, multipartType('l2'), multipartRequest([{ body: bytes }], 'l2'));
    assert.equal(r.status, 413);
    assert.equal((await web.counts()).instances, 0);
    assert.deepEqual(await temps(web), []);
    const small = await writeInstance(join(scratch, 'small.dcm'), { rows: 8, columns: 8 });
    const ok = await stow(`${web.url}/studies`, [await readFile(small.path)]);
    assert.equal(ok.status, 200);
  });

  test('503 with Retry-After while the one allowed request is in progress', async () => {
    const g = await writeInstance(join(scratch, 'slow.dcm'), { rows: 16, columns: 16 });
    const file = await readFile(g.path);
    const boundary = 'slow-boundary';
    // A STOW that sends its first bytes and then waits: it holds the only request slot.
    const req = httpRequest(`${web.url}/studies`, {
      method: 'POST',
      headers: { 'content-type': multipartType(boundary), 'transfer-encoding': 'chunked' },
    });
    const response = new Promise<RawResponse>((resolve, reject) => {
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      });
      req.on('error', reject);
    });
    req.write(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
    req.write(file.subarray(0, 600));
    await until(async () => (await temps(web)).length > 0, 'the slow STOW to reach ingest');
    const busy = await raw(`${web.url}/studies`);
    assert.equal(busy.status, 503);
    assert.equal(busy.headers['retry-after'], '1');
    assert.match(errorOf(busy), /more than 1 requests at once/);
    req.end(Buffer.concat([file.subarray(600), Buffer.from(`\r\n--${boundary}--\r\n`)]));
    const done = await response;
    assert.equal(done.status, 200, done.body.toString());
    const free = await raw(`${web.url}/instances?SOPInstanceUID=${g.sopInstanceUid}`);
    assert.equal(free.status, 200);
    assert.equal((json(free) as unknown[]).length, 1);
  });

  test('a request whose client hangs up gives its slot back', async () => {
    const g = await writeInstance(join(scratch, 'hangup.dcm'), { rows: 16, columns: 16 });
    const file = await readFile(g.path);
    const boundary = 'hangup-boundary';
    const req = httpRequest(`${web.url}/studies`, {
      method: 'POST',
      headers: { 'content-type': multipartType(boundary), 'transfer-encoding': 'chunked' },
    });
    const closed = new Promise<void>((resolve) => {
      req.on('error', () => resolve());
      req.on('close', () => resolve());
    });
    req.write(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
    req.write(file.subarray(0, 600));
    await until(async () => (await temps(web)).length > 0, 'the STOW to reach ingest');
    req.destroy();
    await closed;
    await until(async () => (await temps(web)).length === 0, 'the temp blob to be removed');
    await until(async () => (await raw(`${web.url}/studies`)).status === 200, 'the slot to be free', 5000);
  });
});

describe('DICOMweb bearer tokens and JWTs', { timeout: 60_000 }, () => {
  let web: WebArchive;
  let jwks: Server;
  type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let privateKey: Key;
  let otherKey: Key;
  const issuer = 'https://idp.tessera.test';
  const audience = 'tessera-dicomweb';

  before(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    otherKey = (await generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    jwks.listen(0, '127.0.0.1');
    await once(jwks, 'listening');
    const port = (jwks.address() as AddressInfo).port;
    web = await startWebArchive({
      bearerTokens: ['static-token-123'],
      jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
      jwtIssuer: issuer,
      jwtAudience: audience,
    });
  });
  after(async () => {
    await web?.close();
    jwks?.closeAllConnections();
    await new Promise<void>((resolve) => (jwks ? jwks.close(() => resolve()) : resolve()));
  });

  const jwt = (key: Key, claims: { exp?: string | number; aud?: string } = {}) =>
    new SignJWT({ scope: 'dicomweb' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(issuer)
      .setAudience(claims.aud ?? audience)
      .setSubject('viewer')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
      .setExpirationTime(claims.exp ?? '10m')
      .sign(key);
  const get = (authorization?: string) =>
    raw(`${web.url}/studies`, authorization ? { headers: { authorization } } : {});

  test('401 without a token, with a wrong one; 200 with the static token', async () => {
    let r = await get();
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
    assert.match(errorOf(r), /bearer token/);
    r = await get('Bearer not-the-token');
    assert.equal(r.status, 401);
    r = await get('Basic c3RhdGljLXRva2VuLTEyMw==');
    assert.equal(r.status, 401);
    r = await get('Bearer static-token-123');
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), []);
    r = await raw(`${web.url}/studies`, { method: 'POST', headers: { 'content-type': 'application/dicom' } });
    assert.equal(r.status, 401, 'STOW too');
  });

  test('JWT: signed by the JWKS key 200; expired, wrong audience or another key 401', async () => {
    assert.equal((await get(`Bearer ${await jwt(privateKey)}`)).status, 200);
    const expired = await jwt(privateKey, { exp: Math.floor(Date.now() / 1000) - 60 });
    assert.equal((await get(`Bearer ${expired}`)).status, 401);
    assert.equal((await get(`Bearer ${await jwt(privateKey, { aud: 'someone-else' })}`)).status, 401);
    assert.equal((await get(`Bearer ${await jwt(otherKey)}`)).status, 401);
  });
});
