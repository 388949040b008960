/**
 * When is a scan complete (SPEC section 5)? The part without I/O: given what is expected per series (MPPS references
 * and what the scanner reports by C-FIND), what is here, the MPPS status, the retrieve attempts so far and the clock,
 * decide whether the scan is finished, failed (with a reason a person can act on), needs a retrieve, or must wait.
 */
import type { MppsStatus } from './mpps.js';
import { hex } from './status.js';

export interface SeriesExpectation {
  seriesInstanceUid: string;
  seriesNumber?: number | null;
  /** SOP Instance UIDs known to belong to the series: MPPS references and IMAGE-level C-FIND answers. */
  sopInstanceUids: string[];
  /** NumberOfSeriesRelatedInstances from the scanner's SERIES-level C-FIND, when it reported one. */
  scannerCount?: number;
}

/** Retrieve history of one series (or of the whole study, key '*'). */
export interface SeriesAttempts {
  attempts: number;
  lastAt: Date;
  /** DICOM status of the last attempt's final response; undefined when it ended without one. */
  lastStatus?: number;
  /** What went wrong in words (status meaning, error comment, connection error). */
  lastError?: string;
  /** The last attempt brought nothing new. */
  lastFailed: boolean;
}

export interface CompletenessConfig {
  quietPeriodSeconds: number;
  requireMpps: boolean;
  failAfterHours: number;
  maxAttempts: number;
  backoffSeconds: number;
  /** Longest wait between two attempts. */
  maxBackoffSeconds?: number;
  /**
   * Upper bound of the wait before a retrieve: while the scanner is seen sending the study, no retrieve until its last
   * image is this old (an association left open and idle does not hold the pull for ever). 0: never wait.
   */
  settleSeconds?: number;
  /**
   * Once the scanner is not sending, no retrieve until the study's last image and the scan's last MPPS event are this
   * old (a scanner that reports COMPLETED and then connects to send its queue). At most settleSeconds.
   */
  quietSeconds?: number;
}

export interface CompletenessInput {
  expected: SeriesExpectation[];
  /** SOP Instance UIDs here, per SeriesInstanceUID. */
  received: Map<string, Set<string>>;
  /** null: no MPPS for this scan. */
  mppsStatus: MppsStatus | null;
  /** The scanner answered this pass's C-FIND (its view is part of `expected`). */
  scannerAnswered: boolean;
  /** Latest of: request created, instance received, MPPS event. */
  lastActivity: Date;
  /** When the last instance of the study arrived (undefined: none yet). */
  lastInstance?: Date;
  /** When the scan's last MPPS event arrived (undefined: none). */
  lastMpps?: Date;
  /** An association from the scanner's AE that stored images of the study is open now. */
  scannerSending?: boolean;
  attempts: Map<string, SeriesAttempts>;
  now: Date;
  config: CompletenessConfig;
}

export interface MissingSeries {
  seriesInstanceUid: string;
  seriesNumber?: number | null;
  /** SERIES: move the whole series (nothing of it here, or only a count is known); IMAGE: the listed instances. */
  level: 'SERIES' | 'IMAGE';
  sopInstanceUids: string[];
  missing: number;
  expected: number;
}

export type Decision =
  | { kind: 'finished' }
  | { kind: 'failed'; reason: string }
  | { kind: 'retrieve'; missing: MissingSeries[] }
  | { kind: 'wait'; why: string; missing: MissingSeries[]; until?: Date };

/** Per series, what is expected and not here. A count larger than the UIDs known stands for unnamed instances. */
export function missingSeries(expected: SeriesExpectation[], received: Map<string, Set<string>>): MissingSeries[] {
  const out: MissingSeries[] = [];
  for (const s of expected) {
    const here = received.get(s.seriesInstanceUid) ?? new Set<string>();
    const uids = [...new Set(s.sopInstanceUids)];
    const missingUids = uids.filter((u) => !here.has(u));
    const expectedCount = Math.max(uids.length, s.scannerCount ?? 0);
    // Instances here that are not among the known UIDs still count against the scanner's count.
    const byCount = (s.scannerCount ?? 0) - here.size;
    const missing = Math.max(missingUids.length, byCount);
    if (missing <= 0) continue;
    const unnamed = missing > missingUids.length;
    out.push({
      seriesInstanceUid: s.seriesInstanceUid,
      seriesNumber: s.seriesNumber,
      level: here.size === 0 || unnamed ? 'SERIES' : 'IMAGE',
      sopInstanceUids: missingUids,
      missing,
      expected: expectedCount,
    });
  }
  return out;
}

/** Seconds to wait after `attempts` failed attempts: backoff * 2^(attempts-1), capped. */
export function backoffSeconds(attempts: number, config: CompletenessConfig): number {
  if (attempts <= 0) return 0;
  const cap = config.maxBackoffSeconds ?? 3600;
  return Math.min(cap, config.backoffSeconds * 2 ** Math.min(attempts - 1, 20));
}

function seriesLabel(m: { seriesNumber?: number | null; seriesInstanceUid: string }): string {
  return m.seriesNumber !== undefined && m.seriesNumber !== null
    ? `series ${m.seriesNumber}`
    : `series ${m.seriesInstanceUid}`;
}

function receivedSeriesCount(expected: SeriesExpectation[], received: Map<string, Set<string>>): number {
  return expected.filter((s) => (received.get(s.seriesInstanceUid)?.size ?? 0) > 0).length;
}

/**
 * Why a retrieve must wait although images are missing, or undefined: pull now. The scanner may still be sending: while
 * one of its associations storing the study is open (at most settleSeconds after the study's last image), and for
 * quietSeconds after its last image or MPPS event (scanners report COMPLETED when the exam ends, often before their
 * image queue has drained). Pulling then would transfer images twice.
 */
export function holdOff(input: CompletenessInput): { why: string; until: Date } | undefined {
  const { config, now } = input;
  const settleMs = (config.settleSeconds ?? 0) * 1000;
  const quietMs = Math.min((config.quietSeconds ?? 0) * 1000, settleMs);
  const lastImage = input.lastInstance?.getTime() ?? -Infinity;
  if (input.scannerSending && now.getTime() - lastImage < settleMs)
    return { why: 'the scanner is still sending', until: new Date(lastImage + settleMs) };
  const from = Math.max(lastImage, input.lastMpps?.getTime() ?? -Infinity);
  if (now.getTime() - from < quietMs)
    return {
      why: lastImage === from ? 'images still arriving' : 'MPPS just reported',
      until: new Date(from + quietMs),
    };
  return undefined;
}

export function decide(input: CompletenessInput): Decision {
  const { expected, received, mppsStatus, now, config } = input;
  const missing = missingSeries(expected, received);
  const nSeries = expected.length;

  if (mppsStatus === 'DISCONTINUED') {
    return {
      kind: 'failed',
      reason:
        `MPPS DISCONTINUED (${receivedSeriesCount(expected, received)} of ${nSeries} series received; ` +
        'received images archived)',
    };
  }

  // Retrieves the scanner keeps refusing: the first series whose attempts are used up and still fail.
  for (const m of missing) {
    const a = input.attempts.get(m.seriesInstanceUid) ?? input.attempts.get('*');
    if (a && a.attempts >= config.maxAttempts && a.lastFailed) {
      const why = a.lastError ?? (a.lastStatus !== undefined ? `status ${hex(a.lastStatus)}` : 'no answer');
      return {
        kind: 'failed',
        reason: `${seriesLabel(m)}: ${m.missing} of ${m.expected} missing after ${a.attempts} C-MOVE attempts: ${why}`,
      };
    }
  }

  const idleMs = now.getTime() - input.lastActivity.getTime();
  if (idleMs >= config.failAfterHours * 3600_000) {
    const total = expected.reduce((n, s) => n + Math.max(new Set(s.sopInstanceUids).size, s.scannerCount ?? 0), 0);
    const here = [...received.values()].reduce((n, s) => n + s.size, 0);
    const what = missing.length
      ? `; ${missing.reduce((n, m) => n + m.missing, 0)} of ${total} expected images missing in ${missing.length} series`
      : nSeries === 0
        ? `; the scanner reported nothing and ${here} images are here`
        : `; MPPS ${mppsStatus ?? 'never received'}`;
    return {
      kind: 'failed',
      reason: `no progress for ${config.failAfterHours} h since ${input.lastActivity.toISOString()}${what}`,
    };
  }

  if (missing.length) {
    const hold = holdOff(input);
    if (hold) return { kind: 'wait', ...hold, missing };
    const due = missing.filter((m) => {
      const a = input.attempts.get(m.seriesInstanceUid) ?? input.attempts.get('*');
      if (!a || !a.lastFailed) return true;
      return now.getTime() - a.lastAt.getTime() >= backoffSeconds(Math.max(1, a.attempts), config) * 1000;
    });
    if (due.length) return { kind: 'retrieve', missing: due };
    return { kind: 'wait', why: 'retrieve backing off', missing };
  }

  if (nSeries === 0) return { kind: 'wait', why: 'nothing expected yet', missing };
  if (mppsStatus === 'COMPLETED') return { kind: 'finished' };
  if (mppsStatus === 'IN PROGRESS') return { kind: 'wait', why: 'MPPS IN PROGRESS', missing };
  if (config.requireMpps) return { kind: 'wait', why: 'waiting for the MPPS', missing };
  if (!input.scannerAnswered) return { kind: 'wait', why: 'the scanner did not answer', missing };
  if (idleMs >= config.quietPeriodSeconds * 1000) return { kind: 'finished' };
  return { kind: 'wait', why: 'quiet period', missing };
}
