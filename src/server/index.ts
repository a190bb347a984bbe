/** Moving an archive between adapters (`tessera migrate`). */
export { type MigrateProgress, migrateArchive } from '../archive/index.ts';
export {
  type DimseServer,
  type DimseServerOptions,
  folderStore,
  INCOMING_PREFIX,
  startDimseServer,
} from '../scp/index.ts';
export {
  type AdminHttp,
  type AdminHttpOptions,
  ArchiveMetrics,
  type Readiness,
  startAdminHttp,
} from './admin-http.ts';
export { type RunningArchive, type StartOptions, startArchive } from './archive-server.ts';
export {
  type Archive,
  type ArchiveLocation,
  archiveStore,
  type EmbeddedArchive,
  isPostgresUrl,
  openArchive,
  openEmbeddedArchive,
} from './archive-store.ts';
export {
  aeTitleProblem,
  ConfigError,
  type ConfigFlags,
  type ConfigIssue,
  configSchema,
  DUPLICATE_POLICIES,
  duplicatePolicyFor,
  FLAG_NAMES,
  LOG_LEVELS,
  type LogLevel,
  loadConfig,
  parseConfig,
  parsePeerFlag,
  type ServerConfig,
  type ServerConfigInput,
} from './config.ts';
export { CHANNELS, createLogger, hexStatus, type Logger, subscribeLogs } from './logging.ts';
export { type Peer, QR_SCP_DEFAULTS, type QrScpOptions, qrHandlers } from './qr-scp.ts';
