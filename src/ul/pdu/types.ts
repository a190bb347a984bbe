// The seven upper layer PDUs of PS3.8 §9.3 as plain objects. Strings are decoded (AE titles trimmed,
// UIDs without their NUL padding); byte fields stay Buffers.

export type Pdu = AAssociateRq | AAssociateAc | AAssociateRj | PDataTf | AReleaseRq | AReleaseRp | AAbort;

/** The PDU names of PS3.8 §9.3, verbatim. */
export type PduType = Pdu['type'];

/** A-ASSOCIATE-RQ (PS3.8 §9.3.2). */
export interface AAssociateRq {
  readonly type: 'A-ASSOCIATE-RQ';
  /** One bit per protocol version; version 1 is bit 0 (PS3.8 Table 9-11). Not tested here. */
  protocolVersion: number;
  calledAETitle: string;
  callingAETitle: string;
  applicationContextName: string;
  presentationContexts: PresentationContextRq[];
  userInformation: UserInformation;
}

/** Presentation Context Item of an A-ASSOCIATE-RQ (PS3.8 §9.3.2.2). */
export interface PresentationContextRq {
  /** An odd integer 1-255. */
  id: number;
  abstractSyntax: string;
  /** At least one. */
  transferSyntaxes: string[];
}

/** A-ASSOCIATE-AC (PS3.8 §9.3.3). The AE titles are echoed from the RQ and "not tested" on receipt. */
export interface AAssociateAc {
  readonly type: 'A-ASSOCIATE-AC';
  protocolVersion: number;
  calledAETitle: string;
  callingAETitle: string;
  applicationContextName: string;
  presentationContexts: PresentationContextAc[];
  userInformation: UserInformation;
}

/**
 * Result/Reason of a Presentation Context Item of an A-ASSOCIATE-AC (PS3.8 Table 9-18): 0 acceptance,
 * 1 user-rejection, 2 no-reason (provider rejection), 3 abstract-syntax-not-supported (provider
 * rejection), 4 transfer-syntaxes-not-supported (provider rejection).
 */
export type PresentationContextResult = 0 | 1 | 2 | 3 | 4;

/** Presentation Context Item of an A-ASSOCIATE-AC (PS3.8 §9.3.3.2). */
export interface PresentationContextAc {
  id: number;
  result: PresentationContextResult;
  /**
   * The accepted transfer syntax; '' when not accepted. The Transfer Syntax Sub-Item is still encoded
   * then (empty), as PS3.8 §9.3.3.2 says its value "shall not be tested" when the result is not 0.
   */
  transferSyntax: string;
}

/** A-ASSOCIATE-RJ (PS3.8 §9.3.4, Table 9-21). */
export interface AAssociateRj {
  readonly type: 'A-ASSOCIATE-RJ';
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: 1 | 2;
  /** 1 DICOM UL service-user, 2 service-provider (ACSE), 3 service-provider (Presentation). */
  source: 1 | 2 | 3;
  /** Reason/Diag., by source: see `REJECT_REASONS` and `rejectReasonText`. */
  reason: number;
}

/** P-DATA-TF (PS3.8 §9.3.5): one or more Presentation Data Value Items. */
export interface PDataTf {
  readonly type: 'P-DATA-TF';
  pdvs: Pdv[];
}

/** A Presentation Data Value Item (PS3.8 §9.3.5.1) with its Message Control Header (PS3.8 Annex E.2). */
export interface Pdv {
  contextId: number;
  /** Message Control Header bit 0: a command fragment (true) or a data set fragment (false). */
  command: boolean;
  /** Message Control Header bit 1: the last fragment of the command or data set. */
  last: boolean;
  /** The fragment; when decoded, a slice of the PDU bytes (no copy). */
  data: Buffer;
}

/** A-RELEASE-RQ (PS3.8 §9.3.6). */
export interface AReleaseRq {
  readonly type: 'A-RELEASE-RQ';
}

/** A-RELEASE-RP (PS3.8 §9.3.7). */
export interface AReleaseRp {
  readonly type: 'A-RELEASE-RP';
}

/** A-ABORT (PS3.8 §9.3.8, Table 9-26). */
export interface AAbort {
  readonly type: 'A-ABORT';
  /** 0 DICOM UL service-user (initiated abort), 2 DICOM UL service-provider (initiated abort). */
  source: 0 | 2;
  /** Significant only when `source` is 2: see `ABORT_REASONS`. Sent as 0 by a service-user. */
  reason: number;
}

/** The User Information Item (PS3.8 §9.3.2.3) and its sub-items (PS3.8 Annex D, PS3.7 Annex D.3.3). */
export interface UserInformation {
  /** Maximum Length Sub-Item (PS3.8 D.1): the largest P-DATA-TF PDU length we receive; 0 = unlimited. */
  maxPduLength: number;
  /** Implementation Class UID Sub-Item (PS3.7 D.3.3.2). */
  implementationClassUid: string;
  /** Implementation Version Name Sub-Item (PS3.7 D.3.3.2), 1 to 16 characters. */
  implementationVersionName?: string;
  /** Asynchronous Operations Window Sub-Item (PS3.7 D.3.3.3); 0 = unlimited. */
  asyncOps?: AsyncOps;
  /** SCP/SCU Role Selection Sub-Items (PS3.7 D.3.3.4). */
  roles: RoleSelection[];
  /** SOP Class Extended Negotiation Sub-Items (PS3.7 D.3.3.5). */
  extendedNegotiation: ExtendedNegotiation[];
  /** SOP Class Common Extended Negotiation Sub-Items (PS3.7 D.3.3.6). */
  commonExtendedNegotiation: CommonExtendedNegotiation[];
  /** User Identity Negotiation Sub-Item of the RQ (PS3.7 D.3.3.7.1). */
  userIdentity?: UserIdentityRq;
  /** User Identity Negotiation Sub-Item of the AC: the server response (PS3.7 D.3.3.7.2). */
  userIdentityResponse?: Buffer;
}

/** PS3.7 D.3.3.3: Maximum-number-operations-invoked and -performed. */
export interface AsyncOps {
  maxInvoked: number;
  maxPerformed: number;
}

/**
 * PS3.7 D.3.3.4. In an RQ: the roles the requestor proposes for itself; in an AC: 1 accepts, 0
 * rejects the proposed role.
 */
export interface RoleSelection {
  sopClassUid: string;
  scu: boolean;
  scp: boolean;
}

/** PS3.7 D.3.3.5: the Service-class-application-information, opaque here. */
export interface ExtendedNegotiation {
  sopClassUid: string;
  info: Buffer;
}

/** PS3.7 D.3.3.6. */
export interface CommonExtendedNegotiation {
  sopClassUid: string;
  serviceClassUid: string;
  relatedGeneralSopClasses: string[];
}

/**
 * User-Identity-Type (PS3.7 D.3.3.7.1): 1 username, 2 username and passcode, 3 Kerberos service
 * ticket, 4 SAML assertion, 5 JSON Web Token. Other values are kept as they come (the acceptor
 * decides), so the type is `number`.
 */
export interface UserIdentityRq {
  type: number;
  positiveResponseRequested: boolean;
  primaryField: Buffer;
  /** Passcode for type 2; empty otherwise. */
  secondaryField: Buffer;
}
