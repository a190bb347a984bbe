import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  type BlobStore,
  type DuplicatePolicy,
  FsBlobStore,
  type Index,
  Ingest,
  openPostgresIndex,
  openS3BlobStore,
  SqliteIndex,
} from '../archive/index.ts';
import { type HandlerResult, type IncomingRequest, StatusError } from '../dimse/index.ts';

/** The embedded archive: blobs in `<dataDir>/blobs`, the SQLite index in `<dataDir>/index.sqlite`. */
export interface EmbeddedArchive {
  readonly ingest: Ingest;
  readonly index: SqliteIndex;
  readonly blobs: FsBlobStore;
  /** Temporary blobs left by a crash and removed at start-up. */
  readonly cleanedTemps: number;
  close(): void;
}

/**
 * Opens (creating if needed) the embedded archive. `fsync: false` answers C-STORE once the instance is
 * with the OS (safe against a process crash, not a power failure), as DCMTK's storescp does.
 */
export async function openEmbeddedArchive(
  dataDir: string,
  options: { readonly fsync?: boolean } = {},
): Promise<EmbeddedArchive> {
  await mkdir(dataDir, { recursive: true });
  const fsync = options.fsync !== false;
  const blobs = new FsBlobStore(dataDir, { fsync });
  const cleanedTemps = await blobs.cleanupTemps();
  const index = SqliteIndex.open(join(dataDir, 'index.sqlite'), { synchronous: fsync ? 'POOLED' : 'NORMAL' });
  const ingest = new Ingest({ blobs, index });
  return { ingest, index, blobs, cleanedTemps, close: () => index.closeSync() };
}

/** An archive on any adapters: what the server composes the services from. */
export interface Archive {
  readonly ingest: Ingest;
  readonly index: Index;
  readonly blobs: BlobStore;
  readonly cleanedTemps: number;
  /** Where it lives, for logs: e.g. `sqlite:/data/index.sqlite`, `postgres://host/db`, `s3://bucket/prefix`. */
  readonly describe: { readonly index: string; readonly blobs: string };
  close(): Promise<void>;
}

export interface ArchiveLocation {
  /** The folder of the embedded defaults (index.sqlite, blobs/, tmp/). */
  readonly dataDir: string;
  /** `sqlite` (in dataDir, the default) or a `postgres://` / `postgresql://` URL. */
  readonly index?: string | undefined;
  /** A folder (default: dataDir) or an `s3://bucket/prefix` URL (endpoint and credentials from the environment). */
  readonly blobs?: string | undefined;
  readonly fsync?: boolean;
  /** PostgreSQL index: the longest wait for a lock, ms (default 30000; see index-postgres.ts). */
  readonly indexLockTimeoutMs?: number;
}

/** On a shared blob folder, temps last written longer ago than this are removed at start-up. */
export const SHARED_TEMP_GRACE_MS = 10 * 60 * 1000;

/** Whether an index location names PostgreSQL. */
export function isPostgresUrl(location: string | undefined): boolean {
  return location !== undefined && /^postgres(ql)?:\/\//u.test(location);
}

/**
 * Opens the archive the configuration names: SQLite or PostgreSQL for the index, a folder (the
 * embedded one, or a shared volume mounted on every node) or S3 for the blobs. Temp blobs a crash
 * left are removed first (on S3, only stale ones: other nodes may be uploading).
 */
export async function openArchive(location: ArchiveLocation): Promise<Archive> {
  await mkdir(location.dataDir, { recursive: true });
  const fsync = location.fsync !== false;
  let blobs: BlobStore;
  let blobsText: string;
  if (location.blobs?.startsWith('s3://')) {
    blobs = await openS3BlobStore(location.blobs);
    blobsText = location.blobs;
  } else {
    const folder = location.blobs ?? location.dataDir;
    await mkdir(folder, { recursive: true });
    // A folder of its own (--blobs) may be a volume several nodes share: at start-up only temps
    // nobody has written for a while are crash leftovers; the data dir's own are always ours.
    const shared = location.blobs !== undefined && resolve(location.blobs) !== resolve(location.dataDir);
    blobs = new FsBlobStore(folder, { fsync, ...(shared ? { tempGraceMs: SHARED_TEMP_GRACE_MS } : {}) });
    blobsText = folder;
  }
  const cleanedTemps = await blobs.cleanupTemps();
  let index: Index;
  let indexText: string;
  if (isPostgresUrl(location.index)) {
    index = await openPostgresIndex(
      location.index!,
      location.indexLockTimeoutMs === undefined ? {} : { lockTimeoutMs: location.indexLockTimeoutMs },
    );
    indexText = location.index!.replace(/\/\/([^:@/]+):[^@/]*@/u, '//$1:***@');
  } else {
    const path = join(location.dataDir, 'index.sqlite');
    index = SqliteIndex.open(path, { synchronous: fsync ? 'POOLED' : 'NORMAL' });
    indexText = `sqlite:${path}`;
  }
  const ingest = new Ingest({ blobs, index });
  return {
    ingest,
    index,
    blobs,
    cleanedTemps,
    describe: { index: indexText, blobs: blobsText },
    close: () => index.close(),
  };
}

/**
 * The C-STORE handler of the archive: the data set goes through the one ingest pipeline, and the
 * status is answered only once the instance is durable (PS3.4 B.2.3 statuses).
 */
export function archiveStore(
  ingest: Ingest,
  policyFor: (callingAETitle: string) => DuplicatePolicy,
): (rq: IncomingRequest) => Promise<HandlerResult> {
  return async ({ command, context, association, dataset }) => {
    if (!dataset) throw new StatusError(0xc000, 'C-STORE-RQ without a data set');
    const calling = association.info.callingAETitle;
    const result = await ingest.ingest(dataset, {
      transferSyntaxUid: context.transferSyntax,
      expected: { sopClassUid: command.affectedSopClassUid, sopInstanceUid: command.affectedSopInstanceUid },
      source: { aeTitle: calling, address: association.remoteAddress },
      policy: policyFor(calling),
    });
    return {
      status: result.status,
      ...(result.comment && result.status !== 0 ? { errorComment: result.comment } : {}),
    };
  };
}
