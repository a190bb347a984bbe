import { DicomError } from '../core/index.ts';

/** Status categories of PS3.7 §C.1. */
export type StatusCategory = 'success' | 'pending' | 'cancel' | 'warning' | 'failure';

/**
 * Status codes with their meaning: the general ones of PS3.7 Annex C and the service-specific ones of
 * PS3.4 (C-STORE B.2.3, Query/Retrieve C.4). Ranges (e.g. Cxxx "cannot understand") are in `category`.
 */
export const STATUS = {
  Success: 0x0000,
  Pending: 0xff00,
  PendingWarning: 0xff01,
  Cancel: 0xfe00,
  // PS3.7 C.4 and C.5: general warning/failure statuses.
  AttributeListError: 0x0107,
  AttributeValueOutOfRange: 0x0116,
  ProcessingFailure: 0x0110,
  DuplicateSOPInstance: 0x0111,
  NoSuchSOPInstance: 0x0112,
  InvalidArgumentValue: 0x0115,
  NoSuchSOPClass: 0x0118,
  MissingAttribute: 0x0120,
  SOPClassNotSupported: 0x0122,
  NotAuthorized: 0x0124,
  DuplicateInvocation: 0x0210,
  UnrecognizedOperation: 0x0211,
  MistypedArgument: 0x0212,
  ResourceLimitation: 0x0213,
  // PS3.4 B.2.3: Storage.
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSOPClass: 0xa900,
  CannotUnderstand: 0xc000,
  CoercionOfDataElements: 0xb000,
  DataSetDoesNotMatchSOPClassWarning: 0xb007,
  ElementsDiscarded: 0xb006,
  // PS3.4 C.4: Query/Retrieve.
  OutOfResourcesMatches: 0xa701,
  OutOfResourcesSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  IdentifierDoesNotMatchSOPClass: 0xa900,
  SubOperationsCompleteWithFailures: 0xb000,
} as const;

const NAMES = new Map<number, string>([
  [0x0000, 'Success'],
  [0xff00, 'Pending'],
  [0xff01, 'Pending (warning: optional keys not supported)'],
  [0xfe00, 'Cancel'],
  [0x0107, 'Attribute list error'],
  [0x0116, 'Attribute value out of range'],
  [0x0110, 'Processing failure'],
  [0x0111, 'Duplicate SOP Instance'],
  [0x0112, 'No such SOP Instance'],
  [0x0115, 'Invalid argument value'],
  [0x0118, 'No such SOP Class'],
  [0x0120, 'Missing attribute'],
  [0x0122, 'SOP Class not supported'],
  [0x0124, 'Not authorized'],
  [0x0210, 'Duplicate invocation'],
  [0x0211, 'Unrecognized operation'],
  [0x0212, 'Mistyped argument'],
  [0x0213, 'Resource limitation'],
  [0xa700, 'Refused: Out of resources'],
  [0xa701, 'Refused: Out of resources (unable to calculate number of matches)'],
  [0xa702, 'Refused: Out of resources (unable to perform sub-operations)'],
  [0xa801, 'Refused: Move destination unknown'],
  [0xa900, 'Error: Data set / identifier does not match SOP Class'],
  [0xb000, 'Warning: Coercion of data elements / sub-operations complete, one or more failures'],
  [0xb006, 'Warning: Elements discarded'],
  [0xb007, 'Warning: Data set does not match SOP Class'],
  [0xc000, 'Error: Cannot understand'],
]);

/** The category of a status code (PS3.7 §C.1 and the ranges of PS3.4). */
export function statusCategory(status: number): StatusCategory {
  if (status === 0x0000) return 'success';
  if (status === 0xff00 || status === 0xff01) return 'pending';
  if (status === 0xfe00) return 'cancel';
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000)
    return 'warning';
  return 'failure';
}

export function statusName(status: number): string {
  const name = NAMES.get(status);
  if (name) return name;
  if ((status & 0xf000) === 0xc000) return 'Error: Cannot understand';
  if ((status & 0xff00) === 0xa700) return 'Refused: Out of resources';
  return `Status 0x${status.toString(16).padStart(4, '0').toUpperCase()}`;
}

export function formatStatus(status: number): string {
  return `0x${status.toString(16).padStart(4, '0').toUpperCase()} (${statusName(status)})`;
}

/**
 * Thrown by an SCP handler to answer with a failure or warning status; the dispatcher writes Status
 * and Error Comment (0000,0902). The web layer maps the same error to HTTP.
 */
export class StatusError extends DicomError {
  readonly status: number;
  readonly comment: string | undefined;
  /** Offending Element (0000,0901): the attributes at fault, when known. */
  readonly offendingElement: readonly number[] | undefined;

  constructor(
    status: number,
    comment?: string,
    options?: { cause?: unknown; offendingElement?: readonly number[] },
  ) {
    super(
      'ERR_DIMSE_STATUS',
      `${formatStatus(status)}${comment ? `: ${comment}` : ''}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'StatusError';
    this.status = status;
    this.comment = comment;
    this.offendingElement = options?.offendingElement;
  }
}
