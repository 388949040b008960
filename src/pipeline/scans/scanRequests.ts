/**
 * The rules of scan requests and their public face: adding a request (or finding the one that already asks the
 * same), cancelling, linking an MPPS to its scan, resolving a request to its study, and running every change one at a
 * time. The `active-scans/` folder is watched by requestWatcher.ts, study look-ups are in scanStudies.ts and the read
 * model in scanViews.ts; callers reach all three through this class.
 */
import { randomUUID } from 'node:crypto';
import { Mutex } from 'async-mutex';
import type { Database } from '../../db/dataSource.js';
import type { ScanRow, ScanSource, ScanState } from '../../db/scanEntities.js';
import {
  activeScanByFile,
  activeScanFor,
  activeScanOfStudy,
  activeScans,
  deleteScan,
  findScan,
  insertExpected,
  insertScan,
  markEnded,
  moveExpected,
  unresolvedActiveScans,
  updateScan,
} from '../../db/scanStore.js';
import { linkMppsStep, mppsStatusOf, updateStepsOfScan } from '../../db/mppsStore.js';
import type { Logger } from '../../logging/logger.js';
import { isValidUid } from '../../domain/uid.js';
import type { ExpectedSeries, MppsSummary } from '../../domain/mpps.js';
import { requestFileContent, requestFileName, type ScanRequestSpec } from '../../domain/scanRequest.js';
import type { IngestedInstance } from '../ingest.js';
import { ActiveStudies, studyFromReceivedImages, unresolvedScanOf } from '../../db/scanStudies.js';
import { RequestWatcher, type RequestWatcherOptions } from './requestWatcher.js';
import { describeScan, listScans, scanPage, scanViews, type ScanView } from '../../db/scanViews.js';

export type { RequestWatcherOptions as ScanRequestsOptions };

/**
 * Scan requests: rows in `scans` and their files in `active-scans/`, kept in step both ways. The database is the
 * record; the files are the admin's view. At start-up a file without a row gets a row and an active row without a
 * file gets its file back; while running, a new file becomes a request, a file removed by someone cancels its
 * request, and a file that cannot be read goes to `problem/` with a `.reason.txt`. Everything that changes rows or
 * files runs one at a time.
 */
export class ScanRequests {
  private readonly mutex = new Mutex();
  private readonly files: RequestWatcher;
  /** Active scans created by an MPPS whose StudyInstanceUID is not known yet. */
  private readonly unresolved = new Set<string>();
  private readonly activeStudies: ActiveStudies;

  constructor(
    private readonly db: Database,
    readonly dataDir: string,
    private readonly log: Logger,
    opts: RequestWatcherOptions = {},
  ) {
    this.activeStudies = new ActiveStudies(db);
    this.files = new RequestWatcher(
      dataDir,
      {
        exclusive: (fn) => this.serial(fn),
        activeRequests: () => activeScans(this.db),
        activeRequest: (fileName) => activeScanByFile(this.db, fileName),
        addFromFile: async (spec) => (await this.addNow(spec, 'file')).scan,
        cancel: (row, reason) => this.cancel(row, reason),
        writeFile: (row) => this.writeRequestFile(row),
      },
      log,
      opts,
    );
  }

  /** The `active-scans/` folder. */
  get dir(): string {
    return this.files.dir;
  }

  /** Every received image asks whether its study has an active request. */
  isActiveStudy(studyInstanceUid: string): Promise<boolean> {
    return this.activeStudies.has(studyInstanceUid);
  }

  private activeStudiesChanged(): void {
    this.activeStudies.changed();
  }

  /** Runs fn after everything queued before it; a failure is logged and rethrown to the caller only. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex.runExclusive(fn);
  }

  // -- life cycle ------------------------------------------------------------------------------------------------

  async start(): Promise<void> {
    const unresolved = await unresolvedActiveScans(this.db);
    for (const s of unresolved) if (s.mppsUid) this.unresolved.add(s.id);
    await this.files.start();
  }

  async stop(): Promise<void> {
    this.files.stop();
    await this.mutex.waitForUnlock();
  }

  // -- request files ---------------------------------------------------------------------------------------------

  private async writeRequestFile(row: ScanRow): Promise<void> {
    if (!row.fileName || row.state !== 'active') return;
    const mppsStatus = row.mppsUid ? await mppsStatusOf(this.db, row.mppsUid) : null;
    this.files.write(
      row.fileName,
      requestFileContent({
        studyInstanceUid: row.studyInstanceUid,
        accessionNumber: row.accessionNumber,
        patientId: row.patientId,
        studyDate: row.studyDate,
        mppsSopInstanceUid: row.mppsUid,
        remote: row.remote ?? null,
        state: row.state,
        source: row.source,
        requestedAt: row.requestedAt,
        mppsStatus,
      }),
    );
  }

  // -- the request side ------------------------------------------------------------------------------------------

  /** Adds a request (or finds the active one that already asks for the same thing) and writes its file. */
  add(spec: ScanRequestSpec, source: ScanSource): Promise<{ scan: ScanRow; created: boolean }> {
    return this.serial(() => this.addNow(spec, source));
  }

  private async addNow(spec: ScanRequestSpec, source: ScanSource): Promise<{ scan: ScanRow; created: boolean }> {
    const existing = await activeScanFor(this.db, spec);
    if (existing) {
      if (existing.fileName) this.files.markSeen(existing.fileName);
      if (existing.fileName && !this.files.exists(existing.fileName)) await this.writeRequestFile(existing);
      return { scan: existing, created: false };
    }
    const now = new Date();
    const row: ScanRow = {
      id: randomUUID(),
      studyInstanceUid: spec.studyInstanceUid,
      accessionNumber: spec.accessionNumber,
      patientId: spec.patientId,
      studyDate: spec.studyDate,
      mppsUid: spec.mppsSopInstanceUid,
      remote: spec.remote ?? null,
      state: 'active',
      source,
      fileName: requestFileName(spec),
      reason: null,
      requestedAt: now,
      updatedAt: now,
      completedAt: null,
    };
    await insertScan(this.db, row);
    this.activeStudiesChanged();
    await this.writeRequestFile(row);
    if (!row.studyInstanceUid && row.mppsUid) this.unresolved.add(row.id);
    this.log.info('scan requested', {
      scan: row.id,
      study: row.studyInstanceUid ?? undefined,
      source,
      file: row.fileName,
      state: row.state,
    });
    this.log.debug('scan request details', {
      scan: row.id,
      accessionNumber: row.accessionNumber,
      patientId: row.patientId,
      studyDate: row.studyDate,
    });
    return { scan: row, created: true };
  }

  private async cancel(row: ScanRow, reason: string): Promise<void> {
    const now = new Date();
    await updateScan(this.db, row.id, { state: 'cancelled', reason, updatedAt: now });
    this.unresolved.delete(row.id);
    if (row.fileName) this.files.forget(row.fileName);
    this.log.info('scan cancelled', { scan: row.id, study: row.studyInstanceUid ?? undefined, reason });
  }

  /**
   * Called for every accepted N-CREATE / N-SET: finds or makes the step's scan, records the instances it expects
   * and refreshes the request file. Returns the scan id.
   */
  linkMpps(input: {
    mppsUid: string;
    scanId: string | null;
    summary: MppsSummary;
    expected: ExpectedSeries[];
  }): Promise<string> {
    return this.serial(() => this.linkMppsNow(input));
  }

  private async linkMppsNow(input: {
    mppsUid: string;
    scanId: string | null;
    summary: MppsSummary;
    expected: ExpectedSeries[];
  }): Promise<string> {
    const { mppsUid, summary } = input;
    const study = summary.studyInstanceUids[0] ?? null;
    let scan = input.scanId ? await findScan(this.db, input.scanId) : null;
    if (!scan) {
      scan = (
        await this.addNow(
          {
            studyInstanceUid: study,
            accessionNumber: study ? (summary.accessionNumber ?? null) : null,
            patientId: study ? (summary.patientId ?? null) : null,
            studyDate: null,
            mppsSopInstanceUid: mppsUid,
          },
          'mpps',
        )
      ).scan;
      if (!scan.accessionNumber && summary.accessionNumber) scan.accessionNumber = summary.accessionNumber;
      if (!scan.patientId && summary.patientId) scan.patientId = summary.patientId;
    }
    scan.mppsUid = mppsUid;
    scan.updatedAt = new Date();
    await updateScan(this.db, scan.id, {
      mppsUid,
      updatedAt: scan.updatedAt,
      accessionNumber: scan.accessionNumber ?? null,
      patientId: scan.patientId ?? null,
    });
    await linkMppsStep(this.db, mppsUid, scan.id);
    const rows = input.expected.flatMap((s) =>
      s.instances.map((i) => ({
        scanId: scan.id,
        sopInstanceUid: i.sopInstanceUid,
        seriesInstanceUid: i.seriesInstanceUid,
        sopClassUid: i.sopClassUid ?? null,
        mppsUid,
      })),
    );
    await insertExpected(this.db, rows);
    let current: ScanRow = scan;
    if (!current.studyInstanceUid && study) current = await this.resolve(current, study, 'MPPS');
    else if (!current.studyInstanceUid) {
      const found = await studyFromReceivedImages(this.db, current.id, mppsUid);
      if (found) current = await this.resolve(current, found, 'received images');
    }
    await this.writeRequestFile(current);
    return current.id;
  }

  /** The study of an unresolved MPPS scan became known: rename its file, or fold it into the study's request. */
  private async resolve(scan: ScanRow, study: string, how: string): Promise<ScanRow> {
    if (!isValidUid(study)) return scan;
    this.unresolved.delete(scan.id);
    const other = await activeScanOfStudy(this.db, study);
    if (other && other.id !== scan.id) {
      await moveExpected(this.db, scan.id, other.id);
      await updateStepsOfScan(this.db, scan.id, { scanId: other.id, studyInstanceUid: study });
      await updateScan(this.db, other.id, { mppsUid: scan.mppsUid ?? other.mppsUid, updatedAt: new Date() });
      await deleteScan(this.db, scan.id);
      this.files.remove(scan.fileName);
      this.log.info('scan request merged into the request for its study', {
        scan: scan.id,
        into: other.id,
        study,
        how,
      });
      const merged = (await findScan(this.db, other.id))!;
      await this.writeRequestFile(merged);
      return merged;
    }
    const fileName = `${study}.json`;
    const oldName = scan.fileName;
    const updated: ScanRow = { ...scan, studyInstanceUid: study, fileName, updatedAt: new Date() };
    await updateScan(this.db, scan.id, { studyInstanceUid: study, fileName, updatedAt: updated.updatedAt });
    this.activeStudiesChanged();
    await updateStepsOfScan(this.db, scan.id, { studyInstanceUid: study });
    await this.writeRequestFile(updated);
    if (oldName && oldName !== fileName) this.files.remove(oldName);
    this.log.info('scan request resolved to its study', { scan: scan.id, study, how, file: fileName });
    return updated;
  }

  /** Ingest's 'instance' event: an image may name the MPPS of a scan whose study is not known yet. */
  async onInstance(inst: IngestedInstance): Promise<void> {
    if (this.unresolved.size === 0 || inst.duplicate) return;
    try {
      await this.serial(async () => {
        const ids = [...this.unresolved];
        if (!ids.length) return;
        const scanId = await unresolvedScanOf(this.db, ids, inst.sopInstanceUid);
        if (!scanId) return;
        const scan = await findScan(this.db, scanId);
        if (scan && scan.state === 'active' && !scan.studyInstanceUid) {
          await this.resolve(scan, inst.studyInstanceUid, 'received images');
        }
      });
    } catch (err) {
      this.log.error('cannot link an image to its scan request', { sop: inst.sopInstanceUid, err: String(err) });
    }
  }

  // -- for completion and the reconciler -------------------------------------------------------------------------

  /**
   * Completion ended a scan (in turn with every other change to requests): its file leaves active-scans/ without that
   * counting as a cancel, then the row, if still active, takes the outcome. Both can be repeated. The file first: a
   * crash before the row update leaves an active row without a file, which start-up restores and the next run
   * completes again; the other way round a stray file would become a new request.
   */
  end(
    scan: Pick<ScanRow, 'id' | 'fileName'>,
    state: 'finished' | 'failed',
    reason: string | undefined,
    now: Date,
  ): Promise<void> {
    return this.serial(async () => {
      const row = await findScan(this.db, scan.id);
      this.files.remove(row?.fileName ?? scan.fileName);
      if (row && row.state === 'active') await markEnded(this.db, scan.id, state, reason, now);
    });
  }

  /** The reconciler found the study of a request that named an accession number or a patient. */
  resolveStudy(scanId: string, study: string, how: string): Promise<ScanRow | undefined> {
    return this.serial(async () => {
      const scan = await findScan(this.db, scanId);
      if (!scan || scan.state !== 'active' || scan.studyInstanceUid) return scan ?? undefined;
      return this.resolve(scan, study, how);
    });
  }

  // -- queries for the CLI and the API (scanViews.ts) -------------------------------------------------------------

  list(state?: ScanState): Promise<ScanView[]> {
    return listScans(this.db, state);
  }

  page(opts: { state?: ScanState; limit: number; offset: number }): Promise<{ total: number; scans: ScanView[] }> {
    return scanPage(this.db, opts);
  }

  describe(key: string): Promise<ScanView | undefined> {
    return describeScan(this.db, key);
  }

  views(scans: ScanRow[]): Promise<ScanView[]> {
    return scanViews(this.db, scans);
  }
}
