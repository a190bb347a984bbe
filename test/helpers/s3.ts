/**
 * An S3-compatible server for tests: s3rver (npm, 3.7.x) in a child process on 127.0.0.1 (port chosen
 * by the OS), data in a temp folder removed at `stop()`. A child process keeps its memory and CPU out
 * of the test process (the memory bound of the S3 writer is measured there). The child exits when
 * its stdin closes, so a crashed test process leaves no server behind.
 *
 * s3rver 3.7.1 implements buckets, PUT/GET/HEAD/DELETE (Range included), CopyObject, ListObjectsV2
 * and the multipart calls Create/UploadPart/Complete, but answers NotImplemented or MethodNotAllowed
 * to ListMultipartUploads, ListParts, AbortMultipartUpload and UploadPartCopy. The child adds those
 * four (`s3rverShim`, written from the S3 API reference, over s3rver's own folder layout) in front
 * of s3rver's router; they skip s3rver's signature check. Other differences from AWS that the tests
 * meet (documented in src/archive/blob-s3.ts): PUT, copy and multipart completion write the object
 * file in place (not atomic for a concurrent reader); part sizes, part ETags and checksums are not
 * checked; `Range: bytes=0-0` returns the whole object; anonymous requests are accepted.
 *
 *   node --import tsx test/helpers/s3.ts --serve DIR     (what `startS3Server` runs)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';

/** The key pair s3rver accepts (its built-in dummy account). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** s3rver's data folder (buckets are its sub-folders). */
  readonly directory: string;
  /** A client for the server (path style, s3rver's credentials); destroyed by `stop()`. */
  readonly client: S3Client;
  /** Creates a bucket with a fresh name and returns the name. */
  createBucket(prefix?: string): Promise<string>;
  /** Empties the bucket (objects and multipart uploads) and removes it. */
  removeBucket(bucket: string): Promise<void>;
  /** Makes an object look `ageMs` old (its LastModified) by setting the mtime of s3rver's file. */
  backdateObject(bucket: string, key: string, ageMs: number): Promise<void>;
  /** Makes a multipart upload (its Initiated time) and, with `parts`, its parts look `ageMs` old. */
  backdateUpload(
    bucket: string,
    uploadId: string,
    ageMs: number,
    options?: { parts?: boolean },
  ): Promise<void>;
  stop(): Promise<void>;
}

let bucketCounter = 0;

/** Starts s3rver in a child process and waits until it listens. */
export async function startS3Server(): Promise<S3TestServer> {
  const directory = await mkdtemp(join(tmpdir(), 'tessera-s3rver-'));
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', directory],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const onData = (data: Buffer) => {
        out += data.toString('utf8');
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line !== undefined) {
          child.stdout!.off('data', onData);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      };
      child.stdout!.on('data', onData);
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        reject(new Error(`s3rver exited early (${code ?? signal}): ${out}`)),
      );
      setTimeout(() => reject(new Error('s3rver did not start within 30 s')), 30_000).unref();
    });
  } catch (err) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  child.stdout!.resume();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  const filePath = (bucket: string, key: string): string => {
    const parts = key.split('/');
    const last = parts.pop()!;
    return join(directory, bucket, ...parts, `${last}._S3rver_object`);
  };
  const uploadDir = (bucket: string, uploadId: string): string =>
    join(directory, bucket, '._S3rver_uploads', uploadId);
  const ago = (ageMs: number) => new Date(Date.now() - ageMs);

  return {
    endpoint,
    directory,
    client,
    async createBucket(prefix = 'tessera-test') {
      const bucket = `${prefix}-${process.pid}-${++bucketCounter}-${Date.now().toString(36)}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return bucket;
    },
    async removeBucket(bucket) {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of uploads.Uploads ?? []) {
        await client.send(
          new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
        );
      }
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }),
        );
        for (const o of page.Contents ?? []) {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    },
    async backdateObject(bucket, key, ageMs) {
      await utimes(filePath(bucket, key), ago(ageMs), ago(ageMs));
    },
    async backdateUpload(bucket, uploadId, ageMs, options = {}) {
      const dir = uploadDir(bucket, uploadId);
      await utimes(join(dir, 'key'), ago(ageMs), ago(ageMs));
      if (options.parts) {
        for (const name of await readdir(dir)) {
          if (/^\d+$/.test(name)) await utimes(join(dir, name), ago(ageMs), ago(ageMs));
        }
      }
    },
    async stop() {
      client.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// The child: s3rver plus the four calls it lacks.

/** What the shim uses of a Koa context (s3rver is Koa). */
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
  etag: string;
  req: NodeJS.ReadableStream;
}

type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

interface S3rverStore {
  getBucket(bucket: string): Promise<unknown>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<{ content?: Readable; size: number; range?: unknown } | null>;
}

interface S3rverApp {
  middleware: Middleware[];
  store: S3rverStore;
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

type S3ErrorClass = new (code: string, message: string, detail?: Record<string, unknown>) => Error;

const OWNER = { ID: '123456789000', DisplayName: 'S3rver' };
const XMLNS = { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' };

/**
 * ListMultipartUploads (GET /bucket?uploads), ListParts (GET /bucket/key?uploadId=),
 * AbortMultipartUpload (DELETE /bucket/key?uploadId=) and UploadPartCopy (PUT
 * /bucket/key?partNumber=&uploadId= with x-amz-copy-source) over s3rver's layout: an upload is the
 * folder `<bucket>/._S3rver_uploads/<id>` holding `key`, `metadata`, and `<n>` / `<n>.md5` per part.
 * Initiated is the mtime of `key`; a part's LastModified the mtime of its file. One page only
 * (IsTruncated false): the tests stay far below 1000 uploads or parts.
 */
function s3rverShim(store: S3rverStore, S3Error: S3ErrorClass): Middleware {
  const uploadsDir = (bucket: string) => store.getResourcePath(bucket, undefined, 'uploads');
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

  async function uploadFolder(bucket: string, uploadId: string): Promise<string> {
    if (!/^[0-9a-f]+$/.test(uploadId)) {
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    }
    const dir = join(uploadsDir(bucket), uploadId);
    try {
      await stat(join(dir, 'key'));
    } catch {
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    }
    return dir;
  }

  return async (ctx, next) => {
    const segments = ctx.path.split('/').slice(1).map(decodeURIComponent);
    const bucket = segments[0] ?? '';
    const key = segments.slice(1).join('/');
    const uploadId = one(ctx.query.uploadId);
    const op =
      ctx.method === 'GET' && key === '' && 'uploads' in ctx.query
        ? 'list-uploads'
        : key !== '' && uploadId !== undefined && ctx.method === 'GET'
          ? 'list-parts'
          : key !== '' && uploadId !== undefined && ctx.method === 'DELETE'
            ? 'abort'
            : key !== '' &&
                uploadId !== undefined &&
                ctx.method === 'PUT' &&
                'x-amz-copy-source' in ctx.headers
              ? 'upload-part-copy'
              : undefined;
    if (op === undefined || bucket === '') return next();
    if (!(await store.getBucket(bucket))) {
      throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
    }

    if (op === 'list-uploads') {
      const prefix = one(ctx.query.prefix) ?? '';
      let ids: string[] = [];
      try {
        ids = await readdir(uploadsDir(bucket));
      } catch {
        // no upload was ever started in this bucket
      }
      const uploads: { Key: string; UploadId: string; Initiated: Date }[] = [];
      for (const id of ids) {
        try {
          const k = await readFile(join(uploadsDir(bucket), id, 'key'), 'utf8');
          const s = await stat(join(uploadsDir(bucket), id, 'key'));
          if (k.startsWith(prefix)) uploads.push({ Key: k, UploadId: id, Initiated: s.mtime });
        } catch {
          // completed or aborted meanwhile
        }
      }
      uploads.sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : +a.Initiated - +b.Initiated));
      ctx.body = {
        ListMultipartUploadsResult: {
          '@': XMLNS,
          Bucket: bucket,
          KeyMarker: '',
          UploadIdMarker: '',
          Prefix: prefix,
          MaxUploads: 1000,
          IsTruncated: false,
          Upload: uploads.map((u) => ({
            Key: u.Key,
            UploadId: u.UploadId,
            Initiator: OWNER,
            Owner: OWNER,
            StorageClass: 'STANDARD',
            Initiated: u.Initiated.toISOString(),
          })),
        },
      };
      return;
    }

    const dir = await uploadFolder(bucket, uploadId!);
    if ((await readFile(join(dir, 'key'), 'utf8')) !== key) {
      throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    }

    if (op === 'abort') {
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }

    if (op === 'list-parts') {
      const parts = [];
      for (const name of await readdir(dir)) {
        if (!/^\d+$/.test(name)) continue;
        // A part is listed once stored whole (its .md5 is written last), as S3 lists completed parts.
        const md5 = await readFile(join(dir, `${name}.md5`), 'utf8').catch(() => undefined);
        if (md5 === undefined) continue;
        const s = await stat(join(dir, name));
        parts.push({
          PartNumber: Number(name),
          LastModified: s.mtime.toISOString(),
          ETag: JSON.stringify(md5),
          Size: s.size,
        });
      }
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      ctx.body = {
        ListPartsResult: {
          '@': XMLNS,
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          Initiator: OWNER,
          Owner: OWNER,
          StorageClass: 'STANDARD',
          PartNumberMarker: 0,
          NextPartNumberMarker: parts.at(-1)?.PartNumber ?? 0,
          MaxParts: 1000,
          IsTruncated: false,
          Part: parts,
        },
      };
      return;
    }

    // UploadPartCopy
    const partNumber = Number(one(ctx.query.partNumber));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
    }
    const source = decodeURI(String(one(ctx.headers['x-amz-copy-source']))).replace(/^\//, '');
    const [srcBucket = '', ...srcKeyParts] = source.split('/');
    const srcKey = srcKeyParts.join('/');
    const rangeHeader = one(ctx.headers['x-amz-copy-source-range']);
    const range = rangeHeader === undefined ? undefined : /^bytes=(\d+)-(\d+)$/.exec(rangeHeader);
    if (rangeHeader !== undefined && (range === null || range === undefined)) {
      throw new S3Error(
        'InvalidArgument',
        'The x-amz-copy-source-range value must be of the form bytes=first-last',
      );
    }
    const object = await store.getObject(
      srcBucket,
      srcKey,
      range ? { start: Number(range[1]), end: Number(range[2]) } : undefined,
    );
    if (!object) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: srcKey });
    if (range && Number(range[2]) >= object.size) {
      object.content?.destroy();
      throw new S3Error('InvalidRange', 'The requested range is not satisfiable');
    }
    if (!object.content) throw new S3Error('InvalidRange', 'The requested range is not satisfiable');
    const hash = createHash('md5');
    object.content.on('data', (chunk: Buffer) => hash.update(chunk));
    await pipeline(object.content, createWriteStream(join(dir, String(partNumber))));
    const md5 = hash.digest('hex');
    await writeFile(join(dir, `${partNumber}.md5`), md5);
    ctx.body = {
      CopyPartResult: { LastModified: new Date().toISOString(), ETag: JSON.stringify(md5) },
    };
  };
}

async function serve(directory: string): Promise<void> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverApp;
  const S3Error = require('s3rver/lib/models/error') as S3ErrorClass;
  const app = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  // The router is s3rver's last middleware: the shim goes just before it.
  app.middleware.splice(app.middleware.length - 1, 0, s3rverShim(app.store, S3Error));
  const address = await app.run();
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  const quit = () => {
    app.close().finally(() => process.exit(0));
  };
  process.stdin.on('end', quit);
  process.stdin.on('close', quit);
  process.stdin.resume();
  process.on('SIGTERM', quit);
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--serve') {
  await serve(process.argv[3]!);
}
