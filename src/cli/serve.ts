import { resolve } from 'node:path';
import type { Command } from 'commander';
import { archiveStore, openEmbeddedArchive, startDimseServer } from '../server/index.ts';

const POLICIES = ['reject', 'accept-if-identical', 'overwrite'] as const;

interface ServeOptions {
  dataDir: string;
  aeTitle: string;
  dimsePort: string;
  host: string;
  anyCalledAe?: boolean;
  maxPdu: string;
  duplicates: string;
}

export function registerServe(program: Command, fail: (err: unknown) => never): void {
  program
    .command('serve')
    .description(
      'start the archive: a DICOM SCP (C-ECHO, C-STORE) indexing what it receives (SQLite + blobs under --data-dir)',
    )
    .option('--data-dir <dir>', 'where the archive keeps its index and instances', './data')
    .option('--ae-title <title>', 'our AE title', 'TESSERA')
    .option('--dimse-port <port>', 'DICOM (DIMSE) port', '11112')
    .option('--host <address>', 'address to listen on (loopback unless you open it up)', '127.0.0.1')
    .option('--any-called-ae', 'accept associations whatever called AE title they use')
    .option('--max-pdu <bytes>', 'maximum PDU length we receive', '116794')
    .option(
      '--duplicates <policy>',
      `a SOP Instance UID received again: ${POLICIES.join(' | ')}`,
      'accept-if-identical',
    )
    .action(async (o: ServeOptions) => {
      try {
        const policy = POLICIES.find((p) => p === o.duplicates);
        if (!policy) throw new Error(`--duplicates ${o.duplicates}: expected one of ${POLICIES.join(', ')}`);
        const dataDir = resolve(o.dataDir);
        const archive = await openEmbeddedArchive(dataDir);
        const server = await startDimseServer({
          host: o.host,
          port: Number(o.dimsePort),
          aeTitle: o.aeTitle,
          anyCalledAETitle: o.anyCalledAe === true,
          maxPduLength: Number(o.maxPdu),
          store: archiveStore(archive.ingest, () => policy),
        });
        const cleaned = archive.cleanedTemps
          ? ` (${archive.cleanedTemps} unfinished instances of a previous run removed)`
          : '';
        process.stdout.write(
          `tessera: ${o.aeTitle} listening on ${o.host}:${server.port} (DIMSE), archive in ${dataDir}${cleaned}\n`,
        );
        const stop = (): void => {
          process.stdout.write('tessera: shutting down, finishing associations in progress\n');
          void server.close(10_000).then(() => {
            archive.close();
            process.exit(0);
          });
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      } catch (err) {
        fail(err);
      }
    });
}
