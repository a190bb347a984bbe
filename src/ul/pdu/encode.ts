// PS3.8 §9.3: PDU objects -> bytes. The encoder refuses what the decoder would refuse (so what we send
// always decodes) and what cannot be represented (an AE title over 16 characters, a number out of its
// field); both are `ERR_UL_PDU_UNENCODABLE`, a programming error rather than a protocol error.
import { ITEM_TYPES, PDU_TYPES } from './constants.ts';
import { unencodable } from './errors.ts';
import type {
  AAssociateAc,
  AAssociateRq,
  Pdu,
  Pdv,
  PresentationContextAc,
  PresentationContextRq,
  UserInformation,
} from './types.ts';

/** Defaults of the PDU codec. */
export const PDU_DEFAULTS = {
  /**
   * The largest fragment `fragment()` puts in one PDV, whatever the peer allows (its maximum length
   * 0 means unlimited): bounds the copy made per PDU. 1 MiB.
   */
  maxFragmentLength: 1024 * 1024,
} as const;

function integer(value: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max)
    throw unencodable(`${what} ${value} is not an integer 0-${max}`);
  return value;
}

const u8 = (value: number, what: string) => integer(value, 0xff, what);

function u16(value: number, what: string): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(integer(value, 0xffff, what));
  return out;
}

function u32(value: number, what: string): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(integer(value, 0xffffffff, what));
  return out;
}

const PRINTABLE = /^[\x20-\x7e]*$/;

/** UIDs, names: printable ISO 646 characters, no padding (PS3.8 Annex F). */
function ascii(value: string, what: string): Buffer {
  if (!PRINTABLE.test(value)) throw unencodable(`${what} "${value}" has characters outside printable ASCII`);
  return Buffer.from(value, 'latin1');
}

/** 16 characters of the ISO 646 G0 set, space padded (PS3.8 Table 9-11). */
function aeTitle(value: string, what: string): Buffer {
  if (value.length > 16) throw unencodable(`${what} "${value}" is longer than 16 characters`);
  const out = Buffer.alloc(16, 0x20);
  ascii(value, what).copy(out);
  return out;
}

/** A 2-byte length and the bytes (sub-item fields of PS3.7 D.3.3). */
function prefixed(value: Buffer, what: string): Buffer[] {
  return [u16(value.length, `${what} length`), value];
}

/** Type, reserved 00H, 2-byte length, body (PS3.8 §9.3.2 items and Annex D sub-items). */
function item(type: number, parts: readonly Buffer[], what: string): Buffer {
  const body = Buffer.concat(parts);
  if (body.length > 0xffff)
    throw unencodable(`${what} of ${body.length} bytes is over the item limit of 65535`);
  const header = Buffer.allocUnsafe(4);
  header[0] = type;
  header[1] = 0;
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function pdu(type: number, parts: readonly Buffer[]): Buffer {
  let length = 0;
  for (const p of parts) length += p.length;
  if (length > 0xffffffff) throw unencodable(`a PDU of ${length} bytes is over the PDU-length limit`);
  const header = Buffer.allocUnsafe(6);
  header[0] = type;
  header[1] = 0;
  header.writeUInt32BE(length, 2);
  return Buffer.concat([header, ...parts], 6 + length);
}

/** Encodes any PDU (PS3.8 §9.3), header included. */
export function encodePdu(value: Pdu): Buffer {
  switch (value.type) {
    case 'A-ASSOCIATE-RQ':
    case 'A-ASSOCIATE-AC':
      return encodeAssociate(value);
    case 'A-ASSOCIATE-RJ':
      // PS3.8 Table 9-21: reserved, result, source, reason/diag.
      if (value.result !== 1 && value.result !== 2)
        throw unencodable(`A-ASSOCIATE-RJ result ${value.result} is not 1 or 2`);
      if (value.source !== 1 && value.source !== 2 && value.source !== 3) {
        throw unencodable(`A-ASSOCIATE-RJ source ${value.source} is not 1, 2 or 3`);
      }
      return pdu(PDU_TYPES['A-ASSOCIATE-RJ'], [
        Buffer.from([0, value.result, value.source, u8(value.reason, 'reason')]),
      ]);
    case 'P-DATA-TF':
      return encodePDataTf(value.pdvs);
    case 'A-RELEASE-RQ':
    case 'A-RELEASE-RP':
      return pdu(PDU_TYPES[value.type], [Buffer.alloc(4)]);
    case 'A-ABORT':
      // PS3.8 Table 9-26: two reserved bytes, source, reason/diag.
      if (value.source !== 0 && value.source !== 2)
        throw unencodable(`A-ABORT source ${value.source} is not 0 or 2`);
      return pdu(PDU_TYPES['A-ABORT'], [Buffer.from([0, 0, value.source, u8(value.reason, 'reason')])]);
    default:
      throw unencodable(`unknown PDU type ${(value as { type?: unknown }).type}`);
  }
}

function encodeAssociate(value: AAssociateRq | AAssociateAc): Buffer {
  // PS3.8 Table 9-11 / 9-17: protocol version, reserved, called, calling, 32 reserved bytes.
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(integer(value.protocolVersion, 0xffff, 'protocol version'), 0);
  aeTitle(value.calledAETitle, 'called AE title').copy(fixed, 4);
  aeTitle(value.callingAETitle, 'calling AE title').copy(fixed, 20);
  const contexts =
    value.type === 'A-ASSOCIATE-RQ'
      ? value.presentationContexts.map(presentationContextRq)
      : value.presentationContexts.map(presentationContextAc);
  return pdu(PDU_TYPES[value.type], [
    fixed,
    item(
      ITEM_TYPES.applicationContext,
      [ascii(value.applicationContextName, 'application context name')],
      'Application Context Item',
    ),
    ...contexts,
    userInformation(value.userInformation),
  ]);
}

function presentationContextRq(pc: PresentationContextRq): Buffer {
  if (pc.transferSyntaxes.length === 0) {
    throw unencodable(
      `presentation context ${pc.id} proposes no transfer syntax (PS3.8 §9.3.2.2: one or more)`,
    );
  }
  return item(
    ITEM_TYPES.presentationContextRq,
    [
      Buffer.from([u8(pc.id, 'presentation context ID'), 0, 0, 0]),
      item(
        ITEM_TYPES.abstractSyntax,
        [ascii(pc.abstractSyntax, 'abstract syntax')],
        'Abstract Syntax Sub-Item',
      ),
      ...pc.transferSyntaxes.map((ts) =>
        item(ITEM_TYPES.transferSyntax, [ascii(ts, 'transfer syntax')], 'Transfer Syntax Sub-Item'),
      ),
    ],
    'Presentation Context Item',
  );
}

function presentationContextAc(pc: PresentationContextAc): Buffer {
  const result = integer(pc.result, 4, `presentation context ${pc.id} result`);
  if (result === 0 && pc.transferSyntax === '')
    throw unencodable(`accepted presentation context ${pc.id} names no transfer syntax`);
  return item(
    ITEM_TYPES.presentationContextAc,
    [
      Buffer.from([u8(pc.id, 'presentation context ID'), 0, result, 0]),
      // PS3.8 §9.3.3.2: the sub-item is always there; its value is not significant unless accepted.
      item(
        ITEM_TYPES.transferSyntax,
        [ascii(pc.transferSyntax, 'transfer syntax')],
        'Transfer Syntax Sub-Item',
      ),
    ],
    'Presentation Context Item',
  );
}

/** Sub-items in increasing order of their types (PS3.8 §9.3.1). */
function userInformation(info: UserInformation): Buffer {
  const subs: Buffer[] = [
    item(ITEM_TYPES.maximumLength, [u32(info.maxPduLength, 'maximum length')], 'Maximum Length Sub-Item'),
    item(
      ITEM_TYPES.implementationClassUid,
      [ascii(info.implementationClassUid, 'implementation class UID')],
      'Implementation Class UID Sub-Item',
    ),
  ];
  if (info.asyncOps) {
    subs.push(
      item(
        ITEM_TYPES.asynchronousOperationsWindow,
        [
          u16(info.asyncOps.maxInvoked, 'maximum operations invoked'),
          u16(info.asyncOps.maxPerformed, 'maximum operations performed'),
        ],
        'Asynchronous Operations Window Sub-Item',
      ),
    );
  }
  for (const role of info.roles) {
    subs.push(
      item(
        ITEM_TYPES.scpScuRoleSelection,
        [
          ...prefixed(ascii(role.sopClassUid, 'SOP class UID'), 'SOP class UID'),
          Buffer.from([role.scu ? 1 : 0, role.scp ? 1 : 0]),
        ],
        'SCP/SCU Role Selection Sub-Item',
      ),
    );
  }
  if (info.implementationVersionName !== undefined) {
    if (info.implementationVersionName.length > 16) {
      throw unencodable(
        `implementation version name "${info.implementationVersionName}" is longer than 16 characters`,
      );
    }
    subs.push(
      item(
        ITEM_TYPES.implementationVersionName,
        [ascii(info.implementationVersionName, 'implementation version name')],
        'Implementation Version Name Sub-Item',
      ),
    );
  }
  for (const ext of info.extendedNegotiation) {
    subs.push(
      item(
        ITEM_TYPES.sopClassExtendedNegotiation,
        [...prefixed(ascii(ext.sopClassUid, 'SOP class UID'), 'SOP class UID'), ext.info],
        'SOP Class Extended Negotiation Sub-Item',
      ),
    );
  }
  for (const ext of info.commonExtendedNegotiation) {
    const related = Buffer.concat(
      ext.relatedGeneralSopClasses.flatMap((uid) =>
        prefixed(ascii(uid, 'related general SOP class UID'), 'related general SOP class UID'),
      ),
    );
    subs.push(
      item(
        ITEM_TYPES.sopClassCommonExtendedNegotiation,
        [
          ...prefixed(ascii(ext.sopClassUid, 'SOP class UID'), 'SOP class UID'),
          ...prefixed(ascii(ext.serviceClassUid, 'service class UID'), 'service class UID'),
          ...prefixed(related, 'related general SOP class identification'),
        ],
        'SOP Class Common Extended Negotiation Sub-Item',
      ),
    );
  }
  if (info.userIdentity) {
    const id = info.userIdentity;
    subs.push(
      item(
        ITEM_TYPES.userIdentityRq,
        [
          Buffer.from([u8(id.type, 'user identity type'), id.positiveResponseRequested ? 1 : 0]),
          ...prefixed(id.primaryField, 'primary field'),
          ...prefixed(id.secondaryField, 'secondary field'),
        ],
        'User Identity Sub-Item (RQ)',
      ),
    );
  }
  if (info.userIdentityResponse) {
    subs.push(
      item(
        ITEM_TYPES.userIdentityAc,
        prefixed(info.userIdentityResponse, 'server response'),
        'User Identity Sub-Item (AC)',
      ),
    );
  }
  return item(ITEM_TYPES.userInformation, subs, 'User Information Item');
}

/** Message Control Header (PS3.8 E.2): bit 0 command, bit 1 last fragment. */
const controlHeader = (command: boolean, last: boolean) => (command ? 1 : 0) | (last ? 2 : 0);

/** Encodes a P-DATA-TF PDU of one or more PDVs (PS3.8 §9.3.5), copying each fragment once. */
export function encodePDataTf(pdvs: readonly Pdv[]): Buffer {
  if (pdvs.length === 0) throw unencodable('a P-DATA-TF carries one or more PDV items (PS3.8 §9.3.5)');
  let length = 0;
  for (const pdv of pdvs) {
    u8(pdv.contextId, 'presentation context ID');
    length += 6 + pdv.data.length;
  }
  if (length > 0xffffffff) throw unencodable(`a P-DATA-TF of ${length} bytes is over the PDU-length limit`);
  const out = Buffer.allocUnsafe(6 + length);
  out[0] = PDU_TYPES['P-DATA-TF'];
  out[1] = 0;
  out.writeUInt32BE(length, 2);
  let pos = 6;
  for (const pdv of pdvs) {
    out.writeUInt32BE(2 + pdv.data.length, pos);
    out[pos + 4] = pdv.contextId;
    out[pos + 5] = controlHeader(pdv.command, pdv.last);
    out.set(pdv.data, pos + 6);
    pos += 6 + pdv.data.length;
  }
  return out;
}

/**
 * Splits a message part (a command set or a data set) into P-DATA-TF PDUs of one PDV each, every
 * PDU-length at most `maxPduLength` (the peer's Maximum Length Sub-Item, PS3.8 D.1: the limit of the
 * variable field, which holds the PDV item's 4-byte length, context ID and message control header,
 * so a fragment carries up to `maxPduLength - 6` bytes). `maxPduLength` 0 means unlimited; fragments
 * never exceed `PDU_DEFAULTS.maxFragmentLength` either way.
 *
 * The last PDV gets the last-fragment bit (PS3.8 E.2) when `last` is true (the default: `bytes` is the
 * whole part). A part streamed in chunks passes `last: false` for all chunks but the final one; an
 * empty non-final chunk gives no PDU, an empty final one a PDU with an empty last fragment.
 * Arguments are checked at the call; PDUs are made lazily so the caller can write with backpressure.
 */
export function fragment(
  contextId: number,
  command: boolean,
  bytes: Buffer,
  maxPduLength: number,
  last = true,
): Generator<Buffer> {
  u8(contextId, 'presentation context ID');
  integer(maxPduLength, 0xffffffff, 'maximum PDU length');
  if (maxPduLength !== 0 && maxPduLength < 8) {
    throw unencodable(`a maximum PDU length of ${maxPduLength} leaves no room for an even fragment`);
  }
  // Even-sized fragments: PS3.8 Annex E.1 forbids odd fragments but the last, and a peer may
  // advertise an odd maximum.
  const room =
    (maxPduLength === 0
      ? PDU_DEFAULTS.maxFragmentLength
      : Math.min(maxPduLength - 6, PDU_DEFAULTS.maxFragmentLength)) & ~1;
  return fragments(contextId, command, bytes, room, last);
}

/** One P-DATA-TF PDU as its 12-byte head (PDU and PDV headers) and its fragment, not copied. */
export interface PduParts {
  readonly head: Buffer;
  readonly body: Buffer;
}

/**
 * As `fragment`, but each PDU comes as its header and a slice of `bytes` (no copy), for a gathered
 * write (`Association.sendPDataParts`).
 */
export function* fragmentParts(
  contextId: number,
  command: boolean,
  bytes: Buffer,
  maxPduLength: number,
  lastPart = true,
): Generator<PduParts> {
  u8(contextId, 'presentation context ID');
  integer(maxPduLength, 0xffffffff, 'maximum PDU length');
  if (maxPduLength !== 0 && maxPduLength < 8) {
    throw unencodable(`a maximum PDU length of ${maxPduLength} leaves no room for an even fragment`);
  }
  const room =
    (maxPduLength === 0
      ? PDU_DEFAULTS.maxFragmentLength
      : Math.min(maxPduLength - 6, PDU_DEFAULTS.maxFragmentLength)) & ~1;
  if (bytes.length === 0 && !lastPart) return;
  let pos = 0;
  do {
    const n = Math.min(room, bytes.length - pos);
    const last = lastPart && pos + n === bytes.length;
    const head = Buffer.allocUnsafe(12);
    head[0] = PDU_TYPES['P-DATA-TF'];
    head[1] = 0;
    head.writeUInt32BE(6 + n, 2);
    head.writeUInt32BE(2 + n, 6);
    head[10] = contextId;
    head[11] = controlHeader(command, last);
    yield { head, body: bytes.subarray(pos, pos + n) };
    pos += n;
  } while (pos < bytes.length);
}

function* fragments(
  contextId: number,
  command: boolean,
  bytes: Buffer,
  room: number,
  lastPart: boolean,
): Generator<Buffer> {
  if (bytes.length === 0 && !lastPart) return;
  let pos = 0;
  do {
    const n = Math.min(room, bytes.length - pos);
    const last = lastPart && pos + n === bytes.length;
    const out = Buffer.allocUnsafe(12 + n);
    out[0] = PDU_TYPES['P-DATA-TF'];
    out[1] = 0;
    out.writeUInt32BE(6 + n, 2);
    out.writeUInt32BE(2 + n, 6);
    out[10] = contextId;
    out[11] = controlHeader(command, last);
    bytes.copy(out, 12, pos, pos + n);
    pos += n;
    yield out;
  } while (pos < bytes.length);
}
