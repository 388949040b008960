/** Who may open an association: one function, one typed answer (as dicom-rs does it). */

export type Rejection =
  | { kind: 'called-ae-not-recognized'; detail: string }
  | { kind: 'calling-ae-not-recognized'; detail: string }
  | { kind: 'local-limit-exceeded'; detail: string };

export interface AccessPolicy {
  aeTitle: string;
  allowedCallingAeTitles: readonly string[];
  maxAssociations: number;
}

export function checkAssociation(
  policy: AccessPolicy,
  callingAe: string,
  calledAe: string,
  activeAssociations: number,
): Rejection | undefined {
  if (calledAe.trim() !== policy.aeTitle) {
    return { kind: 'called-ae-not-recognized', detail: `called AE "${calledAe.trim()}" is not "${policy.aeTitle}"` };
  }
  if (policy.allowedCallingAeTitles.length > 0 && !policy.allowedCallingAeTitles.includes(callingAe.trim())) {
    return { kind: 'calling-ae-not-recognized', detail: `calling AE "${callingAe.trim()}" is not allowed` };
  }
  if (activeAssociations >= policy.maxAssociations) {
    return {
      kind: 'local-limit-exceeded',
      detail: `${activeAssociations} associations open (max ${policy.maxAssociations})`,
    };
  }
  return undefined;
}

/** A-ASSOCIATE-RJ result / source / reason (PS3.8 9.3.4). */
export function rejectionCodes(r: Rejection): { result: number; source: number; reason: number } {
  switch (r.kind) {
    case 'called-ae-not-recognized':
      return { result: 1, source: 1, reason: 7 };
    case 'calling-ae-not-recognized':
      return { result: 1, source: 1, reason: 3 };
    case 'local-limit-exceeded':
      // rejected-transient, service-provider (presentation related), local-limit-exceeded
      return { result: 2, source: 3, reason: 2 };
  }
}
