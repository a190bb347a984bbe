export { openPostgresIndex, openS3BlobStore } from './adapters.ts';
export { FsBlobStore } from './blob-fs.ts';
export type { S3BlobStore, S3BlobStoreOptions } from './blob-s3.ts';
export type { PostgresIndex, PostgresIndexOptions } from './index-postgres.ts';
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
export { type ArchivePorts, type MigrateOptions, type MigrateProgress, migrateArchive } from './migrate.ts';
export type {
  BlobStore,
  BlobWriter,
  CommitItem,
  CommitOutcome,
  DuplicatePolicy,
  Index,
  IndexCounts,
  IndexedInstance,
  InstanceRecord,
  PatternToken,
  SqlDialect,
  SqlValue,
} from './ports.ts';
export {
  countInstances,
  POSTGRES_DIALECT,
  type PreparedQuery,
  type PreparedRetrieve,
  prepareQuery,
  prepareRetrieve,
  QUERY_DEFAULTS,
  QUERY_STATUS,
  QueryError,
  type QueryLevel,
  type QueryModel,
  type QueryOptions,
  type QueryPage,
  type QueryPlan,
  querySql,
  type RetrieveItem,
  type RetrieveOptions,
  retrieveSql,
  runQuery,
  SQLITE_DIALECT,
  selectInstances,
} from './query.ts';
export {
  canConvert,
  datasetIn,
  datasetOffset,
  deleteInstances,
  type InstanceBytes,
  storedDataset,
  WHOLE_READ_LIMIT,
} from './retrieve.ts';
