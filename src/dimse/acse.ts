/**
 * The acceptor's ACSE: validates an A-ASSOCIATE-RQ in full and either rejects it with one typed Rejection or builds
 * the A-ASSOCIATE-AC (presentation contexts negotiated, our Maximum Length and implementation identity). Pure.
 */
import { isValidUid } from '../domain/uid.js';
import {
  APPLICATION_CONTEXT,
  type AssociateAc,
  type AssociateRq,
  type PresentationContextAc,
  type RoleSelection,
} from './associatePdu.js';
import { aeTitleProblem, checkAssociation, type AccessPolicy, type Rejection } from './policy.js';
import { STORAGE_COMMITMENT_SOP_CLASS } from './nAction.js';

/** PS3.8 9.3.2: at most 128 presentation contexts, odd IDs 1-255. */
export const MAX_PRESENTATION_CONTEXTS = 128;

export const PcResult = {
  Accept: 0,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

export interface AcceptorIdentity extends AccessPolicy {
  /** Our Maximum Length Received (the largest P-DATA-TF we take). */
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName: string;
}

/** What one accepted presentation context carries. */
export interface AcceptedContext {
  id: number;
  abstractSyntax: string;
  transferSyntax: string;
}

export type Negotiation =
  | { ok: true; ac: AssociateAc; contexts: Map<number, AcceptedContext>; callingAe: string; calledAe: string }
  | { ok: false; rejection: Rejection; callingAe: string; calledAe: string };

/**
 * `syntaxesFor(abstractSyntax)`: the transfer syntaxes we take for that SOP class, in no order (the sender's order
 * wins), or undefined when we do not serve it.
 */
export function negotiate(
  rq: AssociateRq,
  me: AcceptorIdentity,
  activeAssociations: number,
  syntaxesFor: (abstractSyntax: string) => readonly string[] | undefined,
): Negotiation {
  const callingAe = rq.callingAe.trim();
  const calledAe = rq.calledAe.trim();
  const reject = (kind: Rejection['kind'], detail: string): Negotiation => ({
    ok: false,
    rejection: { kind, detail },
    callingAe,
    calledAe,
  });
  if ((rq.protocolVersion & 1) === 0) {
    return reject('protocol-version-not-supported', `protocol version 0x${rq.protocolVersion.toString(16)}`);
  }
  const calledProblem = aeTitleProblem(rq.calledAe);
  if (calledProblem) return reject('called-ae-not-recognized', `the called AE title ${calledProblem}`);
  const callingProblem = aeTitleProblem(rq.callingAe);
  if (callingProblem) return reject('calling-ae-not-recognized', `the calling AE title ${callingProblem}`);
  if (rq.applicationContext !== APPLICATION_CONTEXT) {
    return reject('application-context-not-supported', `application context "${rq.applicationContext ?? ''}"`);
  }
  const structural = requestProblem(rq);
  if (structural) return reject('invalid-request', structural);
  const refused = checkAssociation(me, callingAe, calledAe, activeAssociations);
  if (refused) return { ok: false, rejection: refused, callingAe, calledAe };

  const contexts = new Map<number, AcceptedContext>();
  const results: PresentationContextAc[] = rq.presentationContexts.map((pc) => {
    const abstract = pc.abstractSyntax ?? '';
    const candidates = isValidUid(abstract) ? syntaxesFor(abstract) : undefined;
    if (!candidates) {
      return { id: pc.id, result: PcResult.AbstractSyntaxNotSupported, transferSyntax: pc.transferSyntaxes[0]! };
    }
    const ts = pc.transferSyntaxes.find((t) => candidates.includes(t));
    if (!ts)
      return { id: pc.id, result: PcResult.TransferSyntaxesNotSupported, transferSyntax: pc.transferSyntaxes[0]! };
    contexts.set(pc.id, { id: pc.id, abstractSyntax: abstract, transferSyntax: ts });
    return { id: pc.id, result: PcResult.Accept, transferSyntax: ts };
  });
  const ac: AssociateAc = {
    protocolVersion: 1,
    calledAe: rq.calledAe,
    callingAe: rq.callingAe,
    applicationContext: APPLICATION_CONTEXT,
    presentationContexts: results,
    userInfo: {
      maxLength: me.maxPduLength,
      implementationClassUid: me.implementationClassUid,
      implementationVersionName: me.implementationVersionName,
      // No asynchronous operations window: one operation at a time (the default).
      asyncOps: undefined,
      roleSelections: rolesAnswered(rq, contexts),
      other: [],
    },
  };
  return { ok: true, ac, contexts, callingAe, calledAe };
}

/**
 * SCP/SCU Role Selection (PS3.7 D.3.3.4) is answered for Storage Commitment only: a destination we forwarded to sends
 * its N-EVENT-REPORT on a new association as the SCP of the SOP class, and says so with a role item; we accept the
 * roles it proposed. For any other SOP class no item is answered (the default roles).
 */
function rolesAnswered(rq: AssociateRq, contexts: Map<number, AcceptedContext>): RoleSelection[] {
  const accepted = new Set([...contexts.values()].map((c) => c.abstractSyntax));
  return (rq.userInfo?.roleSelections ?? [])
    .filter((r) => r.sopClassUid === STORAGE_COMMITMENT_SOP_CLASS && accepted.has(r.sopClassUid))
    .map((r) => ({ sopClassUid: r.sopClassUid, scu: r.scu, scp: r.scp }));
}

/** PS3.8 9.3.2 and PS3.7 D.3.3.1: what a well-formed request has. */
function requestProblem(rq: AssociateRq): string | undefined {
  const pcs = rq.presentationContexts;
  if (pcs.length === 0) return 'no presentation context';
  if (pcs.length > MAX_PRESENTATION_CONTEXTS) return `${pcs.length} presentation contexts (max 128)`;
  const seen = new Set<number>();
  for (const pc of pcs) {
    if (pc.id % 2 === 0) return `presentation context ID ${pc.id} is even`;
    if (seen.has(pc.id)) return `presentation context ID ${pc.id} twice`;
    seen.add(pc.id);
    if (!pc.abstractSyntax) return `presentation context ${pc.id} has no abstract syntax`;
    if (pc.transferSyntaxes.length === 0) return `presentation context ${pc.id} has no transfer syntax`;
  }
  if (!rq.userInfo) return 'no User Information item';
  if (rq.userInfo.maxLength === undefined) return 'no Maximum Length in User Information';
  return undefined;
}
