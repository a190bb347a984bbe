// The upper layer PDU codec (PS3.8 §9.3): pure functions over bytes and a sans-IO incremental reader.
export {
  ABORT_REASONS,
  ABORT_SOURCES,
  abortReasonText,
  DICOM_APPLICATION_CONTEXT,
  ITEM_TYPES,
  PDU_TYPE_NAMES,
  PDU_TYPES,
  PRESENTATION_CONTEXT_RESULTS,
  presentationContextResultText,
  REJECT_REASONS,
  REJECT_RESULTS,
  REJECT_SOURCES,
  rejectReasonText,
  rejectText,
  USER_IDENTITY_TYPES,
} from './constants.ts';
export { decodePdu, PDU_HEADER_LENGTH } from './decode.ts';
export {
  encodePDataTf,
  encodePdu,
  fragment,
  fragmentParts,
  PDU_DEFAULTS,
  type PduParts,
} from './encode.ts';
export {
  type AbortSource,
  PROVIDER_ABORT_REASONS,
  ProtocolError,
  type ProviderAbortReason,
} from './errors.ts';
export { PduReader, type PduReaderOptions } from './reader.ts';
export type {
  AAbort,
  AAssociateAc,
  AAssociateRj,
  AAssociateRq,
  AReleaseRp,
  AReleaseRq,
  AsyncOps,
  CommonExtendedNegotiation,
  ExtendedNegotiation,
  PDataTf,
  Pdu,
  PduType,
  Pdv,
  PresentationContextAc,
  PresentationContextResult,
  PresentationContextRq,
  RoleSelection,
  UserIdentityRq,
  UserInformation,
} from './types.ts';
