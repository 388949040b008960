/**
 * Whether an A-ASSOCIATE-RQ may become an association: one function per concern, one typed answer (as dicom-rs does
 * it), whose A-ASSOCIATE-RJ codes are in rejectTable.ts. The kind stays typed up to metrics and the audit.
 */
import type { RejectionKind } from './rejectTable.js';

export type { RejectionKind };

export interface Rejection {
  kind: RejectionKind;
  detail: string;
}

export interface AccessPolicy {
  aeTitle: string;
  allowedCallingAeTitles: readonly string[];
  maxAssociations: number;
}

/** AE titles (PS3.5 AE VR): default repertoire without backslash or control characters, not all spaces, 16 at most. */
export function aeTitleProblem(raw: string): string | undefined {
  if (/[^\x20-\x7e]|\\/.test(raw)) return 'has a control character, a backslash or a character outside ASCII';
  if (raw.trim() === '') return 'is empty or all spaces';
  if (raw.length > 16) return 'is longer than 16 characters';
  return undefined;
}

/** Who may call whom, and whether there is room (the AE titles are already valid and trimmed). */
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
