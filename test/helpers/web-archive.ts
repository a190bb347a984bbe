/**
 * Helpers of the DICOMweb tests (src/web/*.int.test.ts): the archive started in-process as
 * `tessera serve` starts it (startArchive, DICOMweb mounted under /dicomweb on its HTTP port,
 * 127.0.0.1, free ports), multipart/related request bodies built by hand (so that the tests control
 * every byte), and multipart responses read back with the parser of src/dicomweb.
 *
 * The archive is started here and not in the test files because src/web may not import src/server
 * (scripts/check-layers.ts); test helpers may. Not a test file itself (no `.test.ts`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseContentType, parseMultipart } from '../../src/dicomweb/index.ts';
import {
  parseConfig,
  type RunningArchive,
  type ServerConfigInput,
  startArchive,
} from '../../src/server/index.ts';

/** A running archive and where to reach it. */
export interface WebArchive {
  readonly running: RunningArchive;
  /** `http://127.0.0.1:<port>` (the admin endpoints: /stats, /healthz). */
  readonly origin: string;
  /** `http://127.0.0.1:<port>/dicomweb`. */
  readonly url: string;
  readonly dataDir: string;
  /** Index counts from GET /stats. */
  counts(): Promise<{ patients: number; studies: number; series: number; instances: number; bytes: number }>;
  /** Closes the archive and removes its folder. */
  close(): Promise<void>;
}

const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });

/** Starts the archive in a fresh temporary folder with `config` over the test defaults. */
export async function startWebArchive(config: ServerConfigInput = {}): Promise<WebArchive> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-web-'));
  const dataDir = join(root, 'data');
  const running = await startArchive(
    parseConfig({ dataDir, dimsePort: 0, httpPort: 0, logLevel: 'warn', ...config }),
    { logDestination: quiet, processMetrics: false },
  );
  const origin = `http://127.0.0.1:${running.httpPort}`;
  return {
    running,
    origin,
    url: `${origin}/dicomweb`,
    dataDir,
    counts: async () => {
      const r = await fetch(`${origin}/stats`);
      const stats = (await r.json()) as {
        index: { patients: number; studies: number; series: number; instances: number; bytes: number };
      };
      return stats.index;
    },
    close: async () => {
      await running.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface RequestPart {
  /** The part's Content-Type (default application/dicom); null: no Content-Type header. */
  readonly contentType?: string | null;
  readonly body: Uint8Array;
}

/**
 * A multipart/related body: `--boundary CRLF headers CRLF CRLF content CRLF` per part, then the
 * close delimiter. `preamble`/`epilogue` are written before the first and after the last boundary;
 * `close: false` leaves the close delimiter out (a truncated request).
 */
export function multipartRequest(
  parts: readonly RequestPart[],
  boundary: string,
  options: { preamble?: string; epilogue?: string; close?: boolean } = {},
): Buffer {
  const chunks: Buffer[] = [];
  if (options.preamble !== undefined) chunks.push(Buffer.from(`${options.preamble}\r\n`));
  parts.forEach((part, i) => {
    const type = part.contentType === undefined ? 'application/dicom' : part.contentType;
    const head = `${i === 0 ? '' : '\r\n'}--${boundary}\r\n${type === null ? '' : `Content-Type: ${type}\r\n`}\r\n`;
    chunks.push(Buffer.from(head), Buffer.from(part.body));
  });
  if (options.close !== false) chunks.push(Buffer.from(`\r\n--${boundary}--`));
  if (options.epilogue !== undefined) chunks.push(Buffer.from(`\r\n${options.epilogue}`));
  return Buffer.concat(chunks);
}

/** A STOW-RS request of application/dicom parts (one request, one multipart body). */
export function stow(
  url: string,
  files: readonly Uint8Array[],
  init: { headers?: Record<string, string>; boundary?: string } = {},
): Promise<Response> {
  const boundary = init.boundary ?? 'tessera-test-boundary-0123456789';
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      ...init.headers,
    },
    body: multipartRequest(
      files.map((body) => ({ body })),
      boundary,
    ),
  });
}

export interface ResponsePart {
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** The parts of a multipart/related response (whole, for small test data). */
export async function responseParts(response: Response): Promise<ResponsePart[]> {
  const type = parseContentType(response.headers.get('content-type') ?? '');
  if (type.type !== 'multipart/related')
    throw new Error(`expected multipart/related, got ${response.headers.get('content-type')}`);
  const boundary = type.params.boundary;
  if (!boundary) throw new Error('multipart response without a boundary');
  const bytes = new Uint8Array(await response.arrayBuffer());
  const parts: ResponsePart[] = [];
  async function* body(): AsyncGenerator<Uint8Array> {
    yield bytes;
  }
  for await (const part of parseMultipart(body(), boundary)) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of part.body) chunks.push(chunk);
    parts.push({ headers: part.headers, body: Buffer.concat(chunks) });
  }
  return parts;
}
