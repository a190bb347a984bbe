import { channel } from 'node:diagnostics_channel';
import { datasetFromJson, decodeDataset, part10Header } from '../codec/index.ts';
import { CodecError, DicomError } from '../core/index.ts';
import {
  type AnalysisResult,
  type ExpectedInstance,
  INGEST_STATUS,
  type IngestSource,
  InstanceAnalysis,
  recordOf,
} from './analysis.ts';
import type {
  BlobStore,
  BlobWriter,
  CommitOutcome,
  DuplicatePolicy,
  Index,
  IndexedInstance,
  InstanceRecord,
} from './ports.ts';

export { INGEST_STATUS, type IngestSource } from './analysis.ts';

const ingestChannel = channel('tessera:archive:ingest');

export interface IngestContext {
  /** Transfer syntax of the incoming data set bytes (the presentation context's, for C-STORE). */
  readonly transferSyntaxUid: string;
  /** What the request announced of the instance: the data set must match. */
  readonly expected?: ExpectedInstance;
  readonly source: IngestSource;
  readonly policy: DuplicatePolicy;
}

export interface IngestResult {
  /** The status to answer with (0000 success; see INGEST_STATUS). */
  readonly status: number;
  readonly comment?: string;
  readonly sopInstanceUid?: string;
  readonly sopClassUid?: string;
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
  readonly outcome?: CommitOutcome;
}

export const INGEST_DEFAULTS = {
  /**
   * How long the committer waits for more instances before one index transaction (group commit);
   * 0 batches what arrived in the same turn of the event loop, adding no latency to a lone instance.
   */
  groupCommitMs: 0,
  maxBatch: 256,
} as const;

/** Bytes of a data set queued for the blob writer before ingest waits for the disk to catch up. */
const WRITE_BACKLOG_BYTES = 4 * 1024 * 1024;

interface Pending {
  readonly record: InstanceRecord;
  readonly policy: DuplicatePolicy;
  readonly resolve: (o: CommitOutcome) => void;
  readonly reject: (e: Error) => void;
}

/**
 * Group commit (issue #4): instances committed by concurrent associations within a few milliseconds
 * go into one index transaction, so they share one fsync of the SQLite WAL instead of one each.
 * Every caller learns its own outcome, and only after the transaction is durable.
 */
class GroupCommitter {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  constructor(
    private readonly index: Index,
    private readonly delayMs: number,
    private readonly maxBatch: number,
  ) {}

  submit(record: InstanceRecord, policy: DuplicatePolicy): Promise<CommitOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ record, policy, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      // With no delay, the batch is whatever arrived in this turn of the event loop: while one
      // transaction waits for its fsync, the next one gathers every instance finished meanwhile.
      else
        this.timer ??=
          this.delayMs > 0 ? setTimeout(() => this.flush(), this.delayMs) : setImmediate(() => this.flush());
    });
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    this.index.commit(batch.map((p) => ({ record: p.record, policy: p.policy }))).then(
      (outcomes) => {
        for (const [i, p] of batch.entries()) p.resolve(outcomes[i]!);
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err as Error);
      },
    );
  }
}

export interface IngestDeps {
  readonly blobs: BlobStore;
  readonly index: Index;
  readonly groupCommitMs?: number;
}

/**
 * The one ingest pipeline (C-STORE now, STOW-RS later): the data set streams into a temporary blob
 * (behind a Part 10 header, bytes as received) while a token reader parses it on the way; then the
 * instance is validated, its metadata document and frame offsets computed, the blob published and the
 * index rows written in one (grouped) transaction. Nothing is visible until both are durable.
 */
export class Ingest {
  private readonly committer: GroupCommitter;

  constructor(private readonly deps: IngestDeps) {
    this.committer = new GroupCommitter(
      deps.index,
      deps.groupCommitMs ?? INGEST_DEFAULTS.groupCommitMs,
      INGEST_DEFAULTS.maxBatch,
    );
  }

  async ingest(data: AsyncIterable<Buffer>, ctx: IngestContext): Promise<IngestResult> {
    const started = Date.now();
    const received = { bytes: 0 };
    const result = await this.run(data, ctx, received).catch((err: unknown) => failure(err));
    ingestChannel.publish({
      sopInstanceUid: result.sopInstanceUid ?? ctx.expected?.sopInstanceUid,
      status: result.status,
      comment: result.comment,
      outcome: result.outcome?.kind,
      source: ctx.source,
      ms: Date.now() - started,
      bytes: received.bytes,
    });
    return result;
  }

  /**
   * Ingests a Part 10 file as it streams in (a STOW-RS part): its File Meta Information gives the
   * transfer syntax and the SOP Class/Instance UIDs the data set must have; the data set bytes that
   * follow go through `ingest` (a File Meta of Tessera's own replaces the client's). A body that is not
   * Part 10 (no preamble and `DICM`, no group length) fails with C000 and stores nothing.
   */
  async ingestPart10(
    data: AsyncIterable<Uint8Array>,
    ctx: Omit<IngestContext, 'transferSyntaxUid'>,
  ): Promise<IngestResult> {
    const iterator = data[Symbol.asyncIterator]();
    let head: Buffer;
    let meta: { transferSyntaxUid: string; sopClassUid?: string; sopInstanceUid?: string; length: number };
    try {
      head = await readAtLeast(iterator, Buffer.alloc(0), 144);
      meta = fileMetaOf(head);
      if (head.length < meta.length) head = await readAtLeast(iterator, head, meta.length);
      meta = fileMetaOf(head);
    } catch (err) {
      // Drain nothing more: the caller's body iterator reports a truncated body itself.
      return failure(err);
    }
    const rest = head.subarray(meta.length);
    async function* body(): AsyncGenerator<Buffer> {
      if (rest.length > 0) yield rest;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      }
    }
    const result = await this.ingest(body(), {
      ...ctx,
      transferSyntaxUid: meta.transferSyntaxUid,
      expected: {
        ...ctx.expected,
        ...(meta.sopClassUid ? { sopClassUid: meta.sopClassUid } : {}),
        ...(meta.sopInstanceUid ? { sopInstanceUid: meta.sopInstanceUid } : {}),
      },
    });
    // A failure before the data set was understood still names the instance (STOW-RS's Failed SOP
    // Sequence item needs its UIDs): the File Meta's.
    return {
      ...result,
      ...(result.sopInstanceUid === undefined && meta.sopInstanceUid
        ? { sopInstanceUid: meta.sopInstanceUid }
        : {}),
      ...(result.sopClassUid === undefined && meta.sopClassUid ? { sopClassUid: meta.sopClassUid } : {}),
    };
  }

  private async run(
    data: AsyncIterable<Buffer>,
    ctx: IngestContext,
    received: { bytes: number },
  ): Promise<IngestResult> {
    const expected = ctx.expected ?? {};
    const header = part10Header({
      sopClassUid: expected.sopClassUid,
      sopInstanceUid: expected.sopInstanceUid,
      transferSyntaxUid: ctx.transferSyntaxUid,
      sourceAETitle: ctx.source.aeTitle,
    });
    // The analysis (hash, parse, validation, record: analysis.ts) sees the bytes as they are written.
    const analysis = new InstanceAnalysis({
      transferSyntaxUid: ctx.transferSyntaxUid,
      headerLength: header.length,
      ...(ctx.expected ? { expected: ctx.expected } : {}),
      source: ctx.source,
    });
    // The temp blob opens while the first chunks arrive; writes are queued without waiting for each
    // (the writer keeps their order), so the disk works while the next chunks arrive and are analysed.
    // Past WRITE_BACKLOG_BYTES queued, we wait for the disk.
    let writer: BlobWriter | undefined;
    let writeError: unknown;
    const noteError = (err: unknown): void => {
      writeError ??= err;
    };
    const creating = this.deps.blobs.create().then((w) => {
      writer = w;
      return w;
    });
    creating.catch(noteError);
    const write = (chunk: Buffer): Promise<void> => {
      const queued = writer ? writer.write(chunk) : creating.then((w) => w.write(chunk));
      queued.catch(noteError);
      return queued;
    };
    const discard = async (): Promise<void> => {
      const w = await creating.catch(() => undefined);
      await w?.abort();
    };
    let queued: Promise<void>;
    let analysed: AnalysisResult;
    try {
      queued = write(header);
      let backlog = header.length;
      for await (const chunk of data) {
        received.bytes += chunk.length;
        queued = write(chunk);
        backlog += chunk.length;
        if (backlog >= WRITE_BACKLOG_BYTES) {
          await queued;
          backlog = 0;
        }
        analysis.push(chunk);
      }
      if (writeError !== undefined) throw writeError;
      analysed = analysis.end();
    } catch (err) {
      await discard();
      throw err;
    }
    if (analysed.kind === 'rejected') {
      await discard();
      return { status: analysed.status, comment: analysed.comment };
    }
    const record = analysed.record;
    const w = await creating;
    const ids = {
      sopInstanceUid: record.instance.sopInstanceUid,
      sopClassUid: record.instance.sopClassUid,
      studyInstanceUid: record.study.studyInstanceUid,
      seriesInstanceUid: record.series.seriesInstanceUid,
    };
    const blobKey = record.instance.blobKey;
    try {
      // The writes still on their way settle (in order); every failure among them has been noted
      // once the last one settled.
      await queued.catch(() => undefined);
      if (writeError !== undefined) throw writeError;
      if (w.size !== record.instance.size)
        throw new DicomError(
          'ERR_ARCHIVE_INTERNAL',
          `the blob holds ${w.size} bytes, the analysis saw ${record.instance.size}`,
        );
      await w.commit(blobKey);
    } catch (err) {
      await w.abort().catch(() => undefined);
      throw err;
    }
    const outcome = await this.committer.submit(record, ctx.policy);
    switch (outcome.kind) {
      case 'stored':
        return { status: INGEST_STATUS.Success, ...ids, outcome };
      case 'identical':
        if (outcome.existingBlobKey !== blobKey) await this.deps.blobs.delete(blobKey).catch(() => undefined);
        return {
          status: INGEST_STATUS.Success,
          ...ids,
          outcome,
          comment: 'already stored (identical)',
        };
      case 'replaced':
        if (outcome.oldBlobKey !== blobKey)
          await this.deps.blobs.delete(outcome.oldBlobKey).catch(() => undefined);
        return {
          status: INGEST_STATUS.Success,
          ...ids,
          outcome,
          comment: 'replaced the stored instance',
        };
      case 'duplicate-rejected':
        if (outcome.existingBlobKey !== blobKey) await this.deps.blobs.delete(blobKey).catch(() => undefined);
        return {
          status: INGEST_STATUS.DuplicateSOPInstance,
          ...ids,
          outcome,
          comment: 'SOP Instance UID already stored (duplicates are rejected)',
        };
      case 'conflict':
        if (outcome.existingBlobKey !== blobKey) await this.deps.blobs.delete(blobKey).catch(() => undefined);
        return {
          status: INGEST_STATUS.DuplicateSOPInstance,
          ...ids,
          outcome,
          comment: 'SOP Instance UID already stored with different content',
        };
    }
  }
}

/**
 * The index record of an instance already stored (an `Index.instance` row), rebuilt from its metadata
 * document with the same rules as ingest (so an index filled by migration equals one filled by
 * ingest); the stored metadata, frame offsets, checksum and receipt time are kept as they are.
 */
export function recordFromStored(row: IndexedInstance): InstanceRecord {
  const ds = datasetFromJson(JSON.parse(row.metadata));
  return recordOf(ds, {
    blobKey: row.blobKey,
    size: row.size,
    checksum: row.checksum,
    transferSyntaxUid: row.transferSyntaxUid,
    source: {
      ...(row.sourceAETitle === undefined ? {} : { aeTitle: row.sourceAETitle }),
      ...(row.sourceAddress === undefined ? {} : { address: row.sourceAddress }),
    },
    frameOffsets: row.frameOffsets,
    datasetOffset: 0,
    receivedAt: row.receivedAt,
    metadata: row.metadata,
  });
}

/** Reads from `iterator` until `have` holds at least `n` bytes (or the input ends: ERR_CODEC_TRUNCATED). */
async function readAtLeast(iterator: AsyncIterator<Uint8Array>, have: Buffer, n: number): Promise<Buffer> {
  const parts: Buffer[] = [have];
  let size = have.length;
  while (size < n) {
    const next = await iterator.next();
    if (next.done)
      throw new CodecError(
        'ERR_CODEC_TRUNCATED',
        `the body ended after ${size} bytes, in its File Meta Information`,
        {
          offset: size,
        },
      );
    const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    parts.push(chunk);
    size += chunk.length;
  }
  return parts.length === 1 ? have : Buffer.concat(parts);
}

/**
 * The File Meta Information of a Part 10 file's first bytes (PS3.10 §7.1): its length (preamble,
 * `DICM` and the group, as its group length says) and, once `head` holds all of it, the transfer
 * syntax and SOP Class/Instance UIDs.
 */
function fileMetaOf(head: Buffer): {
  transferSyntaxUid: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
  length: number;
} {
  if (head.length < 144 || head.toString('latin1', 128, 132) !== 'DICM')
    throw new CodecError('ERR_CODEC_NOT_DICOM', 'not a DICOM Part 10 file (no preamble and DICM prefix)', {
      offset: 128,
    });
  if (
    head.readUInt16LE(132) !== 0x0002 ||
    head.readUInt16LE(134) !== 0x0000 ||
    head.toString('latin1', 136, 138) !== 'UL'
  )
    throw new CodecError(
      'ERR_CODEC_NOT_DICOM',
      'the File Meta Information does not start with its group length (0002,0000)',
      { offset: 132, tag: 0x00020000 },
    );
  const length = 144 + head.readUInt32LE(140);
  if (head.length < length) return { transferSyntaxUid: '', length };
  const meta = decodeDataset(head.subarray(132, length), '1.2.840.10008.1.2.1');
  const transferSyntaxUid = meta.string(0x00020010);
  if (!transferSyntaxUid)
    throw new CodecError(
      'ERR_CODEC_NOT_DICOM',
      'the File Meta Information has no Transfer Syntax UID (0002,0010)',
      {
        offset: 132,
        tag: 0x00020010,
      },
    );
  const sopClassUid = meta.string(0x00020002);
  const sopInstanceUid = meta.string(0x00020003);
  return {
    transferSyntaxUid,
    ...(sopClassUid ? { sopClassUid } : {}),
    ...(sopInstanceUid ? { sopInstanceUid } : {}),
    length,
  };
}

function failure(err: unknown): IngestResult {
  if (err instanceof DicomError && err.code === 'ERR_ARCHIVE_DISK_FULL') {
    return { status: INGEST_STATUS.OutOfResources, comment: 'out of disk space' };
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return { status: INGEST_STATUS.OutOfResources, comment: 'out of disk space' };
  if (err instanceof CodecError) return { status: INGEST_STATUS.CannotUnderstand, comment: err.message };
  // The input stopped short or is malformed (a STOW-RS part without its closing boundary, a broken
  // multipart body): a problem of the request, not of our resources. Nothing is kept either way.
  if (err instanceof DicomError && (err.code.endsWith('_TRUNCATED') || err.code.includes('_MULTIPART_')))
    return { status: INGEST_STATUS.CannotUnderstand, comment: err.message };
  return { status: INGEST_STATUS.OutOfResources, comment: `cannot store: ${(err as Error).message}` };
}
