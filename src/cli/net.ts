import type { Command } from 'commander';
import {
  Dimse,
  describeFiles,
  formatStatus,
  listFiles,
  type StoreOutcome,
  statusCategory,
  storeFiles,
  VERIFICATION_SOP_CLASS,
} from '../dimse/index.ts';
import { terminalBar } from './progress.ts';

/** Options shared by the SCU commands (DCMTK's echoscu/storescu names where they exist). */
export interface ScuOptions {
  aet: string;
  aec: string;
  maxPdu: string;
  timeout: string;
  user?: string;
  password?: string;
}

export function scuOptions(cmd: Command): Command {
  return cmd
    .option('--aet <title>', 'calling AE title', 'TESSERA')
    .option('--aec <title>', 'called AE title', 'ANY-SCP')
    .option('--max-pdu <bytes>', 'maximum PDU length we receive', '116794')
    .option('--timeout <seconds>', 'association and connect timeout', '30')
    .option('--user <name>', 'user identity negotiation: username (PS3.7 D.3.3.7)')
    .option('--password <passcode>', 'user identity negotiation: passcode (with --user)');
}

/** A TCP port from the command line; `listen`: 0 too (a free port, for a server to report). */
export function port(text: string, options: { listen?: boolean } = {}): number {
  const n = Number(text);
  const min = options.listen ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > 65535) throw new Error(`"${text}" is not a TCP port`);
  return n;
}

/** Commander's reducer for a repeatable option: every value, in order. */
export const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

export function common(host: string, p: string, o: ScuOptions) {
  return {
    host,
    port: port(p),
    callingAETitle: o.aet,
    calledAETitle: o.aec,
    maxPduLength: Number(o.maxPdu),
    timeoutMs: Number(o.timeout) * 1000,
    ...(o.user
      ? {
          userIdentity: {
            type: o.password ? 2 : 1,
            positiveResponseRequested: false,
            primaryField: Buffer.from(o.user, 'utf8'),
            secondaryField: Buffer.from(o.password ?? '', 'utf8'),
          },
        }
      : {}),
  };
}

export function registerNetworkCommands(program: Command, fail: (err: unknown) => never): void {
  scuOptions(
    program
      .command('echo')
      .description('verify a DICOM peer with C-ECHO, like echoscu')
      .argument('<host>')
      .argument('<port>'),
  ).action(async (host: string, p: string, o: ScuOptions) => {
    try {
      const dimse = await Dimse.connect({
        ...common(host, p, o),
        contexts: [
          {
            abstractSyntax: VERIFICATION_SOP_CLASS,
            transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'],
          },
        ],
      });
      const started = process.hrtime.bigint();
      const status = await dimse.echo();
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      await dimse.release();
      process.stdout.write(
        `C-ECHO ${host}:${p} (${o.aec}): ${formatStatus(status)} in ${ms.toFixed(1)} ms\n`,
      );
      if (statusCategory(status) !== 'success') process.exit(1);
    } catch (err) {
      fail(err);
    }
  });

  scuOptions(
    program
      .command('store')
      .description('send DICOM files (or folders, recursively) with C-STORE, like storescu')
      .argument('<host>')
      .argument('<port>')
      .argument('<paths...>'),
  )
    .option('--parallel <n>', 'associations in parallel', '1')
    .option('--window <n>', 'outstanding C-STOREs per association when the peer agrees', '8')
    .action(
      async (
        host: string,
        p: string,
        paths: string[],
        o: ScuOptions & { parallel: string; window: string },
      ) => {
        try {
          const files = await listFiles(paths);
          const { items, skipped } = await describeFiles(files);
          // Files that are not DICOM instances are reported and skipped, not counted as failures.
          for (const s of skipped) process.stderr.write(`${s.path}: skipped, ${s.reason}\n`);
          const failures: string[] = [];
          const totalBytes = items.reduce((n, i) => n + i.datasetLength, 0);
          const bar = await terminalBar(
            'C-STORE [{bar}] {value}/{total} | {rate} inst/s | {mbps} MB/s | {failed} failed',
          );
          const started = Date.now();
          let done = 0;
          let failed = 0;
          let bytes = 0;
          bar?.start(items.length, 0, { rate: '0', mbps: '0', failed: 0 });
          const outcomes: StoreOutcome[] = await storeFiles(items, {
            ...common(host, p, o),
            parallel: Number(o.parallel),
            window: Number(o.window),
            onOutcome: (outcome) => {
              done++;
              bytes += outcome.item.datasetLength;
              if (outcome.error) failed++;
              const s = (Date.now() - started) / 1000 || 0.001;
              bar?.update(done, { rate: (done / s).toFixed(1), mbps: (bytes / 1e6 / s).toFixed(1), failed });
            },
          });
          bar?.stop();
          const seconds = (Date.now() - started) / 1000;
          for (const outcome of outcomes)
            if (outcome.error) failures.push(`${outcome.item.path}: ${outcome.error}`);
          const warnings = outcomes.filter(
            (x) => x.status !== undefined && statusCategory(x.status) === 'warning',
          ).length;
          for (const line of failures) process.stderr.write(`${line}\n`);
          process.stdout.write(
            `C-STORE ${host}:${p}: ${outcomes.length - failed} of ${items.length} sent (${warnings} with warnings, ${failures.length} failed, ${skipped.length} not DICOM) ` +
              `in ${seconds.toFixed(2)} s: ${(outcomes.length / seconds).toFixed(1)} inst/s, ${(totalBytes / 1e6 / seconds).toFixed(1)} MB/s\n`,
          );
          if (failures.length > 0) process.exit(1);
        } catch (err) {
          fail(err);
        }
      },
    );
}
