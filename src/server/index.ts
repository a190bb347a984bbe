export { type DimseServer, type DimseServerOptions, startDimseServer } from './dimse-server.ts';
export { folderStore } from './folder-store.ts';
