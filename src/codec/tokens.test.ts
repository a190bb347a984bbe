import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CodecError } from '../core/index.ts';
import { type Token, TokenReader, type TokenReaderOptions } from './tokens.ts';

/** Explicit VR little endian element bytes. */
function ex(group: number, element: number, vr: string, value: Buffer | number[]): Buffer {
  const v = Buffer.isBuffer(value) ? value : Buffer.from(value);
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT', 'OF', 'OD', 'OL', 'OV', 'SV', 'UV', 'UC', 'UR'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(v.length, 8);
  else h.writeUInt16LE(v.length, 6);
  return Buffer.concat([h, v]);
}

function raw(group: number, element: number, length: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.writeUInt32LE(length >>> 0, 4);
  return h;
}

function exUndefined(group: number, element: number, vr: string): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  h.writeUInt32LE(0xffffffff, 8);
  return h;
}

const item = (content: Buffer) => Buffer.concat([raw(0xfffe, 0xe000, content.length), content]);
const itemU = (content: Buffer) =>
  Buffer.concat([raw(0xfffe, 0xe000, 0xffffffff), content, raw(0xfffe, 0xe00d, 0)]);
const seqEnd = () => raw(0xfffe, 0xe0dd, 0);

const EXPLICIT_LE: TokenReaderOptions = { explicitVR: true, littleEndian: true };

/** All tokens for input fed in chunks of `size` bytes, with streamed values joined back together. */
function tokens(input: Buffer, options: TokenReaderOptions = EXPLICIT_LE, size = input.length): Token[] {
  const reader = new TokenReader(options);
  const out: Token[] = [];
  for (let at = 0; at < input.length || !reader.done; at += size) {
    if (at < input.length) reader.push(input.subarray(at, at + size));
    else reader.end();
    for (let t = reader.next(); t !== undefined; t = reader.next()) out.push(t);
    if (at >= input.length && !reader.done) throw new Error('reader neither done nor asking for input');
  }
  return out;
}

function summary(list: Token[]): string[] {
  const out: string[] = [];
  let streamed: Buffer[] | undefined;
  for (const t of list) {
    if (t.kind === 'value-chunk') streamed!.push(t.bytes);
    else if (t.kind === 'value-end') {
      out[out.length - 1] += `=${Buffer.concat(streamed!).toString('hex')}`;
      streamed = undefined;
    } else if (t.kind === 'element' || t.kind === 'fragment') {
      const name = t.kind === 'element' ? `el ${t.tag.toString(16)} ${t.vr}` : 'frag';
      if (t.value) out.push(`${name}=${t.value.toString('hex')}`);
      else {
        out.push(name);
        streamed = [];
      }
    } else if ('tag' in t) out.push(`${t.kind} ${t.tag.toString(16)}`);
    else out.push(t.kind);
  }
  return out;
}

test('explicit VR LE elements, whole or one byte at a time, give the same tokens', () => {
  const input = Buffer.concat([
    ex(0x0008, 0x0060, 'CS', Buffer.from('CT')),
    ex(0x0010, 0x0010, 'PN', Buffer.from('DOE^JOHN')),
    ex(0x0028, 0x0010, 'US', [0, 2]),
  ]);
  const whole = summary(tokens(input));
  assert.deepEqual(whole, [
    'el 80060 CS=4354',
    `el 100010 PN=${Buffer.from('DOE^JOHN').toString('hex')}`,
    'el 280010 US=0002',
  ]);
  assert.deepEqual(summary(tokens(input, EXPLICIT_LE, 1)), whole);
});

test('nested sequences of defined and undefined length', () => {
  const inner = Buffer.concat([
    exUndefined(0x0040, 0xa730, 'SQ'),
    itemU(ex(0x0040, 0xa010, 'CS', Buffer.from('HAS '))),
    seqEnd(),
  ]);
  const input = Buffer.concat([
    ex(
      0x0008,
      0x1140,
      'SQ',
      Buffer.concat([item(ex(0x0008, 0x1150, 'UI', Buffer.from('1.2\0'))), item(inner)]),
    ),
    ex(0x0010, 0x0020, 'LO', Buffer.from('ID')),
  ]);
  const expected = [
    'sequence-start 81140',
    'item-start',
    'el 81150 UI=312e3200',
    'item-end',
    'item-start',
    'sequence-start 40a730',
    'item-start',
    'el 40a010 CS=48415320',
    'item-end',
    'sequence-end',
    'item-end',
    'sequence-end',
    'el 100020 LO=4944',
  ];
  assert.deepEqual(summary(tokens(input)), expected);
  assert.deepEqual(summary(tokens(input, EXPLICIT_LE, 3)), expected);
});

test('encapsulated pixel data: offset table and fragments', () => {
  const input = Buffer.concat([
    exUndefined(0x7fe0, 0x0010, 'OB'),
    item(Buffer.alloc(0)),
    item(Buffer.from([0xff, 0xd8, 1, 2])),
    item(Buffer.from([3, 4])),
    seqEnd(),
  ]);
  assert.deepEqual(summary(tokens(input)), [
    'fragments-start 7fe00010',
    'frag=',
    'frag=ffd80102',
    'frag=0304',
    'fragments-end',
  ]);
});

test('a large value that is not whole streams as chunks instead of being buffered', () => {
  const big = Buffer.alloc(100_000, 7);
  const input = Buffer.concat([ex(0x0008, 0x0060, 'CS', Buffer.from('MR')), ex(0x7fe0, 0x0010, 'OW', big)]);
  const list = tokens(input, { ...EXPLICIT_LE, streamThreshold: 1000 }, 4096);
  const head = list.find((t) => t.kind === 'element' && t.tag === 0x7fe00010);
  assert.ok(head && head.kind === 'element' && head.value === undefined && head.length === 100_000);
  const chunks = list.filter((t) => t.kind === 'value-chunk');
  assert.ok(chunks.length > 10);
  assert.ok(chunks.every((c) => c.kind === 'value-chunk' && c.bytes.length <= 4096));
  assert.equal(
    chunks.reduce((n, c) => n + (c.kind === 'value-chunk' ? c.bytes.length : 0), 0),
    100_000,
  );
});

test('implicit VR little endian takes VRs from the dictionary', () => {
  const input = Buffer.concat([
    raw(0x0010, 0x0010, 4),
    Buffer.from('AB^C'),
    raw(0x0028, 0x0010, 2),
    Buffer.from([0, 1]),
    raw(0x0009, 0x0010, 2),
    Buffer.from('XY'),
    raw(0x0009, 0x1001, 2),
    Buffer.from([1, 2]),
  ]);
  const list = tokens(input, { explicitVR: false, littleEndian: true });
  assert.deepEqual(
    list.map((t) => (t.kind === 'element' ? t.vr : t.kind)),
    ['PN', 'US', 'LO', 'UN'],
  );
});

test('explicit VR big endian', () => {
  const h = Buffer.from([0x00, 0x28, 0x00, 0x10, 0x55, 0x53, 0x00, 0x02, 0x02, 0x00]);
  const [t] = tokens(h, { explicitVR: true, littleEndian: false });
  assert.ok(t?.kind === 'element');
  assert.equal(t.tag, 0x00280010);
  assert.equal(t.value?.readUInt16BE(0), 512);
});

test('UN of undefined length is read as an implicit VR sequence (CP-246)', () => {
  const content = Buffer.concat([raw(0x0008, 0x0100, 4), Buffer.from('T-01')]);
  const input = Buffer.concat([exUndefined(0x0008, 0x1032, 'UN'), itemU(content), seqEnd()]);
  const list = tokens(input);
  const start = list[0]!;
  assert.ok(start.kind === 'sequence-start' && start.vr === 'UN' && !start.explicitVR);
  assert.deepEqual(summary(list).slice(1), [
    'item-start',
    'el 80100 SH=542d3031',
    'item-end',
    'sequence-end',
  ]);
});

test('a non-standard VR is read with a 2-byte length and the dictionary VR', () => {
  const h = Buffer.from([0x28, 0x00, 0x20, 0x01, 0x20, 0x20, 0x02, 0x00, 0x05, 0x00]);
  const [t] = tokens(h);
  assert.ok(t?.kind === 'element');
  assert.deepEqual([t.tag, t.vr, t.length, t.vrFromDictionary], [0x00280120, 'US', 2, true]);
});

test('implicit VR: a dictionary SQ whose value is not items is read as UN', () => {
  const input = Buffer.concat([raw(0x0040, 0xa170, 4), Buffer.from('ABCD')]);
  const [t] = tokens(input, { explicitVR: false, littleEndian: true });
  assert.ok(t?.kind === 'element' && t.vr === 'UN' && t.value?.toString() === 'ABCD');
});

test('stopBeforeTag stops without consuming the element', () => {
  const input = Buffer.concat([
    ex(0x0008, 0x0060, 'CS', Buffer.from('CT')),
    ex(0x7fe0, 0x0010, 'OW', Buffer.alloc(8)),
  ]);
  const reader = new TokenReader({ ...EXPLICIT_LE, stopBeforeTag: 0x7fe00010 });
  reader.push(input);
  const a = reader.next();
  const b = reader.next();
  assert.equal(a?.kind, 'element');
  assert.ok(b?.kind === 'stopped' && b.tag === 0x7fe00010 && b.offset === 10);
  assert.equal(reader.done, true);
  assert.equal(reader.remainder().length, input.length - 10);
});

function errorOf(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CodecError, `expected a CodecError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an error');
}

test('truncation names the offset and tag, and allocates nothing from the bogus length', () => {
  const input = Buffer.concat([
    ex(0x0008, 0x0060, 'CS', Buffer.from('CT')),
    ex(0x7fe0, 0x0010, 'OB', Buffer.alloc(0)).subarray(0, 8),
    Buffer.from([0x00, 0x00, 0x00, 0xc0, 1, 2, 3]),
  ]);
  const err = errorOf(() => tokens(input));
  assert.equal(err.code, 'ERR_CODEC_TRUNCATED');
  assert.equal(err.tag, 0x7fe00010);
  assert.equal(err.offset, 10);
});

test('an element longer than its item is an overrun error', () => {
  const bad = ex(0x0008, 0x0100, 'SH', Buffer.from('ABCDEFGH'));
  const input = Buffer.concat([ex(0x0008, 0x1140, 'SQ', Buffer.concat([raw(0xfffe, 0xe000, 4), bad]))]);
  const err = errorOf(() => tokens(input));
  assert.equal(err.code, 'ERR_CODEC_LENGTH_OVERRUN');
});

test('nesting beyond maxDepth is refused', () => {
  let content = ex(0x0008, 0x0100, 'SH', Buffer.from('X '));
  for (let i = 0; i < 10; i++)
    content = Buffer.concat([exUndefined(0x0008, 0x1140, 'SQ'), itemU(content), seqEnd()]);
  assert.equal(errorOf(() => tokens(content, { ...EXPLICIT_LE, maxDepth: 5 })).code, 'ERR_CODEC_TOO_DEEP');
  assert.ok(tokens(content, { ...EXPLICIT_LE, maxDepth: 10 }).length > 0);
});

test('an item tag where an element is expected is an error', () => {
  const input = Buffer.concat([ex(0x0008, 0x0060, 'CS', Buffer.from('CT')), raw(0xfffe, 0xe000, 0)]);
  assert.equal(errorOf(() => tokens(input)).code, 'ERR_CODEC_UNEXPECTED_ITEM');
});

test('garbage never hangs and fails only with a CodecError', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 64 }),
      (bytes, explicit, chunk) => {
        try {
          tokens(Buffer.from(bytes), { explicitVR: explicit, littleEndian: true, maxDepth: 16 }, chunk);
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
        }
      },
    ),
    { numRuns: 2000 },
  );
});
