import { channel } from 'node:diagnostics_channel';
import { connect, type Socket } from 'node:net';
import { DicomError } from '../core/index.ts';
import { type AbortReason, type Effect, type Event, type State, step } from './fsm/index.ts';
import {
  type AcceptDecision,
  type AcceptedContext,
  type AcceptorPolicy,
  acceptedByPeer,
  negotiateAsAcceptor,
  type RejectedContext,
} from './negotiation.ts';
import {
  type AAbort,
  type AAssociateAc,
  type AAssociateRj,
  type AAssociateRq,
  abortReasonText,
  DICOM_APPLICATION_CONTEXT,
  encodePdu,
  type Pdu,
  type PduParts,
  PduReader,
  type Pdv,
  ProtocolError,
  type UserInformation,
} from './pdu/index.ts';

const pduChannel = channel('tessera:ul:pdu');
const associationChannel = channel('tessera:ul:association');

/** Defaults of the upper layer (one object, no global config). */
export const UL_DEFAULTS = {
  maxPduLength: 116_794,
  /** The most we buffer for one incoming PDU whatever the peer says: our max plus the PDU header. */
  artimMs: 30_000,
  connectTimeoutMs: 30_000,
  implementationClassUid: '2.25.211526430283742515618620286426413926513',
  implementationVersionName: 'TESSERA_010',
} as const;

/** The association was rejected by the peer (A-ASSOCIATE-RJ), with its result, source and reason. */
export class AssociationRejectedError extends DicomError {
  readonly result: number;
  readonly source: number;
  readonly reason: number;

  constructor(rj: AAssociateRj) {
    super('ERR_UL_ASSOCIATION_REJECTED', `association rejected: ${rejectText(rj)}`);
    this.name = 'AssociationRejectedError';
    this.result = rj.result;
    this.source = rj.source;
    this.reason = rj.reason;
  }
}

/** The association ended abnormally: A-ABORT from the peer, A-P-ABORT, or the connection dropped. */
export class AssociationAbortedError extends DicomError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_UL_ABORTED', message, options);
    this.name = 'AssociationAbortedError';
  }
}

/** A timer of the upper layer expired (ARTIM, connect, or the association request timeout). */
export class TimeoutError extends DicomError {
  readonly timer: string;

  constructor(timer: string, message: string) {
    super('ERR_UL_TIMEOUT', message);
    this.name = 'TimeoutError';
    this.timer = timer;
  }
}

function rejectText(rj: AAssociateRj): string {
  const sources: Record<number, string> = {
    1: 'service-user',
    2: 'service-provider (ACSE)',
    3: 'service-provider (presentation)',
  };
  const reasons: Record<string, string> = {
    '1:1': 'no reason given',
    '1:2': 'application context name not supported',
    '1:3': 'calling AE title not recognized',
    '1:7': 'called AE title not recognized',
    '2:1': 'no reason given',
    '2:2': 'protocol version not supported',
    '3:1': 'temporary congestion',
    '3:2': 'local limit exceeded',
  };
  return `${rj.result === 1 ? 'permanent' : 'transient'}, ${sources[rj.source] ?? `source ${rj.source}`}, ${reasons[`${rj.source}:${rj.reason}`] ?? `reason ${rj.reason}`}`;
}

export interface AssociationInfo {
  readonly callingAETitle: string;
  readonly calledAETitle: string;
  /** The largest PDU the peer accepts (0 = unlimited): what we fragment to. */
  readonly peerMaxPduLength: number;
  readonly peerImplementationClassUid: string;
  readonly peerImplementationVersionName: string | undefined;
  /** Outstanding operations the requestor may invoke / perform (PS3.7 D.3.3.3); 1 when not negotiated. */
  readonly maxOpsInvoked: number;
  readonly maxOpsPerformed: number;
  readonly contexts: ReadonlyMap<number, AcceptedContext>;
  readonly rejectedContexts: readonly RejectedContext[];
  readonly userIdentity: AAssociateRq['userInformation']['userIdentity'];
  /**
   * SOP Class Extended Negotiation as agreed (PS3.7 D.3.3.5): the acceptor's answer per SOP class UID
   * (e.g. relational queries for Query/Retrieve, PS3.4 C.5.1.1). Absent when not answered.
   */
  readonly extendedNegotiation: ReadonlyMap<string, Buffer>;
}

type Role = 'requestor' | 'acceptor';

/** What the association tells its user: P-DATA as it arrives, the peer's release request, the end. */
export interface AssociationUser {
  /** PDVs of one P-DATA-TF, in order: slices of the received bytes, a PDV split where they were (PduReader splitPData). */
  onPData(pdvs: readonly Pdv[]): void;
  /** The peer asked to release; resolve when ready to answer (e.g. in-flight operations done). */
  onReleaseRequested?(): Promise<void>;
  /** The association is over: released normally, or aborted with the reason. */
  onClose?(error: Error | undefined): void;
}

let nextAssociationId = 1;

/**
 * One association: the only code that touches a socket. Socket bytes become PS3.8 events, `step()`
 * decides, and the driver carries out the effects (send a PDU, tell the user, ARTIM, close).
 */
export class Association {
  readonly id = nextAssociationId++;
  readonly role: Role;
  private state: State = 'Sta1';
  private readonly socket: Socket;
  private readonly reader: PduReader;
  private artim: NodeJS.Timeout | undefined;
  private readonly artimMs: number;
  /** The largest P-DATA-TF PDU-length we take: our Maximum Length plus headroom (0 = unlimited). */
  private readonly maxPDataLength: number;
  private user: AssociationUser | undefined;
  private outgoing: Pdu | undefined;
  private received: Pdu | undefined;
  private closedError: Error | undefined;
  private closeSeen = false;
  private readonly closedPromise: Promise<Error | undefined>;
  private resolveClosed!: (e: Error | undefined) => void;
  private releaseWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private establishWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private infoValue: AssociationInfo | undefined;
  private acceptorPolicy: AcceptorPolicy | undefined;
  private onAccepted: ((a: Association) => void) | undefined;
  private pendingPData: Pdv[][] = [];
  /** Set after a protocol error: further bytes from the peer are ignored until the connection closes. */
  private failed = false;
  /** The reason of the A-ABORT the provider sends for Evt19 (AA-8). */
  private abortReason: number | undefined;

  private constructor(role: Role, socket: Socket, options: { maxPduLength: number; artimMs: number }) {
    this.role = role;
    this.socket = socket;
    this.artimMs = options.artimMs;
    this.maxPDataLength = options.maxPduLength === 0 ? 0 : options.maxPduLength + 1024;
    // Accept PDUs up to our advertised maximum plus headroom for the PDV headers of one PDU. The Maximum
    // Length Sub-Item limits P-DATA-TF PDUs only (PS3.8 D.1): an A-ASSOCIATE-RQ/AC (up to 128 presentation
    // contexts, role items, a user identity of up to 2 x 64 KiB) may be larger, hence the floor; a
    // P-DATA-TF between our maximum and the floor is refused in onPdu.
    // P-DATA is not reassembled into one buffer per PDU: data set bytes go on as slices of the chunks
    // the socket delivered (a PDU of our 116 KiB maximum spans two or three 64 KiB reads).
    this.reader = new PduReader({
      maxPduLength:
        options.maxPduLength === 0
          ? 64 * 1024 * 1024
          : Math.max(options.maxPduLength + 1024, ASSOCIATE_PDU_LIMIT),
      splitPData: true,
    });
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.onTransportClosed());
    socket.on('error', (err) => {
      this.closedError ??= new AssociationAbortedError(`connection error: ${err.message}`, { cause: err });
    });
  }

  /** The negotiated parameters; available once established. */
  get info(): AssociationInfo {
    if (!this.infoValue) throw new DicomError('ERR_UL_NOT_ESTABLISHED', 'the association is not established');
    return this.infoValue;
  }

  get established(): boolean {
    return this.state === 'Sta6';
  }

  /**
   * Whether every byte given to the send calls so far has been handed to the OS: none is waiting in
   * the socket's buffer. Until then, a buffer passed to `sendPDataParts` may still be read.
   */
  get allSent(): boolean {
    return this.socket.writableLength === 0;
  }

  /** Resolves when the transport is closed: undefined after a normal release, the error otherwise. */
  get closed(): Promise<Error | undefined> {
    return this.closedPromise;
  }

  get remoteAddress(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  setUser(user: AssociationUser): void {
    this.user = user;
    for (const pdvs of this.pendingPData.splice(0)) user.onPData(pdvs);
  }

  /** Stops reading from the socket (backpressure from the user); `resume()` reads again. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /**
   * Sends one P-DATA-TF PDU already encoded (the DIMSE layer fragments to `info.peerMaxPduLength`).
   * Resolves when the socket accepted it without exceeding its buffer (write backpressure).
   */
  async sendPData(pdu: Buffer): Promise<void> {
    if (this.state !== 'Sta6' && this.state !== 'Sta8') {
      throw new AssociationAbortedError(
        `cannot send data: the association is ${this.state === 'Sta1' ? 'closed' : 'not established'}`,
      );
    }
    this.fire('Evt9');
    pduChannel.publish({ association: this.id, direction: 'out', type: 'P-DATA-TF', length: pdu.length });
    if (!this.socket.write(pdu)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.socket.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          this.socket.off('drain', onDrain);
          reject(this.closedError ?? new AssociationAbortedError('the connection closed while sending'));
        };
        this.socket.once('drain', onDrain);
        this.socket.once('close', onClose);
      });
    }
  }

  /**
   * Sends several P-DATA-TF PDUs given as head and fragment (see `fragmentParts`) in one gathered
   * write (the socket corked meanwhile): no copy of the data, fewer system calls and segments.
   */
  async sendPDataParts(parts: readonly PduParts[]): Promise<void> {
    if (this.state !== 'Sta6' && this.state !== 'Sta8') {
      throw new AssociationAbortedError(
        `cannot send data: the association is ${this.state === 'Sta1' ? 'closed' : 'not established'}`,
      );
    }
    let ok = true;
    // Messages written in the same turn of the event loop (a burst of C-FIND matches) share one
    // corked write: the socket is uncorked once the turn ends, or at once when it is full.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => this.uncork());
    }
    for (const part of parts) {
      this.fire('Evt9');
      pduChannel.publish({
        association: this.id,
        direction: 'out',
        type: 'P-DATA-TF',
        length: part.head.length + part.body.length,
      });
      this.socket.write(part.head);
      ok = this.socket.write(part.body);
    }
    if (!ok) {
      this.uncork();
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.socket.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          this.socket.off('drain', onDrain);
          reject(this.closedError ?? new AssociationAbortedError('the connection closed while sending'));
        };
        this.socket.once('drain', onDrain);
        this.socket.once('close', onClose);
      });
    }
  }

  private corked = false;

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** A-RELEASE: asks the peer to release and waits for its answer (PS3.8 §7.2). */
  async release(): Promise<void> {
    if (this.state === 'Sta1') return;
    const done = new Promise<void>((resolve, reject) => {
      this.releaseWaiter = { resolve, reject };
    });
    this.outgoing = { type: 'A-RELEASE-RQ' };
    this.fire('Evt11');
    await done;
  }

  /** A-ABORT from this side (source 0: service-user). The association is unusable afterwards. */
  abort(): void {
    if (this.state === 'Sta1' || this.state === 'Sta13') return;
    this.closedError ??= new AssociationAbortedError('aborted by the local user');
    if (this.state === 'Sta2') {
      // No A-ASSOCIATE-RQ yet, so no association to abort (Table 9-10 has no Evt15 cell in Sta2): close the
      // transport connection, as AA-2 does when ARTIM expires there.
      this.stopArtim();
      this.socket.destroy();
      return;
    }
    this.fire('Evt15');
  }

  // --- requestor ------------------------------------------------------------------------------

  /** Opens a connection and negotiates an association as requestor (PS3.8 §7.1). */
  static async request(options: RequestOptions): Promise<Association> {
    // Build and encode the A-ASSOCIATE-RQ before connecting: a request we cannot send fails here, not in
    // the socket's 'connect' handler (an uncaught exception) after a connection was opened and leaked.
    const rq = buildRequest(options);
    encodePdu(rq);
    const socket = connect({ host: options.host, port: options.port, noDelay: true });
    const a = new Association('requestor', socket, {
      maxPduLength: options.maxPduLength ?? UL_DEFAULTS.maxPduLength,
      artimMs: options.artimMs ?? UL_DEFAULTS.artimMs,
    });
    a.outgoing = rq;
    a.lastRequest = rq;
    const established = new Promise<void>((resolve, reject) => {
      a.establishWaiter = { resolve, reject };
    });
    a.state = 'Sta4'; // AE-1: TRANSPORT CONNECT requested.
    const timeout = setTimeout(() => {
      a.establishWaiter?.reject(
        new TimeoutError(
          'association',
          `no association with ${options.host}:${options.port} within ${options.timeoutMs ?? UL_DEFAULTS.connectTimeoutMs} ms`,
        ),
      );
      a.establishWaiter = undefined;
      // Once the A-ASSOCIATE-RQ is out, tell the peer with an A-ABORT (AA-1) before closing.
      try {
        a.abort();
      } catch {
        // not in a state that sends one: just close
      }
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    }, options.timeoutMs ?? UL_DEFAULTS.connectTimeoutMs);
    socket.once('connect', () => a.fire('Evt2'));
    socket.once('error', (err) => {
      a.establishWaiter?.reject(
        new AssociationAbortedError(`cannot connect to ${options.host}:${options.port}: ${err.message}`, {
          cause: err,
        }),
      );
      a.establishWaiter = undefined;
    });
    try {
      await established;
    } finally {
      clearTimeout(timeout);
    }
    return a;
  }

  // --- acceptor -------------------------------------------------------------------------------

  /** Runs the acceptor side on an incoming connection; `onAccepted` gets the association once established. */
  static accept(
    socket: Socket,
    policy: AcceptorPolicy & { artimMs?: number },
    onAccepted: (a: Association) => void,
  ): Association {
    const a = new Association('acceptor', socket, {
      maxPduLength: policy.maxPduLength,
      artimMs: policy.artimMs ?? UL_DEFAULTS.artimMs,
    });
    a.acceptorPolicy = policy;
    a.onAccepted = onAccepted;
    a.fire('Evt5');
    return a;
  }

  // --- the driver -------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.failed) return;
    try {
      this.reader.push(chunk);
      for (let pdu = this.reader.next(); pdu; pdu = this.reader.next()) {
        if (this.state === 'Sta1') return;
        this.onPdu(pdu);
      }
    } catch (err) {
      this.protocolError(err);
    }
  }

  private onPdu(pdu: Pdu): void {
    if (pdu.type === 'P-DATA-TF' && this.maxPDataLength !== 0) {
      const length = this.reader.lastPduLength;
      if (length > this.maxPDataLength)
        throw new ProtocolError(
          'ERR_UL_PDU_TOO_LARGE',
          `P-DATA-TF PDU-length ${length} is over the limit of ${this.maxPDataLength} bytes`,
          6,
        );
    }
    if (pdu.type !== 'P-DATA-TF')
      pduChannel.publish({ association: this.id, direction: 'in', type: pdu.type });
    this.received = pdu;
    switch (pdu.type) {
      case 'A-ASSOCIATE-AC':
        this.fire('Evt3');
        return;
      case 'A-ASSOCIATE-RJ':
        this.fire('Evt4');
        return;
      case 'A-ASSOCIATE-RQ':
        this.fire('Evt6');
        return;
      case 'P-DATA-TF':
        this.fire('Evt10');
        return;
      case 'A-RELEASE-RQ':
        this.fire('Evt12');
        return;
      case 'A-RELEASE-RP':
        this.fire('Evt13');
        return;
      case 'A-ABORT':
        this.fire('Evt16');
        return;
    }
  }

  /** Evt19: an unrecognized or invalid PDU. AA-8 answers with A-ABORT (source 2) and the reason. */
  private protocolError(err: unknown): void {
    this.failed = true;
    this.abortReason = err instanceof ProtocolError ? err.abortReason : 0;
    this.closedError ??= new AssociationAbortedError(`protocol error: ${(err as Error).message}`, {
      cause: err,
    });
    try {
      this.fire('Evt19');
    } catch {
      // Whatever went wrong, this connection alone ends; the process goes on.
      this.socket.destroy();
    }
  }

  private onTransportClosed(): void {
    this.closeSeen = true;
    if (this.state !== 'Sta1') this.fire('Evt17');
    this.finish();
  }

  private fire(event: Event): void {
    const acceptable = event === 'Evt6' ? ((this.received as AAssociateRq).protocolVersion & 1) === 1 : true;
    // AE-6, not acceptable: the provider answers A-ASSOCIATE-RJ itself, rejected-permanent by the
    // service-provider (ACSE related function), protocol-version-not-supported (PS3.8 Table 9-21).
    if (!acceptable) this.outgoing = { type: 'A-ASSOCIATE-RJ', result: 1, source: 2, reason: 2 };
    const result = step(this.state, event, {
      acceptable,
      isRequestor: this.role === 'requestor',
      abortSource: this.received?.type === 'A-ABORT' ? this.received.source : undefined,
      abortReason: this.abortReason as AbortReason | undefined,
    });
    this.state = result.next;
    for (const effect of result.effects) this.carryOut(effect, event);
  }

  private carryOut(effect: Effect, event: Event): void {
    switch (effect.kind) {
      case 'connect':
        return;
      case 'send':
        if (effect.pdu === 'A-ABORT') {
          // AA-1 says service-user source, written for the user's A-ABORT request (Evt15). In Sta2 it also
          // answers a PDU of the peer before any association exists: no user asked for that abort, so it
          // goes out as the provider's, with the reason PS3.8 Table 9-26 gives (1 unrecognized-PDU,
          // 2 unexpected-PDU, 6 invalid-PDU-parameter value...), which are significant only for source 2.
          const byProvider = effect.source === 0 && event !== 'Evt15';
          this.write({
            type: 'A-ABORT',
            source: byProvider ? 2 : effect.source,
            reason: byProvider ? (this.abortReason ?? (event === 'Evt19' ? 0 : 2)) : effect.reason,
          });
        } else this.send(effect.pdu, event);
        return;
      case 'connect-response':
        return; // node:net already accepted the connection
      case 'start-artim':
        this.stopArtim();
        this.artim = setTimeout(() => {
          this.artim = undefined;
          if (this.state === 'Sta2')
            this.closedError ??= new TimeoutError(
              'ARTIM',
              `no A-ASSOCIATE-RQ within ${this.artimMs} ms of the connection (ARTIM)`,
            );
          if (this.state !== 'Sta1') this.fire('Evt18');
        }, this.artimMs);
        this.artim.unref();
        return;
      case 'stop-artim':
        this.stopArtim();
        return;
      case 'close':
        this.stopArtim();
        this.socket.end();
        this.socket.destroySoon?.();
        setTimeout(() => this.socket.destroy(), 1000).unref();
        return;
      case 'indicate':
        this.indicate(effect.primitive, event);
        return;
    }
  }

  private send(type: Pdu['type'], event: Event): void {
    if (type === 'P-DATA-TF') return; // written by sendPData itself
    const pdu: Pdu | undefined =
      type === 'A-RELEASE-RQ' || type === 'A-RELEASE-RP' ? { type } : this.outgoing;
    if (!pdu || pdu.type !== type) {
      throw new DicomError('ERR_UL_INTERNAL', `no ${type} ready to send on ${event}`);
    }
    this.outgoing = undefined;
    this.write(pdu);
  }

  private write(pdu: Pdu): void {
    pduChannel.publish({ association: this.id, direction: 'out', type: pdu.type });
    // Control PDUs (release, abort) are not held back by a corked burst of P-DATA.
    this.uncork();
    if (!this.socket.destroyed) this.socket.write(encodePdu(pdu));
  }

  private indicate(primitive: string, event: Event): void {
    switch (primitive) {
      case 'A-ASSOCIATE indication':
        this.negotiate().catch((err: unknown) => this.localFailure(err));
        return;
      case 'A-ASSOCIATE confirmation (accept)': {
        const rq = this.lastRequest!;
        const ac = this.received as AAssociateAc;
        const { contexts, rejected } = acceptedByPeer(rq, ac);
        this.infoValue = infoFrom(rq, ac, contexts, rejected, 'requestor');
        associationChannel.publish({
          association: this.id,
          event: 'established',
          role: this.role,
          calledAETitle: rq.calledAETitle,
        });
        this.establishWaiter?.resolve();
        this.establishWaiter = undefined;
        return;
      }
      case 'A-ASSOCIATE confirmation (reject)':
        this.closedError = new AssociationRejectedError(this.received as AAssociateRj);
        this.establishWaiter?.reject(this.closedError);
        this.establishWaiter = undefined;
        return;
      case 'P-DATA indication': {
        const pdvs = (this.received as { pdvs: Pdv[] }).pdvs;
        if (this.user) this.user.onPData(pdvs);
        else this.pendingPData.push(pdvs);
        return;
      }
      case 'A-RELEASE indication':
        void this.answerRelease();
        return;
      case 'A-RELEASE confirmation':
        this.releaseWaiter?.resolve();
        this.releaseWaiter = undefined;
        // PS3.8 9.2.3, release collision on the acceptor side: AR-10 leaves it in Sta12, from which its
        // A-RELEASE response (Evt14, AR-4) sends the A-RELEASE-RP the requestor waits for in Sta11.
        if (this.state === 'Sta12') this.answerLater('Sta12');
        return;
      case 'A-RELEASE indication (collision)':
        // PS3.8 9.2.3: on a release collision the requestor answers first (AR-9 from Sta9), the acceptor waits.
        if (this.role === 'requestor') this.answerLater('Sta9');
        return;
      case 'A-ABORT indication': {
        const ab = this.received as AAbort;
        this.closedError ??= new AssociationAbortedError(
          `aborted by the peer (source ${ab.source}, reason ${ab.reason})`,
        );
        return;
      }
      case 'A-P-ABORT indication': {
        // AA-3 with a service-provider source: the peer's provider aborted, and its reason says why.
        const ab = event === 'Evt16' ? (this.received as AAbort) : undefined;
        this.closedError ??= new AssociationAbortedError(
          ab
            ? `aborted by the peer's service provider (source ${ab.source}, reason ${ab.reason}: ${abortReasonText(ab.source, ab.reason)})`
            : 'the connection was closed or aborted by the service provider',
        );
        return;
      }
      default:
        return;
    }
  }

  private lastRequest: AAssociateRq | undefined;

  private async negotiate(): Promise<void> {
    const rq = this.received as AAssociateRq;
    let decision: AcceptDecision;
    try {
      decision = await negotiateAsAcceptor(rq, this.acceptorPolicy!);
    } catch (err) {
      decision = {
        reject: { type: 'A-ASSOCIATE-RJ', result: 2, source: 1, reason: 1 },
        why: (err as Error).message,
      };
    }
    if (this.state !== 'Sta3') return;
    if ('reject' in decision) {
      associationChannel.publish({
        association: this.id,
        event: 'rejected',
        callingAETitle: rq.callingAETitle,
        calledAETitle: rq.calledAETitle,
        why: decision.why,
      });
      this.closedError = new AssociationRejectedError(decision.reject);
      this.outgoing = decision.reject;
      this.fire('Evt8');
      return;
    }
    this.infoValue = infoFrom(rq, decision.accept, decision.contexts, decision.rejected, 'acceptor');
    this.outgoing = decision.accept;
    this.fire('Evt7');
    associationChannel.publish({
      association: this.id,
      event: 'established',
      role: this.role,
      callingAETitle: rq.callingAETitle,
      address: this.remoteAddress,
    });
    this.onAccepted?.(this);
  }

  /** The A-RELEASE response (Evt14) on the next turn, if the association is still where it waits for it. */
  private answerLater(waiting: State): void {
    setImmediate(() => {
      if (this.state === waiting) this.fire('Evt14');
    });
  }

  private async answerRelease(): Promise<void> {
    try {
      await this.user?.onReleaseRequested?.();
    } catch (err) {
      // PS3.8 §7.2: the A-RELEASE response is always affirmative; the user's failure is published, not thrown
      // (an unhandled rejection would end the process).
      associationChannel.publish({
        association: this.id,
        event: 'release-error',
        error: (err as Error).message,
      });
    }
    if (this.state === 'Sta8') this.fire('Evt14');
  }

  /**
   * A failure on our side while establishing (the AC cannot be encoded, the user's onAccepted throws): this
   * association alone is aborted, as the local user's A-ABORT (PS3.8 §7.3), instead of an unhandled rejection.
   */
  private localFailure(err: unknown): void {
    this.closedError ??= new AssociationAbortedError(`local failure: ${(err as Error).message}`, {
      cause: err,
    });
    try {
      this.abort();
    } catch {
      this.socket.destroy();
    }
  }

  private stopArtim(): void {
    if (this.artim) clearTimeout(this.artim);
    this.artim = undefined;
  }

  private finish(): void {
    this.stopArtim();
    this.state = 'Sta1';
    const err =
      this.closedError ??
      (this.releaseWaiter || this.establishWaiter
        ? new AssociationAbortedError('the connection closed')
        : undefined);
    this.establishWaiter?.reject(err ?? new AssociationAbortedError('the connection closed'));
    this.establishWaiter = undefined;
    if (this.releaseWaiter) {
      if (err) this.releaseWaiter.reject(err);
      else this.releaseWaiter.resolve();
      this.releaseWaiter = undefined;
    }
    associationChannel.publish({ association: this.id, event: 'closed', error: err?.message });
    this.user?.onClose?.(err);
    this.resolveClosed(err);
    void this.closeSeen;
  }
}

/** The least we accept for any PDU: room for the largest A-ASSOCIATE-RQ/AC we expect (PS3.8 D.1). */
const ASSOCIATE_PDU_LIMIT = 256 * 1024;

export interface ProposedContext {
  readonly abstractSyntax: string;
  readonly transferSyntaxes: readonly string[];
  /** Ask for the SCP role on this SOP class (C-GET receivers), PS3.7 D.3.3.4. */
  readonly scpRole?: boolean;
  /** SOP Class Extended Negotiation sub-item to send for this SOP class (PS3.7 D.3.3.5). */
  readonly extendedNegotiation?: Buffer;
}

export interface RequestOptions {
  readonly host: string;
  readonly port: number;
  readonly callingAETitle: string;
  readonly calledAETitle: string;
  readonly contexts: readonly ProposedContext[];
  readonly maxPduLength?: number;
  /** Ask for asynchronous operations (PS3.7 D.3.3.3): outstanding operations we invoke / perform. */
  readonly maxOpsInvoked?: number;
  readonly maxOpsPerformed?: number;
  readonly userIdentity?: UserInformation['userIdentity'];
  readonly timeoutMs?: number;
  readonly artimMs?: number;
}

function buildRequest(o: RequestOptions): AAssociateRq {
  if (o.contexts.length === 0)
    throw new DicomError('ERR_UL_NO_CONTEXTS', 'an association needs at least one presentation context');
  if (o.contexts.length > 128)
    throw new DicomError(
      'ERR_UL_TOO_MANY_CONTEXTS',
      `${o.contexts.length} presentation contexts proposed; at most 128 fit (PS3.8 9.3.2.2)`,
    );
  const roles = o.contexts
    .filter((c) => c.scpRole)
    .map((c) => ({ sopClassUid: c.abstractSyntax, scu: true, scp: true }));
  const uniqueRoles = roles.filter((r, i) => roles.findIndex((x) => x.sopClassUid === r.sopClassUid) === i);
  const asyncOps =
    o.maxOpsInvoked !== undefined || o.maxOpsPerformed !== undefined
      ? { maxInvoked: o.maxOpsInvoked ?? 1, maxPerformed: o.maxOpsPerformed ?? 1 }
      : undefined;
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAETitle: o.calledAETitle,
    callingAETitle: o.callingAETitle,
    applicationContextName: DICOM_APPLICATION_CONTEXT,
    presentationContexts: o.contexts.map((c, i) => ({
      id: 2 * i + 1,
      abstractSyntax: c.abstractSyntax,
      transferSyntaxes: [...c.transferSyntaxes],
    })),
    userInformation: {
      maxPduLength: o.maxPduLength ?? UL_DEFAULTS.maxPduLength,
      implementationClassUid: UL_DEFAULTS.implementationClassUid,
      implementationVersionName: UL_DEFAULTS.implementationVersionName,
      roles: uniqueRoles,
      extendedNegotiation: o.contexts
        .filter(
          (c, i) =>
            c.extendedNegotiation && o.contexts.findIndex((x) => x.abstractSyntax === c.abstractSyntax) === i,
        )
        .map((c) => ({ sopClassUid: c.abstractSyntax, info: c.extendedNegotiation as Buffer })),
      commonExtendedNegotiation: [],
      ...(asyncOps ? { asyncOps } : {}),
      ...(o.userIdentity ? { userIdentity: o.userIdentity } : {}),
    },
  };
}

function infoFrom(
  rq: AAssociateRq,
  ac: AAssociateAc,
  contexts: AcceptedContext[],
  rejected: RejectedContext[],
  role: Role,
): AssociationInfo {
  const peer = role === 'requestor' ? ac.userInformation : rq.userInformation;
  const ops = ac.userInformation.asyncOps;
  return {
    callingAETitle: rq.callingAETitle,
    calledAETitle: rq.calledAETitle,
    peerMaxPduLength: peer.maxPduLength,
    peerImplementationClassUid: peer.implementationClassUid,
    peerImplementationVersionName: peer.implementationVersionName,
    maxOpsInvoked: ops ? ops.maxInvoked : 1,
    maxOpsPerformed: ops ? ops.maxPerformed : 1,
    contexts: new Map(contexts.map((c) => [c.id, c])),
    rejectedContexts: rejected,
    userIdentity: rq.userInformation.userIdentity,
    extendedNegotiation: new Map(ac.userInformation.extendedNegotiation.map((e) => [e.sopClassUid, e.info])),
  };
}

export type { AcceptDecision, AcceptedContext, AcceptorPolicy, RejectedContext };
