import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { part10Header } from '../codec/index.ts';
import { isValidUid } from '../core/index.ts';
import { type HandlerResult, type IncomingRequest, STATUS, StatusError } from '../dimse/index.ts';

/**
 * A C-STORE handler that writes each instance as a Part 10 file in a folder, as DCMTK's storescp
 * does: File Meta generated from the command, then the data set bytes exactly as received. The file
 * is written under a temporary name, fsynced and renamed, so a half-received instance (an aborted
 * association) never appears; its name is the validated SOP Instance UID, never a raw client string.
 */
export function folderStore(dir: string): (rq: IncomingRequest) => Promise<HandlerResult> {
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
    try {
      const out = createWriteStream(temp);
      out.write(
        part10Header({
          sopClassUid,
          sopInstanceUid,
          transferSyntaxUid: context.transferSyntax,
          sourceAETitle: association.info.callingAETitle,
        }),
      );
      await pipeline(dataset, out);
      const fh = await open(temp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, final);
      return { status: STATUS.Success };
    } catch (err) {
      await rm(temp, { force: true });
      if (err instanceof StatusError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT')
        throw new StatusError(STATUS.OutOfResources, 'disk full', { cause: err });
      throw new StatusError(STATUS.OutOfResources, `cannot store: ${(err as Error).message}`, { cause: err });
    }
  };
}
