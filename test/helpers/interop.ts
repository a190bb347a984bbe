/**
 * Helpers of the DIMSE interop tests (dimse.int.test.ts): DCMTK tools run asynchronously (the
 * Tessera server under test lives in the same event loop), free ports, generated instances written
 * with streams, and data set parts (the bytes after the File Meta Information) hashed from disk.
 * Not a test file itself (no `.test.ts`): the test runner does not pick it up.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { part10Header, readPart10, readPart10File } from '../../src/codec/index.ts';

/** Every child started through these helpers, so that an after() hook can kill what is left. */
const children = new Set<ChildProcess>();

export interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Fails with a clear message when a DCMTK tool is not installed (the tests never skip). */
export async function requireTools(...tools: readonly string[]): Promise<void> {
  for (const tool of tools) {
    await new Promise<void>((resolve, reject) => {
      execFile(tool, ['--version'], { timeout: 10_000 }, (err) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new Error(
              `DCMTK tool "${tool}" not found on PATH: these interop tests need DCMTK (apt-get install dcmtk)`,
            ),
          );
        } else resolve();
      });
    });
  }
}

/** A child process we can wait for (`done`) and kill; output is collected. */
export interface Child {
  readonly process: ChildProcess;
  readonly done: Promise<Run>;
  /** Output so far. */
  output(): string;
}

/** Starts `command` without blocking the event loop; it is killed after `timeoutMs`. */
export function start(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Child {
  const started = Date.now();
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  children.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      children.delete(child);
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? new Error(`"${command}" not found on PATH (DCMTK installed?)`)
          : e,
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: Date.now() - started,
      });
    });
  });
  return {
    process: child,
    done,
    output: () => Buffer.concat(out).toString('utf8') + Buffer.concat(err).toString('utf8'),
  };
}

/** Runs a command to its end. */
export function run(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<Run> {
  return start(command, args, options).done;
}

/** Kills every child still running (after hooks). */
export function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/** A TCP port free right now on 127.0.0.1 (bound to port 0, then closed). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh UID under the 2.25 root (PS3.5 B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(16).toString('hex')}`).toString(10)}`;
}

/** The data set part of a Part 10 file: where it starts and the file's transfer syntax. */
export async function datasetInfo(path: string): Promise<{ offset: number; transferSyntaxUid: string }> {
  const file = await readPart10File(path, { stopBeforeTag: 0x00080000 });
  return { offset: file.datasetOffset, transferSyntaxUid: file.transferSyntax.uid };
}

/** The bytes after the File Meta Information (small files only). */
export async function datasetBytes(path: string): Promise<Buffer> {
  const bytes = await readFile(path);
  return bytes.subarray(readPart10(bytes, { stopBeforeTag: 0x00080000 }).datasetOffset);
}

/** sha256 and length of a file's bytes from `start`, streamed. */
export async function sha256Of(path: string, start = 0): Promise<{ sha256: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of createReadStream(path, { start, highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), length };
}

/** sha256 of the data set part of a Part 10 file, streamed. */
export async function datasetSha256(path: string): Promise<{ sha256: string; length: number }> {
  return sha256Of(path, (await datasetInfo(path)).offset);
}

// --- generated instances ---------------------------------------------------------------------

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** One explicit VR little endian element with a short (16-bit) length field. */
function element(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

function text(value: string, pad: ' ' | '\0'): Buffer {
  return Buffer.from(value.length % 2 === 0 ? value : value + pad, 'latin1');
}

function us(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

export interface Generated {
  readonly path: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  /** sha256 and length of the data set part (everything after the File Meta Information). */
  readonly datasetSha256: string;
  readonly datasetLength: number;
  readonly fileSize: number;
}

/**
 * Writes a Secondary Capture instance in explicit VR little endian: a short header and `rows` x
 * `columns` 16-bit pixels (OW), written in chunks of at most 1 MiB with backpressure, never held
 * whole in memory. Each chunk starts with its index, so reordered or repeated chunks are detected.
 */
export async function writeInstance(
  path: string,
  options: {
    rows: number;
    columns: number;
    sopInstanceUid?: string;
    patientName?: string;
    studyInstanceUid?: string;
    seriesInstanceUid?: string;
  },
): Promise<Generated> {
  const sopInstanceUid = options.sopInstanceUid ?? newUid();
  const pixelBytes = options.rows * options.columns * 2;
  const header = Buffer.concat([
    element(0x0008, 0x0016, 'UI', text(SECONDARY_CAPTURE, '\0')),
    element(0x0008, 0x0018, 'UI', text(sopInstanceUid, '\0')),
    element(0x0008, 0x0020, 'DA', text('20240101', ' ')),
    element(0x0008, 0x0060, 'CS', text('OT', ' ')),
    element(0x0008, 0x0064, 'CS', text('WSD', ' ')),
    element(0x0010, 0x0010, 'PN', text(options.patientName ?? 'Interop^Test', ' ')),
    element(0x0010, 0x0020, 'LO', text('TESSERA-INTEROP', ' ')),
    element(0x0020, 0x000d, 'UI', text(options.studyInstanceUid ?? newUid(), '\0')),
    element(0x0020, 0x000e, 'UI', text(options.seriesInstanceUid ?? newUid(), '\0')),
    element(0x0020, 0x0013, 'IS', text('1', ' ')),
    element(0x0028, 0x0002, 'US', us(1)),
    element(0x0028, 0x0004, 'CS', text('MONOCHROME2', ' ')),
    element(0x0028, 0x0010, 'US', us(options.rows)),
    element(0x0028, 0x0011, 'US', us(options.columns)),
    element(0x0028, 0x0100, 'US', us(16)),
    element(0x0028, 0x0101, 'US', us(16)),
    element(0x0028, 0x0102, 'US', us(15)),
    element(0x0028, 0x0103, 'US', us(0)),
  ]);
  const pixelHead = Buffer.alloc(12);
  pixelHead.writeUInt16LE(0x7fe0, 0);
  pixelHead.writeUInt16LE(0x0010, 2);
  pixelHead.write('OW', 4, 'latin1');
  pixelHead.writeUInt32LE(pixelBytes, 8);

  const meta = part10Header({
    sopClassUid: SECONDARY_CAPTURE,
    sopInstanceUid,
    transferSyntaxUid: EXPLICIT_LE,
  });
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  const write = async (chunk: Buffer, hashed: boolean): Promise<void> => {
    if (hashed) hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  };
  const closed = once(out, 'close');
  await write(meta, false);
  await write(header, true);
  await write(pixelHead, true);
  const pattern = randomBytes(Math.min(pixelBytes, 1024 * 1024));
  for (let offset = 0, index = 0; offset < pixelBytes; offset += pattern.length, index++) {
    const n = Math.min(pattern.length, pixelBytes - offset);
    const chunk = Buffer.from(pattern.subarray(0, n));
    if (n >= 4) chunk.writeUInt32LE(index, 0);
    await write(chunk, true);
  }
  out.end();
  await closed;
  const datasetLength = header.length + pixelHead.length + pixelBytes;
  return {
    path,
    sopClassUid: SECONDARY_CAPTURE,
    sopInstanceUid,
    datasetSha256: hash.digest('hex'),
    datasetLength,
    fileSize: meta.length + datasetLength,
  };
}

/**
 * A TCP proxy to 127.0.0.1:`target` that drops both connections once `cutAfter` bytes went from the
 * client to the target: a connection lost mid-transfer at a known point, whatever the speed.
 */
export async function cuttingProxy(
  target: number,
  cutAfter: number,
): Promise<{ port: number; cut: Promise<number>; close(): Promise<void> }> {
  let onCut!: (n: number) => void;
  const cut = new Promise<number>((resolve) => {
    onCut = resolve;
  });
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target });
    sockets.add(client).add(upstream);
    let forwarded = 0;
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (forwarded >= cutAfter) return;
      forwarded += chunk.length;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
      if (forwarded >= cutAfter) {
        // Let what was written reach the target, then drop the connection.
        upstream.end(() => {
          drop();
          onCut(forwarded);
        });
      }
    });
    upstream.pipe(client);
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    cut,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
