/**
 * Structured logs: pino, JSON lines on stdout. Library code never logs; it publishes on
 * node:diagnostics_channel, and `subscribeLogs` turns those messages into log lines here, in the
 * composition root.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { type DestinationStream, type Logger, pino } from 'pino';
import { statusCategory, statusName } from '../dimse/index.ts';
import type { LogLevel } from './config.ts';

export type { Logger } from 'pino';

/** The channels the server listens to (published by ul, dimse and archive). */
export const CHANNELS = {
  association: 'tessera:ul:association',
  dimseRequest: 'tessera:dimse:request',
  ingest: 'tessera:archive:ingest',
  retrieve: 'tessera:archive:retrieve',
  blobS3: 'tessera:archive:blob-s3',
  web: 'tessera:web:request',
} as const;

/** `tessera:ul:association` messages (see src/ul/association.ts). */
export interface AssociationMessage {
  readonly association: number;
  readonly event: 'established' | 'rejected' | 'closed' | 'release-error' | string;
  readonly role?: 'requestor' | 'acceptor';
  readonly callingAETitle?: string;
  readonly calledAETitle?: string;
  readonly address?: string;
  readonly why?: string;
  readonly error?: string;
}

/** `tessera:dimse:request` messages: one per request answered by an SCP handler. */
export interface DimseRequestMessage {
  readonly association: number;
  readonly type: string;
  readonly messageId?: number;
  readonly sopInstanceUid?: string;
  readonly status: number;
  readonly ms: number;
}

/** `tessera:archive:ingest` messages: one per instance through the ingest pipeline. */
export interface IngestMessage {
  readonly sopInstanceUid?: string;
  readonly status: number;
  readonly comment?: string;
  readonly outcome?: string;
  readonly source?: { readonly aeTitle?: string; readonly address?: string };
  readonly ms?: number;
  /** Data set bytes received (all of them, also when the instance was not stored). */
  readonly bytes?: number;
}

/**
 * The server's logger: JSON lines with an ISO time, written synchronously (no line is lost when
 * the process exits right after). `destination` defaults to stdout; tests pass a memory stream.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** Status as DICOM writes it (`0xA700`). */
export function hexStatus(status: number): string {
  return `0x${status.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Subscribes `fn` to `name`; a subscriber that throws would surface as an uncaught exception in
 * the publisher's process (diagnostics_channel rethrows on the next tick), so errors are kept here.
 */
export function on<T>(name: string, fn: (message: T) => void, onError?: (err: unknown) => void): () => void {
  const handler = (message: unknown): void => {
    try {
      fn(message as T);
    } catch (err) {
      onError?.(err);
    }
  };
  subscribe(name, handler);
  return () => {
    unsubscribe(name, handler);
  };
}

interface Peer {
  readonly callingAETitle: string | undefined;
  readonly calledAETitle: string | undefined;
  readonly remoteAddress: string | undefined;
}

/**
 * Logs what the library publishes:
 * - associations established and closed (info), rejected (warn), with the association id, the
 *   calling / called AE titles and the remote address as far as the message carries them;
 * - each DIMSE request (debug: association, type, messageId, status, ms), and at warn every status
 *   other than success, with the calling AE title of its association;
 * - each ingest result: failures and warnings at warn with the calling AE and the comment, stored
 *   instances at debug.
 * Returns the function that unsubscribes.
 */
export function subscribeLogs(logger: Logger): () => void {
  const peers = new Map<number, Peer>();
  const broken = (err: unknown): void => {
    logger.error({ err }, 'log subscriber failed');
  };
  const offs = [
    on<AssociationMessage>(
      CHANNELS.association,
      (m) => {
        const base = { association: m.association };
        switch (m.event) {
          case 'established': {
            const peer: Peer = {
              callingAETitle: m.callingAETitle,
              calledAETitle: m.calledAETitle,
              remoteAddress: m.address,
            };
            peers.set(m.association, peer);
            logger.info({ ...base, role: m.role, ...defined(peer) }, 'association established');
            return;
          }
          case 'rejected':
            logger.warn(
              {
                ...base,
                ...defined({ callingAETitle: m.callingAETitle, calledAETitle: m.calledAETitle }),
                reason: m.why,
              },
              'association rejected',
            );
            return;
          case 'closed': {
            const peer = peers.get(m.association);
            peers.delete(m.association);
            // A rejected or never-negotiated connection was logged already (or is noise): debug.
            const level = !peer ? 'debug' : m.error ? 'warn' : 'info';
            logger[level](
              { ...base, ...defined({ ...peer, error: m.error }) },
              m.error ? 'association aborted' : 'association closed',
            );
            return;
          }
          case 'release-error':
            logger.warn({ ...base, error: m.error }, 'error while answering A-RELEASE');
            return;
          default:
            logger.debug({ ...base, event: m.event }, 'association event');
        }
      },
      broken,
    ),
    on<DimseRequestMessage>(
      CHANNELS.dimseRequest,
      (m) => {
        if (m.status === 0 && !logger.isLevelEnabled('debug')) return;
        const fields = {
          association: m.association,
          type: m.type,
          messageId: m.messageId,
          ...defined({ sopInstanceUid: m.sopInstanceUid }),
          status: hexStatus(m.status),
          ms: m.ms,
        };
        if (m.status === 0) {
          logger.debug(fields, 'DIMSE request');
          return;
        }
        const peer = peers.get(m.association);
        logger.warn(
          {
            ...fields,
            ...defined({ callingAETitle: peer?.callingAETitle, remoteAddress: peer?.remoteAddress }),
          },
          `${m.type} ${statusCategory(m.status) === 'warning' ? 'answered with a warning' : 'failed'}: ${statusName(m.status)}`,
        );
      },
      broken,
    ),
    on<IngestMessage>(
      CHANNELS.ingest,
      (m) => {
        // A stored instance is a debug line: not even its fields are built at the usual levels.
        if (m.status === 0 && !logger.isLevelEnabled('debug')) return;
        const fields = {
          ...defined({
            sopInstanceUid: m.sopInstanceUid,
            callingAETitle: m.source?.aeTitle,
            remoteAddress: m.source?.address,
            outcome: m.outcome,
          }),
          status: hexStatus(m.status),
          ...defined({ comment: m.comment, ms: m.ms }),
        };
        if (m.status === 0) logger.debug(fields, 'instance stored');
        else if (statusCategory(m.status) === 'warning')
          logger.warn(fields, `instance stored with a warning: ${m.comment ?? statusName(m.status)}`);
        else logger.warn(fields, `instance not stored: ${m.comment ?? statusName(m.status)}`);
      },
      broken,
    ),
    // C-MOVE / C-GET sub-operations: failures at warn, the rest at debug.
    on<{ association: number; sopInstanceUid: string; outcome: string; status?: number; comment?: string }>(
      CHANNELS.retrieve,
      (m) => {
        const fields = {
          association: m.association,
          sopInstanceUid: m.sopInstanceUid,
          ...defined({ comment: m.comment }),
        };
        if (m.outcome === 'failed') logger.warn(fields, 'retrieve sub-operation failed');
        else logger.debug(fields, `retrieve sub-operation ${m.outcome}`);
      },
      broken,
    ),
    // The S3 store's own events (a temp object it could not delete after a commit...).
    on<{ event: string; bucket?: string; key?: string; error?: unknown }>(
      CHANNELS.blobS3,
      (m) => logger.warn({ event: m.event, bucket: m.bucket, key: m.key, err: m.error }, 'S3 blob store'),
      broken,
    ),
    // DICOMweb requests: errors (5xx) at warn, client errors at info, the rest at debug.
    on<{ method: string; url: string; status: number; ms: number; remoteAddress?: string }>(
      CHANNELS.web,
      (m) => {
        const fields = {
          method: m.method,
          url: m.url,
          status: m.status,
          ms: Math.round(m.ms * 10) / 10,
          ...defined({ remoteAddress: m.remoteAddress }),
        };
        if (m.status >= 500) logger.warn(fields, 'DICOMweb request failed');
        else if (m.status >= 400) logger.info(fields, 'DICOMweb request refused');
        else logger.debug(fields, 'DICOMweb request');
      },
      broken,
    ),
  ];
  return () => {
    for (const off of offs) off();
    peers.clear();
  };
}

/** The object without its undefined properties (pino would print them as absent anyway; this keeps types exact). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
