/** A-ASSOCIATE-RQ values for tests: one place for the fields every request carries. */
import type { AssociateRq, PresentationContextRq } from '../../src/dimse/associatePdu.js';

export const VERIFICATION_CONTEXT: PresentationContextRq = {
  id: 1,
  abstractSyntax: '1.2.840.10008.1.1',
  transferSyntaxes: ['1.2.840.10008.1.2'],
};

export function associateRq(over: Partial<Omit<AssociateRq, 'userInfo'>> & { maxLength?: number } = {}): AssociateRq {
  const { maxLength, ...rest } = over;
  return {
    protocolVersion: 1,
    calledAe: 'SCANNODE',
    callingAe: 'SCU',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: [VERIFICATION_CONTEXT],
    userInfo: {
      maxLength: maxLength ?? 16384,
      implementationClassUid: '1.2.3',
      implementationVersionName: undefined,
      asyncOps: undefined,
      roleSelections: [],
      other: [],
    },
    ...rest,
  };
}
