import { channel } from 'node:diagnostics_channel';
import { Readable } from 'node:stream';
import { DicomError } from '../core/index.ts';
import {
  type AcceptedContext,
  Association,
  AssociationAbortedError,
  fragmentParts,
  type PduParts,
  type Pdv,
  type RequestOptions,
} from '../ul/index.ts';
import { MessageAssembler } from './assembler.ts';
import { type Command, type CommandName, encodeCommand, isResponse } from './command.ts';
import { STATUS, StatusError, statusCategory } from './status.ts';

const requestChannel = channel('tessera:dimse:request');

function closedNow(): Error {
  return new AssociationAbortedError('the association ended');
}

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

/** An incoming request as an SCP handler sees it. */
export interface IncomingRequest {
  readonly command: Command;
  readonly context: AcceptedContext;
  readonly association: Association;
  /** The DIMSE service of the association: C-GET sends its C-STORE sub-operations through it. */
  readonly dimse: Dimse;
  /** The data set in the context's transfer syntax, streamed as it arrives (undefined when none). */
  readonly dataset: Readable | undefined;
  /** Aborted when the requestor sends C-CANCEL-RQ for this message (PS3.7 §9.3.2.3): stop and answer Cancel. */
  readonly signal: AbortSignal;
  /**
   * Sends an intermediate response (Pending FF00/FF01 of C-FIND, C-MOVE and C-GET) before the final one,
   * with an identifier data set already encoded in the context's transfer syntax when given. Resolves once
   * the PDUs are handed to the socket without exceeding its buffer (backpressure for long result lists).
   */
  pending(response: PendingResponse): Promise<void>;
}

/** An intermediate response: a pending status, optional fields (sub-operation counts) and identifier. */
export interface PendingResponse {
  readonly status: number;
  readonly fields?: Partial<Command>;
  readonly dataset?: Buffer;
}

/** What a handler answers: a final status (and optionally an Error Comment / Offending Element). */
export interface HandlerResult {
  readonly status: number;
  readonly errorComment?: string;
  readonly offendingElement?: readonly number[];
  /** Extra response fields (e.g. sub-operation counts). */
  readonly fields?: Partial<Command>;
  /** An identifier for the final response (e.g. Failed SOP Instance UID List), in the context's syntax. */
  readonly dataset?: Buffer;
}

/** The requests an SCP may handle here (the composite services of PS3.7 §9.1). */
export type RequestType = 'C-ECHO-RQ' | 'C-STORE-RQ' | 'C-FIND-RQ' | 'C-MOVE-RQ' | 'C-GET-RQ';

/** SCP handlers by request type: async functions returning a status, or throwing StatusError. */
export type Handlers = Partial<Record<RequestType, (rq: IncomingRequest) => Promise<HandlerResult>>>;

/** A response as the SCU sees it. */
export interface Response {
  readonly command: Command;
  readonly status: number;
  /** The identifier data set of the response (C-FIND matches, a C-MOVE failure list), undecoded. */
  readonly identifier?: Buffer;
}

export interface DimseRequestOptions {
  /** Called with each Pending response (C-FIND matches, C-MOVE/C-GET progress), in order. */
  readonly onPending?: (response: Response) => void;
}

interface Outstanding {
  resolve(r: Response): void;
  reject(e: Error): void;
  onPending: ((r: Response) => void) | undefined;
}

/** Where the fragments of the data set being received go. */
interface IncomingData {
  /** Returns false when the consumer wants the socket paused. */
  push(chunk: Buffer): boolean;
  end(): void;
  fail(err: Error): void;
}

/** Bytes of PDUs gathered into one socket write. */
const SEND_BATCH_BYTES = 1024 * 1024;

/** Identifiers of responses are small; this bounds what a peer can make us hold. */
const MAX_RESPONSE_IDENTIFIER = 16 * 1024 * 1024;

/** What to send as a data set: bytes in memory, or chunks of a known total length (streamed). */
export type DataSource = Buffer | { readonly length: number; readonly chunks: AsyncIterable<Buffer> };

/**
 * DIMSE over one association (PS3.7): message assembly from P-DATA, message ID correlation for the SCU
 * side, dispatch of requests to handlers for the SCP side, and the asynchronous operations window
 * (PS3.7 D.3.3.3): at most `maxOpsInvoked` requests outstanding, requests handled concurrently up to
 * `maxOpsPerformed`. Messages are sent whole, one at a time (they are never interleaved).
 */
export class Dimse {
  readonly association: Association;
  private readonly assembler = new MessageAssembler();
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly handlers: Handlers;
  private nextMessageId = 1;
  private sending: Promise<void> = Promise.resolve();
  /** The data set being received: to a request's stream, or collected for a response's identifier. */
  private incoming: IncomingData | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private invokeSlots: number;
  private readonly slotWaiters: (() => void)[] = [];
  private closedError: Error | undefined;
  /** In-flight incoming requests by message ID, for C-CANCEL. */
  private readonly cancels = new Map<number, LazyCancel>();

  constructor(association: Association, handlers: Handlers = {}) {
    this.association = association;
    this.handlers = handlers;
    const window =
      association.role === 'requestor' ? association.info.maxOpsInvoked : association.info.maxOpsPerformed;
    this.invokeSlots = window === 0 ? Number.POSITIVE_INFINITY : window;
    association.setUser({
      onPData: (pdvs) => this.onPData(pdvs),
      onReleaseRequested: () => this.drain(),
      onClose: (err) => this.onClose(err),
    });
  }

  /** Opens an association as requestor and wraps it (the SCU entry point). */
  static async connect(options: RequestOptions, handlers: Handlers = {}): Promise<Dimse> {
    return new Dimse(await Association.request(options), handlers);
  }

  /** Waits until every request being handled has been answered. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** The accepted context for an abstract syntax and (optionally) one of some transfer syntaxes. */
  contextFor(abstractSyntax: string, transferSyntaxes?: readonly string[]): AcceptedContext | undefined {
    for (const c of this.association.info.contexts.values()) {
      if (c.abstractSyntax !== abstractSyntax) continue;
      if (!transferSyntaxes || transferSyntaxes.includes(c.transferSyntax)) return c;
    }
    return undefined;
  }

  /** C-ECHO (PS3.7 §9.1.5): resolves with the status. */
  async echo(): Promise<number> {
    const context = this.contextFor(VERIFICATION_SOP_CLASS);
    if (!context)
      throw new DicomError('ERR_DIMSE_NO_CONTEXT', 'the peer did not accept the Verification SOP Class');
    const rsp = await this.request(context, {
      type: 'C-ECHO-RQ',
      hasDataSet: false,
      affectedSopClassUid: VERIFICATION_SOP_CLASS,
    });
    return rsp.status;
  }

  /**
   * C-STORE (PS3.7 §9.1.1): sends a data set already encoded in `context`'s transfer syntax. With an
   * asynchronous operations window above 1, several stores may be in flight: call it concurrently.
   */
  async store(
    context: AcceptedContext,
    sop: { readonly sopClassUid: string; readonly sopInstanceUid: string },
    data: DataSource,
    options: {
      priority?: number;
      moveOriginatorAETitle?: string;
      moveOriginatorMessageId?: number;
      /** Called once the request (data set included) has been handed to the transport. */
      onSent?: () => void;
    } = {},
  ): Promise<Response> {
    return this.request(
      context,
      {
        type: 'C-STORE-RQ',
        hasDataSet: true,
        affectedSopClassUid: sop.sopClassUid,
        affectedSopInstanceUid: sop.sopInstanceUid,
        priority: options.priority ?? 0,
        ...(options.moveOriginatorAETitle === undefined
          ? {}
          : { moveOriginatorAETitle: options.moveOriginatorAETitle }),
        ...(options.moveOriginatorMessageId === undefined
          ? {}
          : { moveOriginatorMessageId: options.moveOriginatorMessageId }),
      },
      data,
      options.onSent ? { onSent: options.onSent } : {},
    );
  }

  /**
   * Sends a request and resolves with its final response; Pending responses go to `options.onPending`.
   * `onSent` learns the message ID once the request is out (to C-CANCEL it).
   */
  async request(
    context: AcceptedContext,
    fields: Omit<Command, 'messageId'>,
    data?: DataSource,
    options: DimseRequestOptions & { onSent?: (messageId: number) => void } = {},
  ): Promise<Response> {
    await this.acquireSlot();
    const messageId = this.takeMessageId();
    try {
      const response = new Promise<Response>((resolve, reject) => {
        this.outstanding.set(messageId, { resolve, reject, onPending: options.onPending });
      });
      await this.sendMessage(context.id, { ...fields, messageId }, data);
      options.onSent?.(messageId);
      return await response;
    } finally {
      this.outstanding.delete(messageId);
      this.releaseSlot();
    }
  }

  /** C-CANCEL-RQ for an outstanding request (PS3.7 §9.3.2.3); its final response will say Cancel. */
  async cancel(context: AcceptedContext, messageId: number): Promise<void> {
    await this.sendMessage(context.id, {
      type: 'C-CANCEL-RQ',
      hasDataSet: false,
      messageIdBeingRespondedTo: messageId,
    });
  }

  async release(): Promise<void> {
    await this.sending;
    await this.association.release();
  }

  abort(): void {
    this.association.abort();
  }

  private takeMessageId(): number {
    const id = this.nextMessageId;
    this.nextMessageId = id >= 0xffff ? 1 : id + 1;
    return id;
  }

  private async acquireSlot(): Promise<void> {
    if (this.closedError) throw this.closedError;
    while (this.invokeSlots <= 0) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    this.invokeSlots--;
  }

  private releaseSlot(): void {
    this.invokeSlots++;
    this.slotWaiters.shift()?.();
  }

  /**
   * Sends one message (command, then data set) as P-DATA-TF PDUs; messages go out one after another.
   * The PDUs are written gathered (head + slice of the data, no copy), up to about 1 MiB per write.
   */
  private sendMessage(contextId: number, command: Command, data?: DataSource): Promise<void> {
    const run = async (): Promise<void> => {
      const max = this.association.info.peerMaxPduLength;
      const send = async (bytes: Buffer, isCommand: boolean, last: boolean): Promise<void> => {
        let batch: PduParts[] = [];
        let size = 0;
        for (const part of fragmentParts(contextId, isCommand, bytes, max, last)) {
          batch.push(part);
          size += part.body.length;
          if (size >= SEND_BATCH_BYTES) {
            await this.association.sendPDataParts(batch);
            batch = [];
            size = 0;
          }
        }
        if (batch.length > 0) await this.association.sendPDataParts(batch);
      };
      const commandBytes = encodeCommand({ ...command, hasDataSet: data !== undefined });
      // Every fragment of a message has an even number of bytes (PS3.8 Annex E.1; DCMTK aborts on an
      // odd one): an odd-length data set (e.g. a deflated one from a file) gets a trailing 0x00.
      if (Buffer.isBuffer(data) && data.length <= SEND_BATCH_BYTES) {
        // A small message (a response with its identifier) goes out in one gathered write.
        const even = data.length % 2 === 0 ? data : Buffer.concat([data, Buffer.alloc(1)]);
        await this.association.sendPDataParts([
          ...fragmentParts(contextId, true, commandBytes, max, true),
          ...fragmentParts(contextId, false, even, max, true),
        ]);
        return;
      }
      await send(commandBytes, true, true);
      if (data === undefined) return;
      if (Buffer.isBuffer(data)) {
        await send(data.length % 2 === 0 ? data : Buffer.concat([data, Buffer.alloc(1)]), false, true);
        return;
      }
      let sent = 0;
      let held: Buffer | undefined;
      // One chunk of look-ahead, so the last fragment gets the "last" bit; an odd byte at the end of
      // a chunk waits for the next one.
      for await (const chunk of data.chunks) {
        if (held) {
          const even = held.length - (held.length % 2);
          await send(held.subarray(0, even), false, false);
          sent += even;
          held = even === held.length ? chunk : Buffer.concat([held.subarray(even), chunk]);
        } else held = chunk;
      }
      let last = held ?? Buffer.alloc(0);
      if (sent + last.length !== data.length) {
        this.association.abort();
        throw new DicomError(
          'ERR_DIMSE_SHORT_DATA',
          `the data set source gave ${sent + last.length} bytes, ${data.length} expected`,
        );
      }
      if (last.length % 2 === 1) last = Buffer.concat([last, Buffer.alloc(1)]);
      await send(last, false, true);
    };
    const next = this.sending.then(run, run);
    this.sending = next.catch(() => undefined);
    return next;
  }

  private onPData(pdvs: readonly Pdv[]): void {
    try {
      for (const pdv of pdvs) {
        const event = this.assembler.push(pdv);
        if (!event) continue;
        if (event.kind === 'command') this.onCommand(event.contextId, event.command);
        else this.onData(event.chunk, event.last);
      }
    } catch (err) {
      // A malformed message: abort this association only (PS3.8 A-ABORT).
      this.closedError = err as Error;
      this.association.abort();
    }
  }

  private onCommand(contextId: number, command: Command): void {
    if (isResponse(command.type)) {
      const waiter =
        command.messageIdBeingRespondedTo === undefined
          ? undefined
          : this.outstanding.get(command.messageIdBeingRespondedTo);
      if (!waiter)
        throw new DicomError(
          'ERR_DIMSE_UNEXPECTED_RESPONSE',
          `a response to unknown message ${command.messageIdBeingRespondedTo}`,
        );
      const status = command.status ?? STATUS.ProcessingFailure;
      const deliver = (identifier?: Buffer): void => {
        const response: Response = identifier ? { command, status, identifier } : { command, status };
        if (statusCategory(status) === 'pending') waiter.onPending?.(response);
        else waiter.resolve(response);
      };
      if (!command.hasDataSet) {
        deliver();
        return;
      }
      // The identifier of a response (C-FIND match, failure list) is collected whole: it is small.
      const parts: Buffer[] = [];
      let size = 0;
      this.incoming = {
        push: (chunk) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_IDENTIFIER)
            throw new DicomError(
              'ERR_DIMSE_IDENTIFIER_TOO_LARGE',
              `a response identifier longer than ${MAX_RESPONSE_IDENTIFIER} bytes`,
            );
          parts.push(Buffer.from(chunk));
          return true;
        },
        end: () => deliver(Buffer.concat(parts)),
        fail: () => undefined,
      };
      return;
    }
    if (command.type === 'C-CANCEL-RQ') {
      // C-CANCEL has no response of its own: the cancelled operation answers with status Cancel.
      const id = command.messageIdBeingRespondedTo;
      if (id !== undefined) this.cancels.get(id)?.abort();
      return;
    }
    const context = this.association.info.contexts.get(contextId);
    let dataset: Readable | undefined;
    let received: Promise<void> | undefined;
    if (command.hasDataSet) {
      // Object mode: each PDV fragment is read as the Buffer it arrived in. A byte-mode Readable
      // would concatenate (copy) everything buffered on each read() of an async iterator.
      dataset = new Readable({
        objectMode: true,
        highWaterMark: 16,
        read: () => this.association.resume(),
      });
      // onClose destroys the stream with an error when the association ends mid data set. A handler
      // that reads it (pipeline, for await) still gets that error; this listener only keeps a stream
      // nobody listens to (a handler that answered before reading) from crashing the process.
      dataset.on('error', () => undefined);
      let finish!: () => void;
      received = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const stream = dataset;
      this.incoming = {
        // A stream its handler destroyed (e.g. a failed write) takes nothing more: the rest is dropped.
        push: (chunk) => stream.destroyed || stream.push(chunk),
        end: () => {
          if (!stream.destroyed) stream.push(null);
          finish();
        },
        fail: (err) => {
          stream.destroy(err);
          finish();
        },
      };
    }
    const handled = this.handle(command, context, dataset, received).finally(() =>
      this.inFlight.delete(handled),
    );
    this.inFlight.add(handled);
  }

  private onData(chunk: Buffer, last: boolean): void {
    const incoming = this.incoming;
    if (!incoming) return;
    if (!incoming.push(chunk)) this.association.pause();
    if (last) {
      this.incoming = undefined;
      incoming.end();
    }
  }

  private async handle(
    command: Command,
    context: AcceptedContext | undefined,
    dataset: Readable | undefined,
    received: Promise<void> | undefined,
  ): Promise<void> {
    const type = command.type as CommandName;
    const rspType = type.replace('-RQ', '-RSP') as CommandName;
    let result: HandlerResult;
    const started = Date.now();
    const cancel = new LazyCancel();
    if (command.messageId !== undefined) this.cancels.set(command.messageId, cancel);
    try {
      const handler = (
        this.handlers as Record<string, ((rq: IncomingRequest) => Promise<HandlerResult>) | undefined>
      )[type];
      if (!context)
        throw new StatusError(STATUS.ProcessingFailure, `no accepted presentation context for the request`);
      if (!handler) throw new StatusError(STATUS.UnrecognizedOperation, `${type} is not supported here`);
      const ctx = context;
      result = await handler({
        command,
        context,
        association: this.association,
        dimse: this,
        dataset,
        get signal() {
          return cancel.signal;
        },
        pending: async (p) => {
          if (this.closedError || !this.association.established) throw this.closedError ?? closedNow();
          await this.sendMessage(
            ctx.id,
            { ...this.responseFields(command, rspType), status: p.status, ...p.fields },
            p.dataset,
          );
        },
      });
    } catch (err) {
      result =
        err instanceof StatusError
          ? {
              status: err.status,
              ...(err.comment ? { errorComment: err.comment } : {}),
              ...(err.offendingElement ? { offendingElement: err.offendingElement } : {}),
            }
          : {
              status: type === 'C-STORE-RQ' ? STATUS.CannotUnderstand : STATUS.ProcessingFailure,
              errorComment: (err as Error).message.slice(0, 64),
            };
    }
    // Whatever the handler did, the rest of the data set must be received (and dropped) before the
    // answer. Not by waiting for the stream's 'end'/'close': a stream destroyed (the association ended,
    // or the handler's pipeline failed) may have emitted them already, and the wait never ended.
    if (dataset) {
      if (dataset.destroyed) this.association.resume();
      else dataset.resume();
      await received;
    }
    if (command.messageId !== undefined) this.cancels.delete(command.messageId);
    requestChannel.publish({
      association: this.association.id,
      type,
      messageId: command.messageId,
      sopInstanceUid: command.affectedSopInstanceUid,
      status: result.status,
      ms: Date.now() - started,
    });
    if (this.closedError || !this.association.established) return;
    const response: Command = {
      ...this.responseFields(command, rspType),
      status: result.status,
      ...(result.errorComment ? { errorComment: result.errorComment.slice(0, 64) } : {}),
      ...(result.offendingElement ? { offendingElement: result.offendingElement } : {}),
      ...result.fields,
    };
    try {
      await this.sendMessage(context?.id ?? 1, response, result.dataset);
    } catch {
      // The association ended while answering; nothing left to tell.
    }
  }

  /** The fields every response to `command` carries (PS3.7 §9.3: message ID, SOP class and instance). */
  private responseFields(command: Command, type: CommandName): Command {
    // C-FIND/C-MOVE/C-GET requests name their SOP class in Affected SOP Class UID too (PS3.7 §9.3.2-4).
    const sopClass = command.affectedSopClassUid;
    return {
      type,
      hasDataSet: false,
      ...(command.messageId === undefined ? {} : { messageIdBeingRespondedTo: command.messageId }),
      ...(sopClass === undefined ? {} : { affectedSopClassUid: sopClass }),
      ...(command.affectedSopInstanceUid === undefined
        ? {}
        : { affectedSopInstanceUid: command.affectedSopInstanceUid }),
    };
  }

  private onClose(err: Error | undefined): void {
    this.closedError = err ?? new AssociationAbortedError('the association was released');
    for (const waiter of this.outstanding.values()) waiter.reject(this.closedError);
    this.outstanding.clear();
    if (this.incoming) {
      const incoming = this.incoming;
      this.incoming = undefined;
      incoming.fail(new AssociationAbortedError('the association ended before the data set was complete'));
    }
    for (const w of this.slotWaiters.splice(0)) w();
  }
}

/**
 * The cancel of one request: its AbortSignal is made only when a handler asks for it (an
 * AbortController costs tens of microseconds, too much for every C-STORE).
 */
class LazyCancel {
  #controller: AbortController | undefined;
  #aborted = false;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  abort(): void {
    this.#aborted = true;
    this.#controller?.abort();
  }
}
