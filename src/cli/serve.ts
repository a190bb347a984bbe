import type { Command } from 'commander';
// Type-only at load time: the server (SQLite, pino, prom-client...) is imported when `serve` runs,
// so the other commands start without it.
import type { ConfigFlags, ServerConfig } from '../server/index.ts';
import { collect } from './net.ts';

interface ServeOptions {
  config?: string;
  dataDir?: string;
  index?: string;
  blobs?: string;
  aeTitle?: string;
  dimsePort?: string;
  httpPort?: string;
  host?: string;
  peer?: string[];
  callingAe?: string[];
  anyCalledAe?: boolean;
  fsync?: boolean;
  acceptUnknownSopClasses?: boolean;
  duplicates?: string;
  logLevel?: string;
  maxPdu?: string;
  shutdownGrace?: string;
  maxQueryResults?: string;
  indexLockTimeout?: string;
  decodeWorkers?: string;
  publicUrl?: string;
  corsOrigin?: string[];
  maxRequestBytes?: string;
  maxConcurrentRequests?: string;
}

/** `http://host:port` with IPv6 addresses in brackets. */
function url(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * `tessera serve`: flags and/or a config file -> startArchive. No defaults here: they live in the
 * configuration schema, so that a flag left out does not hide the config file's value.
 * Exit codes: 2 for an invalid configuration, 1 when the archive cannot start, 0 after a graceful
 * shutdown (SIGTERM/SIGINT; a second signal exits at once with 1).
 */
export function registerServe(program: Command, fail: (err: unknown) => never): void {
  program
    .command('serve')
    .description(
      'start the archive: DICOM SCP (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET) and DICOMweb (/dicomweb) on SQLite + a folder under --data-dir, or PostgreSQL + S3 (--index, --blobs); admin endpoints /healthz, /readyz, /stats, /metrics',
    )
    .option('--config <file>', 'configuration file (.json, .yaml or .yml); flags override it')
    .option('--data-dir <dir>', 'where the archive keeps its index and instances (default ./data)')
    .option('--index <where>', 'the index: sqlite (in the data dir, default) or postgres://user:pass@host/db')
    .option(
      '--blobs <where>',
      'the instances: a folder (default the data dir; a shared volume for several nodes) or s3://bucket/prefix',
    )
    .option('--ae-title <title>', 'our AE title (default TESSERA)')
    .option('--dimse-port <port>', 'DICOM (DIMSE) port (default 11112)')
    .option('--http-port <port>', 'admin HTTP port (default 8080)')
    .option('--host <address>', 'address to listen on (default 127.0.0.1: loopback unless you open it up)')
    .option('--peer <AE=HOST:PORT>', 'a known remote AE (repeatable)', collect)
    .option(
      '--calling-ae <title>',
      'accept associations only from this calling AE title (repeatable)',
      collect,
    )
    .option('--any-called-ae', 'accept associations whatever called AE title they use')
    .option(
      '--no-fsync',
      'answer a stored instance once the OS has it, without waiting for the disk (as storescp; survives a crash of tessera, not a power loss)',
    )
    .option(
      '--accept-unknown-sop-classes',
      'also store SOP classes the UID registry does not know (private storage classes)',
    )
    .option(
      '--duplicates <policy>',
      'a SOP Instance UID received again: reject | accept-if-identical | overwrite (default accept-if-identical)',
    )
    .option('--log-level <level>', 'fatal | error | warn | info | debug | trace (default info)')
    .option('--max-pdu <bytes>', 'maximum PDU length we receive (default 116794)')
    .option('--shutdown-grace <ms>', 'on SIGTERM, how long associations may go on (default 10000)')
    .option('--max-query-results <n>', 'most matches one C-FIND or QIDO-RS request returns (default 10000)')
    .option(
      '--index-lock-timeout <ms>',
      'PostgreSQL index: longest wait for a lock another node holds before a write fails (default 30000)',
    )
    .option(
      '--decode-workers <n>',
      'threads that decode compressed frames off the event loop (default: cores - 1, 1-4; 0: on the main thread)',
    )
    .option(
      '--public-url <url>',
      'the URL clients reach DICOMweb at, for RetrieveURL/BulkDataURI (default: from each request)',
    )
    .option(
      '--cors-origin <origin>',
      'allow DICOMweb requests from this browser origin (repeatable; * for any)',
      collect,
    )
    .option('--max-request-bytes <n>', 'largest STOW-RS request body (default 8 GiB)')
    .option('--max-concurrent-requests <n>', 'DICOMweb requests served at once, 503 beyond (default 64)')
    .action(async (o: ServeOptions) => {
      const flags: ConfigFlags = {
        dataDir: o.dataDir,
        index: o.index,
        blobs: o.blobs,
        aeTitle: o.aeTitle,
        dimsePort: o.dimsePort,
        httpPort: o.httpPort,
        host: o.host,
        peers: o.peer,
        callingAETitles: o.callingAe,
        anyCalledAETitle: o.anyCalledAe,
        fsync: o.fsync === false ? false : undefined,
        acceptUnknownSopClasses: o.acceptUnknownSopClasses,
        duplicates: o.duplicates,
        logLevel: o.logLevel,
        maxPduLength: o.maxPdu,
        shutdownGraceMs: o.shutdownGrace,
        maxQueryResults: o.maxQueryResults,
        indexLockTimeoutMs: o.indexLockTimeout,
        decodeWorkers: o.decodeWorkers,
        publicUrl: o.publicUrl,
        corsOrigins: o.corsOrigin?.includes('*') ? '*' : o.corsOrigin,
        maxRequestBytes: o.maxRequestBytes,
        maxConcurrentRequests: o.maxConcurrentRequests,
      };
      const { ConfigError, loadConfig, startArchive } = await import('../server/index.ts');
      let config: ServerConfig;
      try {
        config = await loadConfig({ file: o.config, flags });
      } catch (err) {
        if (!(err instanceof ConfigError)) fail(err);
        process.stderr.write(`tessera: error: ${(err as Error).message} [ERR_CONFIG_INVALID]\n`);
        process.exit(2);
      }
      try {
        const archive = await startArchive(config);
        const cleaned = archive.cleanedTemps
          ? ` (${archive.cleanedTemps} unfinished instances of a previous run removed)`
          : '';
        process.stdout.write(
          `tessera: ${config.aeTitle} listening on ${config.host}:${archive.dimsePort} (DIMSE), ${url(config.host, archive.httpPort)}, archive in ${config.dataDir}${cleaned}\n`,
        );
        let stopping = false;
        const stop = (signal: NodeJS.Signals): void => {
          if (stopping) {
            process.stderr.write(`tessera: ${signal} again, exiting without waiting\n`);
            process.exit(1);
          }
          stopping = true;
          process.stdout.write(`tessera: ${signal}: shutting down, finishing associations in progress\n`);
          archive.close().then(
            () => process.exit(0),
            (err: unknown) => fail(err),
          );
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      } catch (err) {
        fail(err);
      }
    });
}
