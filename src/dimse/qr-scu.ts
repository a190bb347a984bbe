/**
 * Query/Retrieve as SCU (PS3.4 Annex C, PS3.7 §9.1.2-9.1.4): C-FIND yields the matches as they arrive,
 * C-MOVE and C-GET report the sub-operation counts of each Pending response. C-GET's C-STORE
 * sub-operations arrive on the same association and go to the `C-STORE-RQ` handler given to
 * `Dimse.connect`, on storage contexts proposed with the SCP role (see `getContexts`).
 */
import { Dataset, decodeDataset, encodeDataset } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import { UID } from '../dictionary/index.ts';
import type { AcceptedContext, ProposedContext } from '../ul/index.ts';
import { Priority } from './command.ts';
import type { Dimse, Response } from './service.ts';
import { statusCategory } from './status.ts';

export type QueryRetrieveModel = 'PATIENT_ROOT' | 'STUDY_ROOT' | 'PATIENT_STUDY_ONLY';
export type QueryRetrieveService = 'find' | 'move' | 'get';

/** The SOP classes of the Query/Retrieve information models (PS3.4 C.6). */
export const QR_SOP_CLASSES: Record<QueryRetrieveModel, Record<QueryRetrieveService, string>> = {
  PATIENT_ROOT: {
    find: UID.PatientRootQueryRetrieveInformationModelFind,
    move: UID.PatientRootQueryRetrieveInformationModelMove,
    get: UID.PatientRootQueryRetrieveInformationModelGet,
  },
  STUDY_ROOT: {
    find: UID.StudyRootQueryRetrieveInformationModelFind,
    move: UID.StudyRootQueryRetrieveInformationModelMove,
    get: UID.StudyRootQueryRetrieveInformationModelGet,
  },
  PATIENT_STUDY_ONLY: {
    find: UID.PatientStudyOnlyQueryRetrieveInformationModelFind,
    move: UID.PatientStudyOnlyQueryRetrieveInformationModelMove,
    get: UID.PatientStudyOnlyQueryRetrieveInformationModelGet,
  },
};

/** The model and service of a Query/Retrieve SOP class UID, or undefined. */
export function qrSopClass(
  uid: string,
): { model: QueryRetrieveModel; service: QueryRetrieveService } | undefined {
  for (const model of Object.keys(QR_SOP_CLASSES) as QueryRetrieveModel[]) {
    for (const service of ['find', 'move', 'get'] as const) {
      if (QR_SOP_CLASSES[model][service] === uid) return { model, service };
    }
  }
  return undefined;
}

/**
 * The extended negotiation of Query/Retrieve (PS3.4 C.5.1.1 FIND, C.5.2.1 MOVE, C.5.3.1 GET): byte 0
 * relational-retrieval / relational-queries, byte 1 date-time matching, byte 2 fuzzy semantic matching
 * of person names, byte 3 timezone query adjustment (FIND only). Absent bytes mean 0.
 */
export interface QrExtendedNegotiation {
  readonly relational: boolean;
  readonly combinedDateTime: boolean;
  readonly fuzzyPersonNames: boolean;
  readonly timezoneAdjustment: boolean;
}

export function decodeQrExtendedNegotiation(info: Buffer | undefined): QrExtendedNegotiation {
  const b = (i: number): boolean => info !== undefined && info.length > i && info[i] === 1;
  return { relational: b(0), combinedDateTime: b(1), fuzzyPersonNames: b(2), timezoneAdjustment: b(3) };
}

export function encodeQrExtendedNegotiation(n: Partial<QrExtendedNegotiation>, length = 3): Buffer {
  const bytes = [n.relational, n.combinedDateTime, n.fuzzyPersonNames, n.timezoneAdjustment].map((v) =>
    v ? 1 : 0,
  );
  return Buffer.from(bytes.slice(0, length));
}

/** Sub-operation counts of a C-MOVE/C-GET response (PS3.7 §9.1.3.1.9-12 / 9.1.4.1.8-11). */
export interface SubOperations {
  readonly remaining: number | undefined;
  readonly completed: number;
  readonly failed: number;
  readonly warning: number;
}

export interface RetrieveResult extends SubOperations {
  readonly status: number;
  readonly errorComment: string | undefined;
  /** Failed SOP Instance UID List (0008,0058) of the final response's identifier. */
  readonly failedSopInstanceUids: readonly string[];
  readonly response: Response;
}

export interface FindMatch {
  /** FF00, or FF01 when the SCP did not support some optional keys. */
  readonly status: number;
  readonly identifier: Dataset;
}

export interface QrRequestOptions {
  readonly model: QueryRetrieveModel;
  /** The identifier: keys to match (with values) and to return (empty). QueryRetrieveLevel must be set. */
  readonly identifier: Dataset;
  readonly priority?: number;
  /** Aborting sends C-CANCEL-RQ; the operation then ends with the SCP's final (Cancel) response. */
  readonly signal?: AbortSignal;
}

function contextOrThrow(dimse: Dimse, sopClassUid: string): AcceptedContext {
  const context = dimse.contextFor(sopClassUid);
  if (!context)
    throw new DicomError('ERR_DIMSE_NO_CONTEXT', `the peer did not accept the SOP class ${sopClassUid}`);
  return context;
}

/** Presentation contexts for a Query/Retrieve service (Explicit then Implicit VR Little Endian). */
export function qrContexts(
  model: QueryRetrieveModel,
  services: readonly QueryRetrieveService[],
  extended?: Partial<QrExtendedNegotiation>,
): ProposedContext[] {
  return services.map((service) => ({
    abstractSyntax: QR_SOP_CLASSES[model][service],
    transferSyntaxes: [UID.ExplicitVRLittleEndian, UID.ImplicitVRLittleEndian],
    ...(extended
      ? { extendedNegotiation: encodeQrExtendedNegotiation(extended, service === 'find' ? 4 : 1) }
      : {}),
  }));
}

/** Sends C-CANCEL for the request once it is out, when `signal` aborts. */
function cancellation(
  dimse: Dimse,
  context: AcceptedContext,
  signal: AbortSignal | undefined,
): { onSent: (messageId: number) => void; done: () => void } {
  let messageId: number | undefined;
  const onAbort = (): void => {
    if (messageId !== undefined) void dimse.cancel(context, messageId).catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  return {
    onSent: (id) => {
      messageId = id;
      if (signal?.aborted) onAbort();
    },
    done: () => signal?.removeEventListener('abort', onAbort),
  };
}

/**
 * C-FIND (PS3.7 §9.1.2): yields each match as its Pending response arrives; returns the final response.
 * Breaking out of the loop early cancels the query (C-CANCEL-RQ) and waits for its final response.
 */
export async function* find(dimse: Dimse, options: QrRequestOptions): AsyncGenerator<FindMatch, Response> {
  const context = contextOrThrow(dimse, QR_SOP_CLASSES[options.model].find);
  const queue: FindMatch[] = [];
  let wake: (() => void) | undefined;
  let final: Response | undefined;
  let failure: Error | undefined;
  const internal = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, internal.signal]) : internal.signal;
  const cancel = cancellation(dimse, context, signal);
  const paused = { on: false };
  const operation = dimse
    .request(
      context,
      {
        type: 'C-FIND-RQ',
        hasDataSet: true,
        affectedSopClassUid: context.abstractSyntax,
        priority: options.priority ?? Priority.MEDIUM,
      },
      encodeDataset(options.identifier, context.transferSyntax),
      {
        onSent: cancel.onSent,
        onPending: (rsp) => {
          if (!rsp.identifier) return;
          queue.push({
            status: rsp.status,
            identifier: decodeDataset(rsp.identifier, context.transferSyntax),
          });
          // A consumer slower than the network: hold the socket rather than grow the queue.
          if (queue.length >= 256 && !paused.on) {
            paused.on = true;
            dimse.association.pause();
          }
          wake?.();
        },
      },
    )
    .then(
      (rsp) => {
        final = rsp;
        wake?.();
      },
      (err: Error) => {
        failure = err;
        wake?.();
      },
    );
  try {
    for (;;) {
      const next = queue.shift();
      if (next) {
        if (paused.on && queue.length < 64) {
          paused.on = false;
          dimse.association.resume();
        }
        yield next;
        continue;
      }
      if (failure) throw failure;
      if (final) return final;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    if (!final && !failure) {
      internal.abort();
      if (paused.on) dimse.association.resume();
      queue.length = 0;
      await operation;
    }
    cancel.done();
  }
}

function countsOf(rsp: Response): SubOperations {
  return {
    remaining: rsp.command.remaining,
    completed: rsp.command.completed ?? 0,
    failed: rsp.command.failed ?? 0,
    warning: rsp.command.warning ?? 0,
  };
}

async function retrieve(
  dimse: Dimse,
  service: 'move' | 'get',
  options: QrRequestOptions & {
    readonly destination?: string;
    readonly onProgress?: (counts: SubOperations) => void;
  },
): Promise<RetrieveResult> {
  const context = contextOrThrow(dimse, QR_SOP_CLASSES[options.model][service]);
  const cancel = cancellation(dimse, context, options.signal);
  try {
    const rsp = await dimse.request(
      context,
      {
        type: service === 'move' ? 'C-MOVE-RQ' : 'C-GET-RQ',
        hasDataSet: true,
        affectedSopClassUid: context.abstractSyntax,
        priority: options.priority ?? Priority.MEDIUM,
        ...(options.destination === undefined ? {} : { moveDestination: options.destination }),
      },
      encodeDataset(options.identifier, context.transferSyntax),
      {
        onSent: cancel.onSent,
        onPending: (pending) => options.onProgress?.(countsOf(pending)),
      },
    );
    let failedSopInstanceUids: string[] = [];
    if (rsp.identifier && rsp.identifier.length > 0) {
      try {
        failedSopInstanceUids = decodeDataset(rsp.identifier, context.transferSyntax).strings(0x00080058);
      } catch {
        // An undecodable identifier on a final response: the counts still say what happened.
      }
    }
    return {
      ...countsOf(rsp),
      status: rsp.status,
      errorComment: rsp.command.errorComment,
      failedSopInstanceUids,
      response: rsp,
    };
  } finally {
    cancel.done();
  }
}

/** C-MOVE (PS3.7 §9.1.4): the SCP sends the matches to `destination` (an AE title it knows). */
export function move(
  dimse: Dimse,
  options: QrRequestOptions & { destination: string; onProgress?: (counts: SubOperations) => void },
): Promise<RetrieveResult> {
  return retrieve(dimse, 'move', options);
}

/**
 * C-GET (PS3.7 §9.1.3): the SCP sends the matches back on this association as C-STORE sub-operations,
 * which the `C-STORE-RQ` handler of this Dimse receives.
 */
export function get(
  dimse: Dimse,
  options: QrRequestOptions & { onProgress?: (counts: SubOperations) => void },
): Promise<RetrieveResult> {
  return retrieve(dimse, 'get', options);
}

/**
 * Storage contexts a C-GET requestor proposes with the SCP role (PS3.7 D.3.3.4), for the SOP classes
 * and transfer syntaxes it wants to receive. At most 128 contexts fit in an association with the
 * Query/Retrieve ones: callers pass the SOP classes they expect.
 */
export function getStorageContexts(
  sopClasses: readonly string[],
  transferSyntaxes: readonly string[],
): ProposedContext[] {
  return sopClasses.map((sopClassUid) => ({
    abstractSyntax: sopClassUid,
    transferSyntaxes: [...transferSyntaxes],
    scpRole: true,
  }));
}

/** Whether a final retrieve status means everything was sent. */
export function retrieveSucceeded(result: RetrieveResult): boolean {
  return statusCategory(result.status) === 'success' && result.failed === 0;
}

/** Builds an identifier from keyword/tag = value pairs (the CLI's `-k` keys). */
export function identifierOf(level: string, keys: Iterable<readonly [number, string]>): Dataset {
  const ds = new Dataset();
  const list = [...keys];
  // Values beyond ASCII go as UTF-8, declared before any value is encoded (PS3.5 §6.1.2.5).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range
  if (list.some(([, v]) => /[^\x00-\x7f]/.test(v))) ds.setString(0x00080005, 'ISO_IR 192');
  ds.setString(0x00080052, level);
  for (const [t, value] of list) ds.setString(t, value);
  return ds;
}
