import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageAssembler } from './assembler.ts';
import { decodeCommand, encodeCommand } from './command.ts';
import { statusCategory } from './status.ts';

test('C-ECHO-RQ encodes as PS3.7 Annex E says: implicit VR LE, group length first', () => {
  const bytes = encodeCommand({
    type: 'C-ECHO-RQ',
    hasDataSet: false,
    messageId: 1,
    affectedSopClassUid: '1.2.840.10008.1.1',
  });
  // (0000,0000) UL: group length of what follows.
  assert.equal(bytes.readUInt32LE(0), 0x00000000);
  assert.equal(bytes.readUInt32LE(4), 4);
  assert.equal(bytes.readUInt32LE(8), bytes.length - 12);
  // (0000,0002) UI "1.2.840.10008.1.1\0" (padded to even length with NUL).
  assert.equal(bytes.readUInt32LE(12), 0x00020000);
  assert.equal(bytes.readUInt32LE(16), 18);
  assert.equal(bytes.toString('latin1', 20, 38), '1.2.840.10008.1.1\0');
  // (0000,0100) US 0x0030, (0000,0110) US 1, (0000,0800) US 0x0101.
  assert.deepEqual(
    [...bytes.subarray(38)],
    [0, 0, 0, 1, 2, 0, 0, 0, 0x30, 0, 0, 0, 0x10, 1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 8, 2, 0, 0, 0, 1, 1],
  );
});

test('commands round trip with every field kind', () => {
  const rq = {
    type: 'C-STORE-RQ',
    hasDataSet: true,
    messageId: 7,
    affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    affectedSopInstanceUid: '1.2.3.4',
    priority: 2,
    moveOriginatorAETitle: 'MOVESCU',
    moveOriginatorMessageId: 99,
  } as const;
  assert.deepEqual(decodeCommand(encodeCommand(rq)), rq);
  const rsp = {
    type: 'C-MOVE-RSP',
    hasDataSet: false,
    messageIdBeingRespondedTo: 3,
    status: 0xb000,
    remaining: 0,
    completed: 4,
    failed: 1,
    warning: 0,
    errorComment: 'one failed',
    offendingElement: [0x00100010],
  } as const;
  assert.deepEqual(decodeCommand(encodeCommand(rsp)), rsp);
});

test('a garbage command set is a DicomError', () => {
  assert.throws(() => decodeCommand(Buffer.from([1, 2, 3])), { code: 'ERR_DIMSE_BAD_COMMAND' });
  const noField = encodeCommand({ type: 'C-ECHO-RQ', hasDataSet: false }).subarray(0, 12);
  assert.throws(() => decodeCommand(noField), { code: 'ERR_DIMSE_BAD_COMMAND' });
});

test('the assembler joins command fragments and passes data fragments through', () => {
  const cmd = encodeCommand({
    type: 'C-STORE-RQ',
    hasDataSet: true,
    messageId: 1,
    affectedSopClassUid: '1.2',
    affectedSopInstanceUid: '3.4',
    priority: 0,
  });
  const a = new MessageAssembler();
  assert.equal(a.push({ contextId: 3, command: true, last: false, data: cmd.subarray(0, 10) }), undefined);
  const ev = a.push({ contextId: 3, command: true, last: true, data: cmd.subarray(10) });
  assert.ok(ev?.kind === 'command' && ev.command.messageId === 1 && ev.command.hasDataSet);
  assert.equal(a.idle, false);
  assert.deepEqual(a.push({ contextId: 3, command: false, last: false, data: Buffer.from('ab') }), {
    kind: 'data',
    contextId: 3,
    chunk: Buffer.from('ab'),
    last: false,
  });
  assert.throws(() => a.push({ contextId: 5, command: false, last: true, data: Buffer.from('c') }), {
    code: 'ERR_DIMSE_UNEXPECTED_PDV',
  });
  assert.equal(a.push({ contextId: 3, command: false, last: true, data: Buffer.from('c') })?.kind, 'data');
  assert.equal(a.idle, true);
  assert.throws(() => a.push({ contextId: 3, command: false, last: true, data: Buffer.from('x') }), {
    code: 'ERR_DIMSE_UNEXPECTED_PDV',
  });
});

test('status categories (PS3.7 C.1)', () => {
  assert.deepEqual(
    [0x0000, 0xff00, 0xff01, 0xfe00, 0xb000, 0xb007, 0x0107, 0xa700, 0xa900, 0xc000, 0xc123, 0x0122].map(
      statusCategory,
    ),
    [
      'success',
      'pending',
      'pending',
      'cancel',
      'warning',
      'warning',
      'warning',
      'failure',
      'failure',
      'failure',
      'failure',
      'failure',
    ],
  );
});

test('the direct command codec agrees with the general data set codec, byte for byte', async () => {
  const { Dataset, decodeDataset, encodeDataset } = await import('../codec/index.ts');
  const IMPLICIT = '1.2.840.10008.1.2';
  const commands = [
    { type: 'C-ECHO-RQ', hasDataSet: false, messageId: 1, affectedSopClassUid: '1.2.840.10008.1.1' },
    {
      type: 'C-STORE-RQ',
      hasDataSet: true,
      messageId: 65535,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      affectedSopInstanceUid: '1.2.3.45',
      priority: 0,
      moveOriginatorAETitle: 'ODD',
      moveOriginatorMessageId: 3,
    },
    {
      type: 'C-MOVE-RSP',
      hasDataSet: true,
      messageIdBeingRespondedTo: 3,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.2.2.2',
      status: 0xa900,
      errorComment: 'odd comment',
      offendingElement: [0x00100010, 0x0020000d],
      remaining: 1,
      completed: 2,
      failed: 3,
      warning: 4,
    },
    { type: 'C-MOVE-RQ', hasDataSet: true, messageId: 9, moveDestination: 'STORESCP', priority: 1 },
    { type: 'N-ACTION-RQ', hasDataSet: false, messageId: 2, actionTypeId: 1, requestedSopInstanceUid: '1.2' },
    { type: 'N-GET-RQ', hasDataSet: false, messageId: 4, attributeIdentifierList: [0x00080016] },
    { type: 'C-CANCEL-RQ', hasDataSet: false, messageIdBeingRespondedTo: 7 },
  ] as const;
  const vrOf: Record<number, 'UI' | 'US' | 'AE' | 'LO' | 'AT'> = {
    2: 'UI',
    3: 'UI',
    272: 'US',
    288: 'US',
    1536: 'AE',
    1792: 'US',
    2304: 'US',
    2305: 'AT',
    2306: 'LO',
    2307: 'US',
    4096: 'UI',
    4097: 'UI',
    4098: 'US',
    4101: 'AT',
    4104: 'US',
    4128: 'US',
    4129: 'US',
    4130: 'US',
    4131: 'US',
    4144: 'AE',
    4145: 'US',
  };
  const fieldOf: Record<string, number> = {
    affectedSopClassUid: 0x0002,
    requestedSopClassUid: 0x0003,
    messageId: 0x0110,
    messageIdBeingRespondedTo: 0x0120,
    moveDestination: 0x0600,
    priority: 0x0700,
    status: 0x0900,
    offendingElement: 0x0901,
    errorComment: 0x0902,
    errorId: 0x0903,
    affectedSopInstanceUid: 0x1000,
    requestedSopInstanceUid: 0x1001,
    eventTypeId: 0x1002,
    attributeIdentifierList: 0x1005,
    actionTypeId: 0x1008,
    remaining: 0x1020,
    completed: 0x1021,
    failed: 0x1022,
    warning: 0x1023,
    moveOriginatorAETitle: 0x1030,
    moveOriginatorMessageId: 0x1031,
  };
  const fieldValues: Record<string, number> = {
    'C-ECHO-RQ': 0x30,
    'C-STORE-RQ': 0x01,
    'C-MOVE-RSP': 0x8021,
    'C-MOVE-RQ': 0x21,
    'N-ACTION-RQ': 0x130,
    'N-GET-RQ': 0x110,
    'C-CANCEL-RQ': 0xfff,
  };
  for (const command of commands) {
    // The reference: the same command set through the general data set writer.
    const ds = new Dataset();
    ds.setValues(0x00000000, [0], 'UL');
    ds.setValues(0x00000100, [fieldValues[command.type]!], 'US');
    ds.setValues(0x00000800, [command.hasDataSet ? 0 : 0x0101], 'US');
    for (const [key, value] of Object.entries(command)) {
      const t = fieldOf[key];
      if (t === undefined) continue;
      ds.setValues(t, Array.isArray(value) ? value : [value], vrOf[t]!);
    }
    const reference = encodeDataset(ds, IMPLICIT, { groupLengths: 'recalculate' });
    assert.deepEqual(encodeCommand(command), reference, command.type);
    assert.deepEqual(decodeCommand(reference), command, command.type);
    // And the reference decoder reads ours back the same.
    assert.equal(
      decodeDataset(encodeCommand(command), IMPLICIT).number(0x00000100),
      fieldValues[command.type],
    );
  }
});

test('a command set cut inside an element, or with an undefined length, is ERR_DIMSE_BAD_COMMAND naming why', () => {
  const bytes = encodeCommand({
    type: 'C-ECHO-RQ',
    hasDataSet: false,
    messageId: 1,
    affectedSopClassUid: '1.2',
  });
  assert.throws(() => decodeCommand(bytes.subarray(0, bytes.length - 1)), /runs past the end/);
  const undefinedLength = Buffer.from(bytes);
  undefinedLength.writeUInt32LE(0xffffffff, 16);
  assert.throws(() => decodeCommand(undefinedLength), {
    code: 'ERR_DIMSE_BAD_COMMAND',
    message: /undefined length/,
  });
});
