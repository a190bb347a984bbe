import { closeSync, createReadStream, fstatSync, openSync, read, readSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  canDecode,
  decompressDataset,
  encodeDataset,
  isNativeTransferSyntax,
  type Part10,
  readPart10,
  readPart10File,
} from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import { type AcceptedContext, Association, type ProposedContext, type RequestOptions } from '../ul/index.ts';
import { Dimse } from './service.ts';
import { formatStatus, statusCategory } from './status.ts';

/** A file to send: what its header says, and where its data set starts. */
export interface StoreItem {
  readonly path: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly transferSyntaxUid: string;
  readonly datasetOffset: number;
  readonly datasetLength: number;
}

export interface StoreOutcome {
  readonly item: StoreItem;
  /** The C-STORE-RSP status, or undefined when the instance could not be sent at all. */
  readonly status: number | undefined;
  readonly error: string | undefined;
}

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/**
 * Lists files under paths (folders recursively), in a stable order. Each path is stat'ed with a
 * blocking call: a file list of thousands (storescu-style arguments) would otherwise take a trip to
 * the thread pool each, 50-100 µs apiece here, against a few µs inline.
 */
export async function listFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const s = statSync(p);
    if (s.isDirectory()) await listFolder(p, out);
    else if (s.isFile()) out.push(p);
  }
  return out;
}

/** The files under `folder`, recursively, sorted by name; an entry's type from the listing (no stat per file). */
async function listFolder(folder: string, out: string[]): Promise<void> {
  const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) await listFolder(path, out);
    else if (entry.isFile()) out.push(path);
    else if (entry.isSymbolicLink()) out.push(...(await listFiles([path])));
  }
}

/** The first bytes of a file read for its header; a header that does not fit is read again, streamed. */
const HEAD_BYTES = 16 * 1024;
/** The buffer every header is read into (what describeFile keeps of it are strings and numbers). */
let headBuffer: Buffer | undefined;

/**
 * Reads the header of a file to send (stops before Pixel Data); throws a DicomError when it is not DICOM.
 * The first 16 KiB are read with blocking calls into one buffer reused for every file: on a local disk
 * that is tens of microseconds, less than the trips to the thread pool that asynchronous calls take
 * (four per file), and no allocation; only a header longer than that is read again, asynchronously.
 */
export async function describeFile(path: string): Promise<StoreItem> {
  const fd = openSync(path, 'r');
  let size: number;
  let head: Buffer;
  try {
    size = fstatSync(fd).size;
    headBuffer ??= Buffer.allocUnsafe(HEAD_BYTES);
    head = headBuffer.subarray(0, readSync(fd, headBuffer, 0, Math.min(size, HEAD_BYTES), 0));
  } finally {
    closeSync(fd);
  }
  if (size === 0) throw new DicomError('ERR_DIMSE_NOT_DICOM', 'the file is empty');
  const whole = head.length === size;
  let file: Part10 | undefined;
  try {
    file = readPart10(head, { stopBeforeTag: 0x00080019 });
  } catch (err) {
    if (whole) throw err;
  }
  // A part of the file is enough only when reading stopped at the tag, not at the end of the part.
  if (file === undefined || (!whole && file.stoppedAt === undefined))
    file = await readPart10File(path, { stopBeforeTag: 0x00080019 });
  const sopClassUid = file.meta.string(0x00020002) ?? file.dataset.string(0x00080016);
  const sopInstanceUid = file.meta.string(0x00020003) ?? file.dataset.string(0x00080018);
  if (!sopClassUid || !sopInstanceUid)
    throw new DicomError('ERR_DIMSE_NOT_DICOM', 'no SOP Class/Instance UID: not a DICOM instance');
  return {
    path,
    sopClassUid,
    sopInstanceUid,
    transferSyntaxUid: file.transferSyntax.uid,
    datasetOffset: file.datasetOffset,
    datasetLength: size - file.datasetOffset,
  };
}

/**
 * Describes many files, reading `concurrency` headers at a time; results keep the input order.
 * Files that are not DICOM instances come back in `skipped` with the reason.
 */
export async function describeFiles(
  paths: readonly string[],
  concurrency = 16,
): Promise<{ items: StoreItem[]; skipped: { path: string; reason: string }[] }> {
  const results: (StoreItem | { path: string; reason: string })[] = new Array(paths.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < paths.length; i = next++) {
      const path = paths[i]!;
      try {
        results[i] = await describeFile(path);
      } catch (err) {
        results[i] = { path, reason: (err as Error).message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, () => worker()));
  const items: StoreItem[] = [];
  const skipped: { path: string; reason: string }[] = [];
  for (const r of results) {
    if ('reason' in r) skipped.push(r);
    else items.push(r);
  }
  return { items, skipped };
}

/**
 * Presentation contexts for a set of files (PS3.7 Annex D, as storescu proposes them): for each SOP
 * class and stored syntax, one context offering that syntax, plus explicit and implicit VR little
 * endian for native data (which the codec converts to). At most 128 (PS3.8 §9.3.2.2).
 */
export function proposeContexts(items: readonly StoreItem[]): ProposedContext[] {
  const seen = new Set<string>();
  const out: ProposedContext[] = [];
  for (const item of items) {
    const key = `${item.sopClassUid}|${item.transferSyntaxUid}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const syntaxes = [item.transferSyntaxUid];
    if (isNativeTransferSyntax(item.transferSyntaxUid)) {
      for (const ts of [EXPLICIT_LE, IMPLICIT_LE]) if (!syntaxes.includes(ts)) syntaxes.push(ts);
    }
    out.push({ abstractSyntax: item.sopClassUid, transferSyntaxes: syntaxes });
  }
  // A compressed syntax the codec decodes: a second context in Explicit/Implicit VR Little Endian per
  // SOP class, for an SCP that does not take the compressed one (the instance is then decompressed).
  // Only while the 128 contexts allow it.
  for (const item of items) {
    const key = `${item.sopClassUid}|native`;
    if (seen.has(key) || isNativeTransferSyntax(item.transferSyntaxUid) || !canDecode(item.transferSyntaxUid))
      continue;
    seen.add(key);
    if (out.length < 128)
      out.push({ abstractSyntax: item.sopClassUid, transferSyntaxes: [EXPLICIT_LE, IMPLICIT_LE] });
  }
  if (out.length > 128) {
    throw new DicomError(
      'ERR_DIMSE_TOO_MANY_CONTEXTS',
      `${out.length} SOP class / transfer syntax pairs; one association carries at most 128`,
    );
  }
  return out;
}

export interface StoreOptions extends Omit<RequestOptions, 'contexts'> {
  /** Associations opened in parallel, each sending a share of the files. */
  readonly parallel?: number;
  /** Outstanding C-STORE requests per association when the peer agrees (asynchronous operations window). */
  readonly window?: number;
  readonly onOutcome?: (outcome: StoreOutcome) => void;
  /** Called as data set bytes go out (for progress). */
  readonly onBytes?: (n: number) => void;
}

/**
 * C-STORE SCU over files (what storescu does): associations in parallel, each pipelining up to the
 * negotiated window, data sets streamed from disk when the peer accepts the stored syntax.
 */
export async function storeFiles(
  items: readonly StoreItem[],
  options: StoreOptions,
): Promise<StoreOutcome[]> {
  const parallel = Math.max(1, Math.min(options.parallel ?? 1, items.length || 1));
  const shares: StoreItem[][] = Array.from({ length: parallel }, () => []);
  for (const [i, item] of items.entries()) shares[i % parallel]!.push(item);
  const results = await Promise.all(shares.map((share) => storeShare(share, options, parallel === 1)));
  return results.flat();
}

async function storeShare(
  items: readonly StoreItem[],
  options: StoreOptions,
  alone: boolean,
): Promise<StoreOutcome[]> {
  if (items.length === 0) return [];
  const outcomes: StoreOutcome[] = [];
  const record = (o: StoreOutcome): void => {
    outcomes.push(o);
    options.onOutcome?.(o);
  };
  const window = options.window ?? 8;
  const association = await Association.request({
    ...options,
    contexts: proposeContexts(items),
    maxOpsInvoked: window,
    maxOpsPerformed: 1,
  });
  const dimse = new Dimse(association);
  const queue = [...items];
  const slots =
    association.info.maxOpsInvoked === 0 ? window : Math.min(window, association.info.maxOpsInvoked);
  // Each sending loop holds at most two read buffers: the instance being sent and the next one.
  const buffers = new ReadBuffers(2 * Math.max(1, slots));
  // With one request in flight in the whole process, the event loop has nothing to do but wait for its
  // response: the next file is read then, inline. With several (--parallel, a window above 1), a
  // blocking read would hold up the others: reads go to the thread pool, started with each send.
  const inline = alone && slots <= 1;
  const worker = async (): Promise<void> => {
    // The next instance is read from disk while the current one is on the wire (one ahead per worker).
    let item = queue.shift();
    let loading = item ? load(dimse, item, buffers, inline) : undefined;
    while (item) {
      const current = item;
      const ready = loading!;
      item = queue.shift();
      const next = item;
      let prefetching = false;
      const prefetch = (): void => {
        if (prefetching) return;
        prefetching = true;
        loading = next ? load(dimse, next, buffers, inline) : undefined;
        // A rejected prefetch is handled when its turn comes, not as an unhandled rejection now.
        loading?.catch(() => undefined);
      };
      try {
        const { context, data, buffer } = await ready;
        // The current instance goes out first. An inline read of the next one waits until this one is
        // written to the socket (after the corked write of this turn, hence setImmediate) and is made
        // while the peer takes it in; a read on the thread pool starts at once, beside the send.
        const stored = dimse.store(
          context,
          current,
          data,
          inline ? { onSent: () => setImmediate(prefetch) } : {},
        );
        if (!inline) prefetch();
        const rsp = await stored;
        prefetch(); // (no-op unless the response came first)
        // Answered: the peer had all of the data set (a peer answering early, before it had it all,
        // may leave some in the socket's buffer: that buffer is then not reused).
        if (buffer !== undefined && association.allSent) buffers.give(buffer);
        options.onBytes?.(current.datasetLength);
        record({
          item: current,
          status: rsp.status,
          error:
            statusCategory(rsp.status) === 'failure'
              ? `${formatStatus(rsp.status)}${rsp.command.errorComment ? `: ${rsp.command.errorComment}` : ''}`
              : undefined,
        });
      } catch (err) {
        prefetch();
        record({ item: current, status: undefined, error: (err as Error).message });
        if (!association.established) {
          if (item) queue.unshift(item);
          item = undefined;
          for (const rest of queue.splice(0))
            record({
              item: rest,
              status: undefined,
              error: 'the association ended before this instance was sent',
            });
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, slots) }, () => worker()));
  if (association.established) await dimse.release();
  return outcomes;
}

/** Instances up to this size are read whole (one read, prefetched); larger ones stream from disk. */
const PREFETCH_LIMIT = 8 * 1024 * 1024;

type Data = Buffer | { length: number; chunks: AsyncIterable<Buffer> };

/**
 * The accepted context for an item, and its data set bytes in that context's syntax: read whole when
 * small, streamed from disk when large, converted in memory when only another native syntax was
 * accepted (decompressed first when the file is compressed in a syntax the codec decodes).
 */
async function load(
  dimse: Dimse,
  item: StoreItem,
  buffers: ReadBuffers,
  inline: boolean,
): Promise<{ context: AcceptedContext; data: Data; buffer?: Buffer }> {
  const same = dimse.contextFor(item.sopClassUid, [item.transferSyntaxUid]);
  if (same && item.datasetLength > PREFETCH_LIMIT) {
    return {
      context: same,
      data: {
        length: item.datasetLength,
        // Reads sized to whole PDVs of the peer's maximum, so no read ends in a short PDU.
        chunks: createReadStream(item.path, {
          start: item.datasetOffset,
          highWaterMark: readSize(dimse.association.info.peerMaxPduLength),
        }),
      },
    };
  }
  if (same) {
    // Open and close inline (tens of microseconds). The read, a copy of up to 8 MiB from the page
    // cache (0.1 ms per 0.5 MiB), is inline too when nothing else waits on the event loop: on 2 cores,
    // `tessera store` of 1000 instances of 0.5 MiB to a storescp that discards them took 0.78 s
    // against 0.89 s (medians of 5 runs) with the read on the thread pool, whose hand-off and wake-up
    // compete with the socket writes and the peer for the cores. With 4 associations in the process,
    // inline reads were slower (3 of 3 runs): they go to the thread pool.
    const fd = openSync(item.path, 'r');
    try {
      const buffer = buffers.take(item.datasetLength);
      const buf = buffer.subarray(0, item.datasetLength);
      const bytesRead = inline
        ? readSync(fd, buf, 0, buf.length, item.datasetOffset)
        : await new Promise<number>((resolve, reject) =>
            read(fd, buf, 0, buf.length, item.datasetOffset, (err, n) => (err ? reject(err) : resolve(n))),
          );
      if (bytesRead !== buf.length) {
        throw new DicomError(
          'ERR_DIMSE_SHORT_DATA',
          `${item.path} changed while being sent: ${bytesRead} of ${buf.length} bytes`,
        );
      }
      return { context: same, data: buf, buffer };
    } finally {
      closeSync(fd);
    }
  }
  const native = isNativeTransferSyntax(item.transferSyntaxUid);
  const other =
    native || canDecode(item.transferSyntaxUid)
      ? dimse.contextFor(item.sopClassUid, [EXPLICIT_LE, IMPLICIT_LE])
      : undefined;
  if (!other) {
    throw new DicomError(
      'ERR_DIMSE_NO_CONTEXT',
      `no presentation context accepted for ${item.sopClassUid} in ${item.transferSyntaxUid}`,
    );
  }
  const file = readPart10(await readFile(item.path));
  const dataset = native ? file.dataset : await decompressDataset(file.dataset, item.transferSyntaxUid);
  return { context: other, data: encodeDataset(dataset, other.transferSyntax) };
}

/**
 * Read buffers of instances already sent, reused for the next reads. A new 0.5 MiB buffer per instance
 * is memory outside V8's heap that V8 counts: every ~64 MiB of it starts a full collection (7 per 1000
 * instances of 0.5 MiB), for a heap that holds almost nothing. Sizes are rounded up to 64 KiB so that
 * instances of similar sizes share buffers; at most `max` are kept, the largest dropped first.
 */
class ReadBuffers {
  readonly #free: Buffer[] = [];
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  /** A buffer of at least `n` bytes: the smallest kept one that is large enough, or a new one. */
  take(n: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const len = this.#free[i]!.length;
      if (len >= n && (best < 0 || len < this.#free[best]!.length)) best = i;
    }
    if (best >= 0) return this.#free.splice(best, 1)[0]!;
    return Buffer.allocUnsafeSlow(Math.ceil(Math.max(n, 1) / 65536) * 65536);
  }

  /** Takes back a buffer from `take` that nothing reads any more. */
  give(buffer: Buffer): void {
    this.#free.push(buffer);
    if (this.#free.length > this.#max) {
      this.#free.sort((a, b) => a.length - b.length);
      this.#free.pop();
    }
  }
}

function readSize(peerMaxPduLength: number): number {
  if (peerMaxPduLength === 0 || peerMaxPduLength > 1024 * 1024) return 1024 * 1024;
  const payload = (peerMaxPduLength - 6) & ~1;
  return payload * Math.max(1, Math.floor((512 * 1024) / payload));
}
