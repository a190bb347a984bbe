import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { part10Header } from '../codec/index.ts';
import { isValidUid } from '../core/index.ts';
import { type HandlerResult, type IncomingRequest, STATUS, StatusError } from '../dimse/index.ts';

const MAX_WRITES_IN_FLIGHT = 16;

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
    const writes = new Set<Promise<unknown>>();
    try {
      fh = await open(temp, 'w');
      const handle = fh;
      // Positioned writes are issued as chunks arrive, without waiting for each other: the disk work
      // overlaps the network transfer (a bounded number in flight for backpressure).
      let position = 0;
      const write = async (chunk: Buffer): Promise<void> => {
        const at = position;
        position += chunk.length;
        const p = handle.write(chunk, 0, chunk.length, at);
        writes.add(p);
        void p.finally(() => writes.delete(p)).catch(() => undefined);
        if (writes.size >= MAX_WRITES_IN_FLIGHT) await Promise.race(writes);
      };
      await write(
        part10Header({
          sopClassUid,
          sopInstanceUid,
          transferSyntaxUid: context.transferSyntax,
          sourceAETitle: association.info.callingAETitle,
        }),
      );
      for await (const chunk of dataset) await write(chunk as Buffer);
      await Promise.all(writes);
      if (options.fsync !== false) await handle.sync();
      await rename(temp, final);
      // The name is published and durable; closing the handle need not delay the answer.
      void handle.close().catch(() => undefined);
      fh = undefined;
      return { status: STATUS.Success };
    } catch (err) {
      await Promise.allSettled(writes);
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
