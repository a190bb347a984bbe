import { createHash } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { inflateRawSync } from 'node:zlib';
import {
  Dataset,
  DatasetBuilder,
  datasetFromJson,
  datasetToJson,
  decodeDataset,
  type Element,
  type ElementPath,
  frameFragments,
  nativeFrames,
  part10Header,
  type Token,
  TokenReader,
  transferSyntax,
} from '../codec/index.ts';
import { CodecError, DicomError, isValidUid, PixelDataTag, tagToHex } from '../core/index.ts';
import { Tag } from '../dictionary/index.ts';
import { blobKeyFor } from './keys.ts';
import type {
  BlobStore,
  BlobWriter,
  CommitOutcome,
  DuplicatePolicy,
  Index,
  IndexedInstance,
  InstanceRecord,
} from './ports.ts';

const ingestChannel = channel('tessera:archive:ingest');

/** C-STORE statuses of PS3.4 B.2.3 (and the general 0111 of PS3.7 C.5) that ingest answers with. */
export const INGEST_STATUS = {
  Success: 0x0000,
  DuplicateSOPInstance: 0x0111,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSOPClass: 0xa900,
  CannotUnderstand: 0xc000,
} as const;

export interface IngestSource {
  readonly aeTitle?: string | undefined;
  readonly address?: string | undefined;
}

export interface IngestContext {
  /** Transfer syntax of the incoming data set bytes (the presentation context's, for C-STORE). */
  readonly transferSyntaxUid: string;
  /** SOP Class/Instance the request announced (C-STORE Affected SOP Class/Instance UID): must match the data set. */
  readonly expected?: {
    readonly sopClassUid?: string | undefined;
    readonly sopInstanceUid?: string | undefined;
    /** STOW-RS to /studies/{study}: the instance must belong to that study (else A900, PS3.18 10.5.3). */
    readonly studyInstanceUid?: string | undefined;
  };
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

/** Binary values longer than this are left out of the metadata document (BulkDataURI placeholders). */
const METADATA_BULK_THRESHOLD = 1024;

export const INGEST_DEFAULTS = {
  /**
   * How long the committer waits for more instances before one index transaction (group commit);
   * 0 batches what arrived in the same turn of the event loop, adding no latency to a lone instance.
   */
  groupCommitMs: 0,
  maxBatch: 256,
} as const;

/** A record computed from the data set as it was when Pixel Data started, and what it saw then. */
interface EarlyRecord {
  readonly elements: number;
  /** The Pixel Data element it saw (a second Pixel Data, malformed, would replace it). */
  readonly pixelData: Element | undefined;
  readonly record: InstanceRecord;
}

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
    const syntax = transferSyntax(ctx.transferSyntaxUid);
    const expected = ctx.expected ?? {};
    const header = part10Header({
      sopClassUid: expected.sopClassUid,
      sopInstanceUid: expected.sopInstanceUid,
      transferSyntaxUid: ctx.transferSyntaxUid,
      sourceAETitle: ctx.source.aeTitle,
    });
    // Once Pixel Data starts (the header has all arrived), the record is computed while the pixel data
    // streams in, off the path from the last byte to the answer; it stands unless elements follow.
    let early: EarlyRecord | undefined;
    const onPixelData = (root: Dataset): void => {
      try {
        early = {
          elements: root.size,
          pixelData: root.get(PixelDataTag),
          record: recordOf(root, {
            blobKey: '',
            size: 0,
            checksum: '',
            transferSyntaxUid: ctx.transferSyntaxUid,
            source: ctx.source,
            frameOffsets: frameOffsetsOf(root),
            datasetOffset: header.length,
          }),
        };
      } catch {
        early = undefined; // computed again at the end, where its error counts
      }
    };
    const parser = syntax.deflated ? deflatedParser() : streamingParser(syntax, header.length, onPixelData);
    // The temp blob opens while the first chunks arrive; writes are queued without waiting for each
    // (the writer keeps their order), so the disk works while the next chunks arrive and parse, and
    // while the record is computed. Past WRITE_BACKLOG_BYTES queued, we wait for the disk.
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
    const hash = createHash('sha256');
    let queued: Promise<void>;
    try {
      queued = write(header);
      let backlog = header.length;
      for await (const chunk of data) {
        hash.update(chunk);
        received.bytes += chunk.length;
        queued = write(chunk);
        backlog += chunk.length;
        if (backlog >= WRITE_BACKLOG_BYTES) {
          await queued;
          backlog = 0;
        }
        parser.push(chunk);
      }
      if (writeError !== undefined) throw writeError;
    } catch (err) {
      await discard();
      throw err;
    }
    let ds: Dataset;
    try {
      ds = parser.end();
    } catch (err) {
      await discard();
      return {
        status: INGEST_STATUS.CannotUnderstand,
        comment: `cannot parse the data set: ${(err as Error).message}`,
      };
    }
    // The writes still on their way settle (in order) while the record is computed; every failure
    // among them has been noted once the last one settled.
    const settled = queued.catch(() => undefined);
    const written = async (): Promise<void> => {
      await settled;
      if (writeError !== undefined) throw writeError;
    };
    return this.finish(
      await creating,
      ds,
      hash.digest('hex'),
      header.length,
      ctx,
      syntax.deflated,
      written,
      early,
    );
  }

  private async finish(
    writer: BlobWriter,
    ds: Dataset,
    checksum: string,
    datasetOffset: number,
    ctx: IngestContext,
    deflated: boolean,
    written: () => Promise<void>,
    early?: EarlyRecord,
  ): Promise<IngestResult> {
    const invalid = validate(ds, ctx);
    if (invalid) {
      await writer.abort();
      return invalid;
    }
    const sopInstanceUid = ds.string(Tag.SOPInstanceUID)!;
    const studyInstanceUid = ds.string(Tag.StudyInstanceUID)!;
    const ids = {
      sopInstanceUid,
      sopClassUid: ds.string(Tag.SOPClassUID)!,
      studyInstanceUid,
      seriesInstanceUid: ds.string(Tag.SeriesInstanceUID)!,
    };
    // The record is computed while the blob writes settle.
    const blobKey = blobKeyFor(sopInstanceUid, checksum);
    const record =
      early !== undefined && early.elements === ds.size && early.pixelData === ds.get(PixelDataTag)
        ? { ...early.record, instance: { ...early.record.instance, blobKey, checksum, size: writer.size } }
        : recordOf(ds, {
            blobKey,
            size: writer.size,
            checksum,
            transferSyntaxUid: ctx.transferSyntaxUid,
            source: ctx.source,
            frameOffsets: deflated ? undefined : frameOffsetsOf(ds),
            datasetOffset,
          });
    try {
      await written();
      await writer.commit(blobKey);
    } catch (err) {
      await writer.abort().catch(() => undefined);
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

/** Parses a data set from the chunks stored, as they arrive; `end` returns it or throws why it cannot. */
interface ChunkParser {
  push(chunk: Buffer): void;
  end(): Dataset;
}

/**
 * Native syntaxes: a token reader parses on the way (bulk values stay references into the blob, small
 * values are copied out of the socket chunks). The first parse error stops parsing; `end` throws it.
 */
function streamingParser(
  syntax: ReturnType<typeof transferSyntax>,
  baseOffset: number,
  onPixelData?: (root: Dataset) => void,
): ChunkParser {
  const builder = new DatasetBuilder({
    bulkThreshold: METADATA_BULK_THRESHOLD,
    bulk: 'reference',
    littleEndian: syntax.littleEndian,
    copyValues: true,
  });
  const reader = new TokenReader({
    explicitVR: syntax.explicitVR,
    littleEndian: syntax.littleEndian,
    baseOffset,
    streamThreshold: METADATA_BULK_THRESHOLD,
  });
  let error: CodecError | undefined;
  const drain = (): void => {
    for (let t: Token | undefined = reader.next(); t !== undefined; t = reader.next()) {
      builder.accept(t);
      if (t.kind === 'element' && t.tag === PixelDataTag && builder.current === builder.root)
        onPixelData?.(builder.root);
    }
  };
  const guarded = (step: () => void): void => {
    if (error) return;
    try {
      step();
    } catch (err) {
      if (err instanceof CodecError) error = err;
      else throw err;
    }
  };
  return {
    push: (chunk) =>
      guarded(() => {
        reader.push(chunk);
        drain();
      }),
    end: () => {
      guarded(() => {
        reader.end();
        drain();
      });
      if (error) throw error;
      return builder.root;
    },
  };
}

/** Deflated data sets are stored as received; a copy is inflated and parsed at the end. */
function deflatedParser(): ChunkParser {
  const parts: Buffer[] = [];
  return {
    push: (chunk) => parts.push(Buffer.from(chunk)),
    end: () => decodeDataset(inflateRawSync(Buffer.concat(parts)), '1.2.840.10008.1.2.1'),
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

/** Required UIDs present and valid, and the data set is what the request announced (PS3.4 B.2.3). */
function validate(ds: Dataset, ctx: IngestContext): IngestResult | undefined {
  const uids: [string, number][] = [
    ['SOP Class UID', Tag.SOPClassUID],
    ['SOP Instance UID', Tag.SOPInstanceUID],
    ['Study Instance UID', Tag.StudyInstanceUID],
    ['Series Instance UID', Tag.SeriesInstanceUID],
  ];
  for (const [name, t] of uids) {
    const v = ds.string(t);
    if (!v)
      return {
        status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
        comment: `${name} (${tagToHex(t)}) is missing`,
      };
    if (!isValidUid(v))
      return {
        status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
        comment: `${name} (${tagToHex(t)}) is not a valid UID`,
      };
  }
  const expected = ctx.expected ?? {};
  if (expected.sopClassUid && ds.string(Tag.SOPClassUID) !== expected.sopClassUid) {
    return {
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: 'SOP Class UID of the data set differs from the request',
    };
  }
  if (expected.sopInstanceUid && ds.string(Tag.SOPInstanceUID) !== expected.sopInstanceUid) {
    return {
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: 'SOP Instance UID of the data set differs from the request',
    };
  }
  if (expected.studyInstanceUid && ds.string(Tag.StudyInstanceUID) !== expected.studyInstanceUid) {
    return {
      status: INGEST_STATUS.DataSetDoesNotMatchSOPClass,
      comment: `Study Instance UID (0020,000D) ${ds.string(Tag.StudyInstanceUID)} is not the study of the request`,
    };
  }
  return undefined;
}

/** Byte ranges of each frame in the blob: [offset, length] per frame, or per fragment of each frame. */
function frameOffsetsOf(ds: Dataset): string | undefined {
  const pixel = ds.get(PixelDataTag);
  if (!pixel) return undefined;
  try {
    if (pixel.kind === 'encapsulated') {
      const frames = frameFragments(ds, pixel);
      return JSON.stringify(
        frames.map((indexes) => indexes.map((i) => [pixel.fragments[i]!.offset, pixel.fragments[i]!.length])),
      );
    }
    const offset = pixel.kind === 'bulk' ? pixel.bulk.offset : undefined;
    const length =
      pixel.kind === 'bulk' ? pixel.bulk.length : pixel.kind === 'value' ? pixel.bytes.length : 0;
    if (offset === undefined) return undefined;
    return JSON.stringify(nativeFrames(ds, length).map((f) => [offset + f.offset, f.length]));
  } catch {
    // Frames that cannot be located at ingest are located at retrieval by parsing.
    return undefined;
  }
}

function str(ds: Dataset, t: number): string | undefined {
  try {
    const v = ds.string(t);
    return v === undefined || v === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

/** Every value, joined with DICOM's backslash (multi-valued strings as the index keeps them). */
function all(ds: Dataset, t: number): string | undefined {
  try {
    const v = ds.strings(t).join('\\');
    return v.replace(/\\+$/u, '') === '' ? undefined : v;
  } catch {
    return undefined;
  }
}

function num(ds: Dataset, t: number): number | undefined {
  try {
    const n = ds.number(t);
    return n === undefined || Number.isNaN(n) ? undefined : n;
  } catch {
    return undefined;
  }
}

/** BulkDataURI placeholders of the metadata document: `bulk/<tag>[/<item>/<tag>...]`, resolved by the web layer. */
function bulkPlaceholder(_el: Element, path: ElementPath): string {
  return `bulk/${path.map((p, i) => (i % 2 === 0 ? tagToHex(p) : String(p))).join('/')}`;
}

function recordOf(
  ds: Dataset,
  stored: {
    blobKey: string;
    size: number;
    checksum: string;
    transferSyntaxUid: string;
    source: IngestSource;
    frameOffsets: string | undefined;
    datasetOffset: number;
    /** Kept as they were (a record rebuilt from a stored instance, e.g. by a migration). */
    receivedAt?: string;
    metadata?: string;
  },
): InstanceRecord {
  const requestAttributes = ds.items(Tag.RequestAttributesSequence).map((item) => ({
    RequestedProcedureID: str(item, Tag.RequestedProcedureID),
    ScheduledProcedureStepID: str(item, Tag.ScheduledProcedureStepID),
  }));
  const metadata =
    stored.metadata ??
    JSON.stringify(
      datasetToJson(ds, { bulkDataUri: bulkPlaceholder, bulkThreshold: METADATA_BULK_THRESHOLD }),
    );
  return {
    patient: {
      patientId: str(ds, Tag.PatientID) ?? '',
      ...opt('patientName', str(ds, Tag.PatientName)),
      ...opt('birthDate', str(ds, Tag.PatientBirthDate)),
      ...opt('sex', str(ds, Tag.PatientSex)),
      ...opt('issuerOfPatientId', str(ds, Tag.IssuerOfPatientID)),
      ...opt('birthTime', str(ds, Tag.PatientBirthTime)),
      ...opt('otherPatientIds', all(ds, Tag.OtherPatientIDs)),
      ...opt('ethnicGroup', str(ds, Tag.EthnicGroup)),
      ...opt('patientComments', str(ds, Tag.PatientComments)),
    },
    study: {
      studyInstanceUid: ds.string(Tag.StudyInstanceUID)!,
      ...opt('studyDate', str(ds, Tag.StudyDate)),
      ...opt('studyTime', str(ds, Tag.StudyTime)),
      ...opt('accessionNumber', str(ds, Tag.AccessionNumber)),
      ...opt('studyId', str(ds, Tag.StudyID)),
      ...opt('studyDescription', str(ds, Tag.StudyDescription)),
      ...opt('referringPhysicianName', str(ds, Tag.ReferringPhysicianName)),
      ...opt(
        'issuerOfAccessionNumber',
        str(ds.items(Tag.IssuerOfAccessionNumberSequence)[0] ?? new Dataset(), Tag.LocalNamespaceEntityID),
      ),
      ...opt('nameOfPhysiciansReadingStudy', all(ds, Tag.NameOfPhysiciansReadingStudy)),
      ...opt('admittingDiagnosesDescription', all(ds, Tag.AdmittingDiagnosesDescription)),
      ...opt('otherStudyNumbers', all(ds, Tag.OtherStudyNumbers)),
      ...opt('timezoneOffsetFromUtc', str(ds, Tag.TimezoneOffsetFromUTC)),
      ...opt('patientAge', str(ds, Tag.PatientAge)),
      ...opt('patientSize', str(ds, Tag.PatientSize)),
      ...opt('patientWeight', str(ds, Tag.PatientWeight)),
      ...opt('occupation', str(ds, Tag.Occupation)),
      ...opt('additionalPatientHistory', str(ds, Tag.AdditionalPatientHistory)),
    },
    series: {
      seriesInstanceUid: ds.string(Tag.SeriesInstanceUID)!,
      ...opt('modality', str(ds, Tag.Modality)),
      ...opt('seriesNumber', num(ds, Tag.SeriesNumber)),
      ...opt('seriesDescription', str(ds, Tag.SeriesDescription)),
      ...opt('seriesDate', str(ds, Tag.SeriesDate)),
      ...opt('seriesTime', str(ds, Tag.SeriesTime)),
      ...opt('bodyPartExamined', str(ds, Tag.BodyPartExamined)),
      ...opt('laterality', str(ds, Tag.Laterality)),
      ...opt('protocolName', str(ds, Tag.ProtocolName)),
      ...opt('institutionName', str(ds, Tag.InstitutionName)),
      ...opt('stationName', str(ds, Tag.StationName)),
      ...opt('performedProcedureStepStartDate', str(ds, Tag.PerformedProcedureStepStartDate)),
      ...opt('performedProcedureStepStartTime', str(ds, Tag.PerformedProcedureStepStartTime)),
      ...(requestAttributes.length ? { requestAttributes: JSON.stringify(requestAttributes) } : {}),
    },
    instance: {
      sopInstanceUid: ds.string(Tag.SOPInstanceUID)!,
      sopClassUid: ds.string(Tag.SOPClassUID)!,
      ...opt('instanceNumber', num(ds, Tag.InstanceNumber)),
      transferSyntaxUid: stored.transferSyntaxUid,
      ...opt('numberOfFrames', num(ds, Tag.NumberOfFrames)),
      ...opt('rows', num(ds, Tag.Rows)),
      ...opt('columns', num(ds, Tag.Columns)),
      ...opt('bitsAllocated', num(ds, Tag.BitsAllocated)),
      ...opt('contentDate', str(ds, Tag.ContentDate)),
      ...opt('contentTime', str(ds, Tag.ContentTime)),
      blobKey: stored.blobKey,
      size: stored.size,
      checksum: stored.checksum,
      receivedAt: stored.receivedAt ?? new Date().toISOString(),
      ...opt('sourceAETitle', stored.source.aeTitle),
      ...opt('sourceAddress', stored.source.address),
      metadata,
      ...opt('frameOffsets', stored.frameOffsets),
      ...opt('characterSet', ds.strings(Tag.SpecificCharacterSet).join('\\') || undefined),
    },
  };
}

function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}
