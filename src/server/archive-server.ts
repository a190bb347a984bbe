/**
 * `tessera serve` as a library function: the archive (SQLite or PostgreSQL index, folder or S3 blobs), the DIMSE
 * SCP storing into it, the admin HTTP endpoints, structured logs and metrics; and the graceful
 * shutdown that finishes the stores in progress before the index is closed.
 */
import type { DestinationStream } from 'pino';
import { startDecodeWorkers } from '../codec/index.ts';
import { type DimseServer, startDimseServer } from '../scp/index.ts';
import { createDicomWebApp, DICOMWEB_DEFAULTS } from '../web/index.ts';
import { type AdminHttp, ArchiveMetrics, startAdminHttp } from './admin-http.ts';
import { type Archive, archiveStore, openArchive } from './archive-store.ts';
import { bearerAuth } from './auth.ts';
import { duplicatePolicyFor, type ServerConfig } from './config.ts';
import { createLogger, type Logger, subscribeLogs } from './logging.ts';
import { qrHandlers } from './qr-scp.ts';

export interface RunningArchive {
  /** The ports actually listened on (the configured ones, or the free ones picked for 0). */
  readonly dimsePort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  /** Temporary blobs of a previous run (a crash) removed at start-up. */
  readonly cleanedTemps: number;
  readonly logger: Logger;
  readonly archive: Archive;
  readonly metrics: ArchiveMetrics;
  /**
   * Graceful shutdown: stop accepting associations, let those in progress finish (their stores
   * answered and durable) for up to `shutdownGraceMs` before aborting them, close the admin HTTP,
   * then the index. Idempotent.
   */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Where the JSON log lines go (default stdout). */
  readonly logDestination?: DestinationStream;
  /** Node's process metrics (memory, CPU, event loop) in /metrics (default true). */
  readonly processMetrics?: boolean;
}

export async function startArchive(
  config: ServerConfig,
  options: StartOptions = {},
): Promise<RunningArchive> {
  const logger = createLogger(config.logLevel, options.logDestination);
  const metrics = new ArchiveMetrics({ processMetrics: options.processMetrics !== false });
  const unsubscribe = [subscribeLogs(logger), metrics.subscribe()];
  let archive: Archive | undefined;
  let dimse: DimseServer | undefined;
  let http: AdminHttp | undefined;
  let webApp: { close(): Promise<unknown> } | undefined;
  let dimseUp = false;
  // Compressed frames decode off the event loop (codec/decode-pool.ts), unless configured not to.
  const releaseDecoders = config.decodeWorkers === 0 ? undefined : startDecodeWorkers(config.decodeWorkers);
  const stopEarly = async (): Promise<void> => {
    await dimse?.close(0);
    await http?.close();
    await webApp?.close();
    await archive?.close();
    await releaseDecoders?.();
    for (const off of unsubscribe) off();
  };
  try {
    archive = await openArchive({
      dataDir: config.dataDir,
      index: config.index,
      blobs: config.blobs,
      fsync: config.fsync,
      indexLockTimeoutMs: config.indexLockTimeoutMs,
    });
    const opened = archive;
    const store = archiveStore(opened.ingest, duplicatePolicyFor(config));
    dimse = await startDimseServer({
      host: config.host,
      port: config.dimsePort,
      aeTitle: config.aeTitle,
      anyCalledAETitle: config.anyCalledAETitle,
      acceptUnknownSopClasses: config.acceptUnknownSopClasses,
      ...(config.callingAETitles ? { callingAETitles: config.callingAETitles } : {}),
      maxPduLength: config.maxPduLength,
      queryRetrieve: qrHandlers({
        index: opened.index,
        blobs: opened.blobs,
        aeTitle: config.aeTitle,
        peers: new Map(Object.entries(config.peers)),
        maxResults: config.maxQueryResults,
        caseInsensitivePersonNames: config.caseInsensitivePersonNames,
        maxPduLength: config.maxPduLength,
      }),
      store,
    });
    dimseUp = true;
    const web = await createDicomWebApp({
      archive: { index: opened.index, blobs: opened.blobs, ingest: opened.ingest },
      publicUrl: config.publicUrl,
      duplicates: config.duplicates,
      caseInsensitivePersonNames: config.caseInsensitivePersonNames,
      maxQueryResults: config.maxQueryResults,
      maxRequestBytes: config.maxRequestBytes,
      maxConcurrentRequests: config.maxConcurrentRequests,
      corsOrigins: config.corsOrigins,
      authorize: bearerAuth({
        tokens: config.bearerTokens,
        jwksUrl: config.jwksUrl,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
      }),
    });
    webApp = web;
    http = await startAdminHttp({
      host: config.host,
      port: config.httpPort,
      metrics: metrics.registry,
      mount: { prefix: DICOMWEB_DEFAULTS.basePath, handle: (req, res) => web.routing(req, res) },
      readiness: async () => {
        let index: true | string = true;
        try {
          await opened.index.counts();
        } catch (err) {
          index = (err as Error).message;
        }
        const listener = dimseUp ? true : 'the DIMSE listener is closed';
        return { ready: index === true && listener === true, checks: { dimse: listener, index } };
      },
      stats: async () => ({
        aeTitle: config.aeTitle,
        index: await opened.index.counts(),
        // On S3 there is no volume to ask, and summing a bucket's objects lists all of them: the
        // index's byte count says what is stored.
        disk: opened.describe.blobs.startsWith('s3://')
          ? { store: opened.describe.blobs, used: (await opened.index.counts()).bytes }
          : await opened.blobs.usage(),
        associations: { open: metrics.openAssociations },
        uptimeSeconds: Math.round(process.uptime()),
      }),
    });
  } catch (err) {
    await stopEarly();
    throw err;
  }
  const running = { archive, dimse, http };
  logger.info(
    {
      aeTitle: config.aeTitle,
      host: config.host,
      dimsePort: dimse.port,
      httpPort: http.port,
      dataDir: config.dataDir,
      peers: Object.keys(config.peers),
      cleanedTemps: archive.cleanedTemps,
      index: archive.describe.index,
      blobs: archive.describe.blobs,
    },
    'archive started',
  );
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      dimseUp = false;
      logger.info(
        { openAssociations: metrics.openAssociations, graceMs: config.shutdownGraceMs },
        'shutting down: no new associations, finishing those in progress',
      );
      await running.dimse.close(config.shutdownGraceMs);
      await running.http.close();
      await webApp?.close();
      await running.archive.close();
      await releaseDecoders?.();
      logger.info('archive stopped');
      for (const off of unsubscribe) off();
    })();
    return closing;
  };
  return {
    dimsePort: dimse.port,
    httpPort: http.port,
    dataDir: config.dataDir,
    cleanedTemps: archive.cleanedTemps,
    logger,
    archive,
    metrics,
    close,
  };
}
