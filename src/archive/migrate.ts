/**
 * Moving an archive from one index and blob store to another (`tessera migrate`): e.g. the embedded
 * SQLite + folder to PostgreSQL + S3. Works through the ports only, so any pair of adapters.
 *
 * Each instance: its blob is copied when the target store does not have it yet (same key, streamed),
 * then its index record, rebuilt from the stored metadata document with ingest's own rules, is
 * committed in batches under the `accept-if-identical` policy. A run that stops half way (crash,
 * Ctrl-C) is resumed by running it again: blobs already there are not copied again, and records
 * already there are "identical" outcomes. The source is only read.
 */
import { recordFromStored } from './ingest.ts';
import type { BlobStore, CommitItem, Index } from './ports.ts';

export interface ArchivePorts {
  readonly index: Index;
  readonly blobs: BlobStore;
}

export interface MigrateProgress {
  /** Instances in the source. */
  readonly total: number;
  /** Instances handled so far (migrated, already there, or failed). */
  readonly done: number;
  /** New index records written in the target. */
  readonly migrated: number;
  /** Records the target already had, identical. */
  readonly alreadyThere: number;
  readonly blobsCopied: number;
  readonly bytesCopied: number;
  /** SOP Instance UIDs that could not be migrated, with why. */
  readonly failures: readonly { sopInstanceUid: string; reason: string }[];
}

export interface MigrateOptions {
  /** Copy the blobs too (false when both sides share one blob store). */
  readonly copyBlobs: boolean;
  /** Records per index transaction (default 200). */
  readonly batchSize?: number;
  readonly onProgress?: (progress: MigrateProgress) => void;
  readonly signal?: AbortSignal;
}

export async function migrateArchive(
  from: ArchivePorts,
  to: ArchivePorts,
  options: MigrateOptions,
): Promise<MigrateProgress> {
  const batchSize = options.batchSize ?? 200;
  const total = (await from.index.counts()).instances;
  let done = 0;
  let migrated = 0;
  let alreadyThere = 0;
  let blobsCopied = 0;
  let bytesCopied = 0;
  const failures: { sopInstanceUid: string; reason: string }[] = [];
  const progress = (): MigrateProgress => ({
    total,
    done,
    migrated,
    alreadyThere,
    blobsCopied,
    bytesCopied,
    failures,
  });
  let batch: CommitItem[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const outcomes = await to.index.commit(batch);
    outcomes.forEach((outcome, i) => {
      const uid = batch[i]!.record.instance.sopInstanceUid;
      if (outcome.kind === 'stored') migrated++;
      else if (outcome.kind === 'identical') alreadyThere++;
      else
        failures.push({
          sopInstanceUid: uid,
          reason: `the target holds different content (${outcome.kind})`,
        });
    });
    done += batch.length;
    batch = [];
    options.onProgress?.(progress());
  };
  for await (const { sopInstanceUid, blobKey } of from.index.allBlobKeys()) {
    if (options.signal?.aborted) break;
    try {
      const row = await from.index.instance(sopInstanceUid);
      if (!row) continue; // deleted meanwhile
      if (options.copyBlobs && (await to.blobs.size(blobKey)) !== row.size) {
        const writer = await to.blobs.create();
        try {
          for await (const chunk of from.blobs.read(blobKey)) await writer.write(chunk as Buffer);
          await writer.commit(blobKey);
        } catch (err) {
          await writer.abort().catch(() => undefined);
          throw err;
        }
        blobsCopied++;
        bytesCopied += row.size;
      }
      batch.push({ record: recordFromStored(row), policy: 'accept-if-identical' });
    } catch (err) {
      failures.push({ sopInstanceUid, reason: (err as Error).message });
      done++;
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return progress();
}
