/**
 * The folder blob store: `<root>/blobs/<key>` for published blobs, `<root>/tmp/<prefix>-<n>.tmp` for
 * blobs being written. Both live on one volume so that publishing is a rename.
 *
 * Durability (what a C-STORE success may rely on): `commit` fsyncs the file, renames it into place
 * and fsyncs the folder that received it (and the folders `mkdir` had to create, up to the first
 * that existed), so after `commit` resolves the blob survives a crash or power loss. Before
 * `commit` only the temp file exists, which `cleanupTemps` removes at the next start.
 */
import { randomBytes } from 'node:crypto';
import fs, { close, createReadStream, type Dirent, fstat, open, read, renameSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { DicomError, isDicomError } from '../core/index.ts';
import type { BlobStore, BlobWriter, ByteRange } from './ports.ts';

/** Most chunks one `writev` takes (Linux's IOV_MAX is 1024). */
const MAX_IOVECS = 512;
/**
 * Chunks below this size are copied and held for the next write instead of being written alone: the
 * Part 10 header written before an instance's first data set chunk then goes to disk with it, and a
 * small instance in one `writev` at commit. Each write is a trip to the thread pool (a wake-up of one
 * of its threads), which costs more than copying a few KiB.
 */
const HOLD_BELOW_BYTES = 16 * 1024;

/**
 * A key is 1 to 8 `/`-separated segments of lower-case letters, digits, `_`, `-` and `.`, none
 * starting with `.` (so no `.` / `..` segment, no hidden file), at most 255 characters in all;
 * never absolute, never a backslash. Lower case only, so keys mean the same on case-insensitive
 * volumes. Instance keys (keys.ts) are a subset.
 */
const KEY_PATTERN = /^[a-z0-9_-][a-z0-9_.-]{0,99}(\/[a-z0-9_-][a-z0-9_.-]{0,99}){0,7}$/;

/** Throws `ERR_ARCHIVE_BAD_KEY` unless `key` is safe to put under the blobs folder. */
export function assertBlobKey(key: string): void {
  if (typeof key !== 'string' || key.length > 255 || !KEY_PATTERN.test(key)) {
    throw new DicomError(
      'ERR_ARCHIVE_BAD_KEY',
      `not a valid blob key: ${JSON.stringify(String(key).slice(0, 80))}`,
    );
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Turns a file system error into a DicomError: ENOSPC / EDQUOT -> `ERR_ARCHIVE_DISK_FULL`
 * (ingest answers A700), ENOENT of a blob -> `ERR_ARCHIVE_BLOB_NOT_FOUND`, anything else ->
 * `ERR_ARCHIVE_IO`, always with the original as `cause`.
 */
export function mapFsError(err: unknown, action: string, key?: string): DicomError {
  if (isDicomError(err)) return err;
  const code = errnoCode(err);
  const what = key === undefined ? action : `${action} ${key}`;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new DicomError('ERR_ARCHIVE_DISK_FULL', `blob volume full (${code}) during ${what}`, {
      cause: err,
    });
  }
  if (code === 'ENOENT' && key !== undefined) {
    return new DicomError('ERR_ARCHIVE_BLOB_NOT_FOUND', `no blob ${key}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new DicomError('ERR_ARCHIVE_IO', `${what}: ${message}`, { cause: err });
}

function checkRange(start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new DicomError('ERR_ARCHIVE_BLOB_RANGE', `invalid byte range [${start}, ${end})`);
  }
}

/*
 * File calls through the callback API of `fs` (looked up at each call, so tests can stub them): a
 * raw descriptor costs less per call than a FileHandle, and lets the cheap calls run inline.
 */
function fsOpen(path: string, flags: string, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

function fsFsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (err) => (err ? reject(err) : resolve()));
  });
}

function fsClose(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.close(fd, (err) => (err ? reject(err) : resolve()));
  });
}

function fsRead(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function fsWritev(fd: number, buffers: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, buffers, position, (err, written) => (err ? reject(err) : resolve(written)));
  });
}

/** fsync of a folder; `inline`: its open and close run at once (a local folder: microseconds each). */
async function fsyncDirectory(path: string, inline = false): Promise<void> {
  const fd = inline ? fs.openSync(path, 'r') : await fsOpen(path, 'r');
  try {
    await fsFsync(fd);
  } finally {
    if (inline) fs.closeSync(fd);
    else await fsClose(fd);
  }
}

class FsBlobWriter implements BlobWriter {
  readonly tempPath: string;
  readonly #store: FsBlobStore;
  /** The temp file's descriptor, closed once (`#closing`). */
  readonly #fd: number;
  /** Chunks accepted and not yet handed to the file: the next `writev` takes them all. */
  #pending: Buffer[] = [];
  /** Whether a queued (not yet started) write will take `#pending`. */
  #scheduled = false;
  /** Bytes handed to the file (position of the next file write). */
  #written = 0;
  #size = 0;
  /** Serializes file writes; a rejection sticks (every later write and commit rejects). */
  #queue: Promise<void> = Promise.resolve();
  /** The error of the write that failed, for chunks held rather than queued. */
  #failed: DicomError | undefined;
  #state: 'open' | 'committing' | 'committed' | 'aborted' = 'open';
  /** The close that follows a rename (not awaited by commit). */
  #closing: Promise<void> | undefined;

  constructor(store: FsBlobStore, tempPath: string, fd: number) {
    this.#store = store;
    this.tempPath = tempPath;
    this.#fd = fd;
  }

  /** Closes the descriptor once (inline in a folder of this process's own: a close is microseconds). */
  #close(): Promise<void> {
    if (this.#closing === undefined) {
      if (this.#store.localFolder) {
        try {
          fs.closeSync(this.#fd);
          this.#closing = Promise.resolve();
        } catch (err) {
          this.#closing = Promise.reject(err);
        }
      } else this.#closing = fsClose(this.#fd);
    }
    return this.#closing;
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Chunks are kept by reference until written (the port lets the caller reuse a chunk only once its
   * promise resolved), not copied: while one write is on its way to the disk the chunks that arrive
   * meanwhile gather, and the next write takes them all with one `writev`. A chunk below
   * HOLD_BELOW_BYTES is the exception: it is copied and waits for the next chunk or the commit (its
   * promise resolves at once; a failure to write it is reported by a later write or the commit).
   */
  write(chunk: Buffer): Promise<void> {
    if (this.#state !== 'open') {
      return Promise.reject(new DicomError('ERR_ARCHIVE_BLOB_CLOSED', `write after ${this.#state}`));
    }
    if (chunk.length === 0) return this.#queue;
    this.#size += chunk.length;
    if (chunk.length < HOLD_BELOW_BYTES && !this.#scheduled) {
      if (this.#failed !== undefined) return Promise.reject(this.#failed);
      this.#pending.push(Buffer.from(chunk));
      return Promise.resolve();
    }
    this.#pending.push(chunk);
    return this.#flush();
  }

  /**
   * Schedules the write of every pending chunk (after the write in flight); the queue's promise. With
   * inline writes, the write waits for the end of the event loop's I/O phase (setImmediate): the
   * chunks of every socket read of that turn go out in one `writev` (an instance of 0.5 MiB arriving
   * as eight 64 KiB reads: 1 call instead of 11, and 0.1 s less system CPU per 1000 instances).
   */
  #flush(): Promise<void> {
    if (!this.#scheduled && this.#pending.length > 0) {
      this.#scheduled = true;
      const run = (): Promise<void> => {
        this.#scheduled = false;
        const parts = this.#pending;
        this.#pending = [];
        return this.#writeAll(parts);
      };
      this.#queue = this.#store.inlineWrites
        ? this.#queue.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(run)
        : this.#queue.then(run);
    }
    return this.#queue;
  }

  async commit(key: string): Promise<void> {
    if (this.#state !== 'open') {
      throw new DicomError('ERR_ARCHIVE_BLOB_CLOSED', `commit after ${this.#state}`);
    }
    this.#state = 'committing';
    try {
      assertBlobKey(key);
      await this.#flush();
      if (this.#store.fsync) await fsFsync(this.#fd);
      const target = join(this.#store.blobsDir, key);
      const dir = dirname(target);
      const created = this.#store.knownDirs.has(dir) ? undefined : await mkdir(dir, { recursive: true });
      this.#store.knownDirs.add(dir);
      if (this.#store.inlineRename) renameSync(this.tempPath, target);
      else await rename(this.tempPath, target);
      // The file is published under its name: closing it need not delay the answer.
      this.#close().catch(() => undefined);
      if (this.#store.fsync) await fsyncDirectory(dir, this.#store.localFolder);
      if (created !== undefined && this.#store.fsync) {
        // New folders are entries of their parents: make those durable too.
        for (let d = dir; d !== dirname(created); ) {
          d = dirname(d);
          await fsyncDirectory(d, this.#store.localFolder);
        }
      }
      this.#state = 'committed';
      this.#store.settled(this.tempPath);
    } catch (err) {
      // The commit's own error is the one to report; should removing the temp fail as well, the
      // temp is what cleanupTemps removes at the next start.
      await this.#discard().catch(() => undefined);
      throw mapFsError(err, 'commit', key);
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'aborted') return;
    await this.#discard();
  }

  async #discard(): Promise<void> {
    this.#state = 'aborted';
    try {
      await this.#queue;
    } catch {
      // The write error was reported to the caller of write/commit; the data is being discarded.
    }
    try {
      await this.#close();
    } catch (err) {
      // A close that failed after the rename is of no consequence here; report anything else.
      if (errnoCode(err) !== 'EBADF') throw mapFsError(err, 'abort');
    }
    await rm(this.tempPath, { force: true });
    this.#store.settled(this.tempPath);
    this.#pending = [];
  }

  /** Writes `parts` in order at the end of the file, MAX_IOVECS chunks per `writev`. */
  async #writeAll(parts: Buffer[]): Promise<void> {
    try {
      for (let i = 0; i < parts.length; i += MAX_IOVECS) {
        let batch = parts.slice(i, i + MAX_IOVECS);
        let left = batch.reduce((n, b) => n + b.length, 0);
        while (left > 0) {
          const bytesWritten = this.#store.inlineWrites
            ? fs.writevSync(this.#fd, batch, this.#written)
            : await fsWritev(this.#fd, batch, this.#written);
          this.#written += bytesWritten;
          left -= bytesWritten;
          if (left > 0) batch = rest(batch, bytesWritten);
        }
      }
    } catch (err) {
      this.#failed = mapFsError(err, 'write', this.tempPath);
      throw this.#failed;
    }
  }
}

/** What is left of `parts` once their first `n` bytes are written (a short write). */
function rest(parts: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < parts.length && skip >= parts[i]!.length) skip -= parts[i++]!.length;
  const left = parts.slice(i);
  if (left.length > 0 && skip > 0) left[0] = left[0]!.subarray(skip);
  return left;
}

/** `BlobStore` over a folder. See the module comment for the layout and durability. */
export class FsBlobStore implements BlobStore {
  readonly root: string;
  readonly blobsDir: string;
  readonly tmpDir: string;
  #ready: Promise<void> | undefined;
  /** Temp files of writers of this process that are neither committed nor aborted. */
  readonly #active = new Set<string>();

  /**
   * Whether commits are durable against power loss (fsync of the file and its folder). Without it a
   * commit survives a process crash (the data is in the OS) but not a power failure, as storescp.
   */
  readonly fsync: boolean;
  /** Folders of blobs known to exist: mkdir is skipped for them (a folder is never removed while running). */
  readonly knownDirs = new Set<string>();

  /**
   * `tempGraceMs`: temps `cleanupTemps` leaves alone unless last written longer ago than this. 0 (the
   * default, one process per folder) removes every temp not of this store; a folder shared by several
   * nodes needs a grace period, since another node's upload in progress is a temp too, and keeps
   * being written (its mtime stays fresh) until it is published.
   */
  constructor(
    root: string,
    options: {
      readonly fsync?: boolean;
      readonly tempGraceMs?: number;
      /**
       * Where published blobs and temps live, when not `<root>/blobs` and `<root>/tmp`; both on one
       * volume, so that publishing is a rename. A folder of received files (storescp's layout) has
       * both in one folder, with `tempPrefix` `.`: a temp is hidden, and never a key (keys do not
       * start with a dot).
       */
      readonly folders?: { readonly blobs: string; readonly tmp: string };
      /** What temp file names start with (default nothing). */
      readonly tempPrefix?: string;
      /**
       * Write with blocking calls, on the calling thread (only without fsync, on a folder of this
       * process): no trip to the thread pool and back per write, at the price of the event loop
       * waiting while the OS copies the bytes into its cache. For a process that does nothing else
       * while it receives (`tessera receive`: ~10% more instances/s measured), not for the archive
       * server, whose event loop also serves queries and DICOMweb.
       */
      readonly inlineWrites?: boolean;
    } = {},
  ) {
    this.fsync = options.fsync !== false;
    this.tempGraceMs = options.tempGraceMs ?? 0;
    this.localFolder = this.tempGraceMs === 0;
    this.inlineRename = !this.fsync && this.localFolder;
    this.inlineWrites = this.inlineRename && options.inlineWrites === true;
    this.root = root;
    this.blobsDir = options.folders?.blobs ?? join(root, 'blobs');
    this.tmpDir = options.folders?.tmp ?? join(root, 'tmp');
    this.#tempPrefix = `${options.tempPrefix ?? ''}${randomBytes(9).toString('hex')}`;
  }

  readonly tempGraceMs: number;
  /**
   * Publish with a synchronous rename: without fsync nothing waits for the disk, and on a folder of
   * its own (not shared) a rename is tens of microseconds, less than a trip to the thread pool.
   */
  readonly inlineRename: boolean;
  /** Writes are blocking calls on the calling thread (see the constructor's `inlineWrites`). */
  readonly inlineWrites: boolean;
  /**
   * The folder is this process's own (not shared by nodes): reads open, stat and close its files
   * inline, tens of microseconds each on a local disk, less than a trip to the thread pool.
   */
  readonly localFolder: boolean;
  readonly #tempPrefix: string;
  #tempCounter = 0;

  async create(): Promise<BlobWriter> {
    this.#ready ??= this.#prepare();
    try {
      await this.#ready;
    } catch (err) {
      this.#ready = undefined;
      throw err;
    }
    // Unique across processes sharing the folder (a random prefix per store) and within one (a
    // counter): no random bytes drawn per instance.
    const tempPath = join(this.tmpDir, `${this.#tempPrefix}-${(this.#tempCounter++).toString(36)}.tmp`);
    let fd: number;
    try {
      // Creating a file in our own folder is tens of microseconds: inline, unless calls wait for the disk.
      fd = this.inlineRename ? fs.openSync(tempPath, 'wx', 0o644) : await fsOpen(tempPath, 'wx', 0o644);
    } catch (err) {
      throw mapFsError(err, 'create temp blob');
    }
    this.#active.add(tempPath);
    return new FsBlobWriter(this, tempPath, fd);
  }

  /** Called by a writer when its temp file is gone (committed or aborted). */
  settled(tempPath: string): void {
    this.#active.delete(tempPath);
  }

  read(key: string, range?: ByteRange): Readable {
    assertBlobKey(key);
    if (range !== undefined) {
      checkRange(range.start, range.end);
      if (range.start === range.end) return Readable.from([]);
    }
    const path = join(this.blobsDir, key);
    // A custom `fs.open` turns "no such blob" and "range past the end" into DicomErrors on the
    // stream, without an extra stat before every read.
    const openChecked = (
      file: string,
      flags: string | number,
      mode: number,
      callback: (err: Error | null, fd?: number) => void,
    ): void => {
      open(file, flags, mode, (openErr, fd) => {
        if (openErr) return callback(mapFsError(openErr, 'read', key));
        if (range === undefined) return callback(null, fd);
        fstat(fd, (statErr, stats) => {
          const err = statErr
            ? mapFsError(statErr, 'read', key)
            : stats.size < range.end
              ? new DicomError(
                  'ERR_ARCHIVE_BLOB_RANGE',
                  `range [${range.start}, ${range.end}) past the end of ${key} (${stats.size} bytes)`,
                )
              : undefined;
          if (err === undefined) return callback(null, fd);
          close(fd, () => callback(err));
        });
      });
    };
    const readMapped = (
      fd: number,
      buffer: Buffer,
      offset: number,
      length: number,
      position: number | null,
      callback: (err: Error | null, bytesRead?: number, buffer?: Buffer) => void,
    ): void => {
      read(fd, buffer, offset, length, position, (err, bytesRead, buf) =>
        err ? callback(mapFsError(err, 'read', key)) : callback(null, bytesRead, buf),
      );
    };
    return createBlobReadStream(path, range, openChecked, readMapped);
  }

  async readBytes(key: string, start: number, length: number): Promise<Buffer> {
    assertBlobKey(key);
    checkRange(start, start + length);
    const path = join(this.blobsDir, key);
    let fd: number;
    try {
      // A private folder's files are opened and closed inline (microseconds, no thread-pool trip).
      fd = this.localFolder ? fs.openSync(path, 'r') : await fsOpen(path, 'r');
    } catch (err) {
      throw mapFsError(err, 'read', key);
    }
    try {
      const out = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const bytesRead = await fsRead(fd, out, filled, length - filled, start + filled);
        if (bytesRead === 0) {
          throw new DicomError(
            'ERR_ARCHIVE_BLOB_RANGE',
            `range [${start}, ${start + length}) past the end of ${key} (${start + filled} bytes)`,
          );
        }
        filled += bytesRead;
      }
      return out;
    } catch (err) {
      throw mapFsError(err, 'read', key);
    } finally {
      if (this.localFolder) fs.closeSync(fd);
      else await fsClose(fd);
    }
  }

  async size(key: string): Promise<number | undefined> {
    assertBlobKey(key);
    try {
      const path = join(this.blobsDir, key);
      const s = this.localFolder ? fs.statSync(path) : await stat(path);
      return s.isFile() ? s.size : undefined;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw mapFsError(err, 'stat', key);
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.size(key)) !== undefined;
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    try {
      await rm(join(this.blobsDir, key), { force: true });
    } catch (err) {
      throw mapFsError(err, 'delete', key);
    }
  }

  async cleanupTemps(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return 0;
      throw mapFsError(err, 'list temps');
    }
    let removed = 0;
    for (const name of names) {
      const path = join(this.tmpDir, name);
      if (this.#active.has(path)) continue;
      try {
        if (this.tempGraceMs > 0) {
          const modified = (await stat(path).catch(() => undefined))?.mtimeMs;
          if (modified === undefined || Date.now() - modified < this.tempGraceMs) continue;
        }
        await rm(path, { force: true, recursive: true });
      } catch (err) {
        throw mapFsError(err, 'remove temp', name);
      }
      removed++;
    }
    return removed;
  }

  async usage(): Promise<{ used: number; free: number }> {
    try {
      const s = await statfs(this.root);
      return { used: (s.blocks - s.bfree) * s.bsize, free: s.bavail * s.bsize };
    } catch (err) {
      throw mapFsError(err, 'statfs');
    }
  }

  /**
   * Every published key (not part of the `BlobStore` port): for the start-up consistency check
   * that finds blobs without an index row (a crash between publishing and the index commit).
   */
  async *keys(): AsyncIterable<string> {
    const walk = async function* (dir: string, prefix: string, depth: number): AsyncIterable<string> {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return;
        throw mapFsError(err, 'list blobs');
      }
      for (const entry of entries) {
        const key = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
        if (entry.isDirectory() && depth < 8) yield* walk(join(dir, entry.name), key, depth + 1);
        else if (entry.isFile() && KEY_PATTERN.test(key)) yield key;
      }
    };
    yield* walk(this.blobsDir, '', 1);
  }

  async #prepare(): Promise<void> {
    try {
      const created = await mkdir(this.tmpDir, { recursive: true });
      await mkdir(this.blobsDir, { recursive: true });
      if (created !== undefined) await fsyncDirectory(dirname(this.tmpDir));
    } catch (err) {
      throw mapFsError(err, 'prepare blob folders');
    }
  }
}

type OpenImpl = (
  file: string,
  flags: string | number,
  mode: number,
  callback: (err: Error | null, fd?: number) => void,
) => void;

function createBlobReadStream(
  path: string,
  range: ByteRange | undefined,
  openImpl: OpenImpl,
  readImpl: (...args: never[]) => void,
): Readable {
  // fs.createReadStream's `end` is inclusive; ours is exclusive.
  return createReadStream(path, {
    ...(range === undefined ? {} : { start: range.start, end: range.end - 1 }),
    highWaterMark: 256 * 1024,
    fs: { open: openImpl, read: readImpl, close },
  });
}
