import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type AAbort,
  type AAssociateAc,
  type AAssociateRj,
  type AAssociateRq,
  abortReasonText,
  DICOM_APPLICATION_CONTEXT,
  decodePdu,
  encodePDataTf,
  encodePdu,
  fragment,
  type PDataTf,
  PDU_DEFAULTS,
  type Pdu,
  PduReader,
  type Pdv,
  type PresentationContextAc,
  type PresentationContextResult,
  ProtocolError,
  presentationContextResultText,
  rejectReasonText,
  rejectText,
  type UserInformation,
} from './index.ts';

// ---------------------------------------------------------------------------------------------------
// Golden fixtures: test/fixtures/pdu/*.hex, a '#' comment decoding each field, then the bytes.

const FIXTURES = new URL('../../../test/fixtures/pdu/', import.meta.url);

function loadHex(name: string): Buffer {
  const hex = readFileSync(new URL(name, FIXTURES), 'utf8').replace(/#.*$/gm, '').replace(/\s+/g, '');
  assert.match(hex, /^(?:[0-9a-f]{2})*$/i, `${name} holds only hex byte pairs outside comments`);
  return Buffer.from(hex, 'hex');
}

const IMPL = '2.25.329800735698586629295641978511506172918';
const VERIFICATION = '1.2.840.10008.1.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const SC = '1.2.840.10008.5.1.4.1.1.7';
const IVRLE = '1.2.840.10008.1.2';
const EVRLE = '1.2.840.10008.1.2.1';

const noExtras = { roles: [], extendedNegotiation: [], commonExtendedNegotiation: [] };

const ASSOCIATE_RQ: AAssociateRq = {
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAETitle: 'TESSERA',
  callingAETitle: 'STORESCU',
  applicationContextName: DICOM_APPLICATION_CONTEXT,
  presentationContexts: [
    { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
    { id: 3, abstractSyntax: CT, transferSyntaxes: [EVRLE, IVRLE] },
  ],
  userInformation: {
    maxPduLength: 16384,
    implementationClassUid: IMPL,
    implementationVersionName: 'TESSERA_010',
    asyncOps: { maxInvoked: 5, maxPerformed: 3 },
    roles: [{ sopClassUid: CT, scu: false, scp: true }],
    extendedNegotiation: [],
    commonExtendedNegotiation: [],
    userIdentity: {
      type: 2,
      positiveResponseRequested: true,
      primaryField: Buffer.from('alice'),
      secondaryField: Buffer.from('p4ssw0rd'),
    },
  },
};

const ASSOCIATE_RQ_EXTENDED: AAssociateRq = {
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAETitle: 'ARCHIVE',
  callingAETitle: 'MODALITY-1',
  applicationContextName: DICOM_APPLICATION_CONTEXT,
  presentationContexts: [{ id: 1, abstractSyntax: MR, transferSyntaxes: [EVRLE] }],
  userInformation: {
    maxPduLength: 0,
    implementationClassUid: IMPL,
    roles: [],
    extendedNegotiation: [{ sopClassUid: MR, info: Buffer.from([1, 0, 0, 0, 1, 0]) }],
    commonExtendedNegotiation: [
      {
        sopClassUid: '1.2.840.10008.5.1.4.1.1.88.22',
        serviceClassUid: '1.2.840.10008.4.2',
        relatedGeneralSopClasses: ['1.2.840.10008.5.1.4.1.1.88.11', '1.2.840.10008.5.1.4.1.1.88.33'],
      },
    ],
    userIdentity: {
      type: 1,
      positiveResponseRequested: false,
      primaryField: Buffer.from('alice'),
      secondaryField: Buffer.alloc(0),
    },
  },
};

const ASSOCIATE_AC: AAssociateAc = {
  type: 'A-ASSOCIATE-AC',
  protocolVersion: 1,
  calledAETitle: 'TESSERA',
  callingAETitle: 'STORESCU',
  applicationContextName: DICOM_APPLICATION_CONTEXT,
  presentationContexts: [
    { id: 1, result: 0, transferSyntax: IVRLE },
    { id: 3, result: 4, transferSyntax: '' },
    { id: 5, result: 3, transferSyntax: '' },
  ],
  userInformation: {
    maxPduLength: 32768,
    implementationClassUid: IMPL,
    implementationVersionName: 'TESSERA_010',
    asyncOps: { maxInvoked: 1, maxPerformed: 1 },
    roles: [{ sopClassUid: CT, scu: false, scp: true }],
    extendedNegotiation: [],
    commonExtendedNegotiation: [],
    userIdentityResponse: Buffer.from('server-ticket'),
  },
};

/** Implicit VR little endian element, as in the P-DATA-TF fixture. */
function element(group: number, elementNumber: number, value: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elementNumber, 2);
  header.writeUInt32LE(value.length, 4);
  return Buffer.concat([header, value]);
}
const us = (v: number) => Buffer.from([v & 0xff, v >> 8]);
const scUid = Buffer.concat([Buffer.from(SC), Buffer.from([0])]);
const commandElements = Buffer.concat([
  element(0, 0x0002, scUid),
  element(0, 0x0100, us(0x0001)),
  element(0, 0x0110, us(7)),
  element(0, 0x0700, us(0)),
  element(0, 0x0800, us(0)),
  element(0, 0x1000, Buffer.from('2.25.1')),
]);
const groupLength = Buffer.alloc(4);
groupLength.writeUInt32LE(commandElements.length);

const P_DATA: PDataTf = {
  type: 'P-DATA-TF',
  pdvs: [
    {
      contextId: 3,
      command: true,
      last: true,
      data: Buffer.concat([element(0, 0, groupLength), commandElements]),
    },
    { contextId: 3, command: false, last: false, data: element(0x0008, 0x0016, scUid) },
  ],
};

const GOLDEN: ReadonlyArray<readonly [string, Pdu]> = [
  ['a-associate-rq.hex', ASSOCIATE_RQ],
  ['a-associate-rq-extended.hex', ASSOCIATE_RQ_EXTENDED],
  ['a-associate-ac.hex', ASSOCIATE_AC],
  ['a-associate-rj.hex', { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 7 }],
  ['p-data-tf.hex', P_DATA],
  ['a-release-rq.hex', { type: 'A-RELEASE-RQ' }],
  ['a-release-rp.hex', { type: 'A-RELEASE-RP' }],
  ['a-abort.hex', { type: 'A-ABORT', source: 2, reason: 2 }],
];

for (const [file, expected] of GOLDEN) {
  test(`golden ${file}: decodes to the expected PDU and encodes back to the same bytes`, () => {
    const bytes = loadHex(file);
    assert.deepEqual(decodePdu(bytes), expected);
    assert.deepEqual(encodePdu(expected), bytes);
  });
}

test('golden P-DATA-TF: encodePDataTf gives the same bytes as encodePdu', () => {
  assert.deepEqual(encodePDataTf(P_DATA.pdvs), loadHex('p-data-tf.hex'));
});

// ---------------------------------------------------------------------------------------------------
// Hand-built bytes for the tolerance and error cases (independent of the encoder).

type Part = Buffer | string | number[];
const bytesOf = (parts: readonly Part[]) =>
  Buffer.concat(
    parts.map((p) =>
      typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.isBuffer(p) ? p : Buffer.from(p),
    ),
  );
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
const item = (type: number, ...parts: Part[]) => {
  const body = bytesOf(parts);
  return Buffer.concat([Buffer.from([type, 0]), u16(body.length), body]);
};
const pdu = (type: number, ...parts: Part[]) => {
  const body = bytesOf(parts);
  return Buffer.concat([Buffer.from([type, 0]), u32(body.length), body]);
};
const fixedPart = (called = 'TESSERA', calling = 'STORESCU') =>
  bytesOf([u16(1), u16(0), called.padEnd(16), calling.padEnd(16), Buffer.alloc(32)]);
const appContext = item(0x10, DICOM_APPLICATION_CONTEXT);
const pcRq = item(0x20, [1, 0, 0, 0], item(0x30, VERIFICATION), item(0x40, IVRLE));
const minimalUserInfo = item(0x50, item(0x51, u32(16384)), item(0x52, IMPL));
const minimalInfo: UserInformation = { maxPduLength: 16384, implementationClassUid: IMPL, ...noExtras };

function assertProtocolError(fn: () => unknown, code: string, reason: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.abortReason, reason, err.message);
    assert.equal(err.abortSource, 2);
    return true;
  });
}

test('reserved fields are not tested (PS3.8 Table 9-11: "not tested to this value when received")', () => {
  const bytes = Buffer.from(loadHex('a-associate-rq.hex'));
  bytes[1] = 0xff; // PDU reserved
  bytes.fill(0xff, 8, 10); // reserved after the protocol version
  bytes.fill(0xff, 42, 74); // reserved bytes 43-74
  bytes[75] = 0xee; // application context item reserved byte
  bytes[100] = 0xee; // presentation context item reserved byte
  bytes.fill(0xdd, 104, 107); // presentation context reserved bytes
  bytes[235] = 0xcc; // maximum length sub-item reserved byte
  assert.deepEqual(decodePdu(bytes), ASSOCIATE_RQ);

  assert.deepEqual(decodePdu(Buffer.from([0x05, 0xff, 0, 0, 0, 4, 1, 2, 3, 4])), { type: 'A-RELEASE-RQ' });
  assert.deepEqual(decodePdu(Buffer.from([0x06, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])), {
    type: 'A-RELEASE-RP',
  });
  assert.deepEqual(decodePdu(Buffer.from([0x07, 0, 0, 0, 0, 4, 9, 9, 2, 6])), {
    type: 'A-ABORT',
    source: 2,
    reason: 6,
  });
  assert.deepEqual(decodePdu(Buffer.from([0x03, 0, 0, 0, 0, 4, 0xff, 2, 3, 1])), {
    type: 'A-ASSOCIATE-RJ',
    result: 2,
    source: 3,
    reason: 1,
  });
  // Message control header bits 2-7 are not tested either.
  const pdata = decodePdu(pdu(0x04, u32(3), [1, 0xfe], 'x')) as PDataTf;
  assert.deepEqual(pdata.pdvs, [{ contextId: 1, command: false, last: true, data: Buffer.from('x') }]);
});

test('items and sub-items of unrecognized types are ignored and skipped (PS3.8 §9.3.1)', () => {
  const bytes = pdu(
    0x01,
    fixedPart(),
    appContext,
    item(0x20, [1, 0, 0, 0], item(0x30, VERIFICATION), item(0x3f, 'unknown'), item(0x40, IVRLE)),
    item(0x50, item(0x51, u32(16384)), item(0x5f, [1, 2, 3]), item(0x52, IMPL), item(0x70, [])),
    item(0x7f, 'a future item'),
  );
  assert.deepEqual(decodePdu(bytes), {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAETitle: 'TESSERA',
    callingAETitle: 'STORESCU',
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] }],
    userInformation: minimalInfo,
  });
});

test('AE titles are trimmed, UIDs lose a trailing NUL, a rejected context may omit its transfer syntax', () => {
  const rq = decodePdu(
    pdu(
      0x01,
      fixedPart('  ARCHIVE', 'X'),
      item(0x10, `${DICOM_APPLICATION_CONTEXT}\0`),
      item(0x20, [1, 0, 0, 0], item(0x30, `${VERIFICATION}\0`), item(0x40, `${IVRLE}\0`)),
      minimalUserInfo,
    ),
  ) as AAssociateRq;
  assert.equal(rq.calledAETitle, 'ARCHIVE');
  assert.equal(rq.callingAETitle, 'X');
  assert.equal(rq.applicationContextName, DICOM_APPLICATION_CONTEXT);
  assert.deepEqual(rq.presentationContexts, [
    { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
  ]);

  // pynetdicom #342 and #361: a rejected context with an empty or no Transfer Syntax Sub-Item.
  const ac = decodePdu(
    pdu(
      0x02,
      fixedPart(),
      appContext,
      item(0x21, [1, 0, 0, 0], item(0x40, EVRLE)),
      item(0x21, [3, 0, 3, 0], item(0x40, '')),
      item(0x21, [5, 0, 1, 0]),
      minimalUserInfo,
    ),
  ) as AAssociateAc;
  assert.deepEqual(ac.presentationContexts, [
    { id: 1, result: 0, transferSyntax: EVRLE },
    { id: 3, result: 3, transferSyntax: '' },
    { id: 5, result: 1, transferSyntax: '' },
  ]);
  // A rejected context's transfer syntax is kept if sent, though not significant.
  const kept = decodePdu(
    pdu(0x02, fixedPart(), appContext, item(0x21, [1, 0, 2, 0], item(0x40, IVRLE)), minimalUserInfo),
  ) as AAssociateAc;
  assert.deepEqual(kept.presentationContexts, [{ id: 1, result: 2, transferSyntax: IVRLE }]);
});

test('an A-ASSOCIATE-RQ without presentation contexts decodes (the acceptor rejects it, not the codec)', () => {
  const rq = decodePdu(pdu(0x01, fixedPart(), appContext, minimalUserInfo)) as AAssociateRq;
  assert.deepEqual(rq.presentationContexts, []);
});

test('decode errors carry the code and the A-ABORT reason of PS3.8 Table 9-26', () => {
  const cases: ReadonlyArray<readonly [string, Buffer, string, number]> = [
    ['unknown PDU type', Buffer.from([0x08, 0, 0, 0, 0, 4, 0, 0, 0, 0]), 'ERR_UL_PDU_UNKNOWN_TYPE', 1],
    ['PDU type 0', Buffer.from([0x00, 0, 0, 0, 0, 0]), 'ERR_UL_PDU_UNKNOWN_TYPE', 1],
    ['short header', Buffer.from([0x05, 0, 0]), 'ERR_UL_PDU_TRUNCATED', 6],
    ['body shorter than the PDU-length', Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0]), 'ERR_UL_PDU_TRUNCATED', 6],
    [
      'a 4 GB PDU-length with few bytes',
      Buffer.from([0x04, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]),
      'ERR_UL_PDU_TRUNCATED',
      6,
    ],
    ['bytes after the PDU', Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0]), 'ERR_UL_PDU_MALFORMED', 6],
    [
      'A-RELEASE-RQ of length 5',
      Buffer.from([0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0]),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    ['A-ABORT of length 2', Buffer.from([0x07, 0, 0, 0, 0, 2, 0, 0]), 'ERR_UL_PDU_MALFORMED', 6],
    ['A-ASSOCIATE-RJ result 3', Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 3, 1, 1]), 'ERR_UL_PDU_MALFORMED', 6],
    ['A-ASSOCIATE-RJ source 0', Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 1, 0, 1]), 'ERR_UL_PDU_MALFORMED', 6],
    [
      'A-ABORT source 1 (reserved)',
      Buffer.from([0x07, 0, 0, 0, 0, 4, 0, 0, 1, 0]),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    ['A-ASSOCIATE-RQ shorter than its fixed fields', pdu(0x01, Buffer.alloc(67)), 'ERR_UL_PDU_MALFORMED', 6],
    ['P-DATA-TF without a PDV', pdu(0x04), 'ERR_UL_PDU_MALFORMED', 6],
    ['PDV item length 1', pdu(0x04, u32(1), [1, 3]), 'ERR_UL_PDU_MALFORMED', 6],
    ['PDV item overrunning the PDU', pdu(0x04, u32(10), [1, 3, 0]), 'ERR_UL_PDU_MALFORMED', 6],
    ['PDV item header cut short', pdu(0x04, u32(2), [1, 3], [0, 0]), 'ERR_UL_PDU_MALFORMED', 6],
    [
      'item overrunning the variable field',
      pdu(0x01, fixedPart(), appContext, pcRq, [0x50, 0, 0, 40, 0x51, 0, 0, 4]),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'item header cut short',
      pdu(0x01, fixedPart(), appContext, pcRq, minimalUserInfo, [0x10, 0]),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'maximum length sub-item of 3 bytes',
      pdu(0x01, fixedPart(), appContext, pcRq, item(0x50, item(0x51, [0, 0x40, 0]), item(0x52, IMPL))),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'maximum length sub-item of 5 bytes',
      pdu(0x01, fixedPart(), appContext, pcRq, item(0x50, item(0x51, [0, 0, 0x40, 0, 0]), item(0x52, IMPL))),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'role selection UID length overrunning the sub-item',
      pdu(
        0x01,
        fixedPart(),
        appContext,
        pcRq,
        item(0x50, item(0x51, u32(0)), item(0x52, IMPL), item(0x54, u16(40), CT, [0, 1])),
      ),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'role selection SCP-role 2',
      pdu(
        0x01,
        fixedPart(),
        appContext,
        pcRq,
        item(0x50, item(0x51, u32(0)), item(0x52, IMPL), item(0x54, u16(CT.length), CT, [0, 2])),
      ),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'user identity without its secondary field length',
      pdu(
        0x01,
        fixedPart(),
        appContext,
        pcRq,
        item(0x50, item(0x51, u32(0)), item(0x52, IMPL), item(0x58, [1, 0], u16(1), 'a')),
      ),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'common extended negotiation with a related UID overrunning its list',
      pdu(
        0x01,
        fixedPart(),
        appContext,
        pcRq,
        item(
          0x50,
          item(0x51, u32(0)),
          item(0x52, IMPL),
          item(0x57, u16(1), '1', u16(1), '2', u16(4), u16(5), '3.4'),
        ),
      ),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'presentation context result 5',
      pdu(0x02, fixedPart(), appContext, item(0x21, [1, 0, 5, 0], item(0x40, IVRLE)), minimalUserInfo),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    [
      'presentation context item without its fixed bytes',
      pdu(0x01, fixedPart(), appContext, item(0x20, [1, 0]), minimalUserInfo),
      'ERR_UL_PDU_MALFORMED',
      6,
    ],
    ['no application context', pdu(0x01, fixedPart(), pcRq, minimalUserInfo), 'ERR_UL_PDU_MISSING_ITEM', 6],
    ['no user information', pdu(0x01, fixedPart(), appContext, pcRq), 'ERR_UL_PDU_MISSING_ITEM', 6],
    [
      'no maximum length sub-item',
      pdu(0x01, fixedPart(), appContext, pcRq, item(0x50, item(0x52, IMPL))),
      'ERR_UL_PDU_MISSING_ITEM',
      6,
    ],
    [
      'no implementation class UID sub-item',
      pdu(0x01, fixedPart(), appContext, pcRq, item(0x50, item(0x51, u32(0)))),
      'ERR_UL_PDU_MISSING_ITEM',
      6,
    ],
    [
      'no abstract syntax',
      pdu(0x01, fixedPart(), appContext, item(0x20, [1, 0, 0, 0], item(0x40, IVRLE)), minimalUserInfo),
      'ERR_UL_PDU_MISSING_ITEM',
      6,
    ],
    [
      'no transfer syntax proposed',
      pdu(0x01, fixedPart(), appContext, item(0x20, [1, 0, 0, 0], item(0x30, CT)), minimalUserInfo),
      'ERR_UL_PDU_MISSING_ITEM',
      6,
    ],
    [
      'accepted context without a transfer syntax',
      pdu(0x02, fixedPart(), appContext, item(0x21, [1, 0, 0, 0], item(0x40, '')), minimalUserInfo),
      'ERR_UL_PDU_MISSING_ITEM',
      6,
    ],
    [
      'AC presentation context item in an RQ',
      pdu(0x01, fixedPart(), appContext, item(0x21, [1, 0, 0, 0], item(0x40, IVRLE)), minimalUserInfo),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
    [
      'RQ presentation context item in an AC',
      pdu(0x02, fixedPart(), appContext, pcRq, minimalUserInfo),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
    [
      'two application contexts',
      pdu(0x01, fixedPart(), appContext, appContext, pcRq, minimalUserInfo),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
    [
      'two user information items',
      pdu(0x01, fixedPart(), appContext, pcRq, minimalUserInfo, minimalUserInfo),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
    [
      'two abstract syntaxes',
      pdu(
        0x01,
        fixedPart(),
        appContext,
        item(0x20, [1, 0, 0, 0], item(0x30, CT), item(0x30, MR), item(0x40, IVRLE)),
        minimalUserInfo,
      ),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
    [
      'two transfer syntaxes in an AC context',
      pdu(
        0x02,
        fixedPart(),
        appContext,
        item(0x21, [1, 0, 0, 0], item(0x40, IVRLE), item(0x40, EVRLE)),
        minimalUserInfo,
      ),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
    [
      'two maximum length sub-items',
      pdu(
        0x01,
        fixedPart(),
        appContext,
        pcRq,
        item(0x50, item(0x51, u32(1)), item(0x51, u32(2)), item(0x52, IMPL)),
      ),
      'ERR_UL_PDU_UNEXPECTED_ITEM',
      5,
    ],
  ];
  for (const [what, bytes, code, reason] of cases) {
    assert.doesNotThrow(() => assertProtocolError(() => decodePdu(bytes), code, reason), what);
  }
});

test('every truncation of every golden PDU throws a ProtocolError', () => {
  for (const [file] of GOLDEN) {
    const bytes = loadHex(file);
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.throws(
        () => decodePdu(bytes.subarray(0, cut)),
        (err: unknown) => err instanceof ProtocolError,
        `${file} cut at ${cut}`,
      );
    }
  }
});

test('every truncation with the PDU-length fixed up throws a ProtocolError or decodes to what re-encodes to it', () => {
  for (const [file] of GOLDEN) {
    const bytes = loadHex(file);
    for (let cut = 6; cut < bytes.length; cut++) {
      const cutBytes = Buffer.from(bytes.subarray(0, cut));
      cutBytes.writeUInt32BE(cut - 6, 2);
      let decoded: Pdu | undefined;
      try {
        decoded = decodePdu(cutBytes);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `${file} cut at ${cut}: ${String(err)}`);
        continue;
      }
      assert.deepEqual(encodePdu(decoded), cutBytes, `${file} cut at ${cut}`);
    }
  }
});

test('property: corrupted or random bytes give a PDU or a ProtocolError, nothing else', () => {
  const goldens = GOLDEN.map(([file]) => loadHex(file));
  const mutated = fc
    .tuple(
      fc.constantFrom(...goldens),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    )
    .map(([golden, edits]) => {
      const b = Buffer.from(golden);
      for (const [at, value] of edits) b[6 + (at % (b.length - 6))] = value;
      return b;
    });
  const random = fc.uint8Array({ maxLength: 300 }).map((a) => {
    const b = Buffer.from(a);
    if (b.length >= 6) {
      b[0] = (b[0]! % 7) + 1;
      b.writeUInt32BE(b.length - 6, 2);
    }
    return b;
  });
  fc.assert(
    fc.property(fc.oneof(mutated, random), (bytes) => {
      try {
        decodePdu(bytes);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
      }
    }),
    { numRuns: 3000 },
  );
});

// ---------------------------------------------------------------------------------------------------
// Encoder refusals

test('the encoder refuses what cannot be represented or would not decode (ERR_UL_PDU_UNENCODABLE)', () => {
  const rq = (patch: Partial<AAssociateRq>): AAssociateRq => ({ ...ASSOCIATE_RQ, ...patch });
  const info = (patch: Partial<UserInformation>): UserInformation => ({ ...minimalInfo, ...patch });
  const cases: ReadonlyArray<readonly [string, Pdu]> = [
    ['called AE title of 17 characters', rq({ calledAETitle: 'A'.repeat(17) })],
    ['calling AE title with a non-ASCII character', rq({ callingAETitle: 'CAFÉ' })],
    ['calling AE title with a control character', rq({ callingAETitle: 'A\nB' })],
    ['protocol version over 16 bits', rq({ protocolVersion: 0x10000 })],
    [
      'presentation context ID 256',
      rq({ presentationContexts: [{ id: 256, abstractSyntax: CT, transferSyntaxes: [IVRLE] }] }),
    ],
    [
      'no transfer syntax proposed',
      rq({ presentationContexts: [{ id: 1, abstractSyntax: CT, transferSyntaxes: [] }] }),
    ],
    [
      'non-ASCII UID',
      rq({ presentationContexts: [{ id: 1, abstractSyntax: '1.2.\u200b3', transferSyntaxes: [IVRLE] }] }),
    ],
    ['maximum length over 32 bits', rq({ userInformation: info({ maxPduLength: 2 ** 32 }) })],
    ['negative maximum length', rq({ userInformation: info({ maxPduLength: -1 }) })],
    [
      'version name of 17 characters',
      rq({ userInformation: info({ implementationVersionName: 'V'.repeat(17) }) }),
    ],
    [
      'async ops over 16 bits',
      rq({ userInformation: info({ asyncOps: { maxInvoked: 1, maxPerformed: 70000 } }) }),
    ],
    [
      'user identity over the item limit',
      rq({
        userInformation: info({
          userIdentity: {
            type: 4,
            positiveResponseRequested: false,
            primaryField: Buffer.alloc(70000),
            secondaryField: Buffer.alloc(0),
          },
        }),
      }),
    ],
    [
      'accepted context without a transfer syntax',
      { ...ASSOCIATE_AC, presentationContexts: [{ id: 1, result: 0, transferSyntax: '' }] },
    ],
    [
      'context result 5',
      {
        ...ASSOCIATE_AC,
        presentationContexts: [{ id: 1, result: 5 as PresentationContextResult, transferSyntax: '' }],
      },
    ],
    ['A-ASSOCIATE-RJ reason 256', { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 256 }],
    ['A-ASSOCIATE-RJ source 4', { type: 'A-ASSOCIATE-RJ', result: 1, source: 4 as 1, reason: 1 }],
    ['A-ABORT source 1', { type: 'A-ABORT', source: 1 as 0, reason: 0 }],
    ['P-DATA-TF without PDVs', { type: 'P-DATA-TF', pdvs: [] }],
    [
      'PDV context ID 300',
      { type: 'P-DATA-TF', pdvs: [{ contextId: 300, command: true, last: true, data: Buffer.alloc(1) }] },
    ],
  ];
  for (const [what, value] of cases) {
    assert.throws(
      () => encodePdu(value),
      (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'ERR_UL_PDU_UNENCODABLE',
      what,
    );
  }
  // An empty AE title is representable (16 spaces); the negotiation decides whether it is acceptable.
  assert.equal((decodePdu(encodePdu(rq({ calledAETitle: '' }))) as AAssociateRq).calledAETitle, '');
});

// ---------------------------------------------------------------------------------------------------
// Property round trips

/** Records with a plain prototype, as the decoder builds them (deepStrictEqual compares prototypes). */
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(model, { noNullPrototype: true });

const uidArb = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 999999 })), { minLength: 2, maxLength: 12 })
  .map((parts) => parts.join('.'))
  .filter((uid) => uid.length <= 64);
/** Printable ISO 646 without leading or trailing spaces (they are not significant). */
const trimmedText = (maxLength: number) =>
  fc
    .string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength })
    .filter((s) => s.trim() === s);
const bufferArb = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
const u16Arb = fc.integer({ min: 0, max: 0xffff });
const contextIdArb = fc.integer({ min: 0, max: 127 }).map((n) => 2 * n + 1);

const userInformationArb: fc.Arbitrary<UserInformation> = fc.record(
  {
    maxPduLength: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffffffff })),
    implementationClassUid: uidArb,
    implementationVersionName: trimmedText(16),
    asyncOps: rec({ maxInvoked: u16Arb, maxPerformed: u16Arb }),
    roles: fc.array(rec({ sopClassUid: uidArb, scu: fc.boolean(), scp: fc.boolean() }), { maxLength: 3 }),
    extendedNegotiation: fc.array(rec({ sopClassUid: uidArb, info: bufferArb(16) }), { maxLength: 2 }),
    commonExtendedNegotiation: fc.array(
      rec({
        sopClassUid: uidArb,
        serviceClassUid: uidArb,
        relatedGeneralSopClasses: fc.array(uidArb, { maxLength: 3 }),
      }),
      { maxLength: 2 },
    ),
    userIdentity: rec({
      type: fc.integer({ min: 1, max: 5 }),
      positiveResponseRequested: fc.boolean(),
      primaryField: bufferArb(40),
      secondaryField: bufferArb(20),
    }),
    userIdentityResponse: bufferArb(40),
  },
  {
    requiredKeys: [
      'maxPduLength',
      'implementationClassUid',
      'roles',
      'extendedNegotiation',
      'commonExtendedNegotiation',
    ],
    noNullPrototype: true,
  },
);

const associateFields = {
  protocolVersion: u16Arb,
  calledAETitle: trimmedText(16),
  callingAETitle: trimmedText(16),
  applicationContextName: fc.oneof(fc.constant(DICOM_APPLICATION_CONTEXT), uidArb),
  userInformation: userInformationArb,
};

const rqArb: fc.Arbitrary<AAssociateRq> = rec({
  type: fc.constant('A-ASSOCIATE-RQ' as const),
  ...associateFields,
  presentationContexts: fc.array(
    rec({
      id: contextIdArb,
      abstractSyntax: uidArb,
      transferSyntaxes: fc.array(uidArb, { minLength: 1, maxLength: 4 }),
    }),
    { maxLength: 6 },
  ),
});

const pcAcArb: fc.Arbitrary<PresentationContextAc> = fc.oneof(
  rec({ id: contextIdArb, result: fc.constant(0 as const), transferSyntax: uidArb }),
  rec({
    id: contextIdArb,
    result: fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
    transferSyntax: fc.oneof(fc.constant(''), uidArb),
  }),
);

const acArb: fc.Arbitrary<AAssociateAc> = rec({
  type: fc.constant('A-ASSOCIATE-AC' as const),
  ...associateFields,
  presentationContexts: fc.array(pcAcArb, { maxLength: 6 }),
});

const pdvArb: fc.Arbitrary<Pdv> = rec({
  contextId: fc.integer({ min: 0, max: 255 }),
  command: fc.boolean(),
  last: fc.boolean(),
  data: bufferArb(300),
});
const pDataArb: fc.Arbitrary<PDataTf> = rec({
  type: fc.constant('P-DATA-TF' as const),
  pdvs: fc.array(pdvArb, { minLength: 1, maxLength: 5 }),
});
const rjArb: fc.Arbitrary<AAssociateRj> = rec({
  type: fc.constant('A-ASSOCIATE-RJ' as const),
  result: fc.constantFrom(1 as const, 2 as const),
  source: fc.constantFrom(1 as const, 2 as const, 3 as const),
  reason: fc.integer({ min: 0, max: 255 }),
});
const abortArb: fc.Arbitrary<AAbort> = rec({
  type: fc.constant('A-ABORT' as const),
  source: fc.constantFrom(0 as const, 2 as const),
  reason: fc.integer({ min: 0, max: 255 }),
});
const pduArb: fc.Arbitrary<Pdu> = fc.oneof(
  rqArb,
  acArb,
  pDataArb,
  rjArb,
  abortArb,
  fc.constant({ type: 'A-RELEASE-RQ' as const }),
  fc.constant({ type: 'A-RELEASE-RP' as const }),
);

test('property: decodePdu(encodePdu(x)) is x for A-ASSOCIATE-RQ, -AC, P-DATA-TF and the short PDUs', () => {
  fc.assert(
    fc.property(pduArb, (value) => {
      const bytes = encodePdu(value);
      assert.equal(bytes.readUInt32BE(2), bytes.length - 6);
      const decoded = decodePdu(bytes);
      assert.deepEqual(decoded, value);
      assert.deepEqual(encodePdu(decoded), bytes);
    }),
    { numRuns: 1000 },
  );
});

// ---------------------------------------------------------------------------------------------------
// PduReader

const STREAM = GOLDEN.map(([file]) => loadHex(file));
const STREAM_BYTES = Buffer.concat(STREAM);
const STREAM_PDUS = GOLDEN.map(([, value]) => value);

function readAll(reader: PduReader, chunks: Iterable<Buffer>): Pdu[] {
  const out: Pdu[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let p = reader.next(); p !== undefined; p = reader.next()) out.push(p);
  }
  return out;
}

function* chunksOf(bytes: Buffer, sizes: readonly number[]): Generator<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

test('PduReader: the golden stream in one chunk, byte by byte, and PDU by PDU gives the same PDUs', () => {
  const whole = new PduReader({ maxPduLength: 65536 });
  assert.deepEqual(readAll(whole, [STREAM_BYTES]), STREAM_PDUS);
  assert.equal(whole.buffered, 0);

  const bytewise = new PduReader({ maxPduLength: 65536 });
  assert.deepEqual(readAll(bytewise, chunksOf(STREAM_BYTES, [1])), STREAM_PDUS);
  assert.equal(bytewise.buffered, 0);

  assert.deepEqual(readAll(new PduReader({ maxPduLength: 65536 }), STREAM), STREAM_PDUS);
});

test('property: PduReader fed in random chunk sizes gives the same PDUs', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 20 }), (sizes) => {
      const reader = new PduReader({ maxPduLength: 65536 });
      assert.deepEqual(readAll(reader, chunksOf(STREAM_BYTES, sizes)), STREAM_PDUS);
      assert.equal(reader.buffered, 0);
    }),
    { numRuns: 300 },
  );
});

test('PduReader: a PDU whole in one chunk is not copied; P-DATA fragments are slices of the chunk', () => {
  const chunk = Buffer.concat([
    loadHex('a-release-rq.hex'),
    loadHex('p-data-tf.hex'),
    loadHex('a-abort.hex'),
  ]);
  const reader = new PduReader({ maxPduLength: 65536 });
  reader.push(chunk);
  assert.deepEqual(reader.next(), { type: 'A-RELEASE-RQ' });
  const pdata = reader.next() as PDataTf;
  assert.equal(pdata.pdvs[0]!.data.buffer, chunk.buffer);
  assert.equal(pdata.pdvs[0]!.data.byteOffset, chunk.byteOffset + 10 + 12);
  assert.equal(pdata.pdvs[1]!.data.byteOffset, chunk.byteOffset + 10 + 118);
  assert.equal(reader.buffered, 10);
  assert.deepEqual(reader.next(), { type: 'A-ABORT', source: 2, reason: 2 });
  assert.equal(reader.next(), undefined);
  assert.equal(reader.buffered, 0);
});

/**
 * What a stream of PDUs says: each PDU but P-DATA-TF as it is, and the fragments PDVs make up (context,
 * kind and concatenated data, up to each last-fragment bit) in their place.
 */
function messages(pdus: readonly Pdu[]): (Pdu | string)[] {
  const out: (Pdu | string)[] = [];
  let open = '';
  for (const pdu of pdus) {
    if (pdu.type !== 'P-DATA-TF') {
      out.push(pdu);
      continue;
    }
    for (const pdv of pdu.pdvs) {
      const kind = `${pdv.contextId}/${pdv.command ? 'command' : 'data'}:`;
      // A fragment goes on the one open of the same context and kind.
      if (!open.startsWith(kind)) {
        if (open) out.push(open);
        open = kind;
      }
      open += pdv.data.toString('hex');
      if (pdv.last) {
        out.push(open);
        open = '';
      }
    }
  }
  if (open) out.push(open);
  return out;
}

test('property: PduReader splitPData, any chunking: the same messages, P-DATA bytes never copied', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 40 }), (sizes) => {
      const stream = Buffer.concat(STREAM);
      const chunks: Buffer[] = [];
      for (let at = 0, i = 0; at < stream.length; i++) {
        const n = sizes[i % sizes.length]!;
        // Each chunk in a memory of its own (Buffer.alloc never uses the shared pool), so that a copy
        // would show as a foreign buffer.
        const chunk = Buffer.alloc(Math.min(n, stream.length - at));
        stream.copy(chunk, 0, at, at + chunk.length);
        chunks.push(chunk);
        at += n;
      }
      const reader = new PduReader({ maxPduLength: 65536, splitPData: true });
      const pdus = readAll(reader, chunks);
      assert.deepEqual(messages(pdus), messages(STREAM_PDUS));
      const buffers = new Set(chunks.map((c) => c.buffer));
      for (const pdu of pdus)
        if (pdu.type === 'P-DATA-TF')
          for (const pdv of pdu.pdvs)
            if (pdv.data.length > 0) assert.ok(buffers.has(pdv.data.buffer as ArrayBuffer));
      assert.equal(reader.buffered, 0);
    }),
    { numRuns: 300 },
  );
});

test('PduReader splitPData: a malformed PDV item spanning chunks drops that PDU only; lastPduLength', () => {
  const reader = new PduReader({ maxPduLength: 65536, splitPData: true });
  // A P-DATA-TF of 10 bytes whose PDV item claims 100, then an A-RELEASE-RP; pushed in 3-byte chunks.
  const bad = Buffer.from([0x04, 0, 0, 0, 0, 10, 0, 0, 0, 100, 1, 3, 9, 9, 9, 9]);
  const stream = Buffer.concat([bad, loadHex('a-release-rp.hex')]);
  for (let at = 0; at < stream.length; at += 3) reader.push(Buffer.from(stream.subarray(at, at + 3)));
  assert.throws(() => reader.next(), { code: 'ERR_UL_PDU_MALFORMED' });
  assert.equal(reader.lastPduLength, 10);
  assert.deepEqual(reader.next(), { type: 'A-RELEASE-RP' });
  assert.equal(reader.lastPduLength, 4);
  assert.equal(reader.next(), undefined);
});

test('PduReader: every truncated stream asks for more bytes, never throws', () => {
  for (let cut = 0; cut < STREAM_BYTES.length; cut += 7) {
    const reader = new PduReader({ maxPduLength: 65536 });
    const got = readAll(reader, chunksOf(STREAM_BYTES.subarray(0, cut), [13]));
    assert.deepEqual(got, STREAM_PDUS.slice(0, got.length));
    assert.equal(reader.next(), undefined);
  }
});

test('PduReader: a PDU-length over the maximum throws from its 6-byte header, before the body is awaited', () => {
  const reader = new PduReader({ maxPduLength: 16384 });
  reader.push(Buffer.from([0x04, 0x00, 0xff, 0xff, 0xff, 0xf0]));
  assertProtocolError(() => reader.next(), 'ERR_UL_PDU_TOO_LARGE', 6);
  // The stream has lost its framing: the reader stays failed.
  reader.push(loadHex('a-release-rq.hex'));
  assertProtocolError(() => reader.next(), 'ERR_UL_PDU_TOO_LARGE', 6);

  // Exactly the maximum is fine.
  const max = new PduReader({ maxPduLength: 16384 });
  const [first] = fragment(1, false, Buffer.alloc(16384 - 6), 16384);
  assert.deepEqual(readAll(max, [first!]).length, 1);
  const over = new PduReader({ maxPduLength: 16383 });
  assertProtocolError(() => readAll(over, [first!]), 'ERR_UL_PDU_TOO_LARGE', 6);
});

test('PduReader: an unknown PDU type or a wrong fixed length fails at the header', () => {
  const unknown = new PduReader({ maxPduLength: 65536 });
  unknown.push(Buffer.from([0x09, 0, 0, 0, 0, 100]));
  assertProtocolError(() => unknown.next(), 'ERR_UL_PDU_UNKNOWN_TYPE', 1);

  const release = new PduReader({ maxPduLength: 65536 });
  release.push(Buffer.from([0x05, 0, 0, 0, 0, 0x10]));
  assertProtocolError(() => release.next(), 'ERR_UL_PDU_MALFORMED', 6);
});

test('PduReader: a malformed body keeps the framing, so the next PDU is still read', () => {
  const reader = new PduReader({ maxPduLength: 65536 });
  reader.push(Buffer.concat([Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 9, 1, 1]), loadHex('a-release-rp.hex')]));
  assertProtocolError(() => reader.next(), 'ERR_UL_PDU_MALFORMED', 6);
  assert.deepEqual(reader.next(), { type: 'A-RELEASE-RP' });
});

test('PduReader: options are checked', () => {
  for (const maxPduLength of [0, -1, 1.5, 2 ** 32]) {
    assert.throws(
      () => new PduReader({ maxPduLength }),
      (err: unknown) => (err as { code?: string }).code === 'ERR_UL_PDU_READER_OPTIONS',
    );
  }
});

// ---------------------------------------------------------------------------------------------------
// fragment()

function checkFragments(
  pdus: readonly Buffer[],
  contextId: number,
  command: boolean,
  maxPduLength: number,
): Buffer {
  const parts: Buffer[] = [];
  pdus.forEach((bytes, i) => {
    if (maxPduLength !== 0)
      assert.ok(bytes.readUInt32BE(2) <= maxPduLength, `PDU ${i} length ${bytes.readUInt32BE(2)}`);
    const decoded = decodePdu(bytes) as PDataTf;
    assert.equal(decoded.pdvs.length, 1);
    const pdv = decoded.pdvs[0]!;
    assert.equal(pdv.contextId, contextId);
    assert.equal(pdv.command, command);
    assert.equal(pdv.last, i === pdus.length - 1, `last bit of PDV ${i}`);
    parts.push(pdv.data);
  });
  return Buffer.concat(parts);
}

test('fragment: 100 KB into PDUs no longer than the maximum, the last bit on the final PDV only', () => {
  const data = Buffer.from(Array.from({ length: 100 * 1024 }, (_, i) => (i * 7919) & 0xff));
  const pdus = [...fragment(5, false, data, 16384)];
  assert.equal(pdus.length, Math.ceil(data.length / (16384 - 6)));
  assert.ok(pdus.every((p) => p.length <= 16384 + 6));
  assert.equal(pdus[0]!.readUInt32BE(2), 16384);
  assert.deepEqual(checkFragments(pdus, 5, false, 16384), data);

  // Reassembly through the reader.
  const reader = new PduReader({ maxPduLength: 16384 });
  const read = readAll(reader, chunksOf(Buffer.concat(pdus), [1000, 3, 70000]));
  assert.deepEqual(Buffer.concat(read.flatMap((p) => (p as PDataTf).pdvs.map((pdv) => pdv.data))), data);
});

test('fragment: unlimited maximum, the smallest maximum, an empty part, a command', () => {
  const data = Buffer.from(Array.from({ length: 100 * 1024 }, (_, i) => i & 0xff));
  const unlimited = [...fragment(1, true, data, 0)];
  assert.equal(unlimited.length, 1);
  assert.deepEqual(checkFragments(unlimited, 1, true, 0), data);

  const big = Buffer.alloc(PDU_DEFAULTS.maxFragmentLength * 2 + 1, 1);
  const capped = [...fragment(1, false, big, 0)];
  assert.equal(capped.length, 3);
  assert.deepEqual(checkFragments(capped, 1, false, 0), big);

  // The smallest maximum leaves room for 2 bytes per fragment: fragments stay even (PS3.8 E.1).
  const tiny = [...fragment(3, true, Buffer.from('abcde'), 9)];
  assert.equal(tiny.length, 3);
  assert.deepEqual(
    tiny.map((p) => p.length - 12),
    [2, 2, 1],
  );
  assert.deepEqual(checkFragments(tiny, 3, true, 9), Buffer.from('abcde'));
  assert.throws(() => fragment(3, true, Buffer.from('abc'), 7), { code: 'ERR_UL_PDU_UNENCODABLE' });

  const empty = [...fragment(7, false, Buffer.alloc(0), 16384)];
  assert.equal(empty.length, 1);
  assert.deepEqual(decodePdu(empty[0]!), {
    type: 'P-DATA-TF',
    pdvs: [{ contextId: 7, command: false, last: true, data: Buffer.alloc(0) }],
  });

  const exact = [...fragment(1, false, Buffer.alloc(2 * (16384 - 6)), 16384)];
  assert.equal(exact.length, 2);
});

test('fragment: a part streamed in chunks gets the last bit on its final chunk only', () => {
  const chunks = [Buffer.alloc(5000, 1), Buffer.alloc(0), Buffer.alloc(3000, 2), Buffer.alloc(10, 3)];
  const pdus = chunks.flatMap((chunk, i) => [...fragment(1, false, chunk, 4096, i === chunks.length - 1)]);
  assert.deepEqual(checkFragments(pdus, 1, false, 4096), Buffer.concat(chunks));
  assert.deepEqual([...fragment(1, false, Buffer.alloc(0), 4096, false)], []);
  const [emptyLast, ...none] = fragment(1, false, Buffer.alloc(0), 4096, true);
  assert.deepEqual(none, []);
  assert.deepEqual((decodePdu(emptyLast!) as PDataTf).pdvs, [
    { contextId: 1, command: false, last: true, data: Buffer.alloc(0) },
  ]);
});

test('fragment: arguments are checked at the call', () => {
  for (const [contextId, max] of [
    [1, 6],
    [1, -1],
    [256, 16384],
    [1, 2 ** 32],
  ] as const) {
    assert.throws(
      () => fragment(contextId, false, Buffer.alloc(1), max),
      (err: unknown) => (err as { code?: string }).code === 'ERR_UL_PDU_UNENCODABLE',
    );
  }
});

test('property: fragment and reassembly give the bytes back for any size and maximum', () => {
  fc.assert(
    fc.property(bufferArb(5000), fc.integer({ min: 8, max: 3000 }), fc.boolean(), (data, max, command) => {
      const pdus = [...fragment(9, command, data, max)];
      assert.deepEqual(checkFragments(pdus, 9, command, max), data);
      // Every fragment but the last has an even length (PS3.8 E.1).
      for (const p of pdus.slice(0, -1)) assert.equal((p.length - 12) % 2, 0);
    }),
    { numRuns: 200 },
  );
});

// ---------------------------------------------------------------------------------------------------
// Names for messages

test('reject, abort and presentation context result names (PS3.8 Tables 9-18, 9-21, 9-26)', () => {
  assert.equal(rejectReasonText(1, 7), 'called-AE-title-not-recognized');
  assert.equal(rejectReasonText(1, 3), 'calling-AE-title-not-recognized');
  assert.equal(rejectReasonText(2, 2), 'protocol-version-not-supported');
  assert.equal(rejectReasonText(3, 1), 'temporary-congestion');
  assert.equal(rejectReasonText(1, 5), 'reserved (5)');
  assert.equal(
    rejectText({ result: 1, source: 1, reason: 2 }),
    'rejected-permanent by DICOM UL service-user: application-context-name-not-supported',
  );
  assert.equal(
    rejectText({ result: 2, source: 3, reason: 2 }).startsWith(
      'rejected-transient by DICOM UL service-provider',
    ),
    true,
  );
  assert.equal(abortReasonText(2, 6), 'invalid-PDU-parameter value');
  assert.equal(abortReasonText(2, 9), 'unknown reason (9)');
  assert.equal(abortReasonText(0, 6), 'service-user initiated abort');
  assert.equal(presentationContextResultText(4), 'transfer-syntaxes-not-supported (provider rejection)');
});
