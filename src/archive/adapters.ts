/**
 * Openers of the scale-out adapters, loaded on first use: the PostgreSQL driver and the AWS SDK stay
 * off the start-up path of an embedded (SQLite + folder) archive.
 */
import type { BlobStore, Index } from './ports.ts';

/** A PostgreSQL index for a `postgres://` URL (see index-postgres.ts). */
export async function openPostgresIndex(
  url: string,
  options: { poolSize?: number; lockTimeoutMs?: number } = {},
): Promise<Index> {
  const { PostgresIndex } = await import('./index-postgres.ts');
  return PostgresIndex.open(url, options);
}

/** An S3 blob store for an `s3://bucket/prefix` URL, endpoint and credentials from the environment (see blob-s3.ts). */
export async function openS3BlobStore(url: string): Promise<BlobStore> {
  const { S3BlobStore } = await import('./blob-s3.ts');
  return S3BlobStore.fromUrl(url);
}
