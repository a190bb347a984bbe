import { resolve } from 'node:path';
import type { Command } from 'commander';
import { startDimseServer } from '../server/index.ts';

export function registerServe(program: Command, fail: (err: unknown) => never): void {
  program
    .command('serve')
    .description(
      'start Tessera: a DICOM SCP (C-ECHO, C-STORE) storing what it receives under the data folder',
    )
    .option('--data-dir <dir>', 'where received instances are stored', './data')
    .option('--ae-title <title>', 'our AE title', 'TESSERA')
    .option('--dimse-port <port>', 'DICOM (DIMSE) port', '11112')
    .option('--host <address>', 'address to listen on (loopback unless you open it up)', '127.0.0.1')
    .option('--any-called-ae', 'accept associations whatever called AE title they use')
    .option('--max-pdu <bytes>', 'maximum PDU length we receive', '116794')
    .option(
      '--no-fsync',
      'answer C-STORE before the instance is flushed to disk (as storescp does; not durable)',
    )
    .action(
      async (o: {
        dataDir: string;
        aeTitle: string;
        dimsePort: string;
        host: string;
        anyCalledAe?: boolean;
        maxPdu: string;
      }) => {
        try {
          const storeDir = resolve(o.dataDir, 'incoming');
          const server = await startDimseServer({
            host: o.host,
            port: Number(o.dimsePort),
            aeTitle: o.aeTitle,
            anyCalledAETitle: o.anyCalledAe === true,
            storeDir,
            maxPduLength: Number(o.maxPdu),
          });
          process.stdout.write(
            `tessera: ${o.aeTitle} listening on ${o.host}:${server.port} (DIMSE), storing in ${storeDir}\n`,
          );
          const stop = (): void => {
            process.stdout.write('tessera: shutting down, finishing associations in progress\n');
            void server.close(10_000).then(() => process.exit(0));
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        } catch (err) {
          fail(err);
        }
      },
    );
}
