export { FsBlobStore } from './blob-fs.ts';
export { SqliteIndex } from './index-sqlite.ts';
export {
  INGEST_DEFAULTS,
  INGEST_STATUS,
  Ingest,
  type IngestContext,
  type IngestResult,
  type IngestSource,
} from './ingest.ts';
export { blobKeyFor, normalizePersonName } from './keys.ts';
export type {
  BlobStore,
  BlobWriter,
  CommitOutcome,
  DuplicatePolicy,
  Index,
  IndexCounts,
  IndexedInstance,
  InstanceRecord,
} from './ports.ts';
