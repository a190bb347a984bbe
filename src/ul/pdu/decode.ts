// PS3.8 §9.3: bytes -> PDU objects. Strict about every length; tolerant where the standard says a
// field "shall not be tested" (reserved fields, the AE titles of an A-ASSOCIATE-AC, the transfer
// syntax of a rejected presentation context) and about items of unrecognized types (PS3.8 §9.3.1:
// "Items of unrecognized types shall be ignored and skipped").
import { trimUid } from '../../core/index.ts';
import { ITEM_TYPES, PDU_TYPE_NAMES } from './constants.ts';
import { ProtocolError, PROVIDER_ABORT_REASONS as REASON } from './errors.ts';
import type {
  AAbort,
  AAssociateAc,
  AAssociateRj,
  AAssociateRq,
  AsyncOps,
  CommonExtendedNegotiation,
  ExtendedNegotiation,
  PDataTf,
  Pdu,
  PduType,
  Pdv,
  PresentationContextAc,
  PresentationContextResult,
  PresentationContextRq,
  RoleSelection,
  UserIdentityRq,
  UserInformation,
} from './types.ts';

/** PDU-type, reserved, PDU-length (PS3.8 Table 9-11 bytes 1-6). */
export const PDU_HEADER_LENGTH = 6;
/** Protocol-version to the end of the reserved bytes 43-74 of an A-ASSOCIATE-RQ/AC (PS3.8 Table 9-11, 9-17). */
const ASSOCIATE_FIXED_LENGTH = 68;
/** The A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT PDU-length "shall have the fixed value of 00000004H". */
const SHORT_PDU_LENGTH = 4;
/** One PDV item with an empty fragment: item length (4), context ID (1), message control header (1). */
const MIN_PDV_ITEM = 6;

const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;

function malformed(message: string, offset: number): ProtocolError {
  return new ProtocolError(
    'ERR_UL_PDU_MALFORMED',
    `${message} (at offset ${offset})`,
    REASON.invalidPduParameterValue,
  );
}

function missing(message: string, offset: number): ProtocolError {
  return new ProtocolError(
    'ERR_UL_PDU_MISSING_ITEM',
    `${message} (at offset ${offset})`,
    REASON.invalidPduParameterValue,
  );
}

function unexpected(message: string, offset: number): ProtocolError {
  return new ProtocolError(
    'ERR_UL_PDU_UNEXPECTED_ITEM',
    `${message} (at offset ${offset})`,
    REASON.unexpectedPduParameter,
  );
}

/**
 * Checks a PDU header before its body is awaited or allocated: the PDU-type is one of the seven
 * (else unrecognized-PDU), the PDU-length is within `maxPduLength` and fits the PDU's fixed part.
 */
export function checkPduHeader(type: number, length: number, maxPduLength: number): PduType {
  const name = PDU_TYPE_NAMES.get(type);
  if (name === undefined) {
    throw new ProtocolError(
      'ERR_UL_PDU_UNKNOWN_TYPE',
      `unrecognized PDU type ${hex(type)}`,
      REASON.unrecognizedPdu,
    );
  }
  if (length > maxPduLength) {
    throw new ProtocolError(
      'ERR_UL_PDU_TOO_LARGE',
      `${name} PDU-length ${length} is over the limit of ${maxPduLength} bytes`,
      REASON.invalidPduParameterValue,
    );
  }
  switch (name) {
    case 'A-ASSOCIATE-RQ':
    case 'A-ASSOCIATE-AC':
      if (length < ASSOCIATE_FIXED_LENGTH)
        throw malformed(`${name} PDU-length ${length} is shorter than its fixed fields`, 2);
      break;
    case 'P-DATA-TF':
      if (length < MIN_PDV_ITEM) throw malformed(`P-DATA-TF PDU-length ${length} cannot hold a PDV item`, 2);
      break;
    default:
      if (length !== SHORT_PDU_LENGTH) throw malformed(`${name} PDU-length is ${length}, not 4`, 2);
  }
  return name;
}

/**
 * Decodes one whole PDU, its 6-byte header included, and nothing more: a PDU-length that disagrees with
 * the bytes given throws. Decoded Buffers (PDV fragments, user identity fields...) are slices of `bytes`.
 * Throws `ProtocolError` only, carrying the A-ABORT reason the error calls for.
 */
export function decodePdu(bytes: Buffer): Pdu {
  const b = bytes;
  if (b.length < PDU_HEADER_LENGTH) {
    throw new ProtocolError(
      'ERR_UL_PDU_TRUNCATED',
      `${b.length} bytes cannot hold a PDU header`,
      REASON.invalidPduParameterValue,
    );
  }
  const length = b.readUInt32BE(2);
  const name = checkPduHeader(b[0]!, length, 0xffffffff);
  const have = b.length - PDU_HEADER_LENGTH;
  if (have < length) {
    throw new ProtocolError(
      'ERR_UL_PDU_TRUNCATED',
      `${name} PDU-length is ${length} but only ${have} bytes follow the header`,
      REASON.invalidPduParameterValue,
    );
  }
  if (have > length)
    throw malformed(`${have - length} bytes follow the ${name} PDU`, PDU_HEADER_LENGTH + length);
  switch (name) {
    case 'A-ASSOCIATE-RQ':
    case 'A-ASSOCIATE-AC':
      return decodeAssociate(b, name);
    case 'A-ASSOCIATE-RJ':
      return decodeRj(b);
    case 'P-DATA-TF':
      return decodePData(b);
    case 'A-RELEASE-RQ':
      return { type: 'A-RELEASE-RQ' };
    case 'A-RELEASE-RP':
      return { type: 'A-RELEASE-RP' };
    case 'A-ABORT':
      return decodeAbort(b);
  }
}

// ---------------------------------------------------------------------------------------------------
// Fixed-length PDUs

function decodeRj(b: Buffer): AAssociateRj {
  // PS3.8 Table 9-21: byte 7 reserved, 8 result, 9 source, 10 reason/diag.
  const result = b[7]!;
  const source = b[8]!;
  if (result !== 1 && result !== 2) throw malformed(`A-ASSOCIATE-RJ result ${result} is not 1 or 2`, 7);
  if (source !== 1 && source !== 2 && source !== 3)
    throw malformed(`A-ASSOCIATE-RJ source ${source} is not 1, 2 or 3`, 8);
  return { type: 'A-ASSOCIATE-RJ', result, source, reason: b[9]! };
}

function decodeAbort(b: Buffer): AAbort {
  // PS3.8 Table 9-26: bytes 7-8 reserved, 9 source, 10 reason/diag (not significant for source 0).
  const source = b[8]!;
  if (source !== 0 && source !== 2) throw malformed(`A-ABORT source ${source} is not 0 or 2`, 8);
  return { type: 'A-ABORT', source, reason: b[9]! };
}

// ---------------------------------------------------------------------------------------------------
// P-DATA-TF

/**
 * Checks the PDV item at `at` of `b` (its first 4 bytes at least, when `room` allows) against the
 * `room` bytes left in its P-DATA-TF, `offset` being its place in the PDU (for the message); returns
 * its item length. PS3.8 Table 9-23: the item length counts the context ID and the PDV, its message
 * control header included, so it is at least 2.
 */
export function checkPdvItem(b: Buffer, at: number, room: number, offset = at): number {
  if (room < 4) throw malformed('a PDV item header is cut short', offset);
  const length = b.readUInt32BE(at);
  if (length < 2)
    throw malformed(
      `PDV item length ${length} leaves no room for the context ID and message control header`,
      offset,
    );
  if (length > room - 4)
    throw malformed(`PDV item of ${length} bytes runs past the end of the P-DATA-TF`, offset);
  return length;
}

function decodePData(b: Buffer): PDataTf {
  const pdvs: Pdv[] = [];
  let pos = PDU_HEADER_LENGTH;
  while (pos < b.length) {
    const length = checkPdvItem(b, pos, b.length - pos);
    const control = b[pos + 5]!;
    pdvs.push({
      contextId: b[pos + 4]!,
      // PS3.8 E.2: bit 0 command/data set, bit 1 last fragment; bits 2-7 are 0 and not tested.
      command: (control & 1) !== 0,
      last: (control & 2) !== 0,
      data: b.subarray(pos + 6, pos + 4 + length),
    });
    pos += 4 + length;
  }
  return { type: 'P-DATA-TF', pdvs };
}

// ---------------------------------------------------------------------------------------------------
// A-ASSOCIATE-RQ / -AC

interface Item {
  readonly type: number;
  /** Offset of the item header. */
  readonly offset: number;
  /** Offset of the first byte after the item header. */
  readonly body: number;
  /** Offset just past the item. */
  readonly end: number;
}

/** Items and sub-items with a 1-byte type, a reserved byte and a 2-byte length (PS3.8 §9.3.2, Annex D). */
function* items(b: Buffer, from: number, to: number, where: string): Generator<Item> {
  let pos = from;
  while (pos < to) {
    if (to - pos < 4) throw malformed(`an item header in the ${where} is cut short`, pos);
    const type = b[pos]!;
    const length = b.readUInt16BE(pos + 2);
    const end = pos + 4 + length;
    if (end > to)
      throw malformed(`item ${hex(type)} of ${length} bytes runs past the end of the ${where}`, pos);
    yield { type, offset: pos, body: pos + 4, end };
    pos = end;
  }
}

const SUB_ITEM_NAMES: Readonly<Record<number, string>> = {
  [ITEM_TYPES.abstractSyntax]: 'Abstract Syntax Sub-Item',
  [ITEM_TYPES.transferSyntax]: 'Transfer Syntax Sub-Item',
  [ITEM_TYPES.maximumLength]: 'Maximum Length Sub-Item',
  [ITEM_TYPES.implementationClassUid]: 'Implementation Class UID Sub-Item',
  [ITEM_TYPES.asynchronousOperationsWindow]: 'Asynchronous Operations Window Sub-Item',
  [ITEM_TYPES.scpScuRoleSelection]: 'SCP/SCU Role Selection Sub-Item',
  [ITEM_TYPES.implementationVersionName]: 'Implementation Version Name Sub-Item',
  [ITEM_TYPES.sopClassExtendedNegotiation]: 'SOP Class Extended Negotiation Sub-Item',
  [ITEM_TYPES.sopClassCommonExtendedNegotiation]: 'SOP Class Common Extended Negotiation Sub-Item',
  [ITEM_TYPES.userIdentityRq]: 'User Identity Sub-Item (RQ)',
  [ITEM_TYPES.userIdentityAc]: 'User Identity Sub-Item (AC)',
};

/** Sequential fields inside one item, each checked against the item's end. */
class Fields {
  pos: number;

  constructor(
    private readonly b: Buffer,
    start: number,
    private readonly end: number,
    private readonly where: string,
  ) {
    this.pos = start;
  }

  private need(n: number, field: string): number {
    if (this.end - this.pos < n) throw malformed(`${field} runs past the end of the ${this.where}`, this.pos);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8(field: string): number {
    return this.b[this.need(1, field)]!;
  }

  u16(field: string): number {
    return this.b.readUInt16BE(this.need(2, field));
  }

  u32(field: string): number {
    return this.b.readUInt32BE(this.need(4, field));
  }

  /** A byte that "shall be 0 or 1" (roles, positive response requested). */
  flag(field: string): boolean {
    const at = this.pos;
    const v = this.u8(field);
    if (v > 1) throw malformed(`${field} in the ${this.where} is ${v}, not 0 or 1`, at);
    return v === 1;
  }

  bytes(n: number, field: string): Buffer {
    const at = this.need(n, field);
    return this.b.subarray(at, at + n);
  }

  /** A 2-byte length followed by that many bytes. */
  prefixed(field: string): Buffer {
    return this.bytes(this.u16(`${field} length`), field);
  }

  rest(): Buffer {
    const at = this.pos;
    this.pos = this.end;
    return this.b.subarray(at, this.end);
  }

  done(): void {
    if (this.pos !== this.end)
      throw malformed(`${this.end - this.pos} bytes left over at the end of the ${this.where}`, this.pos);
  }
}

/** UIDs in items are not padded (PS3.8 Annex F), but a trailing NUL (or space) from a lenient peer is dropped. */
const uid = (bytes: Buffer) => trimUid(bytes.toString('latin1'));

/** Leading and trailing spaces are non-significant (PS3.8 Table 9-11); NUL padding is tolerated too. */
const text = (bytes: Buffer) => bytes.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');

function decodeAssociate(b: Buffer, name: 'A-ASSOCIATE-RQ' | 'A-ASSOCIATE-AC'): AAssociateRq | AAssociateAc {
  const rq = name === 'A-ASSOCIATE-RQ';
  // PS3.8 Table 9-11 / 9-17: 7-8 protocol version, 9-10 reserved, 11-26 called, 27-42 calling, 43-74 reserved.
  const protocolVersion = b.readUInt16BE(6);
  const calledAETitle = text(b.subarray(10, 26));
  const callingAETitle = text(b.subarray(26, 42));
  let applicationContextName: string | undefined;
  let userInformation: UserInformation | undefined;
  const contextsRq: PresentationContextRq[] = [];
  const contextsAc: PresentationContextAc[] = [];
  const where = `${name} variable field`;
  for (const item of items(b, PDU_HEADER_LENGTH + ASSOCIATE_FIXED_LENGTH, b.length, where)) {
    switch (item.type) {
      case ITEM_TYPES.applicationContext:
        if (applicationContextName !== undefined)
          throw unexpected(`a second Application Context Item in the ${name}`, item.offset);
        applicationContextName = uid(b.subarray(item.body, item.end));
        break;
      case ITEM_TYPES.presentationContextRq:
        if (!rq)
          throw unexpected(
            'an A-ASSOCIATE-RQ Presentation Context Item (20H) in an A-ASSOCIATE-AC',
            item.offset,
          );
        contextsRq.push(presentationContextRq(b, item));
        break;
      case ITEM_TYPES.presentationContextAc:
        if (rq)
          throw unexpected(
            'an A-ASSOCIATE-AC Presentation Context Item (21H) in an A-ASSOCIATE-RQ',
            item.offset,
          );
        contextsAc.push(presentationContextAc(b, item));
        break;
      case ITEM_TYPES.userInformation:
        if (userInformation !== undefined)
          throw unexpected(`a second User Information Item in the ${name}`, item.offset);
        userInformation = decodeUserInformation(b, item);
        break;
      default:
      // PS3.8 §9.3.1: "Items of unrecognized types shall be ignored and skipped."
    }
  }
  if (applicationContextName === undefined) throw missing(`the ${name} has no Application Context Item`, 74);
  if (userInformation === undefined) throw missing(`the ${name} has no User Information Item`, 74);
  const common = { protocolVersion, calledAETitle, callingAETitle, applicationContextName, userInformation };
  return rq
    ? { type: 'A-ASSOCIATE-RQ', ...common, presentationContexts: contextsRq }
    : { type: 'A-ASSOCIATE-AC', ...common, presentationContexts: contextsAc };
}

/** PS3.8 §9.3.2.2, Table 9-13: ID, three reserved bytes, one abstract syntax, one or more transfer syntaxes. */
function presentationContextRq(b: Buffer, item: Item): PresentationContextRq {
  const where = 'Presentation Context Item (RQ)';
  const f = new Fields(b, item.body, item.end, where);
  const id = f.u8('Presentation-context-ID');
  f.bytes(3, 'reserved bytes');
  let abstractSyntax: string | undefined;
  const transferSyntaxes: string[] = [];
  for (const sub of items(b, f.pos, item.end, where)) {
    if (sub.type === ITEM_TYPES.abstractSyntax) {
      if (abstractSyntax !== undefined)
        throw unexpected(`presentation context ${id} has a second Abstract Syntax Sub-Item`, sub.offset);
      abstractSyntax = uid(b.subarray(sub.body, sub.end));
    } else if (sub.type === ITEM_TYPES.transferSyntax) {
      transferSyntaxes.push(uid(b.subarray(sub.body, sub.end)));
    }
    // other sub-item types: PS3.8 §9.3.1, ignored and skipped
  }
  if (abstractSyntax === undefined)
    throw missing(`presentation context ${id} has no Abstract Syntax Sub-Item`, item.offset);
  if (transferSyntaxes.length === 0)
    throw missing(`presentation context ${id} has no Transfer Syntax Sub-Item`, item.offset);
  return { id, abstractSyntax, transferSyntaxes };
}

/** PS3.8 §9.3.3.2, Table 9-18: ID, reserved, result/reason, reserved, one transfer syntax. */
function presentationContextAc(b: Buffer, item: Item): PresentationContextAc {
  const where = 'Presentation Context Item (AC)';
  const f = new Fields(b, item.body, item.end, where);
  const id = f.u8('Presentation-context-ID');
  f.u8('reserved byte');
  const resultAt = f.pos;
  const result = f.u8('Result/Reason');
  f.u8('reserved byte');
  if (result > 4) throw malformed(`presentation context ${id} result/reason ${result} is not 0-4`, resultAt);
  let transferSyntax: string | undefined;
  for (const sub of items(b, f.pos, item.end, where)) {
    if (sub.type === ITEM_TYPES.transferSyntax) {
      if (transferSyntax !== undefined)
        throw unexpected(`presentation context ${id} has a second Transfer Syntax Sub-Item`, sub.offset);
      transferSyntax = uid(b.subarray(sub.body, sub.end));
    } else if (sub.type === ITEM_TYPES.abstractSyntax) {
      throw unexpected(
        `presentation context ${id} of an A-ASSOCIATE-AC has an Abstract Syntax Sub-Item`,
        sub.offset,
      );
    }
  }
  if (result === 0 && !transferSyntax) {
    throw missing(`accepted presentation context ${id} names no transfer syntax`, item.offset);
  }
  // PS3.8 §9.3.3.2: when not accepted, the sub-item "shall not be tested"; some peers omit it.
  return {
    id,
    result: result as PresentationContextResult,
    transferSyntax: result === 0 ? transferSyntax! : (transferSyntax ?? ''),
  };
}

/** PS3.8 §9.3.2.3 and Annex D, PS3.7 D.3.3. */
function decodeUserInformation(b: Buffer, item: Item): UserInformation {
  let maxPduLength: number | undefined;
  let implementationClassUid: string | undefined;
  let implementationVersionName: string | undefined;
  let asyncOps: AsyncOps | undefined;
  let userIdentity: UserIdentityRq | undefined;
  let userIdentityResponse: Buffer | undefined;
  const roles: RoleSelection[] = [];
  const extendedNegotiation: ExtendedNegotiation[] = [];
  const commonExtendedNegotiation: CommonExtendedNegotiation[] = [];

  for (const sub of items(b, item.body, item.end, 'User Information Item')) {
    const where = SUB_ITEM_NAMES[sub.type] ?? 'sub-item';
    const once = (seen: unknown) => {
      if (seen !== undefined) throw unexpected(`a second ${where}`, sub.offset);
    };
    const f = new Fields(b, sub.body, sub.end, where);
    switch (sub.type) {
      case ITEM_TYPES.maximumLength: // PS3.8 D.1
        once(maxPduLength);
        maxPduLength = f.u32('Maximum-length-received');
        f.done();
        break;
      case ITEM_TYPES.implementationClassUid: // PS3.7 D.3.3.2
        once(implementationClassUid);
        implementationClassUid = uid(f.rest());
        break;
      case ITEM_TYPES.asynchronousOperationsWindow: // PS3.7 D.3.3.3
        once(asyncOps);
        asyncOps = {
          maxInvoked: f.u16('Maximum-number-operations-invoked'),
          maxPerformed: f.u16('Maximum-number-operations-performed'),
        };
        f.done();
        break;
      case ITEM_TYPES.scpScuRoleSelection: // PS3.7 D.3.3.4
        roles.push({
          sopClassUid: uid(f.prefixed('SOP-class-uid')),
          scu: f.flag('SCU-role'),
          scp: f.flag('SCP-role'),
        });
        f.done();
        break;
      case ITEM_TYPES.implementationVersionName: // PS3.7 D.3.3.2
        once(implementationVersionName);
        implementationVersionName = text(f.rest());
        break;
      case ITEM_TYPES.sopClassExtendedNegotiation: // PS3.7 D.3.3.5
        extendedNegotiation.push({ sopClassUid: uid(f.prefixed('SOP-class-uid')), info: f.rest() });
        break;
      case ITEM_TYPES.sopClassCommonExtendedNegotiation: {
        // PS3.7 D.3.3.6; byte 2 is the Sub-Item-version (0), not tested.
        const sopClassUid = uid(f.prefixed('SOP-class-uid'));
        const serviceClassUid = uid(f.prefixed('Service-class-uid'));
        const relatedLength = f.u16('Related-general-sop-class-identification length');
        const relatedStart = f.pos;
        f.bytes(relatedLength, 'Related-general-sop-class-identification');
        const r = new Fields(
          b,
          relatedStart,
          relatedStart + relatedLength,
          'Related General SOP Class Identification',
        );
        const relatedGeneralSopClasses: string[] = [];
        while (r.pos < relatedStart + relatedLength)
          relatedGeneralSopClasses.push(uid(r.prefixed('Related-general-sop-class-uid')));
        f.done();
        commonExtendedNegotiation.push({ sopClassUid, serviceClassUid, relatedGeneralSopClasses });
        break;
      }
      case ITEM_TYPES.userIdentityRq: // PS3.7 D.3.3.7.1
        once(userIdentity);
        userIdentity = {
          type: f.u8('User-Identity-Type'),
          positiveResponseRequested: f.flag('Positive-response-requested'),
          primaryField: f.prefixed('Primary-field'),
          secondaryField: f.prefixed('Secondary-field'),
        };
        f.done();
        break;
      case ITEM_TYPES.userIdentityAc: // PS3.7 D.3.3.7.2
        once(userIdentityResponse);
        userIdentityResponse = f.prefixed('Server-response');
        f.done();
        break;
      default:
      // PS3.8 §9.3.1: unrecognized sub-items are ignored and skipped.
    }
  }
  if (maxPduLength === undefined)
    throw missing('the User Information Item has no Maximum Length Sub-Item', item.offset);
  if (implementationClassUid === undefined) {
    throw missing('the User Information Item has no Implementation Class UID Sub-Item', item.offset);
  }
  const info: UserInformation = {
    maxPduLength,
    implementationClassUid,
    roles,
    extendedNegotiation,
    commonExtendedNegotiation,
  };
  if (implementationVersionName !== undefined) info.implementationVersionName = implementationVersionName;
  if (asyncOps !== undefined) info.asyncOps = asyncOps;
  if (userIdentity !== undefined) info.userIdentity = userIdentity;
  if (userIdentityResponse !== undefined) info.userIdentityResponse = userIdentityResponse;
  return info;
}
