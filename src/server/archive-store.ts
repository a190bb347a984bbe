import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type DuplicatePolicy, FsBlobStore, Ingest, SqliteIndex } from '../archive/index.ts';
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
  const index = SqliteIndex.open(join(dataDir, 'index.sqlite'), { synchronous: fsync ? 'FULL' : 'NORMAL' });
  const ingest = new Ingest({ blobs, index });
  return { ingest, index, blobs, cleanedTemps, close: () => index.closeSync() };
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
