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
  formatStatus,
  STATUS,
  type StatusCategory,
  StatusError,
  statusCategory,
  statusName,
} from './status.ts';
