import cluster, { type Address, type Worker } from 'node:cluster';
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { HandlerResult, IncomingRequest } from '../dimse/index.ts';
import { collect, port } from './net.ts';

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
        port(p, { listen: true });
        if (cluster.isPrimary) {
          // The folder is checked before anything listens: not at the first instance, refused then.
          const out = resolve(o.out);
          await mkdir(out, { recursive: true });
          await access(out, constants.W_OK);
          await superviseWorkers(workers, o);
        } else await receive(p, o);
      } catch (err) {
        fail(err);
      }
    });
}

/** What a worker tells its primary when it stops (over the IPC channel). */
interface Counts {
  readonly received: number;
  readonly failed: number;
}

/**
 * V8 settings of the receiving processes. A receiver's JavaScript heap stays near 10 MiB while
 * hundreds of MiB of socket chunks pass through it; with V8's small initial heap limits that outside
 * memory set off a full collection every ~25 instances of 0.5 MiB (39 per 1000, their concurrent
 * marking a quarter of the process's CPU). With a 64 MiB initial heap there were none: user CPU
 * 1.44 s -> 0.59 s and 579 -> 829 instances/s for 1000 instances, the same peak RSS (104 MiB). These
 * are command-line settings of V8, hence worker processes. The archive server showed no difference.
 */
const RECEIVER_V8_FLAGS = ['--initial-heap-size=64'];

/**
 * A receiving process (a cluster worker): the DIMSE server with the folder store. Its primary does the
 * talking: the worker reports where it listens through the cluster, stops on the primary's "stop"
 * message (a terminal's Ctrl-C reaches the whole process group; the primary's is the one that counts),
 * lets associations in progress finish (up to 10 s) and sends its counts before it exits.
 */
async function receive(p: string, o: ReceiveOptions): Promise<void> {
  // Stop handling first: a worker told to stop while still starting (not listening yet) just ends.
  let server: { close(graceMs?: number): Promise<void> } | undefined;
  let received = 0;
  let failed = 0;
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void (server?.close(10_000) ?? Promise.resolve()).then(() =>
      process.send?.({ received, failed } satisfies Counts, () => process.exit(0)),
    );
  };
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', stop);
  process.on('message', (m) => {
    if (m === 'stop') stop();
  });
  const { folderStore, startDimseServer } = await import('../scp/index.ts');
  const write = folderStore(resolve(o.out), { fsync: o.fsync });
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
  if (stopping) return;
  const started = await startDimseServer({
    host: o.host,
    port: port(p, { listen: true }),
    aeTitle: o.aeTitle,
    anyCalledAETitle: o.anyCalledAe === true,
    ...(o.callingAe ? { callingAETitles: o.callingAe } : {}),
    maxPduLength: Number(o.maxPdu),
    fsync: o.fsync,
    acceptUnknownSopClasses: o.acceptUnknownSopClasses === true,
    store,
  });
  server = started;
  // Told to stop while the server was starting: it closes now (stop's promise saw no server).
  if (stopping) void started.close(10_000);
}

/**
 * The `tessera receive` process: it starts N receiving processes (node:cluster, `--workers`, default 1)
 * that listen on the one port, and hands each new connection to one of them in turn, so associations
 * are received in parallel on several cores, as storescp --fork does with a process per association.
 * It only supervises: it prints where they listen, replaces a worker that dies (a worker that cannot
 * start ends it all, exit code 1), and on SIGINT/SIGTERM has them stop, adds up their counts, prints
 * them and exits 0 (a second signal exits at once, 1).
 */
async function superviseWorkers(n: number, o: ReceiveOptions): Promise<void> {
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...RECEIVER_V8_FLAGS] });
  const totals = { received: 0, failed: 0 };
  let stopping = false;
  let ready = false;
  const listening = new Set<Worker>();
  const fork = (): Worker => {
    const w = cluster.fork();
    w.once('listening', () => listening.add(w));
    w.on('message', (m: Counts) => {
      totals.received += m.received;
      totals.failed += m.failed;
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      // A worker that cannot start (port taken, folder not writable) has said why on stderr.
      if (!ready) process.exit(1);
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
  ready = true;
  process.stdout.write(
    `tessera receive: ${o.aeTitle} listening on ${o.host}:${ports[0]}, writing to ${resolve(o.out)}` +
      `${o.fsync ? '' : ' (no fsync)'}${n > 1 ? `, ${n} worker processes` : ''}\n`,
  );
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    void Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((done) => {
            if (w.isDead()) return done();
            w.once('exit', () => done());
            // A worker still starting may not listen for messages yet: a signal reaches it anyway (and
            // ends it at once if it has no handler yet). One that got the signal too (the whole process
            // group did) may be gone already.
            if (!listening.has(w)) w.process.kill('SIGTERM');
            else if (w.isConnected()) w.send('stop', () => undefined);
          }),
      ),
    ).then(() => {
      process.stdout.write(
        `tessera receive: ${totals.received} instance(s) written, ${totals.failed} refused or failed\n`,
      );
      process.exit(0);
    });
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
