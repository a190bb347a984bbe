import { DicomError } from '../core/index.ts';
import { type Command, decodeCommand } from './command.ts';

/** A Presentation Data Value as the upper layer delivers it (PS3.8 §9.3.5.1). */
export interface PdvLike {
  readonly contextId: number;
  readonly command: boolean;
  readonly last: boolean;
  readonly data: Buffer;
}

export type AssemblerEvent =
  /** A whole command set arrived; if it announces a data set, `data` events follow. */
  | { readonly kind: 'command'; readonly contextId: number; readonly command: Command }
  /** A fragment of the data set of the last command, in the order received; `last` ends it. */
  | { readonly kind: 'data'; readonly contextId: number; readonly chunk: Buffer; readonly last: boolean };

/** The most a command set may take: they are a few hundred bytes; this bounds a hostile peer. */
const MAX_COMMAND_BYTES = 64 * 1024;

/**
 * Reassembles DIMSE messages from PDVs (PS3.7 §6.3.1, PS3.8 Annex E): command fragments are gathered
 * (they are small), data set fragments are passed on as they come so the caller can stream them to
 * disk. Messages are not interleaved on an association, so one message is open at a time. Sans-IO.
 */
export class MessageAssembler {
  private commandParts: Buffer[] = [];
  private commandLength = 0;
  private commandContext: number | undefined;
  /** The context of the data set being received, if any. */
  private dataContext: number | undefined;

  push(pdv: PdvLike): AssemblerEvent | undefined {
    if (pdv.command) {
      if (this.dataContext !== undefined) {
        throw new DicomError(
          'ERR_DIMSE_UNEXPECTED_PDV',
          'a command fragment arrived while a data set was still being received',
        );
      }
      if (this.commandContext !== undefined && this.commandContext !== pdv.contextId) {
        throw new DicomError(
          'ERR_DIMSE_UNEXPECTED_PDV',
          'command fragments of one message on two presentation contexts',
        );
      }
      this.commandContext = pdv.contextId;
      this.commandLength += pdv.data.length;
      if (this.commandLength > MAX_COMMAND_BYTES) {
        throw new DicomError('ERR_DIMSE_BAD_COMMAND', `a command set longer than ${MAX_COMMAND_BYTES} bytes`);
      }
      this.commandParts.push(pdv.data);
      if (!pdv.last) return undefined;
      const bytes = this.commandParts.length === 1 ? this.commandParts[0]! : Buffer.concat(this.commandParts);
      this.commandParts = [];
      this.commandLength = 0;
      this.commandContext = undefined;
      const command = decodeCommand(bytes);
      if (command.hasDataSet) this.dataContext = pdv.contextId;
      return { kind: 'command', contextId: pdv.contextId, command };
    }
    if (this.dataContext === undefined) {
      throw new DicomError(
        'ERR_DIMSE_UNEXPECTED_PDV',
        'a data set fragment arrived without a command announcing it',
      );
    }
    if (pdv.contextId !== this.dataContext) {
      throw new DicomError(
        'ERR_DIMSE_UNEXPECTED_PDV',
        `data set fragment on presentation context ${pdv.contextId}, command on ${this.dataContext}`,
      );
    }
    if (pdv.last) this.dataContext = undefined;
    return { kind: 'data', contextId: pdv.contextId, chunk: pdv.data, last: pdv.last };
  }

  /** True between messages: no command or data set half received. */
  get idle(): boolean {
    return this.commandParts.length === 0 && this.dataContext === undefined;
  }
}
