import type {
  AAssociateAc,
  AAssociateRj,
  AAssociateRq,
  PresentationContextAc,
  PresentationContextRq,
  RoleSelection,
  UserIdentityRq,
  UserInformation,
} from './pdu/index.ts';
import { DICOM_APPLICATION_CONTEXT } from './pdu/index.ts';

/** A presentation context both sides agreed on (PS3.8 §9.3.3.2, PS3.7 D.3.3.4 roles). */
export interface AcceptedContext {
  readonly id: number;
  readonly abstractSyntax: string;
  readonly transferSyntax: string;
  /** The requestor may act as SCU on this context (default true). */
  readonly requestorIsScu: boolean;
  /** The requestor may act as SCP on this context (true only when SCP/SCU role selection said so). */
  readonly requestorIsScp: boolean;
}

/** A proposed presentation context and the reason it was not accepted. */
export interface RejectedContext {
  readonly id: number;
  readonly abstractSyntax: string;
  readonly result: number;
}

export interface AcceptorPolicy {
  /** Our AE title; with `calledAETitles: 'any'` any called AE title is accepted. */
  readonly aeTitle: string;
  readonly calledAETitles: 'any' | readonly string[];
  /** Calling AE titles allowed to associate; undefined allows all. */
  readonly callingAETitles?: readonly string[] | undefined;
  readonly maxPduLength: number;
  readonly implementationClassUid: string;
  readonly implementationVersionName: string;
  /** Transfer syntaxes accepted for an abstract syntax, or undefined when the SOP class is not supported. */
  readonly transferSyntaxes: (abstractSyntax: string) => readonly string[] | undefined;
  /**
   * Roles granted to the requestor for an abstract syntax when it asked for them (PS3.7 D.3.3.4):
   * e.g. SCP role for storage classes so that C-GET can send C-STOREs back.
   */
  readonly roles?: (
    abstractSyntax: string,
    asked: { scu: boolean; scp: boolean },
  ) => { scu: boolean; scp: boolean };
  /**
   * The answer to a SOP Class Extended Negotiation sub-item (PS3.7 D.3.3.5) for an accepted SOP class,
   * or undefined to send none (the requestor then assumes no extended behaviour).
   */
  readonly extendedNegotiation?: (sopClassUid: string, asked: Buffer) => Buffer | undefined;
  /** Operations we perform concurrently (0 = unlimited); answered as min(asked, ours) (PS3.7 D.3.3.3). */
  readonly maxOpsPerformed?: number;
  readonly maxOpsInvoked?: number;
  /** Checks a user identity; `response` is sent back when the requestor asked for one. */
  readonly userIdentity?: (
    identity: UserIdentityRq,
    callingAETitle: string,
  ) => Promise<{ accepted: boolean; response?: Buffer }>;
}

export type AcceptDecision =
  | {
      readonly accept: AAssociateAc;
      readonly contexts: AcceptedContext[];
      readonly rejected: RejectedContext[];
    }
  | { readonly reject: AAssociateRj; readonly why: string };

/** A-ASSOCIATE-RJ results, sources and reasons (PS3.8 Table 9-21). */
const REJECT = {
  calledAE: { result: 1, source: 1, reason: 7 },
  callingAE: { result: 1, source: 1, reason: 3 },
  applicationContext: { result: 1, source: 1, reason: 2 },
  protocolVersion: { result: 1, source: 2, reason: 2 },
  noReason: { result: 1, source: 1, reason: 1 },
} as const;

function reject(kind: keyof typeof REJECT, why: string): AcceptDecision {
  return { reject: { type: 'A-ASSOCIATE-RJ', ...REJECT[kind] }, why };
}

/** The minimum of two operation counts where 0 means unlimited (PS3.7 D.3.3.3.1). */
function minOps(a: number, b: number): number {
  if (a === 0) return b;
  if (b === 0) return a;
  return Math.min(a, b);
}

/**
 * The acceptor's answer to an A-ASSOCIATE-RQ (PS3.8 §7.1.1, PS3.7 Annex D): called/calling AE checks,
 * application context, user identity, and for each presentation context acceptance with the first
 * proposed transfer syntax we support (the requestor's preference), or the reason it is rejected.
 */
export async function negotiateAsAcceptor(rq: AAssociateRq, policy: AcceptorPolicy): Promise<AcceptDecision> {
  if ((rq.protocolVersion & 1) === 0)
    return reject('protocolVersion', `protocol version ${rq.protocolVersion} not supported`);
  if (policy.calledAETitles !== 'any' && !policy.calledAETitles.includes(rq.calledAETitle)) {
    return reject('calledAE', `called AE title "${rq.calledAETitle}" not recognized`);
  }
  if (policy.callingAETitles && !policy.callingAETitles.includes(rq.callingAETitle)) {
    return reject('callingAE', `calling AE title "${rq.callingAETitle}" not allowed`);
  }
  if (rq.applicationContextName !== DICOM_APPLICATION_CONTEXT) {
    return reject('applicationContext', `application context ${rq.applicationContextName} not supported`);
  }
  const info = rq.userInformation;
  let identityResponse: Buffer | undefined;
  if (info.userIdentity && policy.userIdentity) {
    const verdict = await policy.userIdentity(info.userIdentity, rq.callingAETitle);
    if (!verdict.accepted) return reject('noReason', 'user identity not accepted');
    if (info.userIdentity.positiveResponseRequested && verdict.response) identityResponse = verdict.response;
  }
  const asked = new Map<string, RoleSelection>(info.roles.map((r) => [r.sopClassUid, r]));
  const grantedRoles: RoleSelection[] = [];
  const contexts: AcceptedContext[] = [];
  const rejected: RejectedContext[] = [];
  const answers: PresentationContextAc[] = rq.presentationContexts.map((pc: PresentationContextRq) => {
    const supported = policy.transferSyntaxes(pc.abstractSyntax);
    if (!supported) {
      rejected.push({ id: pc.id, abstractSyntax: pc.abstractSyntax, result: 3 });
      return { id: pc.id, result: 3, transferSyntax: '' };
    }
    const ts = pc.transferSyntaxes.find((t) => supported.includes(t));
    if (!ts) {
      rejected.push({ id: pc.id, abstractSyntax: pc.abstractSyntax, result: 4 });
      return { id: pc.id, result: 4, transferSyntax: '' };
    }
    const role = asked.get(pc.abstractSyntax);
    let scu = true;
    let scp = false;
    if (role) {
      const granted = policy.roles
        ? policy.roles(pc.abstractSyntax, { scu: role.scu, scp: role.scp })
        : { scu: role.scu, scp: false };
      scu = role.scu && granted.scu;
      scp = role.scp && granted.scp;
      if (!grantedRoles.some((r) => r.sopClassUid === pc.abstractSyntax))
        grantedRoles.push({ sopClassUid: pc.abstractSyntax, scu, scp });
    }
    contexts.push({
      id: pc.id,
      abstractSyntax: pc.abstractSyntax,
      transferSyntax: ts,
      requestorIsScu: scu,
      requestorIsScp: scp,
    });
    return { id: pc.id, result: 0, transferSyntax: ts };
  });
  const extendedNegotiation: { sopClassUid: string; info: Buffer }[] = [];
  for (const item of info.extendedNegotiation) {
    if (!policy.extendedNegotiation) break;
    if (!contexts.some((c) => c.abstractSyntax === item.sopClassUid)) continue;
    if (extendedNegotiation.some((e) => e.sopClassUid === item.sopClassUid)) continue;
    const answer = policy.extendedNegotiation(item.sopClassUid, item.info);
    if (answer) extendedNegotiation.push({ sopClassUid: item.sopClassUid, info: answer });
  }
  const userInformation: UserInformation = {
    maxPduLength: policy.maxPduLength,
    implementationClassUid: policy.implementationClassUid,
    implementationVersionName: policy.implementationVersionName,
    roles: grantedRoles,
    extendedNegotiation,
    commonExtendedNegotiation: [],
    ...(info.asyncOps
      ? {
          asyncOps: {
            maxInvoked: minOps(info.asyncOps.maxInvoked, policy.maxOpsPerformed ?? 1),
            maxPerformed: minOps(info.asyncOps.maxPerformed, policy.maxOpsInvoked ?? 1),
          },
        }
      : {}),
    ...(identityResponse ? { userIdentityResponse: identityResponse } : {}),
  };
  return {
    accept: {
      type: 'A-ASSOCIATE-AC',
      protocolVersion: 1,
      calledAETitle: rq.calledAETitle,
      callingAETitle: rq.callingAETitle,
      applicationContextName: DICOM_APPLICATION_CONTEXT,
      presentationContexts: answers,
      userInformation,
    },
    contexts,
    rejected,
  };
}

/** What the requestor learns from an A-ASSOCIATE-AC about the contexts it proposed. */
export function acceptedByPeer(
  rq: AAssociateRq,
  ac: AAssociateAc,
): { contexts: AcceptedContext[]; rejected: RejectedContext[] } {
  const proposed = new Map(rq.presentationContexts.map((pc) => [pc.id, pc]));
  const roles = new Map(ac.userInformation.roles.map((r) => [r.sopClassUid, r]));
  const asked = new Map(rq.userInformation.roles.map((r) => [r.sopClassUid, r]));
  const contexts: AcceptedContext[] = [];
  const rejected: RejectedContext[] = [];
  for (const answer of ac.presentationContexts) {
    const pc = proposed.get(answer.id);
    if (!pc) continue;
    if (answer.result !== 0) {
      rejected.push({ id: answer.id, abstractSyntax: pc.abstractSyntax, result: answer.result });
      continue;
    }
    // PS3.7 D.3.3.4: without a role selection answer, the requestor is SCU only; "the Association-requestor
    // shall ignore the response if it has not proposed the role", so a role is ours only if asked and granted.
    const proposal = asked.get(pc.abstractSyntax);
    const role = proposal ? roles.get(pc.abstractSyntax) : undefined;
    contexts.push({
      id: answer.id,
      abstractSyntax: pc.abstractSyntax,
      transferSyntax: answer.transferSyntax,
      requestorIsScu: proposal && role ? proposal.scu && role.scu : true,
      requestorIsScp: proposal && role ? proposal.scp && role.scp : false,
    });
  }
  return { contexts, rejected };
}
