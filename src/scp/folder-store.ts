import { type BlobWriter, FsBlobStore } from '../archive/index.ts';
import { part10Header } from '../codec/index.ts';
import { isDicomError, isValidUid } from '../core/index.ts';
import { type HandlerResult, type IncomingRequest, STATUS, StatusError } from '../dimse/index.ts';

/** Bytes queued for the disk past which the handler waits for them before reading on. */
const WRITE_BACKLOG_BYTES = 4 * 1024 * 1024;

/** What the names of instances being received start with: hidden files, never `<UID>.dcm`. */
export const INCOMING_PREFIX = '.incoming-';

/**
 * A C-STORE handler that writes each instance as a Part 10 file `<SOP Instance UID>.dcm` in a folder,
 * as DCMTK's storescp does: File Meta generated from the command, then the data set bytes exactly as
 * received. The file is written through the archive's folder blob store: under a hidden temporary name
 * `.incoming-*` (one `writev` at a time per file, taking every chunk that arrived meanwhile; blocking
 * calls on this thread when there is no fsync),
 * fsynced with its folder (unless `fsync: false`, as storescp) and renamed, so a half-received
 * instance (an aborted association) never appears. The name is the validated SOP Instance UID, never
 * a raw client string. Temps are not swept at start (several receivers may share a folder): a
 * process killed mid-instance leaves its hidden temp, never a visible half file.
 */
export function folderStore(
  dir: string,
  options: { readonly fsync?: boolean } = {},
): (rq: IncomingRequest) => Promise<HandlerResult> {
  const blobs = new FsBlobStore(dir, {
    fsync: options.fsync !== false,
    folders: { blobs: dir, tmp: dir },
    tempPrefix: INCOMING_PREFIX,
    // Without fsync (storescp's durability), a receiver writes on its own thread: fewer wake-ups.
    inlineWrites: options.fsync === false,
  });
  return async ({ command, context, association, dataset }) => {
    const sopInstanceUid = command.affectedSopInstanceUid ?? '';
    const sopClassUid = command.affectedSopClassUid ?? '';
    if (!dataset) throw new StatusError(STATUS.CannotUnderstand, 'C-STORE-RQ without a data set');
    if (!isValidUid(sopInstanceUid) || !isValidUid(sopClassUid)) {
      throw new StatusError(STATUS.CannotUnderstand, 'invalid Affected SOP Class/Instance UID');
    }
    let writer: BlobWriter | undefined;
    try {
      writer = await blobs.create();
      const w = writer;
      // Writes are queued without waiting for each other (the writer keeps their order and batches
      // them), so the disk works while the next chunks arrive; past the backlog, we wait for it.
      let queued = w.write(
        part10Header({
          sopClassUid,
          sopInstanceUid,
          transferSyntaxUid: context.transferSyntax,
          sourceAETitle: association.info.callingAETitle,
        }),
      );
      queued.catch(() => undefined);
      let backlog = 0;
      for await (const chunk of dataset) {
        queued = w.write(chunk as Buffer);
        queued.catch(() => undefined);
        backlog += (chunk as Buffer).length;
        if (backlog >= WRITE_BACKLOG_BYTES) {
          await queued;
          backlog = 0;
        }
      }
      await queued;
      await w.commit(`${sopInstanceUid}.dcm`);
      return { status: STATUS.Success };
    } catch (err) {
      await writer?.abort().catch(() => undefined);
      if (err instanceof StatusError) throw err;
      if (isDicomError(err) && err.code === 'ERR_ARCHIVE_DISK_FULL')
        throw new StatusError(STATUS.OutOfResources, 'disk full', { cause: err });
      throw new StatusError(STATUS.OutOfResources, `cannot store: ${(err as Error).message}`, { cause: err });
    }
  };
}
