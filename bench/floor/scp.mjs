// The Node.js floor for a C-STORE SCP, a yardstick for bench/store.ts: the least a Node.js process
// must do to receive instances as storescp does, with none of Tessera's code. It accepts every
// proposed context (Explicit VR Little Endian when offered, else the first syntax), writes each
// instance as `<SOP Instance UID>.dcm` (a File Meta header, then the data set as received) under a
// hidden temporary name renamed at its end, and answers Success. No checks, no state machine, no
// ARTIM, no limits: never run it anywhere but on 127.0.0.1 in a benchmark.
//
//   node bench/floor/scp.mjs DIR PORT [WORKERS]   (WORKERS > 1: node:cluster, as tessera receive)
import cluster from 'node:cluster';
import { closeSync, openSync, renameSync, writevSync } from 'node:fs';
import { createServer } from 'node:net';
import {
  applicationContext,
  EXPLICIT_LE,
  element,
  even,
  item,
  pData,
  pdu,
  text,
  u16le,
  u32le,
  userInformation,
} from './bytes.mjs';

const [dir, port, workersArg] = process.argv.slice(2);
const workers = Number(workersArg ?? 1);

/** A-ASSOCIATE-AC for an A-ASSOCIATE-RQ's body: every context accepted (its syntax put in `chosen`). */
function associateAc(rq, chosen) {
  const items = [applicationContext()];
  for (let p = 68; p + 4 <= rq.length; ) {
    const type = rq[p];
    const length = rq.readUInt16BE(p + 2);
    if (type === 0x20) {
      const syntaxes = [];
      for (let q = p + 8; q < p + 4 + length; q += 4 + rq.readUInt16BE(q + 2)) {
        if (rq[q] === 0x40) syntaxes.push(text(rq.subarray(q + 4, q + 4 + rq.readUInt16BE(q + 2))));
      }
      const syntax = syntaxes.includes(EXPLICIT_LE) ? EXPLICIT_LE : syntaxes[0];
      chosen.set(rq[p + 4], syntax);
      items.push(
        item(0x21, Buffer.concat([Buffer.from([rq[p + 4], 0, 0, 0]), item(0x40, Buffer.from(syntax))])),
      );
    }
    p += 4 + length;
  }
  items.push(userInformation());
  return pdu(0x02, Buffer.concat([rq.subarray(0, 68), ...items]));
}

/** A File Meta element (Explicit VR Little Endian). */
function metaElement(elem, value, vr) {
  const tag = Buffer.concat([u16le(2), u16le(elem)]);
  if (vr === 'OB') return Buffer.concat([tag, Buffer.from('OB\0\0'), u32le(value.length), value]);
  return Buffer.concat([tag, Buffer.from(vr), u16le(value.length), value]);
}

/** Preamble, DICM and group 0002, as storescp writes them. */
function fileMeta(sopClass, sopInstance, syntax) {
  const body = Buffer.concat([
    metaElement(0x0001, Buffer.from([0, 1]), 'OB'),
    metaElement(0x0002, even(sopClass), 'UI'),
    metaElement(0x0003, even(sopInstance), 'UI'),
    metaElement(0x0010, even(syntax), 'UI'),
    metaElement(0x0012, even('1.2.826.0.1.3680043.9.7'), 'UI'),
  ]);
  return Buffer.concat([
    Buffer.alloc(128),
    Buffer.from('DICM'),
    metaElement(0, u32le(body.length), 'UL'),
    body,
  ]);
}

/** A P-DATA-TF PDU with the C-STORE-RSP (Success) for a request's command fields. */
function storeRsp(contextId, command) {
  const fields = Buffer.concat([
    element(0, 0x0002, even(command.sopClass)),
    element(0, 0x0100, u16le(0x8001)),
    element(0, 0x0120, u16le(command.messageId)),
    element(0, 0x0800, u16le(0x0101)),
    element(0, 0x0900, u16le(0)),
    element(0, 0x1000, even(command.sopInstance)),
  ]);
  const set = Buffer.concat([element(0, 0, u32le(fields.length)), fields]);
  return pData(contextId, 0x03, set);
}

function parseCommand(set) {
  const command = { sopClass: '', sopInstance: '', messageId: 0 };
  for (let p = 0; p + 8 <= set.length; p += 8 + set.readUInt32LE(p + 4)) {
    const elem = set.readUInt16LE(p + 2);
    const value = set.subarray(p + 8, p + 8 + set.readUInt32LE(p + 4));
    if (elem === 0x0002) command.sopClass = text(value);
    else if (elem === 0x1000) command.sopInstance = text(value);
    else if (elem === 0x0110) command.messageId = value.readUInt16LE(0);
  }
  return command;
}

let files = 0;

function serve(socket) {
  socket.setNoDelay(true);
  const syntaxes = new Map();
  let input = Buffer.alloc(0);
  let commandParts = [];
  let current; // { command, contextId, fd, temp }
  let pending = [];
  let flushScheduled = false;
  // Data fragments of one event-loop turn go to the file in one writev (as Tessera's receiver does).
  const flush = () => {
    flushScheduled = false;
    if (pending.length > 0 && current) writevSync(current.fd, pending);
    pending = [];
  };
  socket.on('data', (chunk) => {
    input = input.length > 0 ? Buffer.concat([input, chunk]) : chunk;
    let p = 0;
    while (input.length - p >= 6) {
      const type = input[p];
      const length = input.readUInt32BE(p + 2);
      if (input.length - p < 6 + length) break;
      const body = input.subarray(p + 6, p + 6 + length);
      p += 6 + length;
      if (type === 0x01) {
        socket.write(associateAc(body, syntaxes));
      } else if (type === 0x05) socket.end(pdu(0x06, Buffer.alloc(4)));
      else if (type === 0x07) socket.destroy();
      else if (type === 0x04) {
        for (let q = 0; q < body.length; ) {
          const pdvLength = body.readUInt32BE(q);
          const contextId = body[q + 4];
          const header = body[q + 5];
          const value = body.subarray(q + 6, q + 4 + pdvLength);
          q += 4 + pdvLength;
          if (header & 0x01) {
            commandParts.push(value);
            if (header & 0x02) {
              const command = parseCommand(Buffer.concat(commandParts));
              commandParts = [];
              const temp = `${dir}/.floor-${process.pid}-${files++}`;
              current = { command, contextId, fd: openSync(temp, 'w'), temp };
              pending.push(fileMeta(command.sopClass, command.sopInstance, syntaxes.get(contextId)));
            }
          } else {
            pending.push(value);
            if (!flushScheduled) {
              flushScheduled = true;
              setImmediate(flush);
            }
            if (header & 0x02) {
              flush();
              closeSync(current.fd);
              renameSync(current.temp, `${dir}/${current.command.sopInstance}.dcm`);
              socket.write(storeRsp(current.contextId, current.command));
              current = undefined;
            }
          }
        }
      }
    }
    input = p === input.length ? Buffer.alloc(0) : input.subarray(p);
  });
  socket.on('error', () => socket.destroy());
}

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  createServer({ noDelay: true }, serve).listen(Number(port), '127.0.0.1');
}
