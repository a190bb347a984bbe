import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { isDicomError } from '../core/index.ts';
import { multipartBody, parseContentType, parseMultipart, stowResponse } from '../dicomweb/index.ts';
import { DicomWebClient, DicomWebError } from './index.ts';

const BASE = 'https://pacs.example/dicom-web';
const STUDY = '1.2.826.0.1.3680043.8.498.13230779778012324449356534479549187420';
const enc = new TextEncoder();

interface Seen {
  url: string;
  method: string;
  headers: Headers;
  body: Uint8Array | undefined;
}

/** A fetch that records requests and answers from a script. */
function fakeFetch(answer: (req: Seen) => Response): { fetch: typeof fetch; seen: Seen[] } {
  const seen: Seen[] = [];
  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = init?.body ? new Uint8Array(await new Response(init.body).arrayBuffer()) : undefined;
    const req = {
      url: String(input),
      method: init?.method ?? 'GET',
      headers: new Headers(init?.headers),
      body,
    };
    seen.push(req);
    return answer(req);
  };
  return { fetch: f as typeof fetch, seen };
}

/** A streamed multipart response, in small chunks. */
function multipartResponse(
  parts: { type: string; bytes: Uint8Array }[],
  boundary = 'srv-boundary',
): Response {
  const body = multipartBody(
    parts.map((p) => ({ headers: { 'Content-Type': p.type }, body: p.bytes })),
    boundary,
  );
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await body.next();
      if (next.done) controller.close();
      else for (let i = 0; i < next.value.length; i += 7) controller.enqueue(next.value.subarray(i, i + 7));
    },
  });
  return new Response(stream, {
    headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary="${boundary}"` },
  });
}

const json = (value: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(value), {
    status,
    headers: { 'Content-Type': 'application/dicom+json', ...headers },
  });

describe('DicomWebClient (scripted fetch)', () => {
  test('store: one multipart/related request; a 202 with failures and warnings is a result', async () => {
    const { fetch, seen } = fakeFetch(() =>
      json(
        stowResponse({
          retrieveBase: `${BASE}/studies/${STUDY}`,
          referenced: [{ sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: '1.2.3.1' }],
          failed: [{ sopInstanceUid: '1.2.3.2', failureReason: 0xa900 }],
        }),
        202,
        { Warning: '299 pacs.example "first", 299 pacs.example "second, with comma"' },
      ),
    );
    const client = new DicomWebClient({ baseUrl: `${BASE}/`, token: 'tok', fetch });
    const result = await client.store([enc.encode('DICM-1'), new Blob([enc.encode('DICM-2')])], {
      studyInstanceUid: STUDY,
    });
    assert.equal(result.status, 202);
    assert.deepEqual(
      result.referenced.map((r) => r.sopInstanceUid),
      ['1.2.3.1'],
    );
    assert.deepEqual(result.failed, [
      { sopClassUid: undefined, sopInstanceUid: '1.2.3.2', failureReason: 0xa900 },
    ]);
    assert.deepEqual(result.warnings, ['299 pacs.example "first"', '299 pacs.example "second, with comma"']);
    const [req] = seen;
    assert.equal(req!.method, 'POST');
    assert.equal(req!.url, `${BASE}/studies/${STUDY}`);
    assert.equal(req!.headers.get('authorization'), 'Bearer tok');
    assert.equal(req!.headers.get('accept'), 'application/dicom+json');
    const ct = parseContentType(req!.headers.get('content-type')!);
    assert.equal(ct.type, 'multipart/related');
    assert.equal(ct.params.type, 'application/dicom');
    const bodies: string[] = [];
    const sent = (async function* () {
      yield req!.body!;
    })();
    for await (const part of parseMultipart(sent, ct.params.boundary!)) {
      assert.equal(part.headers['content-type'], 'application/dicom');
      const chunks: Uint8Array[] = [];
      for await (const c of part.body) chunks.push(c);
      bodies.push(Buffer.concat(chunks).toString());
    }
    assert.deepEqual(bodies, ['DICM-1', 'DICM-2']);
  });

  test('store: 409 with a response module is a result; 409 without one and other failures are errors', async () => {
    const conflict = new DicomWebClient({
      baseUrl: BASE,
      fetch: fakeFetch(() => json(stowResponse({ referenced: [], failed: [{ failureReason: 0x0122 }] }), 409))
        .fetch,
    });
    const r = await conflict.store([enc.encode('x')]);
    assert.equal(r.status, 409);
    assert.equal(r.failed[0]!.failureReason, 0x0122);
    const bare = new DicomWebClient({
      baseUrl: BASE,
      fetch: fakeFetch(() => new Response('', { status: 409 })).fetch,
    });
    await assert.rejects(
      bare.store([enc.encode('x')]),
      (e: unknown) => e instanceof DicomWebError && e.status === 409,
    );
    const text = new DicomWebClient({
      baseUrl: BASE,
      fetch: fakeFetch(
        () =>
          new Response('Content-Type must be multipart/related', {
            status: 415,
            statusText: 'Unsupported Media Type',
          }),
      ).fetch,
    });
    await assert.rejects(text.store([enc.encode('x')]), (e: unknown) => {
      assert.ok(e instanceof DicomWebError);
      assert.equal(e.code, 'ERR_DICOMWEB_HTTP');
      assert.equal(
        e.message,
        `POST ${BASE}/studies: HTTP 415 Unsupported Media Type: Content-Type must be multipart/related`,
      );
      return true;
    });
  });

  test('retrieve: the Accept header, parts parsed as they stream, single-part answers', async () => {
    const files = [enc.encode('first\r\n--srv-boundar'), enc.encode('second')];
    const { fetch, seen } = fakeFetch(() =>
      multipartResponse(files.map((bytes) => ({ type: 'application/dicom', bytes }))),
    );
    const client = new DicomWebClient({ baseUrl: BASE, fetch });
    const got: string[] = [];
    for await (const f of client.retrieveSeries(STUDY, '1.2.3')) got.push(Buffer.from(f).toString());
    assert.deepEqual(got, ['first\r\n--srv-boundar', 'second']);
    assert.equal(seen[0]!.url, `${BASE}/studies/${STUDY}/series/1.2.3`);
    assert.equal(
      seen[0]!.headers.get('accept'),
      'multipart/related; type="application/dicom"; transfer-syntax=*',
    );
    const single = new DicomWebClient({
      baseUrl: BASE,
      fetch: fakeFetch(
        () => new Response(enc.encode('DICM'), { headers: { 'Content-Type': 'application/dicom' } }),
      ).fetch,
    });
    const one: string[] = [];
    for await (const f of single.retrieveInstance(STUDY, '1.2', '1.2.3', {
      transferSyntax: '1.2.840.10008.1.2.1',
    }))
      one.push(Buffer.from(f).toString());
    assert.deepEqual(one, ['DICM']);
  });

  test('frames: URL and Accept; numbers are checked', async () => {
    const { fetch, seen } = fakeFetch(() =>
      multipartResponse([
        { type: 'application/octet-stream', bytes: new Uint8Array([1, 2, 3]) },
        { type: 'application/octet-stream', bytes: new Uint8Array([4]) },
      ]),
    );
    const client = new DicomWebClient({ baseUrl: BASE, fetch });
    const frames = await client.retrieveFrames(STUDY, '1.2', '1.2.3', [1, 3], {
      mediaType: 'image/jls',
      transferSyntax: '1.2.840.10008.1.2.4.80',
    });
    assert.deepEqual(
      frames.map((f) => [...f]),
      [[1, 2, 3], [4]],
    );
    assert.equal(seen[0]!.url, `${BASE}/studies/${STUDY}/series/1.2/instances/1.2.3/frames/1,3`);
    assert.equal(
      seen[0]!.headers.get('accept'),
      'multipart/related; type="image/jls"; transfer-syntax=1.2.840.10008.1.2.4.80',
    );
    await assert.rejects(
      client.retrieveFrames(STUDY, '1.2', '1.2.3', [0]),
      (e: unknown) => isDicomError(e) && e.code === 'ERR_DICOMWEB_BAD_PARAMETER',
    );
  });

  test('query: parameters (repeated includefield), scope, 204 No Content, warnings', async () => {
    const { fetch, seen } = fakeFetch((req) =>
      req.url.includes('nobody')
        ? new Response(null, { status: 204 })
        : json([{ '0020000D': { vr: 'UI', Value: [STUDY] } }], 200, {
            Warning: '299 x "fuzzymatching not supported"',
          }),
    );
    const client = new DicomWebClient({ baseUrl: BASE, fetch });
    const r = await client.query(
      'instances',
      {
        PatientName: 'Doe^J*',
        includefield: ['00280010', 'Columns'],
        limit: 5,
        fuzzymatching: true,
        skipped: undefined,
      },
      { study: STUDY, series: '1.2' },
    );
    assert.equal(r.matches.length, 1);
    assert.deepEqual(r.warnings, ['299 x "fuzzymatching not supported"']);
    const url = new URL(seen[0]!.url);
    assert.equal(url.pathname, `/dicom-web/studies/${STUDY}/series/1.2/instances`);
    assert.deepEqual(
      [...url.searchParams],
      [
        ['PatientName', 'Doe^J*'],
        ['includefield', '00280010'],
        ['includefield', 'Columns'],
        ['limit', '5'],
        ['fuzzymatching', 'true'],
      ],
    );
    assert.deepEqual((await client.query('studies', new URLSearchParams('PatientID=nobody'))).matches, []);
  });

  test('UIDs are checked before any request (nothing can be injected into the path)', async () => {
    const { fetch, seen } = fakeFetch(() => json([]));
    const client = new DicomWebClient({ baseUrl: BASE, fetch });
    for (const bad of ['../../admin', '1.2.3?x=1', '', '1..2', '1.2.'])
      await assert.rejects(
        client.retrieveMetadata(bad),
        (e: unknown) => isDicomError(e) && e.code === 'ERR_DICOMWEB_BAD_UID',
      );
    await assert.rejects(
      client.query('series', {}, { series: '1.2' }),
      (e: unknown) => isDicomError(e) && e.code === 'ERR_DICOMWEB_BAD_UID',
    );
    assert.equal(seen.length, 0);
  });

  test('a response that is not what was asked: ERR_DICOMWEB_BAD_RESPONSE', async () => {
    const client = new DicomWebClient({
      baseUrl: BASE,
      fetch: fakeFetch(() => new Response('<html>', { status: 200 })).fetch,
    });
    await assert.rejects(
      client.retrieveMetadata(STUDY),
      (e: unknown) => isDicomError(e) && e.code === 'ERR_DICOMWEB_BAD_RESPONSE',
    );
  });
});

test('the client and the parts of dicomweb it uses need no Node API (browser): no node: imports, no Buffer', () => {
  const root = fileURLToPath(new URL('../', import.meta.url));
  const files = [
    ...readdirSync(join(root, 'client'))
      .filter((f) => f.endsWith('.ts') && !f.includes('.test.'))
      .map((f) => join(root, 'client', f)),
    ...['multipart.ts', 'media-type.ts', 'stow.ts'].map((f) => join(root, 'dicomweb', f)),
  ];
  for (const file of files) {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    assert.doesNotMatch(code, /from 'node:|require\(/, file);
    assert.doesNotMatch(code, /\bBuffer\b/, file);
  }
});

test('bundled for a browser, the client runs with web APIs only (no Buffer, no process, no node: modules)', async () => {
  // esbuild comes with tsx. The bundle treats src/ files as free of side effects (what a
  // "sideEffects": false package hint tells bundlers), so the QIDO half of dicomweb and with it the
  // codec (Buffer, iconv-lite, node:zlib) are left out: the client does not use them.
  const { build } = await import('esbuild');
  const entry = fileURLToPath(new URL('./index.ts', import.meta.url));
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    globalName: 'TesseraClient',
    // Resolved even when unused (the codec's); none may end up in the output (checked below).
    external: ['node:*'],
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'src-without-side-effects',
        setup(b) {
          b.onResolve({ filter: /^\.\.?\// }, async (args) => {
            if (args.pluginData?.inner) return undefined;
            const r = await b.resolve(args.path, {
              resolveDir: args.resolveDir,
              kind: args.kind,
              pluginData: { inner: true },
            });
            return { path: r.path, sideEffects: false };
          });
        },
      },
    ],
  });
  const code = result.outputFiles[0]!.text;
  assert.ok(code.length < 100_000, `bundle of ${code.length} bytes: the codec or dictionary got in`);
  assert.doesNotMatch(code, /\bBuffer\b|\bprocess\.|from "node:|require\("node:/);

  const STORED = '1.2.3.4';
  const fetch = async (input: string, init?: RequestInit): Promise<Response> => {
    if (init?.method === 'POST') {
      await new Response(init.body).arrayBuffer();
      return json(stowResponse({ referenced: [{ sopClassUid: '1.2', sopInstanceUid: STORED }], failed: [] }));
    }
    if (input.includes('/studies?')) return json([{ '0020000D': { vr: 'UI', Value: [STUDY] } }]);
    return multipartResponse([
      { type: 'application/dicom', bytes: enc.encode('DICM one') },
      { type: 'application/dicom', bytes: enc.encode('DICM two') },
    ]);
  };
  const context = vm.createContext({
    TextEncoder,
    TextDecoder,
    URL,
    URLSearchParams,
    Blob,
    Headers,
    Response,
    ReadableStream,
    crypto: globalThis.crypto,
    fetch,
  });
  vm.runInContext(code, context);
  const run = vm.runInContext(
    `(async () => {
      const client = new TesseraClient.DicomWebClient({ baseUrl: 'https://pacs.example/dicom-web', token: 't' });
      const stored = await client.store([new TextEncoder().encode('DICM')]);
      const files = [];
      for await (const f of client.retrieveStudy('${STUDY}')) files.push(new TextDecoder().decode(f));
      const found = await client.query('studies', { PatientID: 'x' });
      return { stored: stored.referenced.map((r) => r.sopInstanceUid), files, found: found.matches.length,
        hasBuffer: typeof Buffer !== 'undefined', hasProcess: typeof process !== 'undefined' };
    })()`,
    context,
  ) as Promise<unknown>;
  assert.deepEqual(JSON.parse(JSON.stringify(await run)), {
    stored: [STORED],
    files: ['DICM one', 'DICM two'],
    found: 1,
    hasBuffer: false,
    hasProcess: false,
  });
});
