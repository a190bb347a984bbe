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
