/**
 * The storage SCP without an archive: the DIMSE server (associations, C-ECHO, C-STORE and whatever
 * handlers it is given) and the folder store that writes received instances as Part 10 files, as
 * storescp does. `tessera receive` and `tessera get` use these alone; the archive server (`server`)
 * builds on them. Kept apart from `server` so that receiving does not load the archive server's web
 * framework, logging, metrics and configuration (fastify, pino, prom-client, yaml, zod: ~250 ms and
 * ~30 MiB of a process's start-up).
 */
export { type DimseServer, type DimseServerOptions, startDimseServer } from './dimse-server.ts';
export { folderStore, INCOMING_PREFIX } from './folder-store.ts';
