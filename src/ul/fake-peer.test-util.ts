// A scripted fake peer for the association tests (the pynetdicom test_fsm habit): a node:net socket on
// 127.0.0.1 that writes PDUs built with encodePdu (or raw bytes) and reads what the Association under test
// sends, one whole PDU at a time, with its raw bytes. Test-only; not exported from the module.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { DICOM_APPLICATION_CONTEXT, decodePdu, encodePdu, PDU_HEADER_LENGTH, type Pdu } from './index.ts';
import type { AAssociateAc, AAssociateRq } from './pdu/index.ts';

export const HOST = '127.0.0.1';
export const VERIFICATION = '1.2.840.10008.1.1';
export const CT = '1.2.840.10008.5.1.4.1.1.2';
export const MR = '1.2.840.10008.5.1.4.1.1.4';
export const IVRLE = '1.2.840.10008.1.2';
export const EVRLE = '1.2.840.10008.1.2.1';
export const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
export const PEER_IMPLEMENTATION = '1.2.826.0.1.3680043.9.7433.1.1';

/** One PDU as it came off the wire: decoded, and its bytes (header included). */
export interface WirePdu {
  readonly pdu: Pdu;
  readonly raw: Buffer;
}

/** The fake peer's end of one TCP connection. */
export class Wire {
  readonly socket: Socket;
  /** Every PDU received so far, in order (the transcript). */
  readonly received: WirePdu[] = [];
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;
  private buffer = Buffer.alloc(0);
  private readIndex = 0;
  private waiter: (() => void) | undefined;
  private isClosed = false;
  /** A PDU header we could not frame (the fake peer stops reading then). */
  private error: Error | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.frame();
      this.wake();
    });
    socket.on('error', () => undefined); // ECONNRESET and the like show up as 'close'
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        this.wake();
        resolve();
      });
    });
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  send(pdu: Pdu | Buffer): void {
    this.socket.write(Buffer.isBuffer(pdu) ? pdu : encodePdu(pdu));
  }

  /** The next PDU from the Association under test; rejects on timeout or when the connection closes first. */
  async next(timeoutMs = 2000): Promise<WirePdu> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.received[this.readIndex];
      if (got) {
        this.readIndex++;
        return got;
      }
      if (this.error) throw this.error;
      if (this.isClosed) throw new Error('the connection closed before the next PDU');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no PDU within ${timeoutMs} ms`);
      await this.wait(left);
    }
  }

  /** The next PDU, which must be of `type`; returns it decoded. */
  async expect<T extends Pdu['type']>(type: T, timeoutMs = 2000): Promise<Extract<Pdu, { type: T }>> {
    const { pdu } = await this.next(timeoutMs);
    if (pdu.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(pdu)}`);
    return pdu as Extract<Pdu, { type: T }>;
  }

  /** Waits until the Association under test closes the connection; returns how long it took. */
  async expectClosed(timeoutMs = 2000): Promise<number> {
    const started = Date.now();
    await withTimeout(this.closed, timeoutMs, 'the connection was not closed');
    return Date.now() - started;
  }

  /** Asserts that nothing arrives and the connection stays open for `ms`. */
  async quiet(ms: number): Promise<void> {
    const before = this.received.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.received.length !== before) throw new Error(`unexpected ${this.received[before]!.pdu.type}`);
  }

  /** Closes our end (FIN) and waits for the close. */
  async end(): Promise<void> {
    this.socket.end();
    await withTimeout(this.closed, 2000, 'the connection did not close after our FIN');
  }

  destroy(): void {
    this.socket.destroy();
  }

  private frame(): void {
    while (!this.error && this.buffer.length >= PDU_HEADER_LENGTH) {
      const size = PDU_HEADER_LENGTH + this.buffer.readUInt32BE(2);
      if (size > 64 * 1024 * 1024) {
        this.error = new Error(`a PDU of ${size} bytes from the Association under test`);
        return;
      }
      if (this.buffer.length < size) return;
      const raw = Buffer.from(this.buffer.subarray(0, size));
      this.buffer = this.buffer.subarray(size);
      try {
        this.received.push({ pdu: decodePdu(raw), raw });
      } catch (err) {
        this.error = err as Error;
      }
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiter = done;
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/** Connects a fake requestor to `port`. */
export async function connectTo(port: number): Promise<Wire> {
  const socket = connect({ host: HOST, port });
  await withTimeout(once(socket, 'connect'), 2000, 'cannot connect');
  return new Wire(socket);
}

/** A fake acceptor: a TCP server whose connections are handed to the test as Wires. */
export class FakeAcceptor {
  readonly wires: Wire[] = [];
  private readonly server: Server;
  /** Connections not yet handed out, and tests waiting for one. */
  private readonly untaken: Wire[] = [];
  private readonly waiting: ((w: Wire) => void)[] = [];

  private constructor(server: Server) {
    this.server = server;
    server.on('connection', (socket) => {
      const wire = new Wire(socket);
      this.wires.push(wire);
      const waiter = this.waiting.shift();
      if (waiter) waiter(wire);
      else this.untaken.push(wire);
    });
  }

  static async start(): Promise<FakeAcceptor> {
    const server = createServer();
    server.listen(0, HOST);
    await once(server, 'listening');
    return new FakeAcceptor(server);
  }

  get port(): number {
    const address = this.server.address();
    if (!address || typeof address !== 'object') throw new Error('not listening');
    return address.port;
  }

  /** The next incoming connection. */
  connection(timeoutMs = 2000): Promise<Wire> {
    const ready = this.untaken.shift();
    if (ready) return Promise.resolve(ready);
    return withTimeout(
      new Promise<Wire>((resolve) => this.waiting.push(resolve)),
      timeoutMs,
      'no connection',
    );
  }

  async close(): Promise<void> {
    for (const w of this.wires) w.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An A-ASSOCIATE-RQ as a requestor such as storescu sends it; `over` replaces fields. */
export function associateRq(over: Partial<AAssociateRq> = {}): AAssociateRq {
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAETitle: 'TESSERA',
    callingAETitle: 'FAKESCU',
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: [
      { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IVRLE] },
      { id: 3, abstractSyntax: CT, transferSyntaxes: [EVRLE, IVRLE] },
    ],
    userInformation: {
      maxPduLength: 16384,
      implementationClassUid: PEER_IMPLEMENTATION,
      implementationVersionName: 'FAKE_PEER',
      roles: [],
      extendedNegotiation: [],
      commonExtendedNegotiation: [],
    },
    ...over,
  };
}

/** An A-ASSOCIATE-AC answering `rq`: every context accepted with its first transfer syntax unless `over` says. */
export function associateAc(rq: AAssociateRq, over: Partial<AAssociateAc> = {}): AAssociateAc {
  return {
    type: 'A-ASSOCIATE-AC',
    protocolVersion: 1,
    calledAETitle: rq.calledAETitle,
    callingAETitle: rq.callingAETitle,
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: rq.presentationContexts.map((pc) => ({
      id: pc.id,
      result: 0,
      transferSyntax: pc.transferSyntaxes[0]!,
    })),
    userInformation: {
      maxPduLength: 16384,
      implementationClassUid: PEER_IMPLEMENTATION,
      implementationVersionName: 'FAKE_PEER',
      roles: [],
      extendedNegotiation: [],
      commonExtendedNegotiation: [],
    },
    ...over,
  };
}
