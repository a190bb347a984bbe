import { splitStrings } from '../codec/index.ts';
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

const CommandGroupLength = 0x00000000;
const CommandFieldTag = 0x00000100;
const CommandDataSetType = 0x00000800;

/**
 * Encodes a command set: always Implicit VR Little Endian, with Command Group Length first (PS3.7
 * §6.3.1). Written directly (a command set is a dozen known elements of group 0000; the general data
 * set writer costs ten times more, for every message).
 */
export function encodeCommand(command: Command): Buffer {
  const parts: [number, Buffer][] = [
    [CommandFieldTag, us(CommandField[command.type])],
    [CommandDataSetType, us(command.hasDataSet ? 0x0000 : NO_DATA_SET)],
  ];
  for (const [key, t, vr] of FIELDS) {
    const v = command[key];
    if (v === undefined) continue;
    parts.push([t, encodeField(v as string | number | readonly number[], vr)]);
  }
  parts.sort((x, y) => x[0] - y[0]);
  let length = 0;
  for (const [, value] of parts) length += 8 + value.length;
  const out = Buffer.allocUnsafe(12 + length);
  out.writeUInt32LE(CommandGroupLength, 0);
  out.writeUInt32LE(4, 4);
  out.writeUInt32LE(length, 8);
  let at = 12;
  for (const [t, value] of parts) {
    out.writeUInt16LE(t >>> 16, at);
    out.writeUInt16LE(t & 0xffff, at + 2);
    out.writeUInt32LE(value.length, at + 4);
    value.copy(out, at + 8);
    at += 8 + value.length;
  }
  return out;
}

function us(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16LE(n & 0xffff, 0);
  return b;
}

function encodeField(v: string | number | readonly number[], vr: (typeof FIELDS)[number][2]): Buffer {
  if (vr === 'US') return us(v as number);
  if (vr === 'AT') {
    const tags = (Array.isArray(v) ? v : [v]) as number[];
    const b = Buffer.allocUnsafe(4 * tags.length);
    tags.forEach((t, i) => {
      b.writeUInt16LE((t >>> 16) & 0xffff, 4 * i);
      b.writeUInt16LE(t & 0xffff, 4 * i + 2);
    });
    return b;
  }
  // UI pads to even length with NUL, the text VRs with a space (PS3.5 §6.2).
  const text = String(v);
  const odd = Buffer.byteLength(text, 'latin1') % 2 === 1;
  return Buffer.from(odd ? `${text}${vr === 'UI' ? '\0' : ' '}` : text, 'latin1');
}

/**
 * Decodes a command set; throws DicomError ERR_DIMSE_BAD_COMMAND when it is not one. Read directly
 * (implicit VR little endian, every element of known VR); elements it does not know are skipped.
 */
export function decodeCommand(bytes: Buffer): Command {
  const values = new Map<number, Buffer>();
  let at = 0;
  while (at < bytes.length) {
    if (at + 8 > bytes.length) throw badCommand(`an element header is cut short at offset ${at}`);
    const t = ((bytes.readUInt16LE(at) << 16) | bytes.readUInt16LE(at + 2)) >>> 0;
    const length = bytes.readUInt32LE(at + 4);
    if (length === 0xffffffff) throw badCommand(`element ${hexTag(t)} has an undefined length`);
    if (at + 8 + length > bytes.length)
      throw badCommand(`element ${hexTag(t)} of ${length} bytes runs past the end of the command set`);
    values.set(t, bytes.subarray(at + 8, at + 8 + length));
    at += 8 + length;
  }
  const fieldBytes = values.get(CommandFieldTag);
  const field = fieldBytes === undefined ? undefined : usValue(fieldBytes);
  const type = field === undefined ? undefined : nameByField.get(field);
  if (type === undefined) {
    throw new DicomError(
      'ERR_DIMSE_BAD_COMMAND',
      `unknown Command Field ${field === undefined ? '(absent)' : `0x${field.toString(16)}`}`,
    );
  }
  const dataSetType = values.get(CommandDataSetType);
  const out: Record<string, unknown> = {
    type,
    hasDataSet: (dataSetType === undefined ? undefined : usValue(dataSetType)) !== NO_DATA_SET,
  };
  for (const [key, t, vr] of FIELDS) {
    const v = values.get(t);
    if (v === undefined) continue;
    if (vr === 'US') out[key] = usValue(v);
    else if (vr === 'AT') {
      const tags: number[] = [];
      for (let i = 0; i + 4 <= v.length; i += 4)
        tags.push(((v.readUInt16LE(i) << 16) | v.readUInt16LE(i + 2)) >>> 0);
      out[key] = tags;
    } else out[key] = splitStrings(v.toString('latin1'), vr)[0] ?? '';
  }
  return out as unknown as Command;
}

function usValue(b: Buffer): number | undefined {
  return b.length >= 2 ? b.readUInt16LE(0) : undefined;
}

function hexTag(t: number): string {
  const h = t.toString(16).padStart(8, '0').toUpperCase();
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}

function badCommand(why: string): DicomError {
  return new DicomError('ERR_DIMSE_BAD_COMMAND', `the command set cannot be decoded: ${why}`);
}

export function isResponse(type: CommandName): boolean {
  return type.endsWith('-RSP');
}
