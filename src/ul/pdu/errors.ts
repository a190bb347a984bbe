import { DicomError } from '../../core/index.ts';

/**
 * Who aborts (PS3.8 Table 9-26, A-ABORT Source): 0 the DICOM UL service-user, 2 the DICOM UL
 * service-provider. 1 is reserved.
 */
export type AbortSource = 0 | 2;

/**
 * A-ABORT Reason/Diag. of a service-provider abort (PS3.8 Table 9-26): 0 reason-not-specified,
 * 1 unrecognized-PDU, 2 unexpected-PDU, 4 unrecognized-PDU parameter, 5 unexpected-PDU parameter,
 * 6 invalid-PDU-parameter value (3 is reserved).
 */
export type ProviderAbortReason = 0 | 1 | 2 | 4 | 5 | 6;

/**
 * A PDU that breaks PS3.8 §9.3, with the A-ABORT it calls for (PS3.8 Table 9-26): `abortSource` 2
 * (service-provider) and `abortReason` 1 unrecognized-PDU, 2 unexpected-PDU, 4 unrecognized-PDU
 * parameter, 5 unexpected-PDU parameter, 6 invalid-PDU-parameter value (0 reason-not-specified).
 * The state machine sends exactly that A-ABORT (PS3.8 §9.2, Evt19 "Unrecognized or invalid PDU
 * received" -> AA-8).
 *
 * Codes (abort reason): `ERR_UL_PDU_UNKNOWN_TYPE` (1), `ERR_UL_PDU_TOO_LARGE` (6),
 * `ERR_UL_PDU_TRUNCATED` (6), `ERR_UL_PDU_MALFORMED` (6), `ERR_UL_PDU_MISSING_ITEM` (6),
 * `ERR_UL_PDU_UNEXPECTED_ITEM` (5). The encoder's `ERR_UL_PDU_UNENCODABLE` and the reader's
 * `ERR_UL_PDU_READER_OPTIONS` are plain `DicomError`s: our mistakes, not the peer's.
 */
export class ProtocolError extends DicomError {
  readonly abortSource: AbortSource;
  readonly abortReason: ProviderAbortReason;

  constructor(
    code: string,
    message: string,
    abortReason: ProviderAbortReason,
    options?: { cause?: unknown; abortSource?: AbortSource },
  ) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProtocolError';
    this.abortSource = options?.abortSource ?? 2;
    this.abortReason = abortReason;
  }
}

/** PS3.8 Table 9-26 reasons by name. */
export const PROVIDER_ABORT_REASONS = {
  reasonNotSpecified: 0,
  unrecognizedPdu: 1,
  unexpectedPdu: 2,
  unrecognizedPduParameter: 4,
  unexpectedPduParameter: 5,
  invalidPduParameterValue: 6,
} as const satisfies Record<string, ProviderAbortReason>;

/**
 * A PDU object that cannot be put into bytes (an AE title over 16 characters, a field out of range, a
 * non-ASCII UID...): a programming error on our side, not a protocol error of the peer.
 */
export function unencodable(message: string): DicomError {
  return new DicomError('ERR_UL_PDU_UNENCODABLE', message);
}
