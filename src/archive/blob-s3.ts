/**
 * The S3 blob store (`s3://bucket/prefix`), with the AWS SDK v3, for several Tessera nodes sharing one
 * bucket. Objects: `<prefix>/blobs/<blob key>` for published blobs, `<prefix>/tmp/<node>-<n>` for
 * large blobs being written (`<node>`: random per store instance, so nodes never share a temp key).
 *
 * Writing. The final key is only known at `commit(key)` (ingest derives it from the content
 * checksum), and S3 cannot rename, so a writer works in one of two ways:
 * - Small blobs, up to `partSize` (8 MiB by default; most instances, a CT slice is 0.5 MB): the bytes
 *   stay in the writer's part buffer and `commit` PUTs them to the final key in one request. No temp
 *   object, no copy; nothing exists in the bucket before `commit`.
 * - Larger blobs: a multipart upload to a temp key is started when the first part is full, and each
 *   full part is uploaded (UploadPart) while the next one fills. `commit` uploads the last part,
 *   completes the upload (the temp object appears under `tmp/`), copies it server-side to the final
 *   key (CopyObject up to 5 GiB, the largest a CopyObject may copy; above, a multipart copy of
 *   UploadPartCopy parts), then deletes the temp object. The copy moves every byte a second time
 *   inside the store (a few seconds per GB on AWS, no traffic to the client, priced as one COPY/PUT
 *   request per part) and the temp object is billed for the minutes it lives. The alternatives cost
 *   more: an index object pointing at the temp key (an extra GET on every read, and two objects to
 *   keep consistent), or spooling to local disk to upload once the key is known (a local volume
 *   again, and the upload no longer overlaps the receive).
 *   In both cases `write()` resolves once the chunk is copied into the part buffer; when `queueSize`
 *   part uploads are in flight and the buffer is full, it waits for one to finish (backpressure). A
 *   writer holds at most `(queueSize + 1) × partSize` bytes: 24 MiB with the defaults (8 MiB parts,
 *   2 in flight), whatever the blob's size; a small blob only what it has (pages of the part buffer
 *   are not touched before they are written). 10,000 parts of `partSize` is the largest blob (78 GiB
 *   with the defaults; S3's limit is 5 TiB).
 *
 * Why not lib-storage's `Upload` (fed by a PassThrough)? It fits a body of known key, but here (1) the
 * first part decides between a PUT to the final key and a multipart upload to a temp key; (2) the
 * writer copies each chunk (the port lets callers reuse their buffer) and `Upload` concatenates the
 * chunks into parts again (a second copy, and garbage of up to two parts); (3) `Upload.abort()`
 * rejects `done()` at once while its part uploads go on and the AbortMultipartUpload is sent in the
 * background, so an abort could not promise that nothing is left when it resolves; (4) a failed part
 * surfaces only when the whole body has been read. The upload here is the same calls `Upload` makes
 * (Create / UploadPart / Complete / Abort, CRC32 part checksums when the client computes checksums),
 * with the part buffers reused.
 *
 * Consistency and durability. S3 is strongly consistent (read-after-write, list-after-write, since
 * December 2020): after `commit` resolves every node reads the new bytes. A PUT, a
 * CompleteMultipartUpload and a CopyObject are durable when they answer 200, and each publishes the
 * whole object at once: a reader sees the old or the new object, never a mix, so `commit` replaces an
 * existing blob atomically. (With bucket versioning on, replaced and deleted blobs stay as noncurrent
 * versions: add a lifecycle rule to expire them, or leave versioning off.) If the answer to the final
 * PUT/copy is lost after the store acted, `commit` rejects although the blob may exist: it is then a
 * blob without an index row, as after a crash between publishing and the index commit, found by
 * `keys()`.
 *
 * Temps. `cleanupTemps` (at start-up) aborts the multipart uploads and deletes the temp objects under
 * `tmp/` (and the multipart-copy uploads under `blobs/`) that are older than `tempGraceMs` (1 hour),
 * except those of this store's live writers. Other nodes' writers are alive when recent: an upload
 * counts as stale only when it was initiated before the grace period AND its newest part (ListParts)
 * is older than it too, so a long upload that keeps sending parts is never aborted; a temp object
 * only lives between Complete and the end of the copy. Ages compare S3's timestamps with the local
 * clock: the grace period must exceed the clock skew (it does by far). A lifecycle rule
 * (AbortIncompleteMultipartUpload after a day, expiry of `tmp/` after a day) is a good second net.
 *
 * Costs. `read` is one GET (ranged for a range or a frame), `size`/`exists` one HEAD, `delete` one
 * DELETE, a small blob one PUT, a large one 1 + n + 1 requests plus the copy and the delete. S3 has
 * no statfs: `usage()` sums the sizes under the prefix with ListObjectsV2 (one request per 1000
 * objects, so a million blobs take 1000 requests and some seconds) and reports `free: Infinity`
 * (JSON: null); the result is cached for `usageCacheMs` (5 minutes) and concurrent calls share one
 * listing. For big buckets, CloudWatch's BucketSizeBytes or S3 Storage Lens are cheaper.
 *
 * Configuration: `S3BlobStore.fromUrl('s3://bucket/prefix', options)`. The endpoint, region and
 * credentials default to the environment as the SDK reads it: AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL (MinIO, Ceph, ... ; path-style addressing is then the default), AWS_REGION or
 * AWS_DEFAULT_REGION (`us-east-1` with a custom endpoint and no region), AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, the shared config files, SSO, web identity, the instance
 * or task role (the SDK's default provider chain).
 *
 * Errors: a missing bucket `ERR_ARCHIVE_S3_NO_BUCKET`, refused credentials or permissions
 * `ERR_ARCHIVE_S3_ACCESS_DENIED`, no answer `ERR_ARCHIVE_S3_UNREACHABLE` (after the SDK's retries),
 * a quota or an object too large `ERR_ARCHIVE_DISK_FULL` (ingest answers A700), a missing blob
 * `ERR_ARCHIVE_BLOB_NOT_FOUND`, a range past the end `ERR_ARCHIVE_BLOB_RANGE`, anything else
 * `ERR_ARCHIVE_S3` (the S3 error code and HTTP status in the message, the SDK's error as `cause`).
 * A HEAD has no body, so `size`/`exists` on a missing bucket answer "no blob"; every other call names
 * the missing bucket (so does `cleanupTemps` at start-up).
 *
 * Tested against s3rver (test/helpers/s3.ts), which differs from AWS: no atomic replace (it writes the
 * object file in place), no part size/ETag/checksum checks, `Range: bytes=0-0` answered with the whole
 * object (reads here only ever take the bytes asked for), only the access key of a SigV4 signature is
 * checked, and ListMultipartUploads / ListParts / AbortMultipartUpload / UploadPartCopy are missing
 * (the test helper adds them).
 */
import { randomBytes } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  type ChecksumAlgorithm,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  type MultipartUpload,
  type _Object as ObjectSummary,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { DicomError, isDicomError } from '../core/index.ts';
import { assertBlobKey } from './blob-fs.ts';
import type { BlobStore, BlobWriter, ByteRange } from './ports.ts';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
/** S3's smallest part (all but the last) and largest part, and its most parts per upload. */
const MIN_PART = 5 * MIB;
const MAX_PART = 5 * GIB;
const MAX_PARTS = 10_000;

export const S3_BLOB_DEFAULTS = {
  partSize: 8 * MIB,
  queueSize: 2,
  tempGraceMs: 60 * 60 * 1000,
  /** The largest object one CopyObject may copy (S3's limit). */
  copyThreshold: 5 * GIB,
  copyPartSize: 512 * MIB,
  copyConcurrency: 4,
  usageCacheMs: 5 * 60 * 1000,
  connectionTimeoutMs: 10_000,
} as const;

export interface S3BlobStoreOptions {
  /** e.g. `http://127.0.0.1:9000`; default AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then AWS itself. */
  readonly endpoint?: string;
  /** Default AWS_REGION, AWS_DEFAULT_REGION, the shared config file; `us-east-1` with a custom endpoint. */
  readonly region?: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true with a custom endpoint, else false. */
  readonly forcePathStyle?: boolean;
  /** Default: the SDK's provider chain (environment, shared files, SSO, instance/task role). */
  readonly credentials?: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
  /** Attempts per request (the SDK retries throttling, 5xx and network errors); default 3. */
  readonly maxAttempts?: number;
  /** An existing client instead (the options above are then unused); `close()` leaves it open. */
  readonly client?: S3Client;
  /** Bytes per uploaded part, 5 MiB to 5 GiB; also the largest blob written with a single PUT. */
  readonly partSize?: number;
  /** Part uploads in flight per writer (1 to 16). */
  readonly queueSize?: number;
  /** Age under which `cleanupTemps` leaves a temp alone (another node may be writing it). */
  readonly tempGraceMs?: number;
  /** Blobs up to this size are published with one CopyObject, larger ones with a multipart copy. */
  readonly copyThreshold?: number;
  /** Part size of a multipart copy, 5 MiB to 5 GiB (raised when the blob would need over 10,000). */
  readonly copyPartSize?: number;
  /** UploadPartCopy requests in flight during a multipart copy. */
  readonly copyConcurrency?: number;
  /** How long `usage()` reuses its last listing. */
  readonly usageCacheMs?: number;
}

/** Diagnostics (`node:diagnostics_channel`): `{ event: 'temp-left', bucket, key, error }` when a temp object could not be deleted after its blob was published (cleanupTemps removes it later). */
export const blobS3Channel = channel('tessera:archive:blob-s3');

/** S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, starting and ending alphanumeric. */
const BUCKET_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT = /^[A-Za-z0-9_.-]+$/;

/**
 * Splits `s3://bucket[/prefix]` into the bucket and the key prefix (`''` or ending in `/`). Throws
 * `ERR_ARCHIVE_S3_CONFIG` for another scheme, an invalid bucket name, or a prefix with empty, `.`,
 * `..` segments or characters other than letters, digits, `_`, `.`, `-`.
 */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/.exec(url);
  const bad = (why: string) =>
    new DicomError(
      'ERR_ARCHIVE_S3_CONFIG',
      `not an s3://bucket[/prefix] URL (${why}): ${JSON.stringify(url)}`,
    );
  if (m === null) throw bad('expected s3://bucket/prefix, without query or fragment');
  const bucket = m[1]!;
  if (!BUCKET_PATTERN.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw bad('bucket names are 3-63 lower-case letters, digits, dots and hyphens');
  }
  const path = (m[2] ?? '').replace(/^\/|\/$/g, '');
  if (path === '') return { bucket, prefix: '' };
  for (const segment of path.split('/')) {
    if (!PREFIX_SEGMENT.test(segment) || segment === '.' || segment === '..') {
      throw bad(`prefix segment ${JSON.stringify(segment)}`);
    }
  }
  if (path.length > 512) throw bad('prefix longer than 512 characters');
  return { bucket, prefix: `${path}/` };
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  errors?: { code?: string }[];
}

const ACCESS_DENIED = new Set([
  'AccessDenied',
  'AccountProblem',
  'AllAccessDisabled',
  'CredentialsProviderError',
  'ExpiredToken',
  'Forbidden',
  'InvalidAccessKeyId',
  'InvalidSecurity',
  'InvalidToken',
  'SignatureDoesNotMatch',
  'TokenRefreshRequired',
]);
/** Quotas and sizes: AWS's EntityTooLarge, Ceph's QuotaExceeded, MinIO's storage-full codes. */
const STORE_FULL = new Set([
  'EntityTooLarge',
  'QuotaExceeded',
  'XMinioStorageFull',
  'XMinioAdminBucketQuotaExceeded',
  'InsufficientStorage',
]);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * Turns an S3 / SDK error into a DicomError (see the module comment for the codes), with the original
 * as `cause`. `key` (a blob key) makes NoSuchKey / 404 a missing blob and InvalidRange a bad range.
 */
export function mapS3Error(
  err: unknown,
  action: string,
  where: { readonly bucket: string; readonly key?: string; readonly range?: ByteRange },
): DicomError {
  if (isDicomError(err)) return err;
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const what = where.key === undefined ? action : `${action} ${where.key}`;
  const detail = `${name}${status === undefined ? '' : ` (HTTP ${status})`}: ${e.message ?? String(err)}`;
  if (name === 'NoSuchBucket') {
    return new DicomError(
      'ERR_ARCHIVE_S3_NO_BUCKET',
      `S3 bucket "${where.bucket}" does not exist (during ${what}): create it or fix the s3:// URL`,
      { cause: err },
    );
  }
  // Before the 403 test: Ceph answers QuotaExceeded with a 403.
  if (STORE_FULL.has(name) || status === 507) {
    return new DicomError('ERR_ARCHIVE_DISK_FULL', `S3 refused the bytes during ${what} (${detail})`, {
      cause: err,
    });
  }
  if (ACCESS_DENIED.has(name) || status === 403) {
    return new DicomError(
      'ERR_ARCHIVE_S3_ACCESS_DENIED',
      `access to S3 bucket "${where.bucket}" denied during ${what} (${detail}): check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile or role) and the bucket policy`,
      { cause: err },
    );
  }
  if (where.key !== undefined && (name === 'NoSuchKey' || name === 'NotFound' || status === 404)) {
    return new DicomError('ERR_ARCHIVE_BLOB_NOT_FOUND', `no blob ${where.key}`, { cause: err });
  }
  if (name === 'InvalidRange' || status === 416) {
    const range = where.range === undefined ? '' : ` [${where.range.start}, ${where.range.end})`;
    return new DicomError(
      'ERR_ARCHIVE_BLOB_RANGE',
      `range${range} past the end of ${where.key ?? 'the blob'}`,
      {
        cause: err,
      },
    );
  }
  const code = e.code ?? e.errors?.find((x) => x.code !== undefined)?.code;
  if ((code !== undefined && NETWORK.has(code)) || name === 'TimeoutError') {
    return new DicomError(
      'ERR_ARCHIVE_S3_UNREACHABLE',
      `S3 endpoint unreachable during ${what} (${code ?? name}: ${e.message ?? ''}): check the endpoint (AWS_ENDPOINT_URL) and the network`,
      { cause: err },
    );
  }
  return new DicomError('ERR_ARCHIVE_S3', `S3 ${what} in bucket "${where.bucket}" failed: ${detail}`, {
    cause: err,
  });
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new DicomError('ERR_ARCHIVE_BLOB_RANGE', `invalid byte range [${start}, ${end})`);
  }
}

function isBlobKey(key: string): boolean {
  try {
    assertBlobKey(key);
    return true;
  } catch {
    return false;
  }
}

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new DicomError(
      'ERR_ARCHIVE_S3_CONFIG',
      `S3 blob store option ${name} must be an integer in [${min}, ${max}]`,
    );
  }
  return value;
}

/** Where a GET's body sits in the blob: bytes to skip at its start, then bytes to take. */
interface OpenedRead {
  readonly body: Readable;
  readonly skip: number;
  /** Bytes to deliver; undefined when the response did not say (the body's end is then the end). */
  readonly length: number | undefined;
}

/** `BlobStore` over an S3 bucket. See the module comment for the design, consistency and costs. */
export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  readonly bucket: string;
  /** `''` or ending in `/`. */
  readonly prefix: string;
  readonly partSize: number;
  readonly queueSize: number;
  readonly tempGraceMs: number;
  readonly copyThreshold: number;
  readonly copyPartSize: number;
  readonly copyConcurrency: number;
  readonly usageCacheMs: number;
  readonly #ownsClient: boolean;
  readonly #node = randomBytes(9).toString('hex');
  #tempCounter = 0;
  /** Object keys of this store's live writers: temps and multipart copies (cleanupTemps spares them). */
  readonly #active = new Set<string>();
  #checksum: Promise<ChecksumAlgorithm | undefined> | undefined;
  #usage: { readonly at: number; readonly value: Promise<{ used: number; free: number }> } | undefined;

  /** A store for `s3://bucket[/prefix]`; endpoint, region and credentials default to the environment. */
  static fromUrl(url: string, options: S3BlobStoreOptions = {}): S3BlobStore {
    return new S3BlobStore({ ...parseS3Url(url), ...options });
  }

  constructor(options: S3BlobStoreOptions & { readonly bucket: string; readonly prefix?: string }) {
    const { bucket, prefix } = parseS3Url(`s3://${options.bucket}/${options.prefix ?? ''}`);
    this.bucket = bucket;
    this.prefix = prefix;
    this.partSize = integer('partSize', options.partSize ?? S3_BLOB_DEFAULTS.partSize, MIN_PART, MAX_PART);
    this.queueSize = integer('queueSize', options.queueSize ?? S3_BLOB_DEFAULTS.queueSize, 1, 16);
    this.tempGraceMs = integer(
      'tempGraceMs',
      options.tempGraceMs ?? S3_BLOB_DEFAULTS.tempGraceMs,
      0,
      2 ** 40,
    );
    this.copyThreshold = integer(
      'copyThreshold',
      options.copyThreshold ?? S3_BLOB_DEFAULTS.copyThreshold,
      0,
      S3_BLOB_DEFAULTS.copyThreshold,
    );
    this.copyPartSize = integer(
      'copyPartSize',
      options.copyPartSize ?? S3_BLOB_DEFAULTS.copyPartSize,
      MIN_PART,
      MAX_PART,
    );
    this.copyConcurrency = integer(
      'copyConcurrency',
      options.copyConcurrency ?? S3_BLOB_DEFAULTS.copyConcurrency,
      1,
      64,
    );
    this.usageCacheMs = integer(
      'usageCacheMs',
      options.usageCacheMs ?? S3_BLOB_DEFAULTS.usageCacheMs,
      0,
      2 ** 40,
    );
    if (options.client !== undefined) {
      this.client = options.client;
      this.#ownsClient = false;
    } else {
      this.client = new S3Client(clientConfig(options));
      this.#ownsClient = true;
    }
  }

  /** The object key of a blob. */
  objectKey(key: string): string {
    return `${this.prefix}blobs/${key}`;
  }

  get tempPrefix(): string {
    return `${this.prefix}tmp/`;
  }

  async create(): Promise<BlobWriter> {
    const tempKey = `${this.tempPrefix}${this.#node}-${(this.#tempCounter++).toString(36)}`;
    return new S3BlobWriter(this, tempKey);
  }

  read(key: string, range?: ByteRange): Readable {
    assertBlobKey(key);
    if (range !== undefined) {
      checkRange(range.start, range.end);
      if (range.start === range.end) return Readable.from([], { objectMode: false });
    }
    return new S3ReadStream(this, key, range);
  }

  async readBytes(key: string, start: number, length: number): Promise<Buffer> {
    assertBlobKey(key);
    checkRange(start, start + length);
    if (length === 0) {
      if ((await this.size(key)) === undefined) {
        throw new DicomError('ERR_ARCHIVE_BLOB_NOT_FOUND', `no blob ${key}`);
      }
      return Buffer.alloc(0);
    }
    const range = { start, end: start + length };
    const opened = await this.openRead(key, range);
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    let skip = opened.skip;
    try {
      // Read to the body's end (the connection then goes back to the pool); leave early (which
      // destroys the body) only when the server sends more than asked for.
      for await (const data of opened.body) {
        let chunk = data as Buffer;
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          skip -= n;
          chunk = chunk.subarray(n);
        }
        if (chunk.length > length - filled) {
          filled += chunk.copy(out, filled, 0, length - filled);
          break;
        }
        filled += chunk.copy(out, filled);
      }
    } catch (err) {
      throw mapS3Error(err, 'read', { bucket: this.bucket, key, range });
    }
    if (filled < length) {
      throw new DicomError(
        'ERR_ARCHIVE_S3',
        `S3 read ${key}: the response ended after ${filled} of ${length} bytes`,
      );
    }
    return out;
  }

  async size(key: string): Promise<number | undefined> {
    assertBlobKey(key);
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      return head.ContentLength ?? 0;
    } catch (err) {
      const e = err as SdkError;
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404)
        return undefined;
      throw mapS3Error(err, 'stat', { bucket: this.bucket, key });
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.size(key)) !== undefined;
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      const mapped = mapS3Error(err, 'delete', { bucket: this.bucket, key });
      if (mapped.code !== 'ERR_ARCHIVE_BLOB_NOT_FOUND') throw mapped;
    }
  }

  /**
   * Aborts the stale multipart uploads (temps under `tmp/`, multipart copies under `blobs/`) and
   * deletes the stale temp objects: those older than `tempGraceMs` whose newest part is older too,
   * never those of this store's live writers. Returns how many it removed.
   */
  async cleanupTemps(): Promise<number> {
    const cutoff = Date.now() - this.tempGraceMs;
    const where = { bucket: this.bucket };
    let removed = 0;
    try {
      for (const prefix of [this.tempPrefix, `${this.prefix}blobs/`]) {
        for await (const upload of this.#listUploads(prefix)) {
          const { Key: key, UploadId: uploadId } = upload;
          if (key === undefined || uploadId === undefined || this.#active.has(key)) continue;
          if (upload.Initiated !== undefined && upload.Initiated.getTime() > cutoff) continue;
          const newest = await this.#newestPart(key, uploadId);
          if (newest !== undefined && newest > cutoff) continue;
          if (await this.abortUpload(key, uploadId)) removed++;
        }
      }
      for await (const object of this.#listObjects(this.tempPrefix)) {
        const key = object.Key;
        if (key === undefined || this.#active.has(key)) continue;
        if (object.LastModified !== undefined && object.LastModified.getTime() > cutoff) continue;
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
        removed++;
      }
    } catch (err) {
      throw mapS3Error(err, 'clean up temps', where);
    }
    return removed;
  }

  /**
   * Bytes stored under the prefix (published blobs and temps), summed from ListObjectsV2, and
   * `free: Infinity` (S3 has no volume to fill). Cached for `usageCacheMs`.
   */
  async usage(): Promise<{ used: number; free: number }> {
    const now = Date.now();
    if (this.#usage !== undefined && now - this.#usage.at < this.usageCacheMs) return this.#usage.value;
    const value = (async () => {
      let used = 0;
      try {
        for (const prefix of [`${this.prefix}blobs/`, this.tempPrefix]) {
          for await (const object of this.#listObjects(prefix)) used += object.Size ?? 0;
        }
      } catch (err) {
        throw mapS3Error(err, 'list objects for usage', { bucket: this.bucket });
      }
      return { used, free: Number.POSITIVE_INFINITY };
    })();
    const entry = { at: now, value };
    this.#usage = entry;
    value.catch(() => {
      if (this.#usage === entry) this.#usage = undefined;
    });
    return value;
  }

  /**
   * Every published key (not part of the `BlobStore` port): for the start-up consistency check that
   * finds blobs without an index row. One ListObjectsV2 request per 1000 blobs.
   */
  async *keys(): AsyncIterable<string> {
    const blobs = `${this.prefix}blobs/`;
    try {
      for await (const object of this.#listObjects(blobs)) {
        const key = object.Key?.slice(blobs.length);
        if (key !== undefined && isBlobKey(key)) yield key;
      }
    } catch (err) {
      throw mapS3Error(err, 'list blobs', { bucket: this.bucket });
    }
  }

  /** Releases the client's sockets (unless the client was passed in). */
  close(): void {
    if (this.#ownsClient) this.client.destroy();
  }

  // --- for the writer and the read stream ---------------------------------------------------------

  /** Marks an object key as written by a live writer of this store (or, `false`, no longer). */
  track(objectKey: string, live: boolean): void {
    if (live) this.#active.add(objectKey);
    else this.#active.delete(objectKey);
  }

  /** CRC32 when the client computes request checksums (its default, WHEN_SUPPORTED), as lib-storage does. */
  checksumAlgorithm(): Promise<ChecksumAlgorithm | undefined> {
    this.#checksum ??= (async () => {
      const setting = (this.client.config as { requestChecksumCalculation?: unknown })
        .requestChecksumCalculation;
      const value = typeof setting === 'function' ? await (setting as () => Promise<unknown>)() : setting;
      return value === 'WHEN_REQUIRED' ? undefined : 'CRC32';
    })();
    return this.#checksum;
  }

  /** Aborts a multipart upload; false when it was already gone (completed or aborted elsewhere). */
  async abortUpload(objectKey: string, uploadId: string): Promise<boolean> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }),
      );
      return true;
    } catch (err) {
      if ((err as SdkError).name === 'NoSuchUpload') return false;
      throw err;
    }
  }

  /** Copies the temp object `source` (of `size` bytes) to `target`, server-side, atomically. */
  async publish(source: string, target: string, size: number): Promise<void> {
    const copySource = `${this.bucket}/${source.split('/').map(encodeURIComponent).join('/')}`;
    if (size <= this.copyThreshold) {
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: target, CopySource: copySource }),
      );
      return;
    }
    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target }),
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined)
      throw new DicomError('ERR_ARCHIVE_S3', 'CreateMultipartUpload answered no UploadId');
    this.track(target, true);
    try {
      const partSize = Math.max(this.copyPartSize, Math.ceil(size / MAX_PARTS));
      const count = Math.ceil(size / partSize);
      const parts: CompletedPart[] = [];
      let next = 0;
      let failure: unknown;
      const worker = async () => {
        while (failure === undefined && next < count) {
          const i = next++;
          const first = i * partSize;
          const last = Math.min(size, first + partSize) - 1;
          try {
            const res = await this.client.send(
              new UploadPartCopyCommand({
                Bucket: this.bucket,
                Key: target,
                UploadId: uploadId,
                PartNumber: i + 1,
                CopySource: copySource,
                CopySourceRange: `bytes=${first}-${last}`,
              }),
            );
            const etag = res.CopyPartResult?.ETag;
            if (etag === undefined)
              throw new DicomError('ERR_ARCHIVE_S3', `UploadPartCopy ${i + 1} answered no ETag`);
            parts[i] = { PartNumber: i + 1, ETag: etag };
          } catch (err) {
            failure ??= err;
          }
        }
      };
      // Every worker has stopped before the upload is completed or aborted (no part lands after).
      await Promise.all(Array.from({ length: Math.min(this.copyConcurrency, count) }, worker));
      if (failure !== undefined) throw failure;
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: target,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (err) {
      // The copy's error is the one to report; an upload left behind is what cleanupTemps removes.
      await this.abortUpload(target, uploadId).catch(() => undefined);
      throw err;
    } finally {
      this.track(target, false);
    }
  }

  /**
   * Sends the GET of a read and checks what came back against `range`: a range past the end (a
   * 416, or a Content-Range whose total is short of `range.end`) is `ERR_ARCHIVE_BLOB_RANGE`.
   */
  async openRead(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<OpenedRead> {
    const where = { bucket: this.bucket, key, ...(range === undefined ? {} : { range }) };
    let res: GetObjectCommandOutput;
    try {
      res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end - 1}` }),
        }),
        signal === undefined ? {} : { abortSignal: signal },
      );
    } catch (err) {
      throw mapS3Error(err, 'read', where);
    }
    const body = res.Body as Readable | undefined;
    if (body === undefined)
      throw new DicomError('ERR_ARCHIVE_S3', `S3 read ${key}: a response without a body`);
    try {
      const contentRange =
        res.ContentRange === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.ContentRange);
      // A 200 (no Content-Range: a server that ignores Range) holds the whole blob from byte 0.
      const first = contentRange === null ? 0 : Number(contentRange[1]);
      const total =
        contentRange === null
          ? res.ContentLength
          : contentRange[3] === '*'
            ? undefined
            : Number(contentRange[3]);
      if (range === undefined)
        return { body, skip: first, length: total === undefined ? undefined : total - first };
      if (total !== undefined && total < range.end) {
        throw new DicomError(
          'ERR_ARCHIVE_BLOB_RANGE',
          `range [${range.start}, ${range.end}) past the end of ${key} (${total} bytes)`,
        );
      }
      if (first > range.start) {
        throw new DicomError(
          'ERR_ARCHIVE_S3',
          `S3 read ${key}: asked for bytes from ${range.start}, got ${res.ContentRange}`,
        );
      }
      return { body, skip: range.start - first, length: range.end - range.start };
    } catch (err) {
      body.destroy();
      throw err;
    }
  }

  async *#listObjects(prefix: string): AsyncIterable<ObjectSummary> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
      );
      yield* page.Contents ?? [];
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async *#listUploads(prefix: string): AsyncIterable<MultipartUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
          ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
        }),
      );
      yield* page.Uploads ?? [];
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /** The time (ms) of the newest part of an upload; undefined when it has none (or is gone). */
  async #newestPart(key: string, uploadId: string): Promise<number | undefined> {
    let newest: number | undefined;
    let marker: string | undefined;
    try {
      for (;;) {
        const page = await this.client.send(
          new ListPartsCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            ...(marker === undefined ? {} : { PartNumberMarker: marker }),
          }),
        );
        for (const part of page.Parts ?? []) {
          const t = part.LastModified?.getTime();
          if (t !== undefined && (newest === undefined || t > newest)) newest = t;
        }
        if (!page.IsTruncated || page.NextPartNumberMarker === undefined) return newest;
        marker = page.NextPartNumberMarker;
      }
    } catch (err) {
      if ((err as SdkError).name === 'NoSuchUpload') return Number.POSITIVE_INFINITY; // gone: nothing to abort
      throw err;
    }
  }
}

function clientConfig(options: S3BlobStoreOptions): S3ClientConfig {
  const env = process.env;
  const endpoint = options.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined);
  const region =
    options.region ??
    (env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint === undefined ? undefined : 'us-east-1'));
  return {
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(region === undefined ? {} : { region }),
    forcePathStyle: options.forcePathStyle ?? endpoint !== undefined,
    ...(options.credentials === undefined ? {} : { credentials: { ...options.credentials } }),
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: S3_BLOB_DEFAULTS.connectionTimeoutMs },
  };
}

/**
 * A blob being written: in the part buffer (small), or a multipart upload to a temp key (large). See
 * the module comment.
 */
class S3BlobWriter implements BlobWriter {
  readonly tempPath: string;
  readonly #store: S3BlobStore;
  readonly #tempKey: string;
  /** The part being filled, and how much of it is. */
  #part: Buffer | undefined;
  #filled = 0;
  #size = 0;
  /** Part buffers whose upload is done, for the next parts. */
  readonly #pool: Buffer[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #completed: CompletedPart[] = [];
  #partNumber = 0;
  #uploadId: string | undefined;
  #checksum: ChecksumAlgorithm | undefined;
  /** The temp object exists (upload completed, copy not yet done or temp not yet deleted). */
  #tempObject = false;
  /** The first failure of a part upload or of a write; every later write and the commit reject with it. */
  #failure: DicomError | undefined;
  /** Serializes writes that wait for a free upload slot; settled when `#pending` is 0. */
  #queue: Promise<void> = Promise.resolve();
  #pending = 0;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  #committing: Promise<void> | undefined;
  #discarding: Promise<void> | undefined;

  constructor(store: S3BlobStore, tempKey: string) {
    this.#store = store;
    this.#tempKey = tempKey;
    this.tempPath = `s3://${store.bucket}/${tempKey}`;
    store.track(tempKey, true);
  }

  get size(): number {
    return this.#size;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.#state !== 'open') {
      return Promise.reject(new DicomError('ERR_ARCHIVE_BLOB_CLOSED', `write after ${this.#state}`));
    }
    this.#size += chunk.length;
    const partSize = this.#store.partSize;
    // Fast path: nothing queued and the chunk fits in the part being filled.
    if (this.#pending === 0 && this.#failure === undefined && this.#filled + chunk.length <= partSize) {
      if (chunk.length > 0) {
        this.#part ??= this.#takeBuffer();
        chunk.copy(this.#part, this.#filled);
        this.#filled += chunk.length;
      }
      return this.#queue;
    }
    this.#pending++;
    this.#queue = this.#queue
      .then(() => this.#append(chunk))
      .finally(() => {
        this.#pending--;
      });
    return this.#queue;
  }

  async commit(key: string): Promise<void> {
    if (this.#state !== 'open') {
      throw new DicomError('ERR_ARCHIVE_BLOB_CLOSED', `commit after ${this.#state}`);
    }
    this.#state = 'committing';
    const done = this.#commit(key);
    this.#committing = done.catch(() => undefined);
    return done;
  }

  async abort(): Promise<void> {
    if (this.#state === 'committing') await this.#committing;
    if (this.#state === 'committed') return;
    this.#discarding ??= this.#discard();
    try {
      await this.#discarding;
    } catch (err) {
      throw mapS3Error(err, 'abort', { bucket: this.#store.bucket });
    }
  }

  async #commit(key: string): Promise<void> {
    const store = this.#store;
    const client = store.client;
    try {
      assertBlobKey(key);
      const target = store.objectKey(key);
      await this.#queue;
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#uploadId === undefined) {
        // Small: one PUT to the final key; nothing existed before.
        await client.send(
          new PutObjectCommand({
            Bucket: store.bucket,
            Key: target,
            Body: this.#part === undefined ? Buffer.alloc(0) : this.#part.subarray(0, this.#filled),
            ContentLength: this.#filled,
          }),
        );
      } else {
        if (this.#filled > 0) this.#uploadPart(this.#part!, this.#filled);
        this.#part = undefined;
        this.#filled = 0;
        while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
        if (this.#failure !== undefined) throw this.#failure;
        const parts = [...this.#completed].sort((a, b) => a.PartNumber! - b.PartNumber!);
        const uploadId = this.#uploadId;
        await client.send(
          new CompleteMultipartUploadCommand({
            Bucket: store.bucket,
            Key: this.#tempKey,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        );
        this.#uploadId = undefined;
        this.#tempObject = true;
        this.#release();
        await store.publish(this.#tempKey, target, this.#size);
        try {
          await client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: this.#tempKey }));
          this.#tempObject = false;
        } catch (err) {
          // The blob is published and durable: the commit stands. The temp is stale in an hour and
          // cleanupTemps (this node's or another's) removes it then.
          blobS3Channel.publish({ event: 'temp-left', bucket: store.bucket, key: this.#tempKey, error: err });
        }
      }
      this.#state = 'committed';
      this.#release();
      store.track(this.#tempKey, false);
    } catch (err) {
      // The commit's own error is the one to report; whatever the discard leaves, cleanupTemps removes.
      this.#discarding ??= this.#discard();
      await this.#discarding.catch(() => undefined);
      throw mapS3Error(err, 'commit', { bucket: store.bucket, key });
    }
  }

  async #discard(): Promise<void> {
    this.#state = 'aborted';
    try {
      await this.#queue;
    } catch {
      // The write error was reported to the caller of write/commit; the data is being discarded.
    }
    // Wait for the part uploads: an abort racing them could leave a part behind.
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
    this.#release();
    const store = this.#store;
    try {
      if (this.#uploadId !== undefined) {
        const uploadId = this.#uploadId;
        await store.abortUpload(this.#tempKey, uploadId);
        this.#uploadId = undefined;
      }
      if (this.#tempObject) {
        await store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key: this.#tempKey }));
        this.#tempObject = false;
      }
    } finally {
      store.track(this.#tempKey, false);
    }
  }

  async #append(chunk: Buffer): Promise<void> {
    try {
      if (this.#failure !== undefined) throw this.#failure;
      const partSize = this.#store.partSize;
      let offset = 0;
      while (offset < chunk.length) {
        if (this.#filled === partSize) await this.#ship();
        this.#part ??= this.#takeBuffer();
        const n = chunk.copy(this.#part, this.#filled, offset);
        this.#filled += n;
        offset += n;
      }
    } catch (err) {
      this.#failure ??= mapS3Error(err, 'write', { bucket: this.#store.bucket });
      throw this.#failure;
    }
  }

  /** Uploads the full part being filled (more bytes follow), once a slot is free. */
  async #ship(): Promise<void> {
    const store = this.#store;
    if (this.#partNumber + 1 >= MAX_PARTS) {
      throw new DicomError(
        'ERR_ARCHIVE_DISK_FULL',
        `blob larger than ${MAX_PARTS} parts of ${store.partSize} bytes (raise the S3 store's partSize)`,
      );
    }
    if (this.#uploadId === undefined) {
      this.#checksum = await store.checksumAlgorithm();
      const created = await store.client.send(
        new CreateMultipartUploadCommand({
          Bucket: store.bucket,
          Key: this.#tempKey,
          ...(this.#checksum === undefined ? {} : { ChecksumAlgorithm: this.#checksum }),
        }),
      );
      if (created.UploadId === undefined) {
        throw new DicomError('ERR_ARCHIVE_S3', 'CreateMultipartUpload answered no UploadId');
      }
      this.#uploadId = created.UploadId;
    }
    while (this.#inFlight.size >= store.queueSize) await Promise.race(this.#inFlight);
    if (this.#failure !== undefined) throw this.#failure;
    const full = this.#part!;
    this.#part = undefined;
    this.#filled = 0;
    this.#uploadPart(full, store.partSize);
  }

  /** Starts the upload of a part; its buffer goes back to the pool when it succeeds. Never rejects. */
  #uploadPart(buffer: Buffer, length: number): void {
    const store = this.#store;
    const partNumber = ++this.#partNumber;
    const checksum = this.#checksum;
    const task: Promise<void> = store.client
      .send(
        new UploadPartCommand({
          Bucket: store.bucket,
          Key: this.#tempKey,
          UploadId: this.#uploadId,
          PartNumber: partNumber,
          Body: buffer.subarray(0, length),
          ContentLength: length,
          ...(checksum === undefined ? {} : { ChecksumAlgorithm: checksum }),
        }),
      )
      .then((res) => {
        if (res.ETag === undefined) throw new Error(`UploadPart ${partNumber} answered no ETag`);
        this.#completed.push({
          PartNumber: partNumber,
          ETag: res.ETag,
          ...(res.ChecksumCRC32 === undefined ? {} : { ChecksumCRC32: res.ChecksumCRC32 }),
          ...(res.ChecksumCRC32C === undefined ? {} : { ChecksumCRC32C: res.ChecksumCRC32C }),
          ...(res.ChecksumCRC64NVME === undefined ? {} : { ChecksumCRC64NVME: res.ChecksumCRC64NVME }),
          ...(res.ChecksumSHA1 === undefined ? {} : { ChecksumSHA1: res.ChecksumSHA1 }),
          ...(res.ChecksumSHA256 === undefined ? {} : { ChecksumSHA256: res.ChecksumSHA256 }),
        });
        if (this.#state === 'open' || this.#state === 'committing') this.#pool.push(buffer);
      })
      .catch((err: unknown) => {
        this.#failure ??= mapS3Error(err, `upload part ${partNumber} of`, {
          bucket: store.bucket,
        });
      })
      .finally(() => {
        this.#inFlight.delete(task);
      });
    this.#inFlight.add(task);
  }

  #takeBuffer(): Buffer {
    return this.#pool.pop() ?? Buffer.allocUnsafe(this.#store.partSize);
  }

  #release(): void {
    this.#part = undefined;
    this.#filled = 0;
    this.#pool.length = 0;
  }
}

/**
 * The bytes of one GET as a Readable: the request is sent on first read (`_construct`), errors
 * (missing blob, range past the end) are emitted on the stream, backpressure pauses the HTTP body,
 * destroying the stream aborts the request. Only the bytes asked for are delivered.
 */
class S3ReadStream extends Readable {
  readonly #store: S3BlobStore;
  readonly #key: string;
  readonly #range: ByteRange | undefined;
  readonly #abort = new AbortController();
  #body: Readable | undefined;
  #skip = 0;
  #left: number | undefined;
  #ended = false;

  constructor(store: S3BlobStore, key: string, range: ByteRange | undefined) {
    super({ highWaterMark: 256 * 1024 });
    this.#store = store;
    this.#key = key;
    this.#range = range;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.#store.openRead(this.#key, this.#range, this.#abort.signal).then(
      (opened) => {
        if (this.destroyed) {
          opened.body.destroy();
          return callback();
        }
        this.#body = opened.body;
        this.#skip = opened.skip;
        this.#left = opened.length;
        opened.body.on('data', (chunk: Buffer) => this.#onData(chunk));
        opened.body.on('end', () => this.#onEnd());
        opened.body.on('error', (err) => {
          if (!this.#ended)
            this.destroy(mapS3Error(err, 'read', { bucket: this.#store.bucket, key: this.#key }));
        });
        opened.body.pause();
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _read(): void {
    this.#body?.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // After a complete read the body runs to its end by itself (its connection goes back to the pool).
    if (error !== null || !this.#ended) {
      this.#abort.abort();
      this.#body?.destroy();
    }
    callback(error);
  }

  #onData(data: Buffer): void {
    if (this.#ended) {
      // More than asked for (s3rver answers `bytes=0-0` with everything): drop the connection.
      this.#body?.destroy();
      return;
    }
    let chunk = data;
    if (this.#skip > 0) {
      const n = Math.min(this.#skip, chunk.length);
      this.#skip -= n;
      chunk = chunk.subarray(n);
    }
    if (this.#left !== undefined && chunk.length > this.#left) chunk = chunk.subarray(0, this.#left);
    if (this.#left !== undefined) this.#left -= chunk.length;
    const more = chunk.length === 0 || this.push(chunk);
    if (this.#left === 0) {
      // All asked for: the stream ends here; the body is left flowing to its own end.
      this.#ended = true;
      this.push(null);
      this.#body?.resume();
    } else if (!more) {
      this.#body?.pause();
    }
  }

  #onEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#left !== undefined && this.#left > 0) {
      this.destroy(
        new DicomError(
          'ERR_ARCHIVE_S3',
          `S3 read ${this.#key}: the response ended ${this.#left} bytes short`,
        ),
      );
      return;
    }
    this.push(null);
  }
}
