// The Node.js floor for a C-STORE SCU, a yardstick for bench/store.ts: the least a Node.js process
// must do to send Part 10 files as storescu does, with none of Tessera's code. One association; a
// presentation context per SOP class in Explicit VR Little Endian (so every file must be in that
// syntax, with its SOP Class and Instance UIDs in its File Meta); each data set read whole with one
// blocking read and sent in PDUs of the peer's maximum length; the next file is read once the current
// one is written to the socket, then the response is awaited. Exit code 1 on anything but Success.
//
//   node bench/floor/scu.mjs AE_TITLE HOST PORT FILE...
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { connect } from 'node:net';
import {
  applicationContext,
  EXPLICIT_LE,
  element,
  even,
  item,
  pData,
  pDataHead,
  pdu,
  u16le,
  u32le,
  userInformation,
} from './bytes.mjs';

const [calledAe, host, port, ...paths] = process.argv.slice(2);

function fail(message) {
  process.stderr.write(`floor scu: ${message}\n`);
  process.exit(1);
}

/** A file's SOP Class and Instance UIDs and where its data set starts, from its File Meta (Explicit VR LE). */
function parseMeta(b, n, path) {
  if (n < 144 || b.toString('latin1', 128, 132) !== 'DICM') fail(`${path}: no File Meta`);
  const start = 144 + b.readUInt32LE(140);
  if (start > n) fail(`${path}: File Meta longer than ${n} bytes`);
  const meta = { sopClass: '', sopInstance: '', start };
  for (let p = 144; p < start; ) {
    const elem = b.readUInt16LE(p + 2);
    const long = ['OB', 'OW', 'UN', 'SQ', 'UT'].includes(b.toString('latin1', p + 4, p + 6));
    const length = long ? b.readUInt32LE(p + 8) : b.readUInt16LE(p + 6);
    const at = p + (long ? 12 : 8);
    const value = b.toString('latin1', at, at + length).replace(/\0+$/, '');
    if (elem === 0x0002) meta.sopClass = value;
    else if (elem === 0x0003) meta.sopInstance = value;
    else if (elem === 0x0010 && value !== EXPLICIT_LE) fail(`${path}: not Explicit VR Little Endian`);
    p = at + length;
  }
  return meta;
}

/** The File Meta of each file (its first 16 KiB), for the presentation contexts, as storescu scans. */
const scan = Buffer.allocUnsafe(16 * 1024);
function describe(path) {
  const fd = openSync(path, 'r');
  const n = readSync(fd, scan, 0, scan.length, 0);
  closeSync(fd);
  return parseMeta(scan, n, path);
}

/** A whole file read with one blocking call into one of two buffers (the one sent, the next). */
const buffers = [Buffer.allocUnsafeSlow(1 << 20), Buffer.allocUnsafeSlow(1 << 20)];
let turn = 0;
function load(path) {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  if (size > buffers[turn & 1].length) buffers[turn & 1] = Buffer.allocUnsafeSlow(size);
  const b = buffers[turn++ & 1];
  const n = readSync(fd, b, 0, size, 0);
  closeSync(fd);
  const meta = parseMeta(b, n, path);
  return { ...meta, data: b.subarray(meta.start, n) };
}

const classes = [...new Set(paths.map((path) => describe(path).sopClass))];
const contextOf = new Map(classes.map((c, i) => [c, 2 * i + 1]));

const socket = connect({ host, port: Number(port), noDelay: true });
let input = Buffer.alloc(0);
let waiting;
socket.on('data', (chunk) => {
  input = input.length > 0 ? Buffer.concat([input, chunk]) : chunk;
  while (input.length >= 6 && input.length >= 6 + input.readUInt32BE(2)) {
    const length = input.readUInt32BE(2);
    const received = input.subarray(0, 6 + length);
    input = input.subarray(6 + length);
    const resolve = waiting;
    waiting = undefined;
    resolve?.(received);
  }
});
socket.on('error', (err) => fail(err.message));
const nextPdu = () => new Promise((resolve) => (waiting = resolve));

await new Promise((resolve) => socket.once('connect', resolve));
const head = Buffer.alloc(68);
head.writeUInt16BE(1, 0);
Buffer.from(calledAe.padEnd(16)).copy(head, 4);
Buffer.from('FLOORSCU'.padEnd(16)).copy(head, 20);
const contexts = classes.map((c) =>
  item(
    0x20,
    Buffer.concat([
      Buffer.from([contextOf.get(c), 0, 0, 0]),
      item(0x30, Buffer.from(c)),
      item(0x40, Buffer.from(EXPLICIT_LE)),
    ]),
  ),
);
let answer = nextPdu();
socket.write(pdu(0x01, Buffer.concat([head, applicationContext(), ...contexts, userInformation()])));
const ac = await answer;
if (ac[0] !== 0x02) fail(`association not accepted (PDU type ${ac[0]})`);
let peerMax = 0;
for (let p = 74; p + 4 <= ac.length; p += 4 + ac.readUInt16BE(p + 2)) {
  if (ac[p] === 0x21 && ac[p + 6] !== 0) fail(`context ${ac[p + 4]} not accepted`);
  if (ac[p] !== 0x50) continue;
  for (let q = p + 4; q < p + 4 + ac.readUInt16BE(p + 2); q += 4 + ac.readUInt16BE(q + 2)) {
    if (ac[q] === 0x51) peerMax = ac.readUInt32BE(q + 4);
  }
}
const maxPdv = (peerMax || 1 << 20) - 6 - 6;

let messageId = 0;
let file = load(paths[0]);
for (let i = 0; i < paths.length; i++) {
  const contextId = contextOf.get(file.sopClass);
  const fields = Buffer.concat([
    element(0, 0x0002, even(file.sopClass)),
    element(0, 0x0100, u16le(0x0001)),
    element(0, 0x0110, u16le(++messageId)),
    element(0, 0x0700, u16le(0)),
    element(0, 0x0800, u16le(0x0102)),
    element(0, 0x1000, even(file.sopInstance)),
  ]);
  const command = Buffer.concat([element(0, 0, u32le(fields.length)), fields]);
  const parts = [pData(contextId, 0x03, command)];
  for (let at = 0; at < file.data.length; at += maxPdv) {
    const fragment = file.data.subarray(at, Math.min(file.data.length, at + maxPdv));
    parts.push(
      pDataHead(contextId, at + maxPdv >= file.data.length ? 0x02 : 0x00, fragment.length),
      fragment,
    );
  }
  answer = nextPdu();
  socket.cork();
  for (const part of parts) socket.write(part);
  socket.uncork();
  if (i + 1 < paths.length) file = load(paths[i + 1]);
  const rsp = await answer;
  if (rsp[0] !== 0x04) fail(`no C-STORE-RSP (PDU type ${rsp[0]})`);
  const set = rsp.subarray(12);
  for (let p = 0; p + 8 <= set.length; p += 8 + set.readUInt32LE(p + 4)) {
    if (set.readUInt16LE(p + 2) === 0x0900 && set.readUInt16LE(p + 8) !== 0)
      fail(`status ${set.readUInt16LE(p + 8).toString(16)}`);
  }
}
answer = nextPdu();
socket.write(pdu(0x05, Buffer.alloc(4)));
await answer;
socket.end();
