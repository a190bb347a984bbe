export { archiveStore, type EmbeddedArchive, openEmbeddedArchive } from './archive-store.ts';
export { type DimseServer, type DimseServerOptions, startDimseServer } from './dimse-server.ts';
export { folderStore } from './folder-store.ts';
