import { TRANSFER_SYNTAXES } from '../codec/index.ts';
import { isStorageSopClass, lookupUid } from '../dictionary/index.ts';
import {
  Dimse,
  encodeQrExtendedNegotiation,
  type Handlers,
  qrSopClass,
  VERIFICATION_SOP_CLASS,
} from '../dimse/index.ts';
import { type Listener, listen, UL_DEFAULTS } from '../ul/index.ts';
import { folderStore } from './folder-store.ts';

export interface DimseServerOptions {
  readonly host: string;
  readonly port: number;
  readonly aeTitle: string;
  /** Accept any called AE title (default: only `aeTitle`). */
  readonly anyCalledAETitle?: boolean;
  /** Store SOP classes the UID registry does not know too (private storage classes). */
  readonly acceptUnknownSopClasses?: boolean;
  readonly callingAETitles?: readonly string[];
  /** Where received instances are written as files (without an index), when no `store` handler is given. */
  readonly storeDir?: string;
  /** The C-STORE handler (the archive's); defaults to files in `storeDir`. */
  readonly store?: Handlers['C-STORE-RQ'];
  /** Query/Retrieve handlers (the archive's): their SOP classes are accepted when given. */
  readonly queryRetrieve?: Pick<Handlers, 'C-FIND-RQ' | 'C-MOVE-RQ' | 'C-GET-RQ'>;
  readonly maxPduLength?: number;
  /** Outstanding operations we accept per association (asynchronous operations window). */
  readonly maxOpsPerformed?: number;
  /** fsync each instance before answering success (default true; storescp does not). */
  readonly fsync?: boolean;
  /** ARTIM timeout (PS3.8 §9.1.5): how long a silent or aborted connection is kept. */
  readonly artimMs?: number;
}

export interface DimseServer {
  readonly port: number;
  close(graceMs?: number): Promise<void>;
}

const ALL_SYNTAXES = TRANSFER_SYNTAXES.map((t) => t.uid);
/** Identifiers are small: the uncompressed syntaxes (PS3.4 C.5: Implicit VR Little Endian at least). */
const QR_SYNTAXES = TRANSFER_SYNTAXES.filter((t) => !t.encapsulated).map((t) => t.uid);

/**
 * The DIMSE side of `tessera serve`: Verification and every Storage SOP Class in every transfer
 * syntax the codec knows, stored as received (until the archive of issue #4 takes over).
 */
export async function startDimseServer(options: DimseServerOptions): Promise<DimseServer> {
  const handlers: Handlers = {
    'C-ECHO-RQ': async () => ({ status: 0 }),
    'C-STORE-RQ':
      options.store ?? folderStore(options.storeDir ?? 'incoming', { fsync: options.fsync !== false }),
    ...options.queryRetrieve,
  };
  const qr = options.queryRetrieve;
  const qrService = (abstractSyntax: string): 'find' | 'move' | 'get' | undefined => {
    const found = qr ? qrSopClass(abstractSyntax) : undefined;
    if (!found) return undefined;
    const type = found.service === 'find' ? 'C-FIND-RQ' : found.service === 'move' ? 'C-MOVE-RQ' : 'C-GET-RQ';
    return qr?.[type] ? found.service : undefined;
  };
  const listener: Listener = await listen({
    host: options.host,
    port: options.port,
    aeTitle: options.aeTitle,
    calledAETitles: options.anyCalledAETitle ? 'any' : [options.aeTitle],
    callingAETitles: options.callingAETitles,
    maxPduLength: options.maxPduLength ?? UL_DEFAULTS.maxPduLength,
    implementationClassUid: UL_DEFAULTS.implementationClassUid,
    implementationVersionName: UL_DEFAULTS.implementationVersionName,
    maxOpsPerformed: options.maxOpsPerformed ?? 16,
    ...(options.artimMs === undefined ? {} : { artimMs: options.artimMs }),
    maxOpsInvoked: 1,
    transferSyntaxes: (abstractSyntax) => {
      if (qrService(abstractSyntax)) return QR_SYNTAXES;
      return abstractSyntax === VERIFICATION_SOP_CLASS ||
        isStorageSopClass(abstractSyntax) ||
        (options.acceptUnknownSopClasses === true && lookupUid(abstractSyntax) === undefined)
        ? ALL_SYNTAXES
        : undefined;
    },
    // A C-GET requestor takes the SCP role of the storage classes it wants to receive (PS3.4 C.4.3.1).
    roles: (abstractSyntax, asked) =>
      qr?.['C-GET-RQ'] && (isStorageSopClass(abstractSyntax) || lookupUid(abstractSyntax) === undefined)
        ? { scu: asked.scu, scp: asked.scp }
        : { scu: asked.scu, scp: false },
    // Relational queries and combined date-time range matching (PS3.4 C.5.1.1.2) are supported by
    // the query engine; fuzzy semantic person-name matching and timezone adjustment are not.
    extendedNegotiation: (abstractSyntax, asked) => {
      const service = qrService(abstractSyntax);
      if (service === 'find')
        return encodeQrExtendedNegotiation(
          { relational: asked[0] === 1, combinedDateTime: asked[1] === 1 },
          Math.min(Math.max(asked.length, 1), 4),
        );
      if (service === 'move' || service === 'get') return encodeQrExtendedNegotiation({}, 1);
      return undefined;
    },
    onAssociation: (association) => {
      new Dimse(association, handlers);
    },
  });
  return { port: listener.port, close: (graceMs) => listener.close(graceMs) };
}
