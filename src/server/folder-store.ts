import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { part10Header } from '../codec/index.ts';
import { isValidUid } from '../core/index.ts';
import { type HandlerResult, type IncomingRequest, STATUS, StatusError } from '../dimse/index.ts';

const WRITE_BATCH = 1024 * 1024;

/**
 * A C-STORE handler that writes each instance as a Part 10 file in a folder, as DCMTK's storescp
 * does: File Meta generated from the command, then the data set bytes exactly as received. The file
 * is written under a temporary name, fsynced (unless `fsync: false`) and renamed, so a half-received instance (an aborted
 * association) never appears; its name is the validated SOP Instance UID, never a raw client string.
 */
export function folderStore(
  dir: string,
  options: { readonly fsync?: boolean } = {},
): (rq: IncomingRequest) => Promise<HandlerResult> {
  let ready: Promise<unknown> | undefined;
  return async ({ command, context, association, dataset }) => {
    ready ??= mkdir(dir, { recursive: true });
    await ready;
    const sopInstanceUid = command.affectedSopInstanceUid ?? '';
    const sopClassUid = command.affectedSopClassUid ?? '';
    if (!dataset) throw new StatusError(STATUS.CannotUnderstand, 'C-STORE-RQ without a data set');
    if (!isValidUid(sopInstanceUid) || !isValidUid(sopClassUid)) {
      throw new StatusError(STATUS.CannotUnderstand, 'invalid Affected SOP Class/Instance UID');
    }
    const temp = join(dir, `.incoming-${randomBytes(8).toString('hex')}`);
    const final = join(dir, `${sopInstanceUid}.dcm`);
    let fh: FileHandle | undefined;
    try {
      fh = await open(temp, 'w');
      // Chunks are gathered and written a megabyte at a time (one writev), so a 0.5 MB instance costs
      // a handful of file system calls rather than one per PDU.
      let pending: Buffer[] = [
        part10Header({
          sopClassUid,
          sopInstanceUid,
          transferSyntaxUid: context.transferSyntax,
          sourceAETitle: association.info.callingAETitle,
        }),
      ];
      let pendingBytes = pending[0]!.length;
      for await (const chunk of dataset) {
        pending.push(chunk as Buffer);
        pendingBytes += (chunk as Buffer).length;
        if (pendingBytes >= WRITE_BATCH) {
          await fh.writev(pending);
          pending = [];
          pendingBytes = 0;
        }
      }
      if (pending.length) await fh.writev(pending);
      if (options.fsync !== false) await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(temp, final);
      return { status: STATUS.Success };
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await rm(temp, { force: true });
      if (err instanceof StatusError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT')
        throw new StatusError(STATUS.OutOfResources, 'disk full', { cause: err });
      throw new StatusError(STATUS.OutOfResources, `cannot store: ${(err as Error).message}`, { cause: err });
    }
  };
}
