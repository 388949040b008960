/**
 * Owns reconciling active scans against the scanner (a pass): what is expected (MPPS references, C-FIND), what is
 * here, the decision, and handing finished / failed scans to Completion; the C-MOVEs are retrieve.ts's.
 */
import { activeScans } from '../../db/scanStore.js';
import type { Database } from '../../db/dataSource.js';
import type { RetrieveAttemptRow } from '../../db/retrieveEntities.js';
import type { ScanRow } from '../../db/scanEntities.js';
import { loadScanFacts, type ScanFacts } from '../../db/scanFacts.js';
import type { Logger } from '../../logging/logger.js';
import { cFind, type ScuPeer } from '../../dimse/scu.js';
import { decide, type CompletenessConfig, type Decision, type SeriesExpectation } from '../../domain/completeness.js';
import type { Completion } from '../completion.js';
import type { ScanRequests } from '../scans/scanRequests.js';
import { ArchiveError } from '../archive.js';
import type { AwaitedImages } from '../awaitedImages.js';
import { Retriever } from './retriever.js';
import { ScannerHealth, type RemoteOutcomes } from './scannerHealth.js';
import { ScannerQuery, merge, uidOf } from './scannerQuery.js';

export interface ReconcilerOptions {
  scanner: ScuPeer;
  /** The remote a scan is queried and retrieved from (its request's `remote`); default the scanner. */
  peerOf?: (scan: ScanRow) => ScuPeer;
  /** The scanner's remote name (default "scanner"): what a scan without its own remote is logged and counted as. */
  scannerName?: string;
  /** Each C-FIND / C-MOVE outcome, per remote name (the remotes' states). */
  remoteOutcomes?: RemoteOutcomes;
  /** Our AE title: the calling AE of every query and the move destination. */
  aeTitle: string;
  completeness: CompletenessConfig;
  findTimeoutMs: number;
  moveTimeoutMs: number;
  now: () => Date;
  /** Asks for a pass soon (the scheduler's trigger): used when a scan waits for images to settle. */
  wake?: () => void;
  /** Whether the scanner is still sending images of a study (ScannerSending); default never. */
  scannerSending?: (study: string) => boolean;
  /** Told what each waiting scan still misses, so that the last missing image can start a pass at once. */
  awaited?: AwaitedImages;
  /** Called after each C-MOVE attempt's row is saved (metrics); an exception is logged only. */
  onRetrieveAttempt?: (row: RetrieveAttemptRow) => void;
}

/** What the last pass learnt about an active scan, for the status page and the API (kept in memory only). */
export interface ScanProgress {
  checkedAt: Date;
  /** The scanner answered the C-FIND of this pass. */
  scannerAnswered: boolean;
  /** Per series, the number of instances expected: the larger of the MPPS references and the scanner's count. */
  expected: Record<string, number>;
  /** Why the scan is not finished yet ('wait' decisions), e.g. "MPPS in progress". */
  waiting?: string;
}

/** What one reconcile pass over a scan did, for tests and the log. */
export interface ReconcileResult {
  scanId: string;
  decision: Decision;
  moves: number;
}

/**
 * Reconciles active scans against the scanner as a C-FIND / C-MOVE SCU (FIONA's moveFromScanner.sh, natively): finds
 * the study, what the scanner holds per series (counts, and SOP Instance UIDs where counts differ or are missing),
 * moves to us only what is missing, records every attempt, and hands finished / failed scans to Completion.
 */
export class Reconciler {
  /** The scanner's state as last logged, so it is logged once per change. */
  private readonly health: ScannerHealth;
  private readonly retriever: Retriever;
  private readonly query: ScannerQuery;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private readonly progressByScan = new Map<string, ScanProgress>();

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly scans: ScanRequests,
    private readonly completion: Completion,
    private readonly opts: ReconcilerOptions,
  ) {
    this.health = new ScannerHealth(log, {
      scannerName: opts.scannerName ?? 'scanner',
      peerOf: (scan) => opts.peerOf?.(scan) ?? opts.scanner,
      outcomes: opts.remoteOutcomes,
    });
    this.retriever = new Retriever(db, log, this.health, opts);
    this.query = new ScannerQuery(db, this.health, opts);
  }

  /**
   * One pass over every active scan, then the sweep of images no active scan waits for. The caller serialises passes
   * (the Scheduler's loop: never two at once, a trigger during a pass asks for one more after it).
   */
  async reconcileAll(): Promise<void> {
    const active = await activeScans(this.db);
    for (const scan of active) {
      try {
        await this.reconcile(scan);
      } catch (err) {
        this.log.error('reconcile failed', {
          scan: scan.id,
          study: scan.studyInstanceUid ?? undefined,
          err: String(err),
        });
      }
    }
    try {
      await this.completion.sweep();
    } catch (err) {
      this.log.error('archive sweep failed', { err: String(err) });
    }
  }

  /** A pass at `at` (by the injected clock); one timer, for the earliest time asked. */
  private wakeUpAt(at: Date): void {
    if (!this.opts.wake || at.getTime() >= this.wakeAt) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeAt = at.getTime();
    const delay = Math.max(0, at.getTime() - this.opts.now().getTime()) + 50;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = Infinity;
      this.opts.wake?.();
    }, delay);
    this.wakeTimer.unref();
  }

  /** Cancels a pending wake-up (shutdown). */
  stop(): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wakeAt = Infinity;
  }

  /** What the last pass saw of an active scan (undefined before its first pass, or once it ended). */
  progress(scanId: string): ScanProgress | undefined {
    return this.progressByScan.get(scanId);
  }

  // -- one scan --------------------------------------------------------------------------------------------------

  async reconcile(input: ScanRow): Promise<ReconcileResult> {
    let scan = input;
    if (!scan.studyInstanceUid && (scan.accessionNumber || scan.patientId)) {
      scan = (await this.resolveStudy(scan)) ?? scan;
    }
    const study = scan.studyInstanceUid;
    let facts = await loadScanFacts(this.db, scan);
    const expected = facts.expected;
    let scannerAnswered = false;
    if (study) {
      const fromScanner = await this.query.series(scan, study, facts.received, expected);
      if (fromScanner) {
        scannerAnswered = true;
        merge(expected, fromScanner);
      }
    }
    const mppsStatus = facts.mppsStatus;
    let moves = 0;
    let decision = this.decideOn(scan, facts, expected, scannerAnswered);
    if (decision.kind === 'retrieve' && study) {
      moves = await this.retriever.retrieve(scan, study, decision.missing);
      // The C-MOVEs changed what is here and the retrieve history: decide again on a fresh snapshot.
      facts = { ...(await loadScanFacts(this.db, scan)), expected };
      decision = this.decideOn(scan, facts, expected, scannerAnswered);
      // Once per pass: what is still missing waits for the next pass (and its backoff).
      if (decision.kind === 'retrieve')
        decision = { kind: 'wait', why: 'retrieve in progress', missing: decision.missing };
    }
    if (study) {
      if (decision.kind === 'wait') this.opts.awaited?.set(study, decision.missing);
      else this.opts.awaited?.forget(study);
    }
    const counts = new Map<string, number>();
    for (const s of expected.values())
      counts.set(s.seriesInstanceUid, Math.max(new Set(s.sopInstanceUids).size, s.scannerCount ?? 0));
    if (decision.kind === 'wait') {
      this.progressByScan.set(scan.id, {
        checkedAt: this.opts.now(),
        scannerAnswered,
        expected: Object.fromEntries(counts),
        waiting: decision.why,
      });
    } else {
      this.progressByScan.delete(scan.id);
    }
    if (decision.kind === 'finished' || decision.kind === 'failed') {
      try {
        await this.completion.complete(scan, {
          state: decision.kind,
          reason: decision.kind === 'failed' ? decision.reason : undefined,
          mppsStatus,
          expected: counts,
        });
      } catch (err) {
        if (!(err instanceof ArchiveError)) throw err;
        // Disk full or the archive not writable: the scan stays active with the reason (the archiver logs it once),
        // and the next pass tries again.
        this.progressByScan.set(scan.id, {
          checkedAt: this.opts.now(),
          scannerAnswered,
          expected: Object.fromEntries(counts),
          waiting: err.message,
        });
        return { scanId: scan.id, decision: { kind: 'wait', why: err.message, missing: [] }, moves };
      }
    } else if (decision.kind === 'wait') {
      if (decision.until) this.wakeUpAt(decision.until);
      this.log.debug('scan not complete yet', {
        scan: scan.id,
        study: study ?? undefined,
        why: decision.why,
        missing: decision.missing.reduce((n, m) => n + m.missing, 0),
      });
    }
    return { scanId: scan.id, decision, moves };
  }

  /** The decision on a snapshot of the scan's facts (its MPPS, what is here, its activity and retrieve history). */
  private decideOn(
    scan: ScanRow,
    facts: ScanFacts,
    expected: Map<string, SeriesExpectation>,
    scannerAnswered: boolean,
  ): Decision {
    return decide({
      expected: [...expected.values()],
      received: facts.received,
      mppsStatus: facts.mppsStatus,
      scannerAnswered,
      scannerSending: scan.studyInstanceUid ? (this.opts.scannerSending?.(scan.studyInstanceUid) ?? false) : false,
      lastActivity: facts.lastActivity,
      ...(facts.lastInstance ? { lastInstance: facts.lastInstance } : {}),
      ...(facts.lastMpps ? { lastMpps: facts.lastMpps } : {}),
      attempts: facts.attempts,
      now: this.opts.now(),
      config: this.opts.completeness,
    });
  }

  /** Accession number or patient -> StudyInstanceUID(s) by a STUDY-level C-FIND; the first resolves this request. */
  private async resolveStudy(scan: ScanRow): Promise<ScanRow | undefined> {
    const keys: Record<string, string> = scan.accessionNumber
      ? { AccessionNumber: scan.accessionNumber }
      : { PatientID: scan.patientId!, ...(scan.studyDate ? { StudyDate: scan.studyDate } : {}) };
    let rows: Array<Record<string, unknown>>;
    try {
      const peer = this.opts.peerOf?.(scan) ?? this.opts.scanner;
      rows = await cFind(peer, this.opts.aeTitle, 'STUDY', keys, { timeoutMs: this.opts.findTimeoutMs });
      this.health.ok(scan);
    } catch (err) {
      this.health.problem(scan, err, 'STUDY C-FIND');
      return undefined;
    }
    const uids = [...new Set(rows.map((r) => uidOf(r.StudyInstanceUID)).filter((u): u is string => !!u))];
    if (!uids.length) return undefined;
    const [first, ...rest] = uids;
    const resolved = await this.scans.resolveStudy(scan.id, first!, 'scanner C-FIND');
    for (const uid of rest) {
      await this.scans.add(
        {
          studyInstanceUid: uid,
          accessionNumber: scan.accessionNumber,
          patientId: scan.patientId,
          studyDate: scan.studyDate,
          mppsSopInstanceUid: null,
        },
        scan.source,
      );
    }
    if (rest.length)
      this.log.info('request matched several studies; one request each', { scan: scan.id, studies: uids.length });
    return resolved;
  }
}
