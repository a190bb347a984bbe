/**
 * S3BlobStore against a real S3-compatible server: s3rver in a child process on 127.0.0.1
 * (test/helpers/s3.ts, which also adds the multipart calls s3rver lacks), one bucket for this file,
 * each test under its own prefix. The behaviours of blob-fs.test.ts (chunked writes, invisible until
 * commit, atomic replace, abort, ranges, missing blobs, temps, usage) plus what S3 adds: the multipart
 * path and its memory bound, multipart copy, concurrent writers, stale-only temp cleanup across
 * nodes, S3 errors, and an Ingest round trip with a ranged frame read.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, mock, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { S3RVER_CREDENTIALS, type S3TestServer, startS3Server } from '../../test/helpers/s3.ts';
import { mapS3Error, parseS3Url, S3_BLOB_DEFAULTS, S3BlobStore, type S3BlobStoreOptions } from './blob-s3.ts';
import { SqliteIndex } from './index-sqlite.ts';
import { Ingest } from './ingest.ts';
import { blobKeyFor } from './keys.ts';
import { datasetOffset, storedDataset } from './retrieve.ts';

const MIB = 1024 * 1024;
let server: S3TestServer;
let bucket: string;
const stores: S3BlobStore[] = [];
let n = 0;

/** A store under a fresh prefix of the test bucket; 5 MiB parts (S3's smallest) unless told. */
function freshStore(options: S3BlobStoreOptions = {}, prefix = `t${++n}`): S3BlobStore {
  const store = S3BlobStore.fromUrl(`s3://${bucket}/${prefix}`, {
    endpoint: server.endpoint,
    credentials: S3RVER_CREDENTIALS,
    partSize: 5 * MIB,
    ...options,
  });
  stores.push(store);
  return store;
}

/** A client of the test server of its own (for tests that add middleware to it). */
function testClient(): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
}

async function collect(stream: NodeJS.ReadableStream | Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function put(store: S3BlobStore, key: string, data: Buffer, chunk = 64 * 1024): Promise<void> {
  const w = await store.create();
  for (let i = 0; i < data.length; i += chunk) await w.write(data.subarray(i, i + chunk));
  await w.commit(key);
}

/** Object keys under a prefix of the bucket (listed through S3, not through the store). */
async function listKeys(prefix: string): Promise<string[]> {
  const out = await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

async function listUploads(prefix: string): Promise<{ key: string; uploadId: string }[]> {
  const out = await server.client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId! }));
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const uidNumbers = new Map<string, number>();
/** The blob key of a test instance called `name` (one UID per name); with `data`, its content suffix. */
const keyOf = (name: string, data?: Buffer) => {
  if (!uidNumbers.has(name)) uidNumbers.set(name, uidNumbers.size + 1);
  return blobKeyFor(`1.2.826.0.1.3680043.10.${uidNumbers.get(name)}`, data && sha(data));
};

before(async () => {
  server = await startS3Server();
  bucket = await server.createBucket();
});
after(async () => {
  for (const s of stores) s.close();
  if (server !== undefined) {
    await server.removeBucket(bucket).catch(() => undefined);
    await server.stop();
  }
});

describe('configuration', () => {
  test('s3://bucket/prefix URLs', () => {
    assert.deepEqual(parseS3Url('s3://my-bucket'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Url('s3://my-bucket/'), { bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseS3Url('s3://my.bucket/a/b/'), { bucket: 'my.bucket', prefix: 'a/b/' });
    assert.deepEqual(parseS3Url('s3://b12/tessera_1.x'), { bucket: 'b12', prefix: 'tessera_1.x/' });
    for (const bad of [
      'http://bucket/x',
      's3://',
      's3://ab',
      's3://Bucket/x',
      's3://bucket_1/x',
      's3://192.168.1.1/x',
      's3://a..b/x',
      's3://bucket/a//b',
      's3://bucket/../x',
      's3://bucket/a/./b',
      's3://bucket/a b',
      's3://bucket/x?region=eu',
    ]) {
      assert.throws(() => parseS3Url(bad), { code: 'ERR_ARCHIVE_S3_CONFIG' }, bad);
    }
    assert.throws(() => freshStore({ partSize: MIB }), { code: 'ERR_ARCHIVE_S3_CONFIG' });
    assert.throws(() => freshStore({ queueSize: 0 }), { code: 'ERR_ARCHIVE_S3_CONFIG' });
    const store = freshStore({}, 'cfg/x');
    assert.equal(store.objectKey('ab/cd'), 'cfg/x/blobs/ab/cd');
    assert.equal(store.tempPrefix, 'cfg/x/tmp/');
  });

  test('endpoint, region and credentials from the environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID...)', async () => {
    const saved = { ...process.env };
    try {
      process.env.AWS_ENDPOINT_URL_S3 = server.endpoint;
      process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
      delete process.env.AWS_REGION;
      delete process.env.AWS_DEFAULT_REGION;
      delete process.env.AWS_PROFILE;
      const store = S3BlobStore.fromUrl(`s3://${bucket}/env`);
      stores.push(store);
      assert.equal(await store.client.config.region(), 'us-east-1', 'a custom endpoint without region');
      assert.equal(store.client.config.forcePathStyle, true, 'path style with a custom endpoint');
      const key = keyOf('env.1');
      await put(store, key, Buffer.from('from the environment'));
      assert.equal((await collect(store.read(key))).toString(), 'from the environment');
      assert.deepEqual(await listKeys('env/'), [`env/blobs/${key}`]);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });
});

describe('S3BlobStore', () => {
  test('small blob: chunked writes, invisible until commit, one PUT, reads, ranges, size, exists, delete', async () => {
    const store = freshStore();
    const data = randomBytes(700_000);
    const key = keyOf('1', data);
    const w = await store.create();
    assert.ok(w.tempPath?.startsWith(`s3://${bucket}/${store.tempPrefix}`));
    await w.write(data.subarray(0, 100));
    await w.write(data.subarray(100, 20_000));
    await w.write(data.subarray(20_000, 400_000));
    const queued = [w.write(data.subarray(400_000, 400_001)), w.write(data.subarray(400_001, 700_000))];
    await Promise.all(queued);
    assert.equal(w.size, data.length);
    assert.equal(await store.exists(key), false, 'invisible before commit');
    await assert.rejects(collect(store.read(key)), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    assert.deepEqual(await listKeys(store.prefix), [], 'nothing in the bucket before commit');
    await w.commit(key);
    await w.abort(); // a no-op after commit
    assert.deepEqual(await listKeys(store.prefix), [store.objectKey(key)], 'no temp object: one PUT');
    assert.equal(await store.size(key), data.length);
    assert.equal(await store.exists(key), true);
    assert.deepEqual(await collect(store.read(key)), data);
    assert.deepEqual(
      await collect(store.read(key, { start: 123_456, end: 654_321 })),
      data.subarray(123_456, 654_321),
    );
    assert.deepEqual(await collect(store.read(key, { start: 0, end: 1 })), data.subarray(0, 1));
    assert.deepEqual(await collect(store.read(key, { start: 5, end: 5 })), Buffer.alloc(0));
    assert.deepEqual(
      await collect(store.read(key, { start: 699_999, end: 700_000 })),
      data.subarray(699_999),
    );
    // s3rver answers `Range: bytes=0-0` with the whole object: only the byte asked for comes out.
    assert.deepEqual(await store.readBytes(key, 0, 1), data.subarray(0, 1));
    assert.deepEqual(await store.readBytes(key, 1000, 5000), data.subarray(1000, 6000));
    assert.deepEqual(await store.readBytes(key, 0, 0), Buffer.alloc(0));
    const keys: string[] = [];
    for await (const k of store.keys()) keys.push(k);
    assert.deepEqual(keys, [key]);
    await store.delete(key);
    assert.equal(await store.exists(key), false);
    assert.equal(await store.size(key), undefined);
    await store.delete(key); // deleting a missing blob is fine
    const empty = await store.create();
    await empty.commit(keyOf('1.empty'));
    assert.equal(await store.size(keyOf('1.empty')), 0);
    assert.deepEqual(await collect(store.read(keyOf('1.empty'))), Buffer.alloc(0));
  });

  test('large blob: a temp multipart upload, invisible until commit, then copied to its key', async () => {
    const store = freshStore();
    const data = randomBytes(12 * MIB + 12_345);
    const key = keyOf('2', data);
    const w = await store.create();
    for (let i = 0; i < data.length; i += 64 * 1024) await w.write(data.subarray(i, i + 64 * 1024));
    const uploads = await listUploads(store.prefix);
    assert.equal(uploads.length, 1, 'one multipart upload in flight');
    assert.ok(uploads[0]!.key.startsWith(store.tempPrefix), uploads[0]!.key);
    assert.deepEqual(await listKeys(store.prefix), [], 'no object before commit (parts are not objects)');
    assert.equal(await store.exists(key), false);
    await assert.rejects(store.readBytes(key, 0, 10), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    await w.commit(key);
    assert.deepEqual(await listKeys(store.prefix), [store.objectKey(key)], 'the temp object is deleted');
    assert.deepEqual(await listUploads(store.prefix), []);
    assert.equal(await store.size(key), data.length);
    assert.equal(sha(await collect(store.read(key))), sha(data));
    for (const [start, end] of [
      [5 * MIB - 10, 5 * MIB + 10],
      [0, 5 * MIB],
      [10 * MIB - 1, data.length],
      [7, 8],
    ] as const) {
      assert.deepEqual(await collect(store.read(key, { start, end })), data.subarray(start, end), `${start}`);
      assert.deepEqual(await store.readBytes(key, start, end - start), data.subarray(start, end), `${start}`);
    }
  });

  test('40 MB in 64 KiB chunks (default 8 MiB parts, 2 in flight) to a slow store: backpressure, bounded memory', async () => {
    // Each part upload takes 150 ms more: faster writes must wait for a free upload slot.
    const client = testClient();
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand') await new Promise((r) => setTimeout(r, 150));
        return next(args);
      },
      { step: 'initialize', name: 'slowParts' },
    );
    after(() => client.destroy());
    const store = freshStore({
      client,
      partSize: S3_BLOB_DEFAULTS.partSize,
      queueSize: S3_BLOB_DEFAULTS.queueSize,
    });
    const chunkSize = 64 * 1024;
    const total = 40 * 1000 * 1000;
    // Generated on the fly (one reused buffer), so the test holds no copy of the blob.
    const chunk = Buffer.alloc(chunkSize);
    const fill = (i: number) => {
      for (let o = 0; o < chunkSize; o += 4) chunk.writeUInt32LE((i * 2654435761 + o * 40503) >>> 0, o);
    };
    const byteAt = (offset: number) => {
      fill(Math.floor(offset / chunkSize));
      return chunk[offset % chunkSize]!;
    };
    // Warm up the client (sockets, TLS-free HTTP parser, SDK middleware) before the baseline.
    await put(store, keyOf('3.warm'), Buffer.alloc(1000));
    // A baseline without the garbage of earlier tests (else the growth would hide under its collection).
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    const base = process.memoryUsage();
    let maxRss = base.rss;
    let maxArrayBuffers = base.arrayBuffers;
    const sample = setInterval(() => {
      const m = process.memoryUsage();
      maxRss = Math.max(maxRss, m.rss);
      maxArrayBuffers = Math.max(maxArrayBuffers, m.arrayBuffers);
    }, 5);
    const hash = createHash('sha256');
    const w = await store.create();
    const started = Date.now();
    let longestWrite = 0;
    // The part buffers the writer allocates (it reuses them): the exact form of the memory bound.
    const allocUnsafe = mock.method(Buffer, 'allocUnsafe');
    let partBuffers = 0;
    try {
      for (let i = 0, written = 0; written < total; i++) {
        fill(i);
        const part = chunk.subarray(0, Math.min(chunkSize, total - written));
        hash.update(part);
        const t = performance.now();
        await w.write(part);
        longestWrite = Math.max(longestWrite, performance.now() - t);
        written += part.length;
      }
      await w.commit(keyOf('3'));
    } finally {
      clearInterval(sample);
      partBuffers = allocUnsafe.mock.calls.filter((c) => c.arguments[0] === S3_BLOB_DEFAULTS.partSize).length;
      allocUnsafe.mock.restore();
    }
    const bound = (S3_BLOB_DEFAULTS.queueSize + 1) * S3_BLOB_DEFAULTS.partSize;
    const arrayBuffersGrowth = maxArrayBuffers - base.arrayBuffers;
    const rssGrowth = maxRss - base.rss;
    console.log(
      `40 MB through S3 in ${Date.now() - started} ms: arrayBuffers +${(arrayBuffersGrowth / MIB).toFixed(1)} MiB (bound ${bound / MIB} MiB), RSS +${(rssGrowth / MIB).toFixed(1)} MiB, longest write ${longestWrite.toFixed(0)} ms, ${partBuffers} part buffers`,
    );
    assert.equal(partBuffers, S3_BLOB_DEFAULTS.queueSize + 1, 'queueSize + 1 part buffers for 5 parts');
    assert.ok(longestWrite > 50, 'a write waited for an upload slot');
    assert.ok(arrayBuffersGrowth <= bound + 4 * MIB, `buffers grew by ${arrayBuffersGrowth} bytes`);
    assert.ok(rssGrowth < 64 * MIB, `RSS grew by ${rssGrowth} bytes`);
    assert.equal(await store.size(keyOf('3')), total);
    assert.equal(sha(await collect(store.read(keyOf('3')))).toString(), hash.digest('hex'));
    for (const offset of [0, 8 * MIB - 1, 8 * MIB, 16 * MIB + 3, total - 1]) {
      assert.equal((await store.readBytes(keyOf('3'), offset, 1))[0], byteAt(offset), `byte ${offset}`);
    }
  });

  test('commit replaces an existing blob of the same key (small over large, large over small)', async () => {
    const store = freshStore();
    const key = keyOf('4');
    const large = randomBytes(6 * MIB);
    await put(store, key, Buffer.from('first version'));
    await put(store, key, large);
    assert.equal(sha(await collect(store.read(key))), sha(large));
    await put(store, key, Buffer.from('third'));
    assert.equal((await collect(store.read(key))).toString(), 'third');
    assert.deepEqual(await listKeys(store.prefix), [store.objectKey(key)]);
    assert.deepEqual(await listUploads(store.prefix), []);
  });

  test('abort leaves nothing (before and during a multipart upload), is idempotent, refuses later calls', async () => {
    const store = freshStore();
    const small = await store.create();
    await small.write(Buffer.from('partial'));
    await small.abort();
    await small.abort();
    await assert.rejects(small.write(Buffer.from('more')), { code: 'ERR_ARCHIVE_BLOB_CLOSED' });
    await assert.rejects(small.commit(keyOf('5')), { code: 'ERR_ARCHIVE_BLOB_CLOSED' });

    const large = await store.create();
    for (let i = 0; i < 11; i++) await large.write(randomBytes(MIB));
    assert.equal((await listUploads(store.prefix)).length, 1);
    // Writes queued without awaiting, then an abort: it waits for them and the parts in flight.
    const queued = [large.write(randomBytes(MIB)), large.write(randomBytes(MIB))];
    await Promise.all([large.abort(), large.abort()]);
    await Promise.allSettled(queued);
    assert.deepEqual(await listUploads(store.prefix), [], 'the multipart upload is aborted');
    assert.deepEqual(await listKeys(store.prefix), []);
    await assert.rejects(large.commit(keyOf('5')), { code: 'ERR_ARCHIVE_BLOB_CLOSED' });
    assert.equal(await store.exists(keyOf('5')), false);
  });

  test('refused keys: the commit fails and discards the temp (small and large)', async () => {
    const store = freshStore();
    for (const size of [10, 6 * MIB]) {
      for (const key of ['', '../x', 'A/B', '/etc/passwd', 'a//b']) {
        const w = await store.create();
        await w.write(Buffer.alloc(size, 1));
        await assert.rejects(w.commit(key), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
      }
      assert.throws(() => store.read('../x'), { code: 'ERR_ARCHIVE_BAD_KEY' });
      await assert.rejects(store.size('A/B'), { code: 'ERR_ARCHIVE_BAD_KEY' });
      await assert.rejects(store.delete('/x'), { code: 'ERR_ARCHIVE_BAD_KEY' });
    }
    assert.deepEqual(await listUploads(store.prefix), []);
    assert.deepEqual(await listKeys(store.prefix), []);
  });

  test('missing blobs and ranges past the end', async () => {
    const store = freshStore();
    const key = keyOf('6');
    await assert.rejects(collect(store.read(key)), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    await assert.rejects(collect(store.read(key, { start: 1, end: 2 })), {
      code: 'ERR_ARCHIVE_BLOB_NOT_FOUND',
    });
    await assert.rejects(store.readBytes(key, 0, 1), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    await assert.rejects(store.readBytes(key, 0, 0), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    await put(store, key, Buffer.from('0123456789'));
    await assert.rejects(collect(store.read(key, { start: 5, end: 11 })), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    await assert.rejects(collect(store.read(key, { start: 10, end: 12 })), {
      code: 'ERR_ARCHIVE_BLOB_RANGE',
    });
    await assert.rejects(store.readBytes(key, 8, 3), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    await assert.rejects(store.readBytes(key, 20, 3), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    assert.throws(() => store.read(key, { start: 5, end: 4 }), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    assert.throws(() => store.read(key, { start: -1, end: 4 }), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    await assert.rejects(store.readBytes(key, 1.5, 2), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    assert.equal((await store.readBytes(key, 8, 2)).toString(), '89');
    assert.equal((await collect(store.read(key, { start: 9, end: 10 }))).toString(), '9');
  });

  test('a read stream destroyed early releases its request', async () => {
    const store = freshStore();
    const key = keyOf('7');
    await put(store, key, randomBytes(3 * MIB));
    const stream = store.read(key);
    for await (const _ of stream) break;
    assert.equal(stream.destroyed, true);
    // The client still works (no socket left hanging).
    assert.equal(await store.size(key), 3 * MIB);
  });

  test('multipart copy above copyThreshold (UploadPartCopy parts)', async () => {
    const store = freshStore({ copyThreshold: 6 * MIB, copyPartSize: 5 * MIB, copyConcurrency: 2 });
    const data = randomBytes(13 * MIB + 7);
    const key = keyOf('8', data);
    await put(store, key, data, 256 * 1024);
    assert.equal(sha(await collect(store.read(key))), sha(data));
    assert.deepEqual(await store.readBytes(key, 10 * MIB - 3, 6), data.subarray(10 * MIB - 3, 10 * MIB + 3));
    assert.deepEqual(await listKeys(store.prefix), [store.objectKey(key)]);
    assert.deepEqual(await listUploads(store.prefix), []);
  });

  test('eight writers at once (small and multipart)', async () => {
    const store = freshStore();
    const blobs = Array.from({ length: 8 }, (_, i) => randomBytes(i % 2 === 0 ? 6 * MIB + i : 300_000 + i));
    const writers = await Promise.all(blobs.map(() => store.create()));
    await Promise.all(
      writers.map(async (w, i) => {
        const data = blobs[i]!;
        for (let o = 0; o < data.length; o += 100_000) await w.write(data.subarray(o, o + 100_000));
        await w.commit(keyOf(`9.${i}`, data));
      }),
    );
    for (const [i, data] of blobs.entries()) {
      assert.equal(sha(await collect(store.read(keyOf(`9.${i}`, data)))), sha(data), `blob ${i}`);
    }
    assert.equal((await listKeys(store.prefix)).length, 8);
    assert.deepEqual(await listUploads(store.prefix), []);
  });

  test('cleanupTemps removes stale temps only: never a live writer, nor another node’s upload in progress', async () => {
    const prefix = `t${++n}`;
    const node1 = freshStore({}, prefix);
    const node2 = freshStore({}, prefix);
    const hour = 60 * 60 * 1000;
    assert.equal(await node1.cleanupTemps(), 0);
    const published = keyOf('10.published');
    await put(node1, published, randomBytes(1000));

    const startUpload = async (store: S3BlobStore) => {
      const w = await store.create();
      for (let i = 0; i < 6; i++) await w.write(randomBytes(MIB));
      const key = w.tempPath!.slice(`s3://${bucket}/`.length);
      const upload = (await listUploads(key)).find((u) => u.key === key)!;
      // The first part's upload runs behind the writes: wait until it has landed.
      for (let i = 0; i < 200; i++) {
        const parts = await server.client.send(
          new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: upload.uploadId }),
        );
        if ((parts.Parts ?? []).length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return { w, key, uploadId: upload.uploadId };
    };
    // node1's own live writer, started two hours ago: kept (this store knows it is alive).
    const own = await startUpload(node1);
    await server.backdateUpload(bucket, own.uploadId, 2 * hour, { parts: true });
    // node2: a fresh upload (kept), an old upload still sending parts (kept), a crashed one (aborted).
    const fresh = await startUpload(node2);
    const busy = await startUpload(node2);
    await server.backdateUpload(bucket, busy.uploadId, 2 * hour);
    const crashed = await startUpload(node2);
    await server.backdateUpload(bucket, crashed.uploadId, 2 * hour, { parts: true });
    // Temp objects (between Complete and the end of the copy): one stale, one recent.
    const staleTemp = `${node1.tempPrefix}deadbeef-1`;
    const recentTemp = `${node1.tempPrefix}deadbeef-2`;
    for (const k of [staleTemp, recentTemp]) {
      await server.client.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: 'x' }));
    }
    await server.backdateObject(bucket, staleTemp, 2 * hour);

    assert.equal(await node1.cleanupTemps(), 2, 'the crashed upload and the stale temp object');
    const left = (await listUploads(node1.prefix)).map((u) => u.uploadId).sort();
    assert.deepEqual(left, [own.uploadId, fresh.uploadId, busy.uploadId].sort());
    assert.deepEqual((await listKeys(node1.tempPrefix)).sort(), [recentTemp]);
    assert.equal(await node1.exists(published), true, 'published blobs are never touched');

    // The survivors still commit (the crashed writer's commit fails: its upload is gone).
    await own.w.commit(keyOf('10.own'));
    await fresh.w.commit(keyOf('10.fresh'));
    await busy.w.commit(keyOf('10.busy'));
    await assert.rejects(crashed.w.commit(keyOf('10.crashed')), (err: Error & { code?: string }) =>
      String(err.code).startsWith('ERR_ARCHIVE_S3'),
    );
    for (const k of ['10.own', '10.fresh', '10.busy']) assert.equal(await node1.size(keyOf(k)), 6 * MIB, k);
    // A store with a zero grace period (an operator's manual clean-up) removes the rest.
    const restarted = freshStore({ tempGraceMs: 0 }, prefix);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // mtimes have a one-second resolution here
    assert.equal(await restarted.cleanupTemps(), 1, 'the recent temp object, now stale');
    assert.deepEqual(await listUploads(node1.prefix), []);
    assert.deepEqual(await listKeys(node1.tempPrefix), []);
  });

  test('usage sums the sizes under the prefix; free is Infinity; the listing is cached', async () => {
    const store = freshStore({ usageCacheMs: 0 });
    assert.deepEqual(await store.usage(), { used: 0, free: Number.POSITIVE_INFINITY });
    await put(store, keyOf('11.a'), Buffer.alloc(1000));
    await put(store, keyOf('11.b'), Buffer.alloc(6 * MIB));
    assert.deepEqual(await store.usage(), { used: 1000 + 6 * MIB, free: Number.POSITIVE_INFINITY });
    const cached = freshStore({}, store.prefix.slice(0, -1));
    assert.equal((await cached.usage()).used, 1000 + 6 * MIB);
    await put(store, keyOf('11.c'), Buffer.alloc(10));
    assert.equal((await cached.usage()).used, 1000 + 6 * MIB, 'cached for usageCacheMs');
    assert.equal((await store.usage()).used, 1010 + 6 * MIB);
  });
});

describe('errors', () => {
  test('a missing bucket: ERR_ARCHIVE_S3_NO_BUCKET from writes, reads, cleanupTemps, usage', async () => {
    const store = S3BlobStore.fromUrl('s3://tessera-no-such-bucket/x', {
      endpoint: server.endpoint,
      credentials: S3RVER_CREDENTIALS,
      partSize: 5 * MIB,
    });
    stores.push(store);
    const key = keyOf('12');
    const w = await store.create();
    await w.write(Buffer.from('x'));
    await assert.rejects(w.commit(key), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_ARCHIVE_S3_NO_BUCKET');
      assert.match(err.message, /tessera-no-such-bucket/);
      return true;
    });
    const large = await store.create();
    await assert.rejects(
      (async () => {
        for (let i = 0; i < 7; i++) await large.write(Buffer.alloc(MIB));
      })(),
      { code: 'ERR_ARCHIVE_S3_NO_BUCKET' },
    );
    await large.abort();
    await assert.rejects(collect(store.read(key)), { code: 'ERR_ARCHIVE_S3_NO_BUCKET' });
    await assert.rejects(store.readBytes(key, 0, 1), { code: 'ERR_ARCHIVE_S3_NO_BUCKET' });
    await assert.rejects(store.cleanupTemps(), { code: 'ERR_ARCHIVE_S3_NO_BUCKET' });
    await assert.rejects(store.usage(), { code: 'ERR_ARCHIVE_S3_NO_BUCKET' });
    assert.equal(await store.size(key), undefined, 'a HEAD cannot tell a missing bucket from a missing key');
  });

  test('refused credentials: ERR_ARCHIVE_S3_ACCESS_DENIED', async () => {
    const store = freshStore({ credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'x' } });
    const w = await store.create();
    await w.write(Buffer.from('x'));
    await assert.rejects(w.commit(keyOf('13')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_ARCHIVE_S3_ACCESS_DENIED');
      assert.match(err.message, /InvalidAccessKeyId.*AWS_ACCESS_KEY_ID/);
      return true;
    });
    await assert.rejects(store.size(keyOf('13')), { code: 'ERR_ARCHIVE_S3_ACCESS_DENIED' });
  });

  test('no server: ERR_ARCHIVE_S3_UNREACHABLE', async () => {
    const store = freshStore({ endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    const w = await store.create();
    await w.write(Buffer.from('x'));
    await assert.rejects(w.commit(keyOf('14')), { code: 'ERR_ARCHIVE_S3_UNREACHABLE' });
    await assert.rejects(collect(store.read(keyOf('14'))), { code: 'ERR_ARCHIVE_S3_UNREACHABLE' });
    await assert.rejects(store.exists(keyOf('14')), { code: 'ERR_ARCHIVE_S3_UNREACHABLE' });
  });

  test('a quota refusing a part: ERR_ARCHIVE_DISK_FULL, and abort leaves no upload', async () => {
    const client = testClient();
    let refuse = false;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (refuse && context.commandName === 'UploadPartCommand') {
          throw new S3ServiceException({
            name: 'QuotaExceeded',
            $fault: 'client',
            $metadata: { httpStatusCode: 403 },
            message: 'The bucket quota is exceeded (simulated)',
          });
        }
        return next(args);
      },
      { step: 'initialize', name: 'simulatedQuota' },
    );
    const store = freshStore({ client });
    try {
      const w = await store.create();
      for (let i = 0; i < 6; i++) await w.write(Buffer.alloc(MIB, i)); // part 1 goes up
      refuse = true;
      await assert.rejects(
        (async () => {
          for (let i = 0; i < 20; i++) await w.write(Buffer.alloc(MIB, i));
        })(),
        (err: Error & { code?: string; cause?: { name?: string } }) => {
          assert.equal(err.code, 'ERR_ARCHIVE_DISK_FULL');
          assert.equal(err.cause?.name, 'QuotaExceeded');
          return true;
        },
      );
      await assert.rejects(w.commit(keyOf('15')), { code: 'ERR_ARCHIVE_DISK_FULL' });
      await w.abort();
      assert.deepEqual(await listUploads(store.prefix), []);
      assert.deepEqual(await listKeys(store.prefix), []);
    } finally {
      client.destroy();
    }
  });

  test('mapS3Error: S3 error codes to DicomError codes', () => {
    const err = (name: string, status?: number, extra: object = {}) =>
      Object.assign(new Error(`${name} (simulated)`), {
        name,
        ...(status === undefined ? {} : { $metadata: { httpStatusCode: status } }),
        ...extra,
      });
    const where = { bucket: 'b', key: 'ab/cd' };
    const cases: [Error, string][] = [
      [err('NoSuchBucket', 404), 'ERR_ARCHIVE_S3_NO_BUCKET'],
      [err('AccessDenied', 403), 'ERR_ARCHIVE_S3_ACCESS_DENIED'],
      [err('SignatureDoesNotMatch', 403), 'ERR_ARCHIVE_S3_ACCESS_DENIED'],
      [err('CredentialsProviderError'), 'ERR_ARCHIVE_S3_ACCESS_DENIED'],
      [err('EntityTooLarge', 400), 'ERR_ARCHIVE_DISK_FULL'],
      [err('QuotaExceeded', 403), 'ERR_ARCHIVE_DISK_FULL'],
      [err('XMinioStorageFull', 507), 'ERR_ARCHIVE_DISK_FULL'],
      [err('Unknown', 507), 'ERR_ARCHIVE_DISK_FULL'],
      [err('NoSuchKey', 404), 'ERR_ARCHIVE_BLOB_NOT_FOUND'],
      [err('InvalidRange', 416), 'ERR_ARCHIVE_BLOB_RANGE'],
      [err('Error', undefined, { code: 'ECONNRESET' }), 'ERR_ARCHIVE_S3_UNREACHABLE'],
      [err('TimeoutError'), 'ERR_ARCHIVE_S3_UNREACHABLE'],
      [err('SlowDown', 503), 'ERR_ARCHIVE_S3'],
      [err('InternalError', 500), 'ERR_ARCHIVE_S3'],
    ];
    for (const [e, code] of cases) {
      const mapped = mapS3Error(e, 'read', where);
      assert.equal(mapped.code, code, e.name);
      assert.equal(mapped.cause, e);
    }
    assert.equal(mapS3Error(err('NotFound', 404), 'list', { bucket: 'b' }).code, 'ERR_ARCHIVE_S3');
  });
});

describe('Ingest on S3', () => {
  const data = join(import.meta.dirname, '../../../shared/data/dicom');

  /** Where the data set starts in a Part 10 file: after the File Meta group (its length at 140). */
  const datasetStart = (file: Buffer) => 144 + file.readUInt32LE(140);

  test('red-triangle.dcm and a 13-frame NM: ingest, read back byte-identical, frames by ranged GET', async () => {
    const store = freshStore();
    const dir = await mkdtemp(join(tmpdir(), 'tessera-s3-ingest-'));
    const index = SqliteIndex.open(join(dir, 'index.sqlite'));
    try {
      const ingest = new Ingest({ blobs: store, index });
      for (const [name, frame] of [
        ['ms-tutorial/red-triangle.dcm', 0],
        ['multiframe/nm-heart-13frames-dcm4che.dcm', 6],
      ] as const) {
        const file = readFileSync(join(data, name));
        const chunks = Array.from({ length: Math.ceil(file.length / 16_384) }, (_, i) =>
          file.subarray(i * 16_384, (i + 1) * 16_384),
        );
        const result = await ingest.ingestPart10(Readable.from(chunks), {
          source: { aeTitle: 'S3TEST' },
          policy: 'reject',
        });
        assert.equal(result.status, 0, `${name}: ${result.comment}`);
        const row = (await index.instance(result.sopInstanceUid!))!;
        assert.equal(await store.size(row.blobKey), row.size);
        // The data set part is stored byte-identical, behind Tessera's File Meta.
        const stored = await storedDataset(store, row.blobKey);
        assert.ok(Buffer.isBuffer(stored));
        assert.ok(stored.equals(file.subarray(datasetStart(file))), `${name}: data set bytes`);
        // A frame: one ranged GET at the offset the index keeps.
        const frames = JSON.parse(row.frameOffsets!) as [number, number][];
        const [offset, length] = frames[frame]!;
        const bytes = await store.readBytes(row.blobKey, offset, length);
        const shift = datasetStart(file) - (await datasetOffset(store, row.blobKey));
        assert.ok(bytes.equals(file.subarray(offset + shift, offset + shift + length)), `${name}: frame`);
        assert.ok(
          (await collect(store.read(row.blobKey, { start: offset, end: offset + length }))).equals(bytes),
        );
      }
      // The same instance again: rejected as a duplicate, and its blob (same bytes, same key) stays.
      const again = await ingest.ingestPart10(
        Readable.from([readFileSync(join(data, 'ms-tutorial/red-triangle.dcm'))]),
        {
          source: { aeTitle: 'S3TEST' },
          policy: 'reject',
        },
      );
      assert.notEqual(again.status, 0);
      assert.equal((await index.counts()).instances, 2);
      const keys: string[] = [];
      for await (const k of store.keys()) keys.push(k);
      assert.equal(keys.length, 2);
      assert.deepEqual(await listKeys(store.tempPrefix), []);
    } finally {
      index.closeSync();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
