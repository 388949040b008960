/**
 * Owns reconciling active scans against the scanner (a pass): what is expected (MPPS references, C-FIND), what is
 * here, the decision, and handing finished / failed scans to Completion; the C-MOVEs are retrieve.ts's.
 */
import { expectedOf } from '../db/scanStore.js';
import { In } from 'typeorm';
import type { Database } from '../db/dataSource.js';
import { retrieveOutcome, type RetrieveAttemptRow } from '../db/retrieveEntities.js';
import { parseDbDate, type ScanRow } from '../db/scanEntities.js';
import type { Logger } from '../logging/logger.js';
import { cFind, type ScuPeer } from '../dimse/scu.js';
import {
  decide,
  type CompletenessConfig,
  type Decision,
  type SeriesAttempts,
  type SeriesExpectation,
} from '../domain/completeness.js';
import type { MppsStatus } from '../domain/mpps.js';
import type { Completion } from './completion.js';
import type { ScanRequests } from './scans/scanRequests.js';
import { ArchiveError } from './archive.js';
import type { AwaitedImages } from './awaitedImages.js';
import { Retriever } from './retrieve.js';
import { ScannerHealth } from './scannerHealth.js';
import { ScannerQuery, merge, uidOf } from './scannerQuery.js';

export interface ReconcilerOptions {
  scanner: ScuPeer;
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
 * Passes never overlap: a call while one runs asks for one more pass after it.
 */
export class Reconciler {
  private running: Promise<void> | undefined;
  private again = false;
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
    this.health = new ScannerHealth(log, opts.scanner);
    this.retriever = new Retriever(db, log, this.health, opts);
    this.query = new ScannerQuery(db, this.health, opts);
  }

  /** One pass over every active scan, then the sweep of images no active scan waits for. */
  reconcileAll(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async pass(): Promise<void> {
    const active = await this.db.source
      .getRepository(this.db.entities.Scan)
      .find({ where: { state: 'active' }, order: { requestedAt: 'ASC' } });
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
    const expected = await this.expectedFromDb(scan);
    let scannerAnswered = false;
    if (study) {
      const fromScanner = await this.query.series(scan, study, await this.received(study), expected);
      if (fromScanner) {
        scannerAnswered = true;
        merge(expected, fromScanner);
      }
    }
    const mppsStatus = await this.mppsStatus(scan);
    let moves = 0;
    let decision = await this.decideNow(scan, expected, mppsStatus, scannerAnswered);
    if (decision.kind === 'retrieve' && study) {
      moves = await this.retriever.retrieve(scan, study, decision.missing);
      decision = await this.decideNow(scan, expected, mppsStatus, scannerAnswered);
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

  private async decideNow(
    scan: ScanRow,
    expected: Map<string, SeriesExpectation>,
    mppsStatus: MppsStatus | null,
    scannerAnswered: boolean,
  ): Promise<Decision> {
    const received = scan.studyInstanceUid ? await this.received(scan.studyInstanceUid) : new Map();
    return decide({
      expected: [...expected.values()],
      received,
      mppsStatus,
      scannerAnswered,
      scannerSending: scan.studyInstanceUid ? (this.opts.scannerSending?.(scan.studyInstanceUid) ?? false) : false,
      ...(await this.activity(scan)),
      attempts: await this.attempts(scan.id),
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
      rows = await cFind(this.opts.scanner, this.opts.aeTitle, 'STUDY', keys, { timeoutMs: this.opts.findTimeoutMs });
      this.health.ok();
    } catch (err) {
      this.health.problem(err, 'STUDY C-FIND');
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

  /** SOP Instance UIDs the scan's MPPS (and earlier IMAGE-level C-FINDs) named, per series. */
  private async expectedFromDb(scan: ScanRow): Promise<Map<string, SeriesExpectation>> {
    const rows = await expectedOf(this.db, scan.id);
    const out = new Map<string, SeriesExpectation>();
    for (const r of rows) {
      let s = out.get(r.seriesInstanceUid);
      if (!s) out.set(r.seriesInstanceUid, (s = { seriesInstanceUid: r.seriesInstanceUid, sopInstanceUids: [] }));
      s.sopInstanceUids.push(r.sopInstanceUid);
    }
    if (out.size) {
      const meta = await this.db.source
        .getRepository(this.db.entities.Series)
        .find({ where: { seriesInstanceUid: In([...out.keys()]) } });
      for (const m of meta) out.get(m.seriesInstanceUid)!.seriesNumber = m.seriesNumber;
    }
    return out;
  }

  private async received(study: string): Promise<Map<string, Set<string>>> {
    const rows = await this.db.source.getRepository(this.db.entities.Instance).find({
      where: { studyInstanceUid: study },
      select: { sopInstanceUid: true, seriesInstanceUid: true },
    });
    const out = new Map<string, Set<string>>();
    for (const r of rows) {
      let s = out.get(r.seriesInstanceUid);
      if (!s) out.set(r.seriesInstanceUid, (s = new Set()));
      s.add(r.sopInstanceUid);
    }
    return out;
  }

  private async mppsStatus(scan: ScanRow): Promise<MppsStatus | null> {
    const steps = await this.db.source
      .getRepository(this.db.entities.MppsStep)
      .find({ where: { scanId: scan.id }, order: { createdAt: 'ASC' } });
    if (!steps.length) return null;
    // Several steps for one scan: DISCONTINUED if any is, IN PROGRESS while any is, else COMPLETED.
    if (steps.some((s) => s.status === 'DISCONTINUED')) return 'DISCONTINUED';
    if (steps.some((s) => s.status === 'IN PROGRESS')) return 'IN PROGRESS';
    return 'COMPLETED';
  }

  /** Last activity (request created, an image of the study received, an MPPS event of the scan) and last image. */
  private async activity(scan: ScanRow): Promise<{ lastActivity: Date; lastInstance?: Date; lastMpps?: Date }> {
    let last = scan.requestedAt.getTime();
    let lastInstance: Date | undefined;
    const max = async (qb: { getRawOne<T>(): Promise<T | undefined> }) => {
      const r = await qb.getRawOne<{ last: string | Date | null }>();
      if (!r?.last) return undefined;
      const d = parseDbDate(r.last);
      if (!Number.isFinite(d.getTime())) return undefined;
      last = Math.max(last, d.getTime());
      return d;
    };
    if (scan.studyInstanceUid) {
      lastInstance = await max(
        this.db.source
          .getRepository(this.db.entities.Instance)
          .createQueryBuilder('i')
          .select('MAX(i.receivedAt)', 'last')
          .where('i.studyInstanceUid = :s', { s: scan.studyInstanceUid }),
      );
    }
    const lastMpps = await max(
      this.db.source
        .getRepository(this.db.entities.MppsStep)
        .createQueryBuilder('m')
        .select('MAX(m.updatedAt)', 'last')
        .where('m.scanId = :id', { id: scan.id }),
    );
    return {
      lastActivity: new Date(last),
      ...(lastInstance ? { lastInstance } : {}),
      ...(lastMpps ? { lastMpps } : {}),
    };
  }

  private async attempts(scanId: string): Promise<Map<string, SeriesAttempts>> {
    const rows = await this.db.source
      .getRepository(this.db.entities.RetrieveAttempt)
      .find({ where: { scanId }, order: { startedAt: 'ASC' } });
    const out = new Map<string, SeriesAttempts>();
    for (const r of rows) {
      const key = r.seriesInstanceUid ?? '*';
      const prev = out.get(key);
      // A scanner that cannot be reached is not refusing: those attempts back off but do not count towards
      // retrieve.maxAttempts (the no-progress rule covers a scanner that stays down).
      out.set(key, {
        attempts: (prev?.attempts ?? 0) + (r.status === null ? 0 : 1),
        lastAt: r.endedAt,
        lastStatus: r.status ?? undefined,
        lastError: r.error ?? undefined,
        lastFailed: retrieveOutcome(r) === 'failed',
      });
    }
    return out;
  }
}
