/**
 * The ports of the archive: a blob store for instance bytes and an index for the patient / study /
 * series / instance model. The embedded adapters are `FsBlobStore` (a folder) and `SqliteIndex`;
 * the scale-out issue implements the same interfaces for S3 and PostgreSQL, so callers (ingest,
 * query, retrieve, web) only ever see these types.
 */
import type { Readable } from 'node:stream';

/** One blob being written: a temp object that becomes visible only at `commit`. */
export interface BlobWriter {
  /** Where the temp bytes live, for adapters that have a path (diagnostics only). */
  readonly tempPath?: string;
  /**
   * Appends a chunk. Await it for backpressure; calls may also be queued without awaiting
   * (they are written in call order). The chunk is copied: the caller may reuse it once the
   * promise resolves. Disk full rejects with `ERR_ARCHIVE_DISK_FULL`.
   */
  write(chunk: Buffer): Promise<void>;
  /** Bytes accepted by `write` so far. */
  readonly size: number;
  /**
   * Makes the bytes durable (fsync) and atomically publishes them under `key`, replacing an
   * existing blob of that key. After it resolves the blob survives a crash; if it rejects, the
   * temp data is discarded and nothing is published.
   */
  commit(key: string): Promise<void>;
  /** Discards the temp data. Idempotent; a no-op after a successful commit. */
  abort(): Promise<void>;
}

export interface ByteRange {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

export interface BlobStore {
  /** A new temp blob. */
  create(): Promise<BlobWriter>;
  /**
   * The bytes of a blob, or of `range` of it. A missing blob makes the stream error with
   * `ERR_ARCHIVE_BLOB_NOT_FOUND`.
   */
  read(key: string, range?: ByteRange): NodeJS.ReadableStream | Readable;
  /** `length` bytes from `start`; `ERR_ARCHIVE_BLOB_NOT_FOUND`, or `ERR_ARCHIVE_BLOB_RANGE` past the end. */
  readBytes(key: string, start: number, length: number): Promise<Buffer>;
  /** Size in bytes, or undefined when there is no such blob. */
  size(key: string): Promise<number | undefined>;
  exists(key: string): Promise<boolean>;
  /** Removes a blob; deleting a missing blob is not an error. */
  delete(key: string): Promise<void>;
  /** Removes temp blobs left by a crash (call at start-up); returns how many. */
  cleanupTemps(): Promise<number>;
  /** Bytes used and free on the volume (statfs). */
  usage(): Promise<{ used: number; free: number }>;
}

/**
 * What ingest hands the index for one instance. All strings are already decoded and trimmed;
 * a property is absent (not an empty string) when the attribute is absent or empty. Multi-valued
 * strings keep DICOM's backslash separator. Dates are DA (`YYYYMMDD`), times TM.
 */
export interface InstanceRecord {
  patient: {
    /** PatientID (0010,0020); '' when absent or empty (type 2). See the patient identity rule in index-sqlite.ts. */
    patientId: string;
    patientName?: string;
    birthDate?: string;
    birthTime?: string;
    sex?: string;
    issuerOfPatientId?: string;
    otherPatientIds?: string;
    ethnicGroup?: string;
    patientComments?: string;
  };
  /** Study level: PS3.18 Table 10.6.1-5 and the study keys of PS3.4 §C.6.2.1.2 (Study Root). */
  study: {
    studyInstanceUid: string;
    studyDate?: string;
    studyTime?: string;
    accessionNumber?: string;
    /** LocalNamespaceEntityID of IssuerOfAccessionNumberSequence, when present. */
    issuerOfAccessionNumber?: string;
    studyId?: string;
    studyDescription?: string;
    referringPhysicianName?: string;
    nameOfPhysiciansReadingStudy?: string;
    admittingDiagnosesDescription?: string;
    otherStudyNumbers?: string;
    timezoneOffsetFromUtc?: string;
    patientAge?: string;
    patientSize?: string;
    patientWeight?: string;
    occupation?: string;
    additionalPatientHistory?: string;
  };
  series: {
    seriesInstanceUid: string;
    modality?: string;
    seriesNumber?: number;
    seriesDescription?: string;
    seriesDate?: string;
    seriesTime?: string;
    bodyPartExamined?: string;
    laterality?: string;
    protocolName?: string;
    institutionName?: string;
    stationName?: string;
    performedProcedureStepStartDate?: string;
    performedProcedureStepStartTime?: string;
    /** JSON of RequestAttributesSequence items' ScheduledProcedureStepID / RequestedProcedureID. */
    requestAttributes?: string;
  };
  instance: {
    sopInstanceUid: string;
    sopClassUid: string;
    instanceNumber?: number;
    transferSyntaxUid: string;
    numberOfFrames?: number;
    rows?: number;
    columns?: number;
    bitsAllocated?: number;
    contentDate?: string;
    contentTime?: string;
    blobKey: string;
    size: number;
    /** sha256 hex of the data set bytes as received (not of the File Meta Tessera put in front). */
    checksum: string;
    /** ISO 8601. */
    receivedAt: string;
    sourceAETitle?: string;
    sourceAddress?: string;
    /** DICOM JSON document (PS3.18 Annex F) without bulk data. */
    metadata: string;
    /** JSON array of [offset, length] per frame, or of fragment lists. */
    frameOffsets?: string;
    characterSet?: string;
  };
}

export type DuplicatePolicy = 'reject' | 'accept-if-identical' | 'overwrite';

/**
 * The result of committing one record. Which blob the caller then deletes:
 * - `stored`: none.
 * - `identical`, `duplicate-rejected`, `conflict`: the record's blob, unless it is
 *   `existingBlobKey` (the index still points at that one).
 * - `replaced`: `oldBlobKey`, unless it is the record's blob key.
 */
export type CommitOutcome =
  | { kind: 'stored' }
  | { kind: 'identical'; existingBlobKey: string }
  | { kind: 'replaced'; oldBlobKey: string }
  | { kind: 'duplicate-rejected'; existingChecksum: string; existingBlobKey: string }
  | { kind: 'conflict'; existingChecksum: string; existingBlobKey: string };

export interface CommitItem {
  readonly record: InstanceRecord;
  readonly policy: DuplicatePolicy;
}

export type IndexedInstance = InstanceRecord['instance'] & {
  studyInstanceUid: string;
  seriesInstanceUid: string;
};

export interface IndexCounts {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  /** Sum of the instances' sizes. */
  bytes: number;
}

/** A value bound to a placeholder of `Index.select`. */
export type SqlValue = string | number | null;

/**
 * One piece of a wildcard pattern (PS3.4 C.2.2.2.4): `'*'` any run of characters (maybe none), `'?'`
 * exactly one character, or literal text (which a dialect escapes: `%`, `_`, `\` for LIKE, `*`, `?`,
 * `[`, `]` for GLOB).
 */
export type PatternToken = '*' | '?' | { readonly literal: string };

/**
 * What the query engine (query.ts) needs to know of an SQL dialect to write its statements; the
 * schema (table and column names) is the same in every adapter. SQLite's and PostgreSQL's are in
 * query.ts (`SQLITE_DIALECT`, `POSTGRES_DIALECT`).
 */
export interface SqlDialect {
  readonly name: string;
  /** The placeholder of the n-th parameter (1-based): `?` or `$n`. */
  placeholder(n: number): string;
  /** A case-sensitive wildcard match of `expr` against the placeholder `param`, whose value is `pattern(...)`. */
  like(expr: string, param: string): string;
  /** The parameter value of a wildcard pattern, literal parts escaped. */
  pattern(tokens: readonly PatternToken[]): string;
  /** `normalizePersonName(expr)` (keys.ts) in SQL, for PN columns that have no `*_norm` column. */
  personNameNorm(expr: string): string;
  /** A TM value as comparable text `HHMMSS.FFFFFF` (missing components zero, `:` of ACR-NEMA times dropped). */
  timeKey(expr: string): string;
  /** A TEXT column holding a DS value as a number, NULL when it is not one. */
  decimal(expr: string): string;
  /** A FROM item listing the items of a JSON array column, and how to read a string member of an item. */
  jsonArray(expr: string, alias: string): { readonly from: string; field(name: string): string };
}

export interface Index {
  /** The SQL dialect `select` takes (the query engine writes its statements in it). */
  readonly dialect: SqlDialect;
  /**
   * Runs one read-only statement (written in `dialect`, positional parameters) and returns all its
   * rows, keyed by column name. Callers page with LIMIT (the query engine reads keyset pages), so a
   * result is small; no cursor stays open between calls. Writing statements are refused
   * (`ERR_ARCHIVE_INDEX`).
   */
  select(sql: string, params: readonly SqlValue[]): Promise<Record<string, unknown>[]>;
  /**
   * Writes a batch of instances in ONE transaction (group commit): per record, applies its
   * duplicate policy (decided by the unique constraint on SOP Instance UID), upserts the patient /
   * study / series rows and updates the computed attributes incrementally. Returns one outcome per
   * record, in order. Records of one batch see each other (a second copy of a UID in the same batch
   * is a duplicate of the first). Throws (and writes nothing of the batch) on a database error.
   */
  commit(batch: readonly CommitItem[]): Promise<CommitOutcome[]>;
  /** The instance row; its study and series are the ones it is filed under. */
  instance(sopInstanceUid: string): Promise<IndexedInstance | undefined>;
  /** Every (sopInstanceUid, blobKey), for consistency checks after a crash. Safe to write while iterating. */
  allBlobKeys(): AsyncIterable<{ sopInstanceUid: string; blobKey: string }>;
  counts(): Promise<IndexCounts>;
  /**
   * The study row keyed by DICOM keyword (StudyInstanceUID, StudyDate, PatientName, ...) with the
   * computed attributes NumberOfStudyRelatedSeries/Instances, ModalitiesInStudy (string[]),
   * SOPClassesInStudy (string[]) and the study's patient's NumberOfPatientRelatedStudies/Series/
   * Instances. Absent attributes are absent keys.
   */
  study(studyInstanceUid: string): Promise<Record<string, unknown> | undefined>;
  /** The series row keyed by DICOM keyword, with StudyInstanceUID and NumberOfSeriesRelatedInstances. */
  series(seriesInstanceUid: string): Promise<Record<string, unknown> | undefined>;
  /** Removes an instance, keeps the counts exact and removes emptied series/study/patient rows. */
  deleteInstance(sopInstanceUid: string): Promise<{ blobKey: string } | undefined>;
  /** Index-internal consistency problems (computed counts that disagree with the rows); [] when sound. */
  verify(): Promise<string[]>;
  close(): Promise<void>;
}
