import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import type { HandlerResult, IncomingRequest } from '../dimse/index.ts';

interface ReceiveOptions {
  out: string;
  aeTitle: string;
  anyCalledAe?: boolean;
  callingAe?: string[];
  host: string;
  maxPdu: string;
  fsync: boolean;
  acceptUnknownSopClasses?: boolean;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function port(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`"${text}" is not a TCP port`);
  return n;
}

/**
 * Keeps V8's young generation at its initial size. A process that only moves received bytes to disk
 * allocates little on the JavaScript heap and much outside it (socket chunks, PDUs): the young
 * generation then grows to its maximum, collections of it become rare, and the outside memory is
 * reclaimed by full collections instead, one every ~25 instances of 0.5 MiB. Measured with storescu
 * sending 1000 such instances to a receiver that discards them: 46-86 full collections and 1.9-2.4 s
 * of CPU, against none and 1.0 s with the young generation kept small. The archive (`serve`), whose
 * heap is larger, showed no difference, so it is left alone. The flag is read whenever the young
 * generation would grow, so setting it after start-up takes effect.
 */
function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}

/**
 * `tessera receive PORT`: a C-STORE SCP that writes what it receives as Part 10 files in a folder
 * (`<SOP Instance UID>.dcm`), as DCMTK's storescp does, without an index. Runs until SIGINT/SIGTERM,
 * then lets associations in progress finish (up to 10 s) and prints what it received.
 */
export function registerReceive(program: Command, fail: (err: unknown) => never): void {
  program
    .command('receive')
    .description(
      'receive instances with C-STORE into a folder, like storescp (files only, no index: for an archive, use serve)',
    )
    .argument('<port>')
    .option('--out <dir>', 'where received instances are written (SOP Instance UID.dcm)', '.')
    .option('--ae-title <title>', 'our AE title', 'TESSERA')
    .option('--any-called-ae', 'accept associations whatever called AE title they use')
    .option(
      '--calling-ae <title>',
      'accept associations only from this calling AE title (repeatable)',
      collect,
    )
    .option('--host <address>', 'address to listen on (loopback unless you open it up)', '127.0.0.1')
    .option('--max-pdu <bytes>', 'maximum PDU length we receive', '116794')
    .option(
      '--no-fsync',
      'answer a stored instance once the OS has it, without waiting for the disk (as storescp; survives a crash of tessera, not a power loss)',
    )
    .option('--accept-unknown-sop-classes', 'also store SOP classes the UID registry does not know')
    .action(async (p: string, o: ReceiveOptions) => {
      try {
        keepYoungGenerationSmall();
        const { folderStore, startDimseServer } = await import('../server/index.ts');
        const out = resolve(o.out);
        const write = folderStore(out, { fsync: o.fsync });
        let received = 0;
        let failed = 0;
        const store = async (rq: IncomingRequest): Promise<HandlerResult> => {
          try {
            const result = await write(rq);
            received++;
            return result;
          } catch (err) {
            failed++;
            throw err;
          }
        };
        const server = await startDimseServer({
          host: o.host,
          port: port(p),
          aeTitle: o.aeTitle,
          anyCalledAETitle: o.anyCalledAe === true,
          ...(o.callingAe ? { callingAETitles: o.callingAe } : {}),
          maxPduLength: Number(o.maxPdu),
          fsync: o.fsync,
          acceptUnknownSopClasses: o.acceptUnknownSopClasses === true,
          store,
        });
        process.stdout.write(
          `tessera receive: ${o.aeTitle} listening on ${o.host}:${server.port}, writing to ${out}${o.fsync ? '' : ' (no fsync)'}\n`,
        );
        let stopping = false;
        const stop = (): void => {
          if (stopping) process.exit(1);
          stopping = true;
          void server.close(10_000).then(() => {
            process.stdout.write(
              `tessera receive: ${received} instance(s) written, ${failed} refused or failed\n`,
            );
            process.exit(0);
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      } catch (err) {
        fail(err);
      }
    });
}
