import cluster, { type Address, type Worker } from 'node:cluster';
import { resolve } from 'node:path';
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
  workers: string;
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
    .option(
      '--workers <n>',
      'processes receiving at once on the one port, each association served by one of them (as storescp --fork; default 1)',
      '1',
    )
    .action(async (p: string, o: ReceiveOptions) => {
      try {
        const workers = Number(o.workers);
        if (!Number.isInteger(workers) || workers < 1 || workers > 64)
          throw new Error(`--workers ${o.workers}: expected an integer from 1 to 64`);
        if (workers > 1 && cluster.isPrimary) await superviseWorkers(workers, o);
        else await receive(p, o);
      } catch (err) {
        fail(err);
      }
    });
}

/** What a receiver tells when it stops (a worker to its primary, over the IPC channel). */
interface Counts {
  readonly received: number;
  readonly failed: number;
}

function summary(c: Counts): string {
  return `tessera receive: ${c.received} instance(s) written, ${c.failed} refused or failed\n`;
}

/**
 * One receiving process: the DIMSE server with the folder store. Alone, it prints where it listens and,
 * on SIGINT/SIGTERM, lets associations in progress finish (up to 10 s), prints its summary and exits
 * (a second signal exits at once, 1). As a worker of `--workers`, its primary does the talking: it
 * reports where it listens through the cluster and its counts before it exits, and stops on the
 * primary's "stop" message (a terminal's Ctrl-C, sent to the whole process group, is the primary's).
 */
async function receive(p: string, o: ReceiveOptions): Promise<void> {
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
  const worker = cluster.isWorker;
  if (!worker) process.stdout.write(listening(o, server.port));
  let stopping = false;
  const stop = (): void => {
    if (stopping) {
      // A second signal ends a lone receiver at once; a worker is told twice when the whole process
      // group gets the signal its primary passes on.
      if (!worker) process.exit(1);
      return;
    }
    stopping = true;
    void server.close(10_000).then(() => {
      if (worker) process.send?.({ received, failed } satisfies Counts, () => process.exit(0));
      else {
        process.stdout.write(summary({ received, failed }));
        process.exit(0);
      }
    });
  };
  if (worker) {
    process.on('SIGINT', () => undefined);
    process.on('message', (m) => {
      if (m === 'stop') stop();
    });
  } else process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function listening(o: ReceiveOptions, boundPort: number, workers = 1): string {
  const out = resolve(o.out);
  return `tessera receive: ${o.aeTitle} listening on ${o.host}:${boundPort}, writing to ${out}${o.fsync ? '' : ' (no fsync)'}${workers > 1 ? `, ${workers} worker processes` : ''}\n`;
}

/**
 * `--workers N`: N processes (node:cluster) listen on the one port; the primary hands each new
 * connection to one of them in turn, so associations are received in parallel on several cores, as
 * storescp --fork does with a process per association. The primary only supervises: it prints where
 * they listen, replaces a worker that dies, and on SIGINT/SIGTERM has them stop and adds up their counts.
 */
async function superviseWorkers(n: number, o: ReceiveOptions): Promise<void> {
  const totals = { received: 0, failed: 0 };
  let stopping = false;
  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('message', (m: Counts) => {
      totals.received += m.received;
      totals.failed += m.failed;
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(
        `tessera receive: worker ${w.process.pid} ended (${signal ?? code}); starting another\n`,
      );
      fork();
    });
    return w;
  };
  const started = Array.from({ length: n }, fork);
  // Every worker listens on the same port (with port 0, the first one's: the cluster shares it).
  const ports = await Promise.all(
    started.map(
      (w) => new Promise<number>((ok) => w.once('listening', (address: Address) => ok(address.port))),
    ),
  );
  process.stdout.write(listening(o, ports[0]!, n));
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    void Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((done) => {
            w.once('exit', () => done());
            w.send('stop');
          }),
      ),
    ).then(() => {
      process.stdout.write(summary(totals));
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
