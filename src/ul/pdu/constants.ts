// Code values and their names from PS3.8 §9.3 and PS3.7 Annex D.3.3, as data.
import type { PduType } from './types.ts';

/** The DICOM Application Context Name (PS3.7 Annex A.2.1). */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** PDU-type codes (PS3.8 §9.3.2 to §9.3.8). */
export const PDU_TYPES = {
  'A-ASSOCIATE-RQ': 0x01,
  'A-ASSOCIATE-AC': 0x02,
  'A-ASSOCIATE-RJ': 0x03,
  'P-DATA-TF': 0x04,
  'A-RELEASE-RQ': 0x05,
  'A-RELEASE-RP': 0x06,
  'A-ABORT': 0x07,
} as const satisfies Record<PduType, number>;

/** PDU name by PDU-type code. */
export const PDU_TYPE_NAMES: ReadonlyMap<number, PduType> = new Map(
  Object.entries(PDU_TYPES).map(([name, code]) => [code, name as PduType]),
);

/** Item-type codes of the variable items and sub-items (PS3.8 §9.3.2, §9.3.3, Annex D; PS3.7 D.3.3). */
export const ITEM_TYPES = {
  applicationContext: 0x10,
  presentationContextRq: 0x20,
  presentationContextAc: 0x21,
  abstractSyntax: 0x30,
  transferSyntax: 0x40,
  userInformation: 0x50,
  maximumLength: 0x51,
  implementationClassUid: 0x52,
  asynchronousOperationsWindow: 0x53,
  scpScuRoleSelection: 0x54,
  implementationVersionName: 0x55,
  sopClassExtendedNegotiation: 0x56,
  sopClassCommonExtendedNegotiation: 0x57,
  userIdentityRq: 0x58,
  userIdentityAc: 0x59,
} as const;

/** A-ASSOCIATE-RJ Result (PS3.8 Table 9-21). */
export const REJECT_RESULTS: Readonly<Record<number, string>> = {
  1: 'rejected-permanent',
  2: 'rejected-transient',
};

/** A-ASSOCIATE-RJ Source (PS3.8 Table 9-21). */
export const REJECT_SOURCES: Readonly<Record<number, string>> = {
  1: 'DICOM UL service-user',
  2: 'DICOM UL service-provider (ACSE related function)',
  3: 'DICOM UL service-provider (Presentation related function)',
};

/** A-ASSOCIATE-RJ Reason/Diag. by Source (PS3.8 Table 9-21); the values not listed are reserved. */
export const REJECT_REASONS: Readonly<Record<number, Readonly<Record<number, string>>>> = {
  1: {
    1: 'no-reason-given',
    2: 'application-context-name-not-supported',
    3: 'calling-AE-title-not-recognized',
    7: 'called-AE-title-not-recognized',
  },
  2: {
    1: 'no-reason-given',
    2: 'protocol-version-not-supported',
  },
  3: {
    1: 'temporary-congestion',
    2: 'local-limit-exceeded',
  },
};

/** A-ABORT Source (PS3.8 Table 9-26). */
export const ABORT_SOURCES: Readonly<Record<number, string>> = {
  0: 'DICOM UL service-user (initiated abort)',
  1: 'reserved',
  2: 'DICOM UL service-provider (initiated abort)',
};

/** A-ABORT Reason/Diag. when the source is the service-provider (PS3.8 Table 9-26). */
export const ABORT_REASONS: Readonly<Record<number, string>> = {
  0: 'reason-not-specified',
  1: 'unrecognized-PDU',
  2: 'unexpected-PDU',
  3: 'reserved',
  4: 'unrecognized-PDU parameter',
  5: 'unexpected-PDU parameter',
  6: 'invalid-PDU-parameter value',
};

/** Result/Reason of an A-ASSOCIATE-AC Presentation Context Item (PS3.8 Table 9-18). */
export const PRESENTATION_CONTEXT_RESULTS: Readonly<Record<number, string>> = {
  0: 'acceptance',
  1: 'user-rejection',
  2: 'no-reason (provider rejection)',
  3: 'abstract-syntax-not-supported (provider rejection)',
  4: 'transfer-syntaxes-not-supported (provider rejection)',
};

/** User-Identity-Type (PS3.7 D.3.3.7.1). */
export const USER_IDENTITY_TYPES: Readonly<Record<number, string>> = {
  1: 'Username as a string in UTF-8',
  2: 'Username as a string in UTF-8 and passcode',
  3: 'Kerberos Service ticket',
  4: 'SAML Assertion',
  5: 'JSON Web Token (JWT)',
};

function named(table: Readonly<Record<number, string>> | undefined, value: number, fallback: string): string {
  return table?.[value] ?? `${fallback} (${value})`;
}

/** The standard's name of an A-ASSOCIATE-RJ reason, e.g. `called-AE-title-not-recognized`. */
export function rejectReasonText(source: number, reason: number): string {
  return named(REJECT_REASONS[source], reason, 'reserved');
}

/**
 * A one-line description of an A-ASSOCIATE-RJ, e.g. `rejected-permanent by DICOM UL service-user:
 * called-AE-title-not-recognized`.
 */
export function rejectText(rj: {
  readonly result: number;
  readonly source: number;
  readonly reason: number;
}): string {
  return `${named(REJECT_RESULTS, rj.result, 'unknown result')} by ${named(REJECT_SOURCES, rj.source, 'unknown source')}: ${rejectReasonText(rj.source, rj.reason)}`;
}

/** The standard's name of an A-ABORT reason; a service-user abort has no significant reason. */
export function abortReasonText(source: number, reason: number): string {
  if (source === 0) return 'service-user initiated abort';
  return named(ABORT_REASONS, reason, 'unknown reason');
}

/** The standard's name of a presentation context result, e.g. `abstract-syntax-not-supported (provider rejection)`. */
export function presentationContextResultText(result: number): string {
  return named(PRESENTATION_CONTEXT_RESULTS, result, 'unknown result');
}
