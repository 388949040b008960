import { randomUUID } from 'node:crypto';
import { In } from 'typeorm';
import type { Database } from '../db/dataSource.js';
import type { RetrieveAttemptRow } from '../db/retrieveEntities.js';
import type { ScanRow } from '../db/scanEntities.js';
import type { Logger } from '../logging/logger.js';
import {
  cFind,
  cMove,
  isFailure,
  ScuConnectError,
  ScuError,
  ScuRejectedError,
  ScuStatusError,
  ScuTimeoutError,
  type MoveResult,
  type ScuPeer,
} from '../dimse/scu.js';
import {
  decide,
  hex4,
  type CompletenessConfig,
  type Decision,
  type MissingSeries,
  type SeriesAttempts,
  type SeriesExpectation,
} from '../domain/completeness.js';
import type { MppsStatus } from '../domain/mpps.js';
import { cleanUid, isValidUid } from '../domain/uid.js';
import type { Completion } from './completion.js';
import type { ScanRequests } from './scanRequests.js';
import { parseDbDate } from './completion.js';
import { ArchiveError } from './archive.js';
import type { AwaitedImages } from './awaitedImages.js';

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

/** PS3.4 C.4.2.1.5 / Annex C statuses, in words. */
export function statusText(status: number): string {
  if (status === 0xa801) return 'move destination unknown';
  if (status === 0xa701 || status === 0xa702) return 'out of resources';
  if (status === 0xa900) return 'identifier does not match SOP class';
  if (status === 0x0122) return 'SOP class not supported';
  if (status === 0xfe00) return 'cancelled';
  if (status >= 0xb000 && status <= 0xbfff) return 'sub-operations complete with failures';
  if (status >= 0xc000 && status <= 0xcfff) return 'unable to process';
  if (status === 0) return 'success';
  return 'failed';
}

function asNumber(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function uidOf(v: unknown): string | undefined {
  const u = cleanUid(typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined);
  return isValidUid(u) ? u : undefined;
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
  /** The scanner's state as last logged ("ok", or what is wrong), so it is logged once per change. */
  private scannerState = 'unknown';
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private readonly progressByScan = new Map<string, ScanProgress>();

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly scans: ScanRequests,
    private readonly completion: Completion,
    private readonly opts: ReconcilerOptions,
  ) {}

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
      const fromScanner = await this.askScanner(scan, study, await this.received(study), expected);
      if (fromScanner) {
        scannerAnswered = true;
        merge(expected, fromScanner);
      }
    }
    const mppsStatus = await this.mppsStatus(scan);
    let moves = 0;
    let decision = await this.decideNow(scan, expected, mppsStatus, scannerAnswered);
    if (decision.kind === 'retrieve' && study) {
      moves = await this.retrieve(scan, study, decision.missing);
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
      this.scannerOk();
    } catch (err) {
      this.scannerProblem(err, 'STUDY C-FIND');
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
    const rows = await this.db.source.getRepository(this.db.entities.ScanExpected).find({ where: { scanId: scan.id } });
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

  /**
   * SERIES-level C-FIND, then IMAGE-level for every series whose count is missing or more than the UIDs known here
   * (received, or learnt before). UIDs learnt are kept in scan_expected_instances (so a restart or a scanner gone
   * quiet keeps them). While a series streams in, its UIDs are known after the first pass: asking IMAGE-level again
   * on every image-triggered pass re-parsed the whole series each time and slowed receiving to ~40 images/s.
   */
  private async askScanner(
    scan: ScanRow,
    study: string,
    received: Map<string, Set<string>>,
    known: Map<string, SeriesExpectation>,
  ): Promise<Map<string, SeriesExpectation> | undefined> {
    const opts = { timeoutMs: this.opts.findTimeoutMs };
    const out = new Map<string, SeriesExpectation>();
    try {
      const series = await cFind(this.opts.scanner, this.opts.aeTitle, 'SERIES', { StudyInstanceUID: study }, opts);
      for (const row of series) {
        const uid = uidOf(row.SeriesInstanceUID);
        if (!uid) continue;
        out.set(uid, {
          seriesInstanceUid: uid,
          seriesNumber: asNumber(row.SeriesNumber) ?? null,
          sopInstanceUids: [],
          scannerCount: asNumber(row.NumberOfSeriesRelatedInstances),
        });
      }
      const learnt: Array<{ series: string; sop: string; sopClass: string | null }> = [];
      for (const s of out.values()) {
        const here = new Set(received.get(s.seriesInstanceUid));
        for (const sop of known.get(s.seriesInstanceUid)?.sopInstanceUids ?? []) here.add(sop);
        if (s.scannerCount !== undefined && s.scannerCount <= here.size) continue;
        const images = await cFind(
          this.opts.scanner,
          this.opts.aeTitle,
          'IMAGE',
          { StudyInstanceUID: study, SeriesInstanceUID: s.seriesInstanceUid },
          opts,
        );
        for (const img of images) {
          const sop = uidOf(img.SOPInstanceUID);
          if (!sop) continue;
          s.sopInstanceUids.push(sop);
          learnt.push({ series: s.seriesInstanceUid, sop, sopClass: uidOf(img.SOPClassUID) ?? null });
        }
      }
      for (let i = 0; i < learnt.length; i += 200) {
        await this.db.source
          .createQueryBuilder()
          .insert()
          .into(this.db.entities.ScanExpected)
          .values(
            learnt.slice(i, i + 200).map((l) => ({
              scanId: scan.id,
              sopInstanceUid: l.sop,
              seriesInstanceUid: l.series,
              sopClassUid: l.sopClass,
              mppsUid: null,
            })),
          )
          .orIgnore()
          .execute();
      }
      this.scannerOk();
      return out;
    } catch (err) {
      this.scannerProblem(err, 'C-FIND');
      return undefined;
    }
  }

  private async countSeries(study: string, series: string): Promise<number> {
    return this.db.source
      .getRepository(this.db.entities.Instance)
      .countBy({ studyInstanceUid: study, seriesInstanceUid: series });
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
      const d = r.last instanceof Date ? r.last : parseDbDate(r.last);
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
        lastFailed: attemptFailed(r),
      });
    }
    return out;
  }

  // -- retrieve --------------------------------------------------------------------------------------------------

  /** C-MOVE of each missing series (whole, or its missing instances); stops at the first connection problem. */
  private async retrieve(scan: ScanRow, study: string, missing: MissingSeries[]): Promise<number> {
    let moves = 0;
    for (const m of missing) {
      const startedAt = this.opts.now();
      const started = Date.now();
      const row: RetrieveAttemptRow = {
        id: randomUUID(),
        scanId: scan.id,
        studyInstanceUid: study,
        seriesInstanceUid: m.seriesInstanceUid,
        level: m.level,
        requested: m.level === 'IMAGE' ? m.sopInstanceUids.length : m.missing,
        completed: null,
        failed: null,
        warning: null,
        remaining: null,
        status: null,
        error: null,
        startedAt,
        endedAt: startedAt,
      };
      let result: MoveResult | undefined;
      let connectionProblem = false;
      const before = await this.countSeries(study, m.seriesInstanceUid);
      try {
        result = await cMove(
          this.opts.scanner,
          this.opts.aeTitle,
          this.opts.aeTitle,
          m.level,
          {
            studyInstanceUid: study,
            seriesInstanceUid: m.seriesInstanceUid,
            ...(m.level === 'IMAGE' ? { sopInstanceUids: m.sopInstanceUids } : {}),
          },
          { timeoutMs: this.opts.moveTimeoutMs },
        );
        Object.assign(row, {
          completed: result.completed,
          failed: result.failed,
          warning: result.warning,
          remaining: result.remaining,
          status: result.status,
        });
        // The scanner's sub-operations reach us before its final response: nothing new here means they went elsewhere.
        const arrived = (await this.countSeries(study, m.seriesInstanceUid)) - before;
        if (!isFailure(result.status) && (result.completed ?? 0) > 0 && arrived <= 0) {
          row.error =
            `fruitless: the scanner reported ${result.completed} sent, none arrived here ` +
            `(does its entry for ${this.opts.aeTitle} point to this node's address and port?)`;
          this.noteScanner('move:fruitless', 'the scanner sends the C-MOVE elsewhere', {
            completed: result.completed,
            destination: this.opts.aeTitle,
          });
        } else if (isFailure(result.status)) {
          row.error = `${hex4(result.status)} ${statusText(result.status)}${result.comment ? ` (${result.comment})` : ''}`;
          this.noteScanner(`move:${hex4(result.status)}`, 'the scanner refuses the C-MOVE', {
            status: hex4(result.status),
            meaning: statusText(result.status),
            comment: result.comment,
            destination: this.opts.aeTitle,
          });
        } else {
          this.scannerOk();
        }
      } catch (err) {
        row.error = errorText(err);
        connectionProblem = true;
        this.scannerProblem(err, 'C-MOVE');
      }
      // The clock may be a test's: keep the real duration on top of the injected start.
      row.endedAt = new Date(startedAt.getTime() + (Date.now() - started));
      row.error = row.error?.slice(0, 512) ?? null;
      await this.db.source.getRepository(this.db.entities.RetrieveAttempt).insert(row);
      moves++;
      try {
        this.opts.onRetrieveAttempt?.(row);
      } catch (err) {
        this.log.error('retrieve attempt hook failed', { err: String(err) });
      }
      this.log.info('C-MOVE from the scanner', {
        scan: scan.id,
        study,
        series: m.seriesInstanceUid,
        level: m.level,
        requested: row.requested,
        completed: row.completed ?? undefined,
        failed: row.failed ?? undefined,
        status: row.status === null ? undefined : hex4(row.status),
        error: row.error ?? undefined,
        ms: Date.now() - started,
      });
      if (connectionProblem) break;
    }
    return moves;
  }

  // -- the scanner's state, logged once per change ----------------------------------------------------------------

  private scannerOk(): void {
    if (this.scannerState === 'ok') return;
    const was = this.scannerState;
    this.scannerState = 'ok';
    if (was !== 'unknown') this.log.info('the scanner answers again', { scanner: describe(this.opts.scanner) });
  }

  private scannerProblem(err: unknown, what: string): void {
    let key: string;
    let message: string;
    if (err instanceof ScuRejectedError) {
      key = `rejected:${err.result}:${err.source}:${err.reason}`;
      message = 'the scanner rejects our association (is our AE title known to it?)';
    } else if (err instanceof ScuConnectError) {
      key = 'down';
      message = 'the scanner is not reachable';
    } else if (err instanceof ScuTimeoutError) {
      key = 'timeout';
      message = 'the scanner does not answer in time';
    } else if (err instanceof ScuStatusError) {
      key = `status:${err.status}`;
      message = `the scanner refuses the ${err.operation}`;
    } else if (err instanceof ScuError) {
      key = 'aborted';
      message = 'the scanner ended the association';
    } else {
      key = `error:${String(err)}`;
      message = `${what} failed`;
    }
    this.noteScanner(key, message, {
      operation: what,
      status: err instanceof ScuStatusError ? hex4(err.status) : undefined,
      err: errorText(err),
    });
  }

  private noteScanner(key: string, message: string, meta: Record<string, unknown>): void {
    if (this.scannerState === key) return;
    this.scannerState = key;
    this.log.warn(message, { scanner: describe(this.opts.scanner), ...meta });
  }
}

function describe(p: ScuPeer): string {
  return `${p.aeTitle}@${p.host}:${p.port}`;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function attemptFailed(r: RetrieveAttemptRow): boolean {
  if (r.error || r.status === null) return true;
  if (isFailure(r.status)) return true;
  return (r.completed ?? 0) === 0 && (r.requested ?? 0) > 0;
}

function merge(into: Map<string, SeriesExpectation>, from: Map<string, SeriesExpectation>): void {
  for (const s of from.values()) {
    const t = into.get(s.seriesInstanceUid);
    if (!t) {
      into.set(s.seriesInstanceUid, s);
      continue;
    }
    t.sopInstanceUids = [...new Set([...t.sopInstanceUids, ...s.sopInstanceUids])];
    if (s.scannerCount !== undefined) t.scannerCount = s.scannerCount;
    t.seriesNumber ??= s.seriesNumber;
  }
}
