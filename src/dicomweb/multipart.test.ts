import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isDicomError } from '../core/index.ts';
import { parseContentType } from './media-type.ts';
import { multipartBody, newBoundary, type OutgoingPart, parseMultipart } from './multipart.ts';

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

async function* chunked(data: Uint8Array, cuts: readonly number[] = []): AsyncGenerator<Uint8Array> {
  const points = [...new Set(cuts.map((c) => Math.min(Math.max(c, 0), data.length)))].sort((a, b) => a - b);
  let at = 0;
  for (const p of points) {
    if (p > at) yield data.subarray(at, p);
    at = Math.max(at, p);
  }
  if (at < data.length) yield data.subarray(at);
}

function join(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function readAll(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const c of it) chunks.push(c);
  return join(chunks);
}

async function collect(
  body: AsyncIterable<Uint8Array>,
  boundary: string,
): Promise<{ headers: Record<string, string>; body: string }[]> {
  const out: { headers: Record<string, string>; body: string }[] = [];
  for await (const part of parseMultipart(body, boundary)) {
    out.push({
      headers: { ...part.headers },
      body: Buffer.from(await readAll(part.body)).toString('latin1'),
    });
  }
  return out;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isDicomError(err), `not a DicomError: ${String(err)}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

// A STOW-RS style body: preamble, two parts whose content holds CRLFs and boundary look-alikes, epilogue.
const TRICKY =
  'Content--with--dashes\r\n-- not a boundary\r\n--frontie\r\n\n--frontier (LF only)\r--frontier (CR only)\r\n';
const SAMPLE =
  'This is the preamble, ignored.\r\n' +
  '--frontier\r\n' +
  'Content-Type: application/dicom\r\n' +
  'Content-Location: /studies/1.2.3\r\n' +
  '\r\n' +
  TRICKY +
  '\r\n--frontier  \t\r\n' + // transport padding after the boundary
  'CONTENT-TYPE: application/dicom+json\r\n' +
  'X-Folded: first\r\n second\r\n' +
  'X-Twice: a\r\n' +
  'X-Twice: b\r\n' +
  '\r\n' +
  '[]' +
  '\r\n--frontier--\r\n' +
  'This is the epilogue, ignored. --frontier\r\n';

describe('parseMultipart', () => {
  test('parts, headers (lower-cased, folded, repeated), content with CRLFs and boundary look-alikes', async () => {
    const parts = await collect(chunked(bytes(SAMPLE)), 'frontier');
    assert.deepEqual(parts, [
      {
        headers: { 'content-type': 'application/dicom', 'content-location': '/studies/1.2.3' },
        body: TRICKY,
      },
      {
        headers: { 'content-type': 'application/dicom+json', 'x-folded': 'first second', 'x-twice': 'a, b' },
        body: '[]',
      },
    ]);
  });

  test('every chunking of the sample, down to one byte per chunk, gives the same parts', async () => {
    const expected = await collect(chunked(bytes(SAMPLE)), 'frontier');
    const data = bytes(SAMPLE);
    const ones = Array.from({ length: data.length }, (_, i) => i);
    assert.deepEqual(await collect(chunked(data, ones), 'frontier'), expected);
    for (let cut = 0; cut <= data.length; cut++) {
      assert.deepEqual(await collect(chunked(data, [cut]), 'frontier'), expected, `cut at ${cut}`);
    }
  });

  test('a quoted boundary with a space, from the Content-Type header', async () => {
    const ct = parseContentType('Multipart/Related; type="application/dicom"; boundary="abc def:1"');
    assert.equal(ct.type, 'multipart/related');
    assert.deepEqual(ct.params, { type: 'application/dicom', boundary: 'abc def:1' });
    const body = '--abc def:1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--abc def:1--';
    assert.deepEqual(await collect(chunked(bytes(body)), ct.params.boundary!), [
      { headers: { 'content-type': 'application/dicom' }, body: 'DICM' },
    ]);
  });

  test('parts without headers and with empty content; a body starting with a CRLF before the boundary', async () => {
    const body = '\r\n--b\r\n\r\n\r\n--b\r\n\r\nx\r\n--b--';
    assert.deepEqual(await collect(chunked(bytes(body)), 'b'), [
      { headers: {}, body: '' },
      { headers: {}, body: 'x' },
    ]);
  });

  test('a part whose content is not read is skipped when the next part is asked for', async () => {
    const seen: string[] = [];
    for await (const part of parseMultipart(chunked(bytes(SAMPLE), [40, 90, 91]), 'frontier')) {
      if (part.headers['content-type'] === 'application/dicom+json')
        seen.push(Buffer.from(await readAll(part.body)).toString());
    }
    assert.deepEqual(seen, ['[]']);
  });

  test('a part read halfway and left is skipped too', async () => {
    const big = 'z'.repeat(10_000);
    const body = `--b\r\n\r\n${big}\r\n--b\r\n\r\nsecond\r\n--b--`;
    const contents: string[] = [];
    for await (const part of parseMultipart(chunked(bytes(body), [100, 5000, 9000]), 'b')) {
      for await (const chunk of part.body) {
        contents.push(Buffer.from(chunk).toString());
        break;
      }
    }
    assert.deepEqual(contents, ['z'.repeat(100 - 7), 'second']);
  });

  test('streams: a part of 64 MiB comes out chunk by chunk, as views of the input chunks', async () => {
    const chunkSize = 1024 * 1024;
    const chunks = 64;
    let pulled = 0;
    const inputs = new Set<ArrayBufferLike>();
    async function* input(): AsyncGenerator<Uint8Array> {
      const head = bytes('--b\r\nContent-Type: application/dicom\r\n\r\n');
      yield head;
      for (let i = 0; i < chunks; i++) {
        const c = new Uint8Array(chunkSize).fill(i % 251);
        inputs.add(c.buffer);
        pulled++;
        yield c;
      }
      yield bytes('\r\n--b--\r\n');
    }
    let total = 0;
    let firstAfter = -1;
    let copies = 0;
    for await (const part of parseMultipart(input(), 'b')) {
      for await (const c of part.body) {
        if (firstAfter < 0) firstAfter = pulled;
        if (!inputs.has(c.buffer)) copies++;
        total += c.length;
      }
    }
    assert.equal(total, chunkSize * chunks);
    assert.equal(firstAfter, 1, 'the first content arrives after one input chunk, not after the whole part');
    // (A chunk filled with 0x0D ends with a possible delimiter start: its last byte comes later, still a view.)
    assert.equal(copies, 0, 'each content chunk is a view of an input chunk');
  });

  test('a missing closing boundary: the part being read fails with ERR_DICOMWEB_MULTIPART_TRUNCATED', async () => {
    const body = '--b\r\nContent-Type: application/dicom\r\n\r\nDICM and then the connection drops';
    const parts = parseMultipart(chunked(bytes(body), [30]), 'b');
    const first = await parts.next();
    assert.equal(first.done, false);
    if (first.done) return;
    await rejectsWith(readAll(first.value.body), 'ERR_DICOMWEB_MULTIPART_TRUNCATED', /inside a part/);
    // The part iterator reports it too (the body is broken for everybody).
    await rejectsWith(parts.next(), 'ERR_DICOMWEB_MULTIPART_TRUNCATED');
  });

  test('a body cut inside the closing delimiter, in the headers, or before any boundary is truncated', async () => {
    for (const [body, where] of [
      ['--b\r\n\r\ndata\r\n--b', /boundary line/],
      ['--b\r\n\r\ndata\r\n--', /inside a part/],
      ['--b\r\nContent-Type: appl', /headers/],
      ['no boundary anywhere', /before the first boundary/],
      ['', /before the first boundary/],
    ] as const) {
      await rejectsWith(collect(chunked(bytes(body)), 'b'), 'ERR_DICOMWEB_MULTIPART_TRUNCATED', where);
    }
  });

  test('the truncation is seen by the consumer even when it skips the part', async () => {
    await rejectsWith(
      (async () => {
        for await (const _ of parseMultipart(chunked(bytes('--b\r\n\r\nDICM...')), 'b')) {
          // not reading the body
        }
      })(),
      'ERR_DICOMWEB_MULTIPART_TRUNCATED',
    );
  });

  test('malformed boundary lines and header lines', async () => {
    for (const body of [
      '--b-\r\n',
      '--bX\r\n\r\n--b--',
      '--b\r\nno colon here\r\n\r\nx\r\n--b--',
      '--b\r\n: v\r\n\r\n',
    ]) {
      await rejectsWith(collect(chunked(bytes(body)), 'b'), 'ERR_DICOMWEB_MULTIPART_MALFORMED');
    }
  });

  test('a header block over the limit fails with ERR_DICOMWEB_MULTIPART_HEADER_TOO_LARGE', async () => {
    const body = `--b\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\nx\r\n--b--`;
    await rejectsWith(
      collect(chunked(bytes(body), [1000, 2000]), 'b'),
      'ERR_DICOMWEB_MULTIPART_HEADER_TOO_LARGE',
    );
    const ok = parseMultipart(chunked(bytes(body)), 'b', { maxHeaderBytes: 30_000 });
    assert.equal((await ok.next()).done, false);
  });

  test('maxParts', async () => {
    const body = '--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b--';
    const parts = parseMultipart(chunked(bytes(body)), 'b', { maxParts: 2 });
    await parts.next();
    await parts.next();
    await rejectsWith(parts.next(), 'ERR_DICOMWEB_MULTIPART_TOO_MANY_PARTS');
  });

  test('boundaries that RFC 2046 does not allow are refused', async () => {
    for (const b of ['', 'a'.repeat(201), 'ends with space ', 'semi;colon', 'quote"']) {
      await rejectsWith(collect(chunked(bytes('x')), b), 'ERR_DICOMWEB_BAD_BOUNDARY');
    }
    // The writer keeps to 70; the parser reads up to 200.
    await rejectsWith(readAll(multipartBody([], 'a'.repeat(71))), 'ERR_DICOMWEB_BAD_BOUNDARY');
    const long = 'b'.repeat(120);
    assert.deepEqual(await collect(chunked(bytes(`--${long}\r\n\r\nx\r\n--${long}--`), [3, 60, 125]), long), [
      { headers: {}, body: 'x' },
    ]);
  });

  test('the epilogue is read to the end of the input (a request is wholly consumed)', async () => {
    let finished = false;
    async function* input(): AsyncGenerator<Uint8Array> {
      yield bytes('--b\r\n\r\nx\r\n--b--');
      yield bytes('\r\nepilogue');
      finished = true;
    }
    await collect(input(), 'b');
    assert.equal(finished, true);
  });
});

describe('multipartBody', () => {
  test('writes what the parser reads back; streamed bodies pass chunk by chunk', async () => {
    const boundary = newBoundary();
    assert.match(boundary, /^tessera-[0-9a-f]{32}$/);
    const streamed = [bytes('abc'), bytes('\r\n--'), bytes(boundary.slice(0, 5))];
    const out: Uint8Array[] = [];
    for await (const c of multipartBody(
      [
        { headers: { 'Content-Type': 'application/dicom' }, body: bytes('first') },
        { headers: { 'Content-Type': 'application/octet-stream' }, body: chunked(join(streamed), [1, 4]) },
        { headers: {}, body: new Uint8Array(0) },
      ],
      boundary,
    ))
      out.push(c);
    const text = Buffer.from(join(out)).toString('latin1');
    assert.ok(
      text.startsWith(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\nfirst\r\n--${boundary}\r\n`),
    );
    assert.ok(text.endsWith(`\r\n--${boundary}--\r\n`));
    assert.deepEqual(await collect(chunked(join(out)), boundary), [
      { headers: { 'content-type': 'application/dicom' }, body: 'first' },
      { headers: { 'content-type': 'application/octet-stream' }, body: `abc\r\n--${boundary.slice(0, 5)}` },
      { headers: {}, body: '' },
    ]);
  });

  test('refuses header injection', async () => {
    await rejectsWith(
      readAll(multipartBody([{ headers: { 'Content-Type': 'a/b\r\nX-Evil: 1' }, body: bytes('') }], 'b')),
      'ERR_DICOMWEB_BAD_HEADER',
    );
  });
});

describe('parser property: any chunking of any body gives the parts written', () => {
  const BOUNDARY = 'fc-Boundary_42';
  const DELIMITER = `\r\n--${BOUNDARY}`;
  // Content biased towards what confuses parsers: CR, LF, dashes and pieces of the delimiter.
  const fragment = fc.oneof(
    fc.constantFrom('\r', '\n', '\r\n', '-', '--', '\r\n--', `--${BOUNDARY}`, `--${BOUNDARY}--`),
    fc.integer({ min: 1, max: DELIMITER.length - 1 }).map((n) => DELIMITER.slice(0, n)),
    fc.integer({ min: 1, max: DELIMITER.length - 1 }).map((n) => DELIMITER.slice(n)),
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u).toString('latin1')),
  );
  const content = fc
    .array(fragment, { maxLength: 12 })
    .map((fs) => fs.join(''))
    .filter((s) => !s.includes(DELIMITER));
  const headerValue = fc.stringMatching(/^[!-~]([ -~]{0,20}[!-~])?$/);
  const headers = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/), headerValue, { maxKeys: 3 });
  const parts = fc.array(fc.record({ headers, content }), { minLength: 1, maxLength: 5 });
  const preamble = fc.stringMatching(/^[a-z \r\n]{0,30}$/);
  const epilogue = fc.uint8Array({ maxLength: 30 }).map((u) => Buffer.from(u).toString('latin1'));

  test('random parts, preamble, epilogue and cut points', async () => {
    await fc.assert(
      fc.asyncProperty(
        parts,
        preamble,
        epilogue,
        fc.array(fc.nat({ max: 2000 }), { maxLength: 40 }),
        async (ps, pre, epi, cuts) => {
          const written: Uint8Array[] = [];
          const outgoing: OutgoingPart[] = ps.map((p) => ({
            headers: p.headers,
            body: Buffer.from(p.content, 'latin1'),
          }));
          for await (const c of multipartBody(outgoing, BOUNDARY)) written.push(c);
          const full = join([
            Buffer.from(pre === '' ? '' : `${pre}\r\n`, 'latin1'),
            ...written,
            Buffer.from(epi, 'latin1'),
          ]);
          const got = await collect(chunked(full, cuts), BOUNDARY);
          assert.deepEqual(
            got,
            ps.map((p) => ({ headers: { ...p.headers }, body: p.content })),
          );
        },
      ),
      { numRuns: 400 },
    );
  });
});
