/**
 * Query/Retrieve SCP on the archive (PS3.4 Annex C): C-FIND answered from the query engine as the
 * matches are read (one Pending response per match), C-MOVE sending the selected instances to a
 * configured peer over a sub-association, C-GET sending them back on the requestor's association.
 * Both retrieve paths stream each data set from its blob as stored (byte-identical to what was
 * received) when the receiver accepts the stored transfer syntax.
 */
import { channel } from 'node:diagnostics_channel';
import type { Readable } from 'node:stream';
import {
  type BlobStore,
  canConvert,
  countInstances,
  datasetIn,
  type Index,
  type InstanceBytes,
  prepareQuery,
  prepareRetrieve,
  QueryError,
  type QueryLevel,
  type RetrieveItem,
  runQuery,
  selectInstances,
} from '../archive/index.ts';
import { canDecode, Dataset, decodeDataset, encodeDataset, isNativeTransferSyntax } from '../codec/index.ts';
import { DicomError } from '../core/index.ts';
import { UID } from '../dictionary/index.ts';
import {
  Dimse,
  decodeQrExtendedNegotiation,
  type HandlerResult,
  type Handlers,
  type IncomingRequest,
  qrSopClass,
  STATUS,
  StatusError,
  statusCategory,
} from '../dimse/index.ts';
import type { AcceptedContext, ProposedContext } from '../ul/index.ts';

const retrieveChannel = channel('tessera:archive:retrieve');

export interface Peer {
  readonly host: string;
  readonly port: number;
}

export interface QrScpOptions {
  readonly index: Index;
  readonly blobs: BlobStore;
  /** Our AE title: calling AE of C-MOVE sub-associations, RetrieveAETitle of C-FIND results. */
  readonly aeTitle: string;
  /** Known move destinations by AE title. */
  readonly peers: ReadonlyMap<string, Peer>;
  /** Most matches one C-FIND returns; beyond it the query ends with A700 (default 10000). */
  readonly maxResults?: number;
  /** PN matching ignores case (default true). */
  readonly caseInsensitivePersonNames?: boolean;
  /** Send a C-MOVE/C-GET Pending response every this many sub-operations (default 1, as DCMTK). */
  readonly pendingEvery?: number;
  readonly maxPduLength?: number;
  /** Timeout of the sub-association's connect and negotiation, ms (default 10000). */
  readonly subAssociationTimeoutMs?: number;
}

export const QR_SCP_DEFAULTS = {
  maxResults: 10_000,
  pendingEvery: 1,
  subAssociationTimeoutMs: 10_000,
} as const;

const MAX_IDENTIFIER = 1024 * 1024;
const QueryRetrieveLevel = 0x00080052;
const FailedSOPInstanceUIDList = 0x00080058;
const SpecificCharacterSet = 0x00080005;

/** Reads a request identifier (small) and decodes it in the context's transfer syntax. */
async function identifierOf(rq: IncomingRequest): Promise<Dataset> {
  if (!rq.dataset)
    throw new StatusError(STATUS.IdentifierDoesNotMatchSOPClass, 'the request has no identifier');
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of rq.dataset as Readable) {
    size += (chunk as Buffer).length;
    if (size > MAX_IDENTIFIER) throw new StatusError(0xc000, 'the identifier is larger than 1 MiB');
    parts.push(chunk as Buffer);
  }
  try {
    return decodeDataset(Buffer.concat(parts), rq.context.transferSyntax);
  } catch (err) {
    throw new StatusError(0xc000, `the identifier cannot be decoded: ${(err as Error).message}`);
  }
}

function levelOf(identifier: Dataset): QueryLevel {
  const level = identifier.string(QueryRetrieveLevel)?.trim();
  if (level === 'PATIENT' || level === 'STUDY' || level === 'SERIES' || level === 'IMAGE') return level;
  throw new StatusError(
    STATUS.IdentifierDoesNotMatchSOPClass,
    level === undefined
      ? 'QueryRetrieveLevel (0008,0052) is missing'
      : `QueryRetrieveLevel (0008,0052) "${level}" is not PATIENT, STUDY, SERIES or IMAGE`,
  );
}

/** QueryError -> the status it carries, with its message as Error Comment and the offending tag. */
function asStatus(err: unknown): unknown {
  if (err instanceof QueryError) {
    return new StatusError(err.status, err.message, {
      cause: err,
      ...(err.tag === undefined ? {} : { offendingElement: [err.tag] }),
    });
  }
  return err;
}

function modelOf(rq: IncomingRequest, service: 'find' | 'move' | 'get') {
  const qr = qrSopClass(rq.context.abstractSyntax);
  if (!qr || qr.service !== service)
    throw new StatusError(
      STATUS.SOPClassNotSupported,
      `${rq.context.abstractSyntax} is not a ${service} model`,
    );
  return qr.model;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Encodes a C-FIND result: values beyond ASCII make the identifier UTF-8 (ISO_IR 192); pure ASCII
 * results carry no Specific Character Set (the default repertoire every SCU reads).
 */
function encodeResult(result: Dataset, transferSyntax: string): Buffer {
  let needsUtf8 = false;
  for (const el of result) {
    if (
      'bytes' in el &&
      el.vr !== 'OB' &&
      el.vr !== 'UN' &&
      el.bytes &&
      NON_ASCII.test(el.bytes.toString('latin1'))
    ) {
      needsUtf8 = true;
      break;
    }
  }
  if (!needsUtf8) {
    result.delete(SpecificCharacterSet);
    return encodeDataset(result, transferSyntax);
  }
  // Re-set every string value under ISO_IR 192 so that they are encoded as UTF-8.
  const out = new Dataset();
  out.setString(SpecificCharacterSet, 'ISO_IR 192');
  for (const el of result) {
    if (el.tag === SpecificCharacterSet) continue;
    if (el.kind === 'value' && isTextVr(el.vr)) out.setValues(el.tag, result.values(el.tag), el.vr);
    else out.set(el);
  }
  return encodeDataset(out, transferSyntax);
}

function isTextVr(vr: string): boolean {
  return [
    'AE',
    'AS',
    'CS',
    'DA',
    'DS',
    'DT',
    'IS',
    'LO',
    'LT',
    'PN',
    'SH',
    'ST',
    'TM',
    'UC',
    'UI',
    'UR',
    'UT',
  ].includes(vr);
}

/** The C-FIND, C-MOVE and C-GET handlers of the archive. */
export function qrHandlers(options: QrScpOptions): Pick<Handlers, 'C-FIND-RQ' | 'C-MOVE-RQ' | 'C-GET-RQ'> {
  const maxResults = options.maxResults ?? QR_SCP_DEFAULTS.maxResults;
  return {
    'C-FIND-RQ': async (rq) => {
      const model = modelOf(rq, 'find');
      const identifier = await identifierOf(rq);
      const level = levelOf(identifier);
      const extended = decodeQrExtendedNegotiation(
        rq.association.info.extendedNegotiation.get(rq.context.abstractSyntax),
      );
      let query: ReturnType<typeof prepareQuery>;
      try {
        query = prepareQuery(identifier, {
          level,
          model,
          relational: extended.relational,
          combinedDateTime: extended.combinedDateTime,
          caseInsensitivePersonNames: options.caseInsensitivePersonNames !== false,
          limit: maxResults + 1,
          retrieveAETitle: options.aeTitle,
        });
      } catch (err) {
        throw asStatus(err);
      }
      const status = query.unsupportedKeys.length > 0 ? STATUS.PendingWarning : STATUS.Pending;
      let count = 0;
      for await (const result of runQuery(options.index, query, rq.signal)) {
        if (++count > maxResults) {
          return {
            status: STATUS.OutOfResources,
            errorComment: `more than ${maxResults} matches: refine the query`,
          };
        }
        await rq.pending({ status, dataset: encodeResult(result, rq.context.transferSyntax) });
      }
      if (rq.signal.aborted) return { status: STATUS.Cancel };
      return { status: STATUS.Success };
    },
    'C-MOVE-RQ': async (rq) => {
      const model = modelOf(rq, 'move');
      const destination = rq.command.moveDestination?.trim() ?? '';
      const peer = options.peers.get(destination);
      if (!peer)
        throw new StatusError(STATUS.MoveDestinationUnknown, `move destination "${destination}" unknown`);
      const identifier = await identifierOf(rq);
      return retrieve(rq, options, model, levelOf(identifier), identifier, async (items) => {
        const contexts = proposeFor(items);
        const sub = await Dimse.connect({
          host: peer.host,
          port: peer.port,
          callingAETitle: options.aeTitle,
          calledAETitle: destination,
          contexts,
          ...(options.maxPduLength === undefined ? {} : { maxPduLength: options.maxPduLength }),
          timeoutMs: options.subAssociationTimeoutMs ?? QR_SCP_DEFAULTS.subAssociationTimeoutMs,
        });
        return {
          dimse: sub,
          contextFor: (item) => pickContext([...sub.association.info.contexts.values()], item, false),
          done: async () => {
            await sub.release().catch(() => sub.abort());
          },
        };
      });
    },
    'C-GET-RQ': async (rq) => {
      const model = modelOf(rq, 'get');
      const identifier = await identifierOf(rq);
      return retrieve(rq, options, model, levelOf(identifier), identifier, async () => ({
        dimse: rq.dimse,
        // C-GET: only the contexts on which the requestor took the SCP role may carry C-STORE-RQ (PS3.4 C.4.3.1).
        contextFor: (item) => pickContext([...rq.association.info.contexts.values()], item, true),
        done: async () => undefined,
      }));
    },
  };
}

/** The presentation contexts a C-MOVE sub-association proposes for the instances to send. */
function proposeFor(
  items: readonly Pick<RetrieveItem, 'sopClassUid' | 'transferSyntaxUid'>[],
): ProposedContext[] {
  const seen = new Set<string>();
  const contexts: ProposedContext[] = [];
  for (const { sopClassUid, transferSyntaxUid } of items) {
    // Each stored syntax as such; for native ones, Explicit and Implicit VR Little Endian as fallbacks.
    // A compressed syntax the codec decodes gets a second context with those two, so a destination
    // that takes only uncompressed data still gets the instance (decompressed), while one that
    // accepts the stored syntax gets the stored bytes.
    const key = `${sopClassUid} ${transferSyntaxUid}`;
    if (!seen.has(key)) {
      seen.add(key);
      const native = isNativeTransferSyntax(transferSyntaxUid);
      contexts.push({
        abstractSyntax: sopClassUid,
        transferSyntaxes: native
          ? [...new Set([transferSyntaxUid, UID.ExplicitVRLittleEndian, UID.ImplicitVRLittleEndian])]
          : [transferSyntaxUid],
      });
      const fallback = `${sopClassUid} native`;
      if (!native && canDecode(transferSyntaxUid) && !seen.has(fallback)) {
        seen.add(fallback);
        contexts.push({
          abstractSyntax: sopClassUid,
          transferSyntaxes: [UID.ExplicitVRLittleEndian, UID.ImplicitVRLittleEndian],
        });
      }
    }
  }
  return contexts.slice(0, 128);
}

/** The accepted context to send `item` on: its stored syntax first, else a native one we can convert to. */
function pickContext(
  contexts: readonly AcceptedContext[],
  item: Pick<RetrieveItem, 'sopClassUid' | 'transferSyntaxUid'>,
  requireScpRole: boolean,
): AcceptedContext | undefined {
  const usable = contexts.filter(
    (c) => c.abstractSyntax === item.sopClassUid && (!requireScpRole || c.requestorIsScp),
  );
  return (
    usable.find((c) => c.transferSyntax === item.transferSyntaxUid) ??
    usable.find((c) => canConvert(item.transferSyntaxUid, c.transferSyntax))
  );
}

interface Sender {
  readonly dimse: Dimse;
  contextFor(item: RetrieveItem): AcceptedContext | undefined;
  done(): Promise<void>;
}

/**
 * The sub-operations of C-MOVE and C-GET (PS3.4 C.4.2.3 / C.4.3.3): one C-STORE per selected instance,
 * a Pending response with the counts every `pendingEvery`, C-CANCEL honoured between sub-operations,
 * and the final status: 0000 all sent, B000 some failed, A702 all failed, FE00 cancelled, with the
 * Failed SOP Instance UID List when any failed.
 */
async function retrieve(
  rq: IncomingRequest,
  options: QrScpOptions,
  model: ReturnType<typeof modelOf>,
  level: QueryLevel,
  identifier: Dataset,
  open: (items: readonly RetrieveItem[]) => Promise<Sender>,
): Promise<HandlerResult> {
  let prepared: ReturnType<typeof prepareRetrieve>;
  try {
    prepared = prepareRetrieve(identifier, { level, model });
  } catch (err) {
    throw asStatus(err);
  }
  const total = await countInstances(options.index, prepared);
  if (total === 0) return { status: STATUS.Success, fields: { completed: 0, failed: 0, warning: 0 } };
  // The distinct SOP class / syntax pairs decide the contexts; the instances themselves are read again
  // page by page while sending.
  const kinds = new Map<string, RetrieveItem>();
  for await (const item of selectInstances(options.index, prepared)) {
    kinds.set(`${item.sopClassUid} ${item.transferSyntaxUid}`, item);
  }
  let sender: Sender;
  try {
    sender = await open([...kinds.values()]);
  } catch (err) {
    throw new StatusError(
      STATUS.OutOfResourcesSubOperations,
      `cannot open the sub-association: ${(err as Error).message}`,
    );
  }
  let completed = 0;
  let failed = 0;
  let warning = 0;
  const failedUids: string[] = [];
  const pendingEvery = Math.max(1, options.pendingEvery ?? QR_SCP_DEFAULTS.pendingEvery);
  const originator = rq.association.info.callingAETitle;
  let cancelled = false;
  // The next instance's bytes are read while the current one is on the wire (one ahead).
  const load = (item: RetrieveItem): Promise<Loaded> => {
    const context = sender.contextFor(item);
    if (!context) return Promise.resolve({ item, context });
    return datasetIn(options.blobs, item, context.transferSyntax).then(
      (data) => ({ item, context, data }),
      (err: unknown) => ({ item, context, error: err as Error }),
    );
  };
  const upcoming = selectInstances(options.index, prepared)[Symbol.asyncIterator]();
  const pull = async (): Promise<Loaded | undefined> => {
    const next = await upcoming.next();
    return next.done ? undefined : load(next.value);
  };
  try {
    let ahead = pull();
    for (;;) {
      const current = await ahead;
      if (!current) break;
      if (rq.signal.aborted) {
        cancelled = true;
        break;
      }
      ahead = pull();
      const item = current.item;
      const outcome = await sendOne(sender, current, {
        moveOriginatorAETitle: originator,
        moveOriginatorMessageId: rq.command.messageId ?? 0,
        isMove: rq.command.type === 'C-MOVE-RQ',
      });
      retrieveChannel.publish({
        association: rq.association.id,
        sopInstanceUid: item.sopInstanceUid,
        outcome: outcome.kind,
        status: outcome.status,
        comment: outcome.comment,
      });
      if (outcome.kind === 'completed') completed++;
      else if (outcome.kind === 'warning') warning++;
      if (outcome.kind === 'failed') {
        failed++;
        failedUids.push(item.sopInstanceUid);
        if (outcome.fatal) break;
      }
      const done = completed + failed + warning;
      if (done < total && done % pendingEvery === 0) {
        await rq.pending({
          status: STATUS.Pending,
          fields: { remaining: Math.max(0, total - done), completed, failed, warning },
        });
      }
    }
    await ahead.catch(() => undefined);
  } finally {
    await upcoming.return?.(undefined);
    await sender.done();
  }
  const remaining = Math.max(0, total - completed - failed - warning);
  if (!cancelled && remaining > 0) {
    // A broken sub-association: the rest could not be sent.
    failed += remaining;
  }
  const counts = { completed, failed, warning };
  const dataset = failedUids.length > 0 ? failedList(failedUids, rq.context.transferSyntax) : undefined;
  if (cancelled) {
    return {
      status: STATUS.Cancel,
      fields: { ...counts, remaining },
      ...(dataset ? { dataset } : {}),
    };
  }
  const status =
    failed === 0 && warning === 0
      ? STATUS.Success
      : completed === 0 && warning === 0
        ? STATUS.OutOfResourcesSubOperations
        : STATUS.SubOperationsCompleteWithFailures;
  return {
    status,
    fields: counts,
    ...(failed > 0 ? { errorComment: `${failed} of ${total} sub-operations failed` } : {}),
    ...(dataset ? { dataset } : {}),
  };
}

function failedList(uids: readonly string[], transferSyntax: string): Buffer {
  const ds = new Dataset();
  ds.setValues(FailedSOPInstanceUIDList, uids, 'UI');
  return encodeDataset(ds, transferSyntax);
}

type SubOutcome =
  | { kind: 'completed' | 'warning'; status: number; comment?: string }
  | { kind: 'failed'; status?: number; comment: string; fatal: boolean };

/** An instance ready to send: its context and bytes, or why it cannot be sent. */
interface Loaded {
  readonly item: RetrieveItem;
  readonly context: AcceptedContext | undefined;
  readonly data?: InstanceBytes;
  readonly error?: Error;
}

async function sendOne(
  sender: Sender,
  loaded: Loaded,
  origin: { moveOriginatorAETitle: string; moveOriginatorMessageId: number; isMove: boolean },
): Promise<SubOutcome> {
  const { item, context, data } = loaded;
  if (!context) {
    return {
      kind: 'failed',
      comment: `no accepted presentation context for ${item.sopClassUid} in ${item.transferSyntaxUid}`,
      fatal: false,
    };
  }
  if (!data)
    return { kind: 'failed', comment: loaded.error?.message ?? 'cannot read the instance', fatal: false };
  try {
    const rsp = await sender.dimse.store(
      context,
      { sopClassUid: item.sopClassUid, sopInstanceUid: item.sopInstanceUid },
      data,
      origin.isMove
        ? {
            moveOriginatorAETitle: origin.moveOriginatorAETitle,
            moveOriginatorMessageId: origin.moveOriginatorMessageId,
          }
        : {},
    );
    const category = statusCategory(rsp.status);
    if (category === 'success') return { kind: 'completed', status: rsp.status };
    if (category === 'warning') return { kind: 'warning', status: rsp.status };
    return {
      kind: 'failed',
      status: rsp.status,
      comment: rsp.command.errorComment ?? `status 0x${rsp.status.toString(16)}`,
      fatal: false,
    };
  } catch (err) {
    // The association is gone (aborted, closed): nothing more can be sent on it.
    const fatal = !sender.dimse.association.established;
    return {
      kind: 'failed',
      comment: err instanceof DicomError ? err.message : String(err),
      fatal,
    };
  }
}
