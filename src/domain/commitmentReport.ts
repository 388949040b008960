/**
 * Owns reading a storage commitment result (the N-EVENT-REPORT data set of PS3.4 J.3.3) for instances we forwarded,
 * and judging it against what was sent. Pure.
 */
import { describeStatus } from './statusTable.js';
import { cleanUid } from './uid.js';

export interface CommitmentResult {
  transactionUid: string | undefined;
  committed: string[];
  failed: Array<{ sopInstanceUid: string; reason: number | undefined }>;
}

type Item = Record<string, unknown> | undefined;

/** The Transaction UID, the committed instances (Referenced SOP Sequence) and the failed ones with their reasons. */
export function readCommitmentResult(ds: Record<string, unknown>): CommitmentResult {
  const items = (v: unknown): Item[] => (Array.isArray(v) ? (v as Item[]) : []);
  return {
    transactionUid: cleanUid(ds.TransactionUID),
    committed: items(ds.ReferencedSOPSequence)
      .map((i) => cleanUid(i?.ReferencedSOPInstanceUID))
      .filter((u): u is string => !!u),
    failed: items(ds.FailedSOPSequence).map((i) => ({
      sopInstanceUid: cleanUid(i?.ReferencedSOPInstanceUID) ?? '(no UID)',
      reason: typeof i?.FailureReason === 'number' ? i.FailureReason : undefined,
    })),
  };
}

export interface CommitmentVerdict {
  /** Every instance sent is committed, and none is reported failed. */
  complete: boolean;
  /** How many of the instances sent are committed. */
  committed: number;
  /** Why it is not complete, in words (the first failure named, with its PS3.4 J reason). */
  error?: string;
}

/** Judges a result against the instances sent (their SOP Instance UIDs). */
export function judgeCommitment(sent: readonly string[], result: CommitmentResult): CommitmentVerdict {
  const done = new Set(result.committed);
  const committed = sent.filter((u) => done.has(u)).length;
  const failed = result.failed.filter((f) => sent.includes(f.sopInstanceUid));
  const missing = sent.length - committed;
  if (missing === 0 && failed.length === 0) return { complete: true, committed };
  const first = failed[0];
  const why = first
    ? `${first.sopInstanceUid}: ${first.reason === undefined ? 'no reason given' : describeStatus(first.reason, 'N-EVENT-REPORT')}`
    : 'not listed as committed';
  return { complete: false, committed, error: `the destination did not commit ${missing} of ${sent.length} (${why})` };
}
