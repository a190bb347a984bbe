/**
 * FsBlobStore on real folders (and blob keys): write / commit / read / ranges / delete, temps,
 * refused keys, disk full (stubbed fs calls, and a real 256 KiB tmpfs in a private mount
 * namespace when `unshare` allows one).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs, { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, mock, test } from 'node:test';
import { assertBlobKey, FsBlobStore } from './blob-fs.ts';
import { BLOB_KEY_PATTERN, blobKeyFor, isInstanceBlobKey } from './keys.ts';

let root: string;
let n = 0;
function freshStore(): FsBlobStore {
  return new FsBlobStore(join(root, `store-${++n}`));
}

async function collect(stream: NodeJS.ReadableStream | Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function put(store: FsBlobStore, key: string, data: Buffer): Promise<void> {
  const w = await store.create();
  await w.write(data);
  await w.commit(key);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tessera-blobs-'));
});
after(() => rm(root, { recursive: true, force: true }));

describe('blob keys', () => {
  test('ab/<sha256 of the UID>, never the UID itself; a content suffix', () => {
    const uid = '1.2.840.113619.2.55.3.604688119.969.1268071029.320';
    const key = blobKeyFor(uid);
    const h = sha(uid);
    assert.equal(key, `${h.slice(0, 2)}/${h}`);
    assert.ok(!key.includes(uid));
    assert.match(key, BLOB_KEY_PATTERN);
    const versioned = blobKeyFor(uid, sha('bytes'));
    assert.equal(versioned, `${key}.${sha('bytes').slice(0, 16)}`);
    assert.ok(isInstanceBlobKey(versioned));
    assert.doesNotThrow(() => assertBlobKey(versioned));
    assert.ok(
      !isInstanceBlobKey(`${key[0] === 'f' ? '0' : 'f'}${key.slice(1)}`),
      'the folder must match the hash',
    );
  });

  test('invalid UIDs are refused with ERR_ARCHIVE_BAD_UID', () => {
    for (const bad of ['', '1.02.3', 'abc', '../1.2', '1..2', '1.2.', `1.${'2'.repeat(63)}`, '1.2\u0000']) {
      assert.throws(() => blobKeyFor(bad), { code: 'ERR_ARCHIVE_BAD_UID' }, bad);
    }
    assert.throws(() => blobKeyFor('1.2', 'XYZ'), { code: 'ERR_ARCHIVE_BAD_KEY' });
  });
});

describe('FsBlobStore', () => {
  test('write, commit, read, range reads, size, exists, delete', async () => {
    const store = freshStore();
    const data = randomBytes(700_000);
    const key = blobKeyFor('1.2.3.4', sha(data));
    const w = await store.create();
    assert.ok(w.tempPath?.startsWith(store.tmpDir));
    // Small chunks (gathered), a large one (written as is), and writes queued without awaiting.
    await w.write(data.subarray(0, 100));
    await w.write(data.subarray(100, 20_000));
    await w.write(data.subarray(20_000, 400_000));
    const queued = [w.write(data.subarray(400_000, 400_001)), w.write(data.subarray(400_001, 700_000))];
    await Promise.all(queued);
    assert.equal(w.size, data.length);
    assert.equal(await store.exists(key), false, 'invisible before commit');
    await w.commit(key);
    await w.abort(); // a no-op after commit
    assert.equal(await store.size(key), data.length);
    assert.equal(await store.exists(key), true);
    assert.deepEqual(readFileSync(join(store.blobsDir, key)), data);
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
    assert.deepEqual(await store.readBytes(key, 1000, 5000), data.subarray(1000, 6000));
    assert.deepEqual(await store.readBytes(key, 0, 0), Buffer.alloc(0));
    assert.deepEqual(readdirSync(store.tmpDir), []);
    const keys: string[] = [];
    for await (const k of store.keys()) keys.push(k);
    assert.deepEqual(keys, [key]);
    await store.delete(key);
    assert.equal(await store.exists(key), false);
    assert.equal(await store.size(key), undefined);
    await store.delete(key); // deleting a missing blob is fine
  });

  test('commit replaces an existing blob of the same key', async () => {
    const store = freshStore();
    const key = blobKeyFor('1.2.3.5');
    await put(store, key, Buffer.from('first version'));
    const reader = await open(join(store.blobsDir, key), 'r'); // a reader holding the old file
    await put(store, key, Buffer.from('second'));
    assert.equal((await collect(store.read(key))).toString(), 'second');
    assert.equal((await reader.readFile()).toString(), 'first version', 'an open reader keeps the old bytes');
    await reader.close();
    assert.deepEqual(readdirSync(store.tmpDir), []);
  });

  test('commit fsyncs the file and the folders before it resolves', async () => {
    const store = freshStore();
    const sync = mock.method(fs, 'fsync');
    try {
      await put(store, blobKeyFor('1.2.3.6'), Buffer.from('x'));
      // file + ab (received the file) + blobs (received ab); the store root at first use.
      assert.ok(sync.mock.callCount() >= 3, `fsync calls: ${sync.mock.callCount()}`);
    } finally {
      sync.mock.restore();
    }
  });

  test('abort discards the temp; later writes and commits are refused', async () => {
    const store = freshStore();
    const w = await store.create();
    await w.write(Buffer.from('partial'));
    assert.equal(readdirSync(store.tmpDir).length, 1);
    await w.abort();
    await w.abort();
    assert.deepEqual(readdirSync(store.tmpDir), []);
    await assert.rejects(w.write(Buffer.from('more')), { code: 'ERR_ARCHIVE_BLOB_CLOSED' });
    await assert.rejects(w.commit(blobKeyFor('1.2.3.7')), { code: 'ERR_ARCHIVE_BLOB_CLOSED' });
    assert.equal(await store.exists(blobKeyFor('1.2.3.7')), false);
  });

  test('cleanupTemps removes what a crash left, not the temps of live writers', async () => {
    const store = freshStore();
    assert.equal(await store.cleanupTemps(), 0, 'no tmp folder yet');
    const live = await store.create();
    await live.write(Buffer.from('in flight'));
    writeFileSync(join(store.tmpDir, 'aaaa.tmp'), 'left by a crash');
    writeFileSync(join(store.tmpDir, 'bbbb.tmp'), 'left by a crash');
    assert.equal(await store.cleanupTemps(), 2);
    assert.deepEqual(readdirSync(store.tmpDir), [live.tempPath!.slice(store.tmpDir.length + 1)]);
    await live.commit(blobKeyFor('1.2.3.8'));
    assert.equal((await collect(store.read(blobKeyFor('1.2.3.8')))).toString(), 'in flight');
    // A fresh store on the same folder (a restart) sees no live writer.
    const crashed = await store.create();
    await crashed.write(Buffer.from('x'));
    assert.equal(await new FsBlobStore(store.root).cleanupTemps(), 1);
  });

  test("on a shared folder (tempGraceMs), cleanupTemps leaves other nodes' fresh temps and removes stale ones", async () => {
    const node1 = freshStore();
    const upload = await node1.create();
    await upload.write(Buffer.from('another node is still writing this'));
    writeFileSync(join(node1.tmpDir, 'stale.tmp'), 'left by a crash an hour ago');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(node1.tmpDir, 'stale.tmp'), anHourAgo, anHourAgo);
    // Node 2 starts on the same folder: it must not remove node 1's upload in progress.
    const node2 = new FsBlobStore(node1.root, { tempGraceMs: 600_000 });
    assert.equal(await node2.cleanupTemps(), 1);
    assert.deepEqual(readdirSync(node1.tmpDir), [upload.tempPath!.slice(node1.tmpDir.length + 1)]);
    await upload.commit(blobKeyFor('1.2.3.9'));
    assert.equal(
      (await collect(node2.read(blobKeyFor('1.2.3.9')))).toString(),
      'another node is still writing this',
    );
  });

  test('path traversal and other unsafe keys are refused before any path is built', async () => {
    const store = freshStore();
    await put(store, 'ok/key', Buffer.from('fine'));
    const bad = [
      '',
      '../outside',
      'a/../../outside',
      '/etc/passwd',
      'a\\b',
      '.hidden',
      'a/./b',
      'a//b',
      'a/',
      'A/B',
      'a b',
      'a/b/c/d/e/f/g/h/i',
      'x'.repeat(256),
      'C:/x',
      'a\u0000b',
    ];
    for (const key of bad) {
      assert.throws(() => store.read(key), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
      await assert.rejects(store.readBytes(key, 0, 1), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
      await assert.rejects(store.size(key), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
      await assert.rejects(store.exists(key), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
      await assert.rejects(store.delete(key), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
      const w = await store.create();
      await w.write(Buffer.from('payload'));
      await assert.rejects(w.commit(key), { code: 'ERR_ARCHIVE_BAD_KEY' }, key);
    }
    assert.deepEqual(readdirSync(store.tmpDir), [], 'refused commits discard their temps');
    assert.equal(existsSync(join(store.root, 'outside')), false);
    assert.equal(existsSync(join(root, 'outside')), false);
  });

  test('missing blobs and ranges past the end', async () => {
    const store = freshStore();
    const key = blobKeyFor('1.2.3.9');
    await assert.rejects(collect(store.read(key)), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    await assert.rejects(store.readBytes(key, 0, 1), { code: 'ERR_ARCHIVE_BLOB_NOT_FOUND' });
    await put(store, key, Buffer.from('0123456789'));
    await assert.rejects(collect(store.read(key, { start: 5, end: 11 })), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    await assert.rejects(store.readBytes(key, 8, 3), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    assert.throws(() => store.read(key, { start: 5, end: 4 }), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    assert.throws(() => store.read(key, { start: -1, end: 4 }), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    await assert.rejects(store.readBytes(key, 1.5, 2), { code: 'ERR_ARCHIVE_BLOB_RANGE' });
    assert.equal((await store.readBytes(key, 8, 2)).toString(), '89');
    // A folder of the tree is not a blob.
    const folder = key.slice(0, 2);
    assert.equal(await store.size(folder), undefined);
    await assert.rejects(collect(store.read(folder)), { code: 'ERR_ARCHIVE_IO' });
  });

  test('usage reports the volume', async () => {
    const store = freshStore();
    await put(store, 'k', Buffer.from('x'));
    const { used, free } = await store.usage();
    assert.ok(used > 0 && free > 0);
  });
});

describe('disk full', () => {
  /* fs.writev / fs.fsync are looked up at each call: stubbing them stubs every file the store writes. */
  const errno = (code: string) =>
    Object.assign(new Error(`${code}: simulated`), { code, errno: -28, syscall: 'write' });

  test('small chunks are held for the next write: a header goes with the data, a small blob in one writev', async () => {
    const store = freshStore();
    const original = fs.writev;
    const calls: number[] = [];
    const writev = mock.method(fs, 'writev', (...args: Parameters<typeof fs.writev>) => {
      calls.push((args[1] as Buffer[]).length);
      return (original as (...a: unknown[]) => void)(...args);
    });
    try {
      // A 300-byte header, then 200 KiB of data, then a 10-byte tail, written before the first write
      // started: one writev of the three, not three writes.
      const header = randomBytes(300);
      const headerAsWritten = Buffer.from(header);
      const data = randomBytes(200 * 1024);
      const tail = randomBytes(10);
      const w = await store.create();
      const queued = [w.write(header), w.write(data), w.write(tail)];
      // The caller may reuse a chunk once its promise resolved: a held chunk was copied.
      await queued[0];
      header.fill(0xee);
      await Promise.all(queued);
      await w.commit(blobKeyFor('1.3.9'));
      assert.deepEqual(calls, [3]);
      const stored = await collect(store.read(blobKeyFor('1.3.9')));
      assert.equal(stored.length, 300 + 200 * 1024 + 10);
      assert.ok(stored.subarray(0, 300).equals(headerAsWritten), 'the header as it was when written');
      assert.ok(stored.subarray(300, 300 + data.length).equals(data));
      assert.ok(stored.subarray(300 + data.length).equals(tail));
      // An 8 KiB instance (header + data set): nothing written before the commit, then one writev.
      calls.length = 0;
      const small = await store.create();
      await small.write(randomBytes(300));
      await small.write(randomBytes(8 * 1024));
      assert.deepEqual(calls, []);
      await small.commit(blobKeyFor('1.3.10'));
      assert.deepEqual(calls, [2]);
      assert.equal(await store.size(blobKeyFor('1.3.10')), 300 + 8 * 1024);
    } finally {
      writev.mock.restore();
    }
  });

  test('ENOSPC from a (stubbed) fs.writev: ERR_ARCHIVE_DISK_FULL, nothing left behind', async () => {
    const store = freshStore();
    const writev = mock.method(fs, 'writev', (...args: unknown[]) => {
      const callback = args.at(-1) as (err: Error) => void;
      process.nextTick(() => callback(errno('ENOSPC')));
    });
    const w = await store.create();
    try {
      // Each write reaches the disk (no write is in flight to gather behind) and fails; the
      // failure sticks for every later write and the commit.
      await assert.rejects(
        w.write(Buffer.alloc(100_000)),
        (err: Error & { code?: string; cause?: { code?: string } }) => {
          assert.equal(err.code, 'ERR_ARCHIVE_DISK_FULL');
          assert.equal(err.cause?.code, 'ENOSPC');
          return true;
        },
      );
      await assert.rejects(w.write(Buffer.alloc(10)), { code: 'ERR_ARCHIVE_DISK_FULL' });
      await assert.rejects(w.commit(blobKeyFor('1.3.1')), { code: 'ERR_ARCHIVE_DISK_FULL' });
    } finally {
      writev.mock.restore();
    }
    assert.deepEqual(readdirSync(store.tmpDir), []);
    assert.equal(await store.exists(blobKeyFor('1.3.1')), false);
  });

  test('inlineWrites (no fsync): blocking writes on this thread, same bytes; never with fsync', async () => {
    const inline = new FsBlobStore(join(root, `store-${++n}`), { fsync: false, inlineWrites: true });
    assert.equal(inline.inlineWrites, true);
    assert.equal(new FsBlobStore(join(root, `store-${++n}`), { inlineWrites: true }).inlineWrites, false);
    const writev = mock.method(fs, 'writev');
    const writevSync = mock.method(fs, 'writevSync');
    try {
      const data = randomBytes(300 * 1024);
      const w = await inline.create();
      await Promise.all([
        w.write(data.subarray(0, 100)),
        w.write(data.subarray(100, 200_000)),
        w.write(data.subarray(200_000)),
      ]);
      await w.commit(blobKeyFor('1.3.11'));
      assert.equal(writev.mock.callCount(), 0);
      assert.ok(writevSync.mock.callCount() >= 1);
      assert.ok((await collect(inline.read(blobKeyFor('1.3.11')))).equals(data));
    } finally {
      writev.mock.restore();
      writevSync.mock.restore();
    }
  });

  test('inlineWrites: chunks written in one turn of the event loop go out in one writevSync', async () => {
    // A socket's reads in one poll of the event loop each run their callback and its microtasks; the
    // writes they queue are taken together once the turn's I/O is done (setImmediate).
    const inline = new FsBlobStore(join(root, `store-${++n}`), { fsync: false, inlineWrites: true });
    const w = await inline.create();
    const writevSync = mock.method(fs, 'writevSync');
    try {
      const data = randomBytes(8 * 65536);
      const queued: Promise<void>[] = [];
      for (let i = 0; i < 8; i++) {
        queued.push(w.write(data.subarray(i * 65536, (i + 1) * 65536)));
        await Promise.resolve(); // the microtasks that run between two read callbacks
      }
      await Promise.all(queued);
      assert.equal(writevSync.mock.callCount(), 1);
      assert.equal(writevSync.mock.calls[0]!.arguments[1].length, 8);
      await w.commit(blobKeyFor('1.3.12'));
      assert.ok((await collect(inline.read(blobKeyFor('1.3.12')))).equals(data));
    } finally {
      writevSync.mock.restore();
    }
  });

  test('without fsync a folder of its own publishes with an inline rename; a shared one does not', async () => {
    const store = new FsBlobStore(join(root, `store-${++n}`), { fsync: false });
    assert.equal(store.inlineRename, true);
    assert.equal(
      new FsBlobStore(join(root, `store-${++n}`), { fsync: false, tempGraceMs: 1000 }).inlineRename,
      false,
    );
    assert.equal(new FsBlobStore(join(root, `store-${++n}`)).inlineRename, false);
    const data = randomBytes(70_000);
    const w = await store.create();
    await w.write(data.subarray(0, 30_000));
    await w.write(data.subarray(30_000));
    await w.commit(blobKeyFor('1.3.8'));
    assert.deepEqual(await collect(store.read(blobKeyFor('1.3.8'))), data);
    assert.deepEqual(readdirSync(store.tmpDir), []);
  });

  test('short writes (a stubbed writev taking at most 1000 bytes) resume where they stopped', async () => {
    const store = freshStore();
    const real = fs.writev;
    const writev = mock.method(
      fs,
      'writev',
      (fd: number, buffers: Buffer[], position: number, callback: (err: Error | null, n: number) => void) => {
        real(fd, [Buffer.concat(buffers).subarray(0, 1000)], position, callback);
      },
    );
    const data = randomBytes(25_000);
    const w = await store.create();
    try {
      // Many chunks queued without waiting: they gather into multi-chunk writev calls.
      const writes = [];
      for (let at = 0; at < data.length; at += 700) writes.push(w.write(data.subarray(at, at + 700)));
      await Promise.all(writes);
      await w.commit(blobKeyFor('1.3.9'));
    } finally {
      writev.mock.restore();
    }
    assert.ok(writev.mock.callCount() >= 25);
    assert.deepEqual(readFileSync(join(store.blobsDir, blobKeyFor('1.3.9'))), data);
  });

  test('EDQUOT at fsync during commit: ERR_ARCHIVE_DISK_FULL, the key is not published', async () => {
    const store = freshStore();
    const w = await store.create();
    await w.write(Buffer.from('data'));
    const sync = mock.method(fs, 'fsync', (_fd: number, callback: (err: Error) => void) => {
      process.nextTick(() => callback(errno('EDQUOT')));
    });
    try {
      await assert.rejects(w.commit(blobKeyFor('1.3.2')), { code: 'ERR_ARCHIVE_DISK_FULL' });
    } finally {
      sync.mock.restore();
    }
    assert.deepEqual(readdirSync(store.tmpDir), []);
    assert.equal(await store.exists(blobKeyFor('1.3.2')), false);
  });

  test('a real full volume: a 256 KiB tmpfs in a private mount namespace', (t) => {
    const mountPoint = join(root, 'tmpfs');
    mkdirSync(mountPoint);
    const storeModule = new URL('./blob-fs.ts', import.meta.url).href;
    const keysModule = new URL('./keys.ts', import.meta.url).href;
    const script = `
      import { readdirSync } from 'node:fs';
      import { FsBlobStore } from ${JSON.stringify(storeModule)};
      import { blobKeyFor } from ${JSON.stringify(keysModule)};
      const store = new FsBlobStore(${JSON.stringify(mountPoint)});
      const small = await store.create();
      await small.write(Buffer.alloc(10_000, 1));
      await small.commit(blobKeyFor('1.4.1'));
      const big = await store.create();
      let code;
      try {
        for (let i = 0; i < 64; i++) await big.write(Buffer.alloc(16_384, 2));
        await big.commit(blobKeyFor('1.4.2'));
      } catch (err) {
        code = err.code;
        await big.abort();
      }
      console.log(JSON.stringify({
        code,
        temps: readdirSync(store.tmpDir).length,
        bigExists: await store.exists(blobKeyFor('1.4.2')),
        smallSize: await store.size(blobKeyFor('1.4.1')),
      }));
    `;
    const res = spawnSync(
      'unshare',
      [
        '-rm',
        'sh',
        '-c',
        'mount -t tmpfs -o size=256k tessera-test "$0" && exec "$@"',
        mountPoint,
        process.execPath,
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        script,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (res.error !== undefined || (res.status !== 0 && /unshare|mount/.test(res.stderr))) {
      t.skip(`no private tmpfs here: ${res.error?.message ?? res.stderr.trim().split('\n')[0]}`);
      return;
    }
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout.trim().split('\n').at(-1)!), {
      code: 'ERR_ARCHIVE_DISK_FULL',
      temps: 0,
      bigExists: false,
      smallSize: 10_000,
    });
  });
});
