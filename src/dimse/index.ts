export { type AssemblerEvent, MessageAssembler, type PdvLike } from './assembler.ts';
export {
  type Command,
  CommandField,
  type CommandName,
  decodeCommand,
  encodeCommand,
  isResponse,
  NO_DATA_SET,
  Priority,
} from './command.ts';
export {
  type DataSource,
  Dimse,
  type HandlerResult,
  type Handlers,
  type IncomingRequest,
  type Response,
  VERIFICATION_SOP_CLASS,
} from './service.ts';
export {
  formatStatus,
  STATUS,
  type StatusCategory,
  StatusError,
  statusCategory,
  statusName,
} from './status.ts';
export {
  describeFile,
  describeFiles,
  listFiles,
  proposeContexts,
  type StoreItem,
  type StoreOptions,
  type StoreOutcome,
  storeFiles,
} from './store-scu.ts';
