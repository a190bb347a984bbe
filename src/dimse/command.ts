import { Dataset, decodeDataset, encodeDataset } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';

/** Command Field values of PS3.7 §E.1 (Table E.1-1). */
export const CommandField = {
  'C-STORE-RQ': 0x0001,
  'C-STORE-RSP': 0x8001,
  'C-GET-RQ': 0x0010,
  'C-GET-RSP': 0x8010,
  'C-FIND-RQ': 0x0020,
  'C-FIND-RSP': 0x8020,
  'C-MOVE-RQ': 0x0021,
  'C-MOVE-RSP': 0x8021,
  'C-ECHO-RQ': 0x0030,
  'C-ECHO-RSP': 0x8030,
  'N-EVENT-REPORT-RQ': 0x0100,
  'N-EVENT-REPORT-RSP': 0x8100,
  'N-GET-RQ': 0x0110,
  'N-GET-RSP': 0x8110,
  'N-SET-RQ': 0x0120,
  'N-SET-RSP': 0x8120,
  'N-ACTION-RQ': 0x0130,
  'N-ACTION-RSP': 0x8130,
  'N-CREATE-RQ': 0x0140,
  'N-CREATE-RSP': 0x8140,
  'N-DELETE-RQ': 0x0150,
  'N-DELETE-RSP': 0x8150,
  'C-CANCEL-RQ': 0x0fff,
} as const;

export type CommandName = keyof typeof CommandField;

const nameByField = new Map<number, CommandName>(
  (Object.entries(CommandField) as [CommandName, number][]).map(([name, field]) => [field, name]),
);

/** Priority (0000,0700): PS3.7 §9.3.1.1. */
export const Priority = { MEDIUM: 0x0000, HIGH: 0x0001, LOW: 0x0002 } as const;

/** Command Data Set Type (0000,0800): 0x0101 means no data set follows; anything else means one does. */
export const NO_DATA_SET = 0x0101;

/** A DIMSE command set (PS3.7 §E.1): the fields a message may carry, by their standard keyword. */
export interface Command {
  readonly type: CommandName;
  readonly hasDataSet: boolean;
  readonly messageId?: number;
  readonly messageIdBeingRespondedTo?: number;
  readonly affectedSopClassUid?: string;
  readonly requestedSopClassUid?: string;
  readonly affectedSopInstanceUid?: string;
  readonly requestedSopInstanceUid?: string;
  readonly priority?: number;
  readonly status?: number;
  readonly errorComment?: string;
  readonly errorId?: number;
  readonly offendingElement?: readonly number[];
  readonly moveDestination?: string;
  readonly moveOriginatorAETitle?: string;
  readonly moveOriginatorMessageId?: number;
  readonly remaining?: number;
  readonly completed?: number;
  readonly failed?: number;
  readonly warning?: number;
  readonly eventTypeId?: number;
  readonly actionTypeId?: number;
  readonly attributeIdentifierList?: readonly number[];
}

/** Where each Command field lives and its VR (PS3.7 Table E.1-1). */
const FIELDS: readonly [keyof Command, number, 'UI' | 'US' | 'AE' | 'LO' | 'AT'][] = [
  ['affectedSopClassUid', 0x00000002, 'UI'],
  ['requestedSopClassUid', 0x00000003, 'UI'],
  ['messageId', 0x00000110, 'US'],
  ['messageIdBeingRespondedTo', 0x00000120, 'US'],
  ['moveDestination', 0x00000600, 'AE'],
  ['priority', 0x00000700, 'US'],
  ['status', 0x00000900, 'US'],
  ['offendingElement', 0x00000901, 'AT'],
  ['errorComment', 0x00000902, 'LO'],
  ['errorId', 0x00000903, 'US'],
  ['affectedSopInstanceUid', 0x00001000, 'UI'],
  ['requestedSopInstanceUid', 0x00001001, 'UI'],
  ['eventTypeId', 0x00001002, 'US'],
  ['attributeIdentifierList', 0x00001005, 'AT'],
  ['actionTypeId', 0x00001008, 'US'],
  ['remaining', 0x00001020, 'US'],
  ['completed', 0x00001021, 'US'],
  ['failed', 0x00001022, 'US'],
  ['warning', 0x00001023, 'US'],
  ['moveOriginatorAETitle', 0x00001030, 'AE'],
  ['moveOriginatorMessageId', 0x00001031, 'US'],
];

const IMPLICIT_LE = '1.2.840.10008.1.2';
const CommandGroupLength = 0x00000000;
const CommandFieldTag = 0x00000100;
const CommandDataSetType = 0x00000800;

/** Encodes a command set: always Implicit VR Little Endian, with Command Group Length first (PS3.7 §6.3.1). */
export function encodeCommand(command: Command): Buffer {
  const ds = new Dataset();
  ds.setValues(CommandGroupLength, [0], 'UL');
  ds.setValues(CommandFieldTag, [CommandField[command.type]], 'US');
  ds.setValues(CommandDataSetType, [command.hasDataSet ? 0x0000 : NO_DATA_SET], 'US');
  for (const [key, t, vr] of FIELDS) {
    const v = command[key];
    if (v === undefined) continue;
    if (Array.isArray(v)) ds.setValues(t, v as number[], vr);
    else ds.setValues(t, [v as string | number], vr);
  }
  return encodeDataset(ds, IMPLICIT_LE, { groupLengths: 'recalculate' });
}

/** Decodes a command set; throws DicomError ERR_DIMSE_BAD_COMMAND when it is not one. */
export function decodeCommand(bytes: Buffer): Command {
  let ds: Dataset;
  try {
    ds = decodeDataset(bytes, IMPLICIT_LE);
  } catch (err) {
    throw new DicomError(
      'ERR_DIMSE_BAD_COMMAND',
      `the command set cannot be decoded: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const field = ds.number(CommandFieldTag);
  const type = field === undefined ? undefined : nameByField.get(field);
  if (type === undefined) {
    throw new DicomError(
      'ERR_DIMSE_BAD_COMMAND',
      `unknown Command Field ${field === undefined ? '(absent)' : `0x${field.toString(16)}`}`,
    );
  }
  const out: Record<string, unknown> = { type, hasDataSet: ds.number(CommandDataSetType) !== NO_DATA_SET };
  for (const [key, t, vr] of FIELDS) {
    if (!ds.has(t)) continue;
    if (vr === 'AT') out[key] = ds.values(t) as number[];
    else if (vr === 'US') out[key] = ds.number(t);
    else out[key] = ds.string(t) ?? '';
  }
  return out as unknown as Command;
}

export function isResponse(type: CommandName): boolean {
  return type.endsWith('-RSP');
}
