import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import { parseDbDate, type ScanRow } from '../db/scanEntities.js';
import { activeScans, findScan, lastEndedScanOfStudy, retrieveAttemptCount } from '../db/scanStore.js';
import { forwardView, forwardsOfScan } from '../db/outboxStore.js';
import { KeyedMutex } from '../scheduler/keyedMutex.js';
import {
  archivedCount,
  findStudy,
  receivedPerSeries,
  seriesByUids,
  seriesOfStudy,
  spooledStudies,
  writeGroupKeys,
} from '../db/studyStore.js';
import type { Logger } from '../logging/logger.js';
import { DATA_DIRS } from '../domain/paths.js';
import { isValidUid } from '../domain/uid.js';
import { seriesGroupKey, studyGroupKey, type StudyGroup } from '../domain/grouping.js';
import type { Archiver } from './archive.js';
import type { ScanRequests } from './scans/scanRequests.js';
import { writeFileAtomic } from '../storage/atomicWrite.js';

export interface SeriesSummary {
  seriesInstanceUID: string;
  seriesNumber: number | null;
  modality: string | null;
  seriesDescription: string | null;
  expected: number;
  received: number;
}

/** The file in finished-scans/ or failed-scans/ (SPEC section 4). */
export interface ScanSummary {
  studyInstanceUID: string | null;
  accessionNumber: string | null;
  patientId: string | null;
  state: 'finished' | 'failed';
  reason?: string;
  requestedAt: string;
  mppsStatus: string | null;
  completedAt: string;
  /** Set when a late image changed the summary after completion. */
  updatedAt?: string;
  source: string;
  scanId: string;
  series: SeriesSummary[];
  /** Instances of the study in the archive. */
  archived: number;
  /** C-MOVE attempts made for the scan. */
  retrieveAttempts: number;
  /** The NiDB-style group of the study (completion.grouping 'nidb' only). */
  group?: StudyGroup;
  /** Where the study is forwarded, per destination (kept up to date by each forwarding outcome). */
  forwards?: Array<ReturnType<typeof forwardView>>;
}

export interface Outcome {
  state: 'finished' | 'failed';
  reason?: string;
  mppsStatus: string | null;
  /** Expected instances per SeriesInstanceUID, as the reconciler worked them out. */
  expected: Map<string, number>;
}

export interface CompletionOptions {
  /** Images of a study that no request names are archived after this long without a new one. */
  quietPeriodSeconds: number;
  now: () => Date;
  /** completion.grouping: 'nidb' records NiDB-style group keys on the study and series rows. Default 'uid'. */
  grouping?: 'uid' | 'nidb';
}

/**
 * Ends a scan: its study archived (spool -> site/raw, rows marked), the summary written to finished-scans/ or
 * failed-scans/ (atomically), the request removed from active-scans/, the row set finished / failed. Every step can be
 * repeated, so a crash anywhere is mended by the next run. Also archives late images of ended scans (updating their
 * summary) and images of studies no request names, after the quiet period.
 */
export class Completion {
  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly log: Logger,
    private readonly scans: ScanRequests,
    private readonly opts: CompletionOptions,
    private readonly archiver: Archiver,
    /** The forwarding outbox: told of each scan that ends, before the scan is marked ended. */
    private readonly outbox?: { enqueue(scan: ScanRow, state: 'finished' | 'failed'): Promise<void> },
  ) {}

  /** Rewrites of one summary file (late images, forwarding outcomes) one at a time. */
  private readonly summaries = new KeyedMutex();

  summaryFile(state: 'finished' | 'failed', scan: Pick<ScanRow, 'studyInstanceUid' | 'fileName' | 'id'>): string {
    const dir = state === 'finished' ? DATA_DIRS.finishedScans : DATA_DIRS.failedScans;
    const name =
      scan.studyInstanceUid && isValidUid(scan.studyInstanceUid)
        ? `${scan.studyInstanceUid}.json`
        : (scan.fileName ?? `${scan.id}.json`);
    return path.join(this.dataDir, dir, name);
  }

  async complete(scan: ScanRow, outcome: Outcome): Promise<ScanSummary> {
    const now = this.opts.now();
    if (scan.studyInstanceUid) await this.archiver.archiveStudy(scan.studyInstanceUid);
    const group = scan.studyInstanceUid ? await this.group(scan.studyInstanceUid) : undefined;
    // The outbox rows first: the summary names them (a re-run after a crash enqueues nothing twice).
    await this.outbox?.enqueue(scan, outcome.state);
    const forwards = (await forwardsOfScan(this.db, scan.id)).map(forwardView);
    const summary: ScanSummary = {
      studyInstanceUID: scan.studyInstanceUid,
      accessionNumber: scan.accessionNumber,
      patientId: scan.patientId,
      state: outcome.state,
      ...(outcome.state === 'failed' ? { reason: outcome.reason ?? 'failed' } : {}),
      requestedAt: scan.requestedAt.toISOString(),
      mppsStatus: outcome.mppsStatus,
      completedAt: now.toISOString(),
      source: scan.source,
      scanId: scan.id,
      series: await this.seriesSummary(scan.studyInstanceUid, outcome.expected),
      archived: scan.studyInstanceUid ? await archivedCount(this.db, scan.studyInstanceUid) : 0,
      retrieveAttempts: await retrieveAttemptCount(this.db, scan.id),
      ...(group ? { group } : {}),
      ...(forwards.length ? { forwards } : {}),
    };
    const file = this.summaryFile(outcome.state, scan);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await this.summaries.run(file, async () => writeFileAtomic(file, `${JSON.stringify(summary, null, 2)}\n`));
    await this.scans.end(scan, outcome.state, outcome.reason, now);
    const meta = { scan: scan.id, study: scan.studyInstanceUid ?? undefined, file: path.relative(this.dataDir, file) };
    if (outcome.state === 'finished') this.log.info('scan finished', { ...meta, archived: summary.archived });
    else this.log.warn('scan failed', { ...meta, reason: outcome.reason });
    return summary;
  }

  /**
   * Under 'nidb': the study's group (subject = PatientID; Modality + StudyDate + StudyTime; SeriesNumber) written to
   * studies.group_key and series.group_key. The Modality is the lowest-numbered series' one (studies carry none).
   * Re-runnable: the keys are a pure function of the rows. Undefined under 'uid'.
   */
  async group(study: string): Promise<StudyGroup | undefined> {
    if (this.opts.grouping !== 'nidb') return undefined;
    const s = await findStudy(this.db, study);
    if (!s) return undefined;
    const series = await seriesOfStudy(this.db, study);
    series.sort((a, b) => (a.seriesNumber ?? 1e9) - (b.seriesNumber ?? 1e9));
    const g = studyGroupKey({
      patientId: s.patientId,
      modality: series.find((x) => x.modality)?.modality,
      studyDate: s.studyDate,
      studyTime: s.studyTime,
      studyInstanceUid: study,
    });
    await writeGroupKeys(
      this.db,
      study,
      g.studyKey,
      series.map((x) => ({
        seriesInstanceUid: x.seriesInstanceUid,
        groupKey: seriesGroupKey(g.studyKey, x.seriesNumber, x.seriesInstanceUid),
      })),
    );
    return g;
  }

  private async seriesSummary(study: string | null, expected: Map<string, number>): Promise<SeriesSummary[]> {
    const received = study ? await receivedPerSeries(this.db, study) : new Map<string, number>();
    const uids = [...new Set([...expected.keys(), ...received.keys()])];
    const meta = await seriesByUids(this.db, uids);
    const by = new Map(meta.map((m) => [m.seriesInstanceUid, m]));
    const out = uids.map((uid) => ({
      seriesInstanceUID: uid,
      seriesNumber: by.get(uid)?.seriesNumber ?? null,
      modality: by.get(uid)?.modality ?? null,
      seriesDescription: by.get(uid)?.seriesDescription ?? null,
      expected: Math.max(expected.get(uid) ?? 0, expected.has(uid) ? 0 : (received.get(uid) ?? 0)),
      received: received.get(uid) ?? 0,
    }));
    out.sort(
      (a, b) =>
        (a.seriesNumber ?? 1e9) - (b.seriesNumber ?? 1e9) || a.seriesInstanceUID.localeCompare(b.seriesInstanceUID),
    );
    return out;
  }

  /**
   * Spooled images no active scan is waiting for: a study whose scan ended (late images) is archived at once and its
   * summary updated; a study no request names is archived once no image came for the quiet period.
   */
  async sweep(): Promise<void> {
    const rows = await spooledStudies(this.db);
    if (!rows.length) return;
    const active = await activeScans(this.db);
    const activeStudies = new Set(active.map((s) => s.studyInstanceUid).filter(Boolean));
    const unresolved = active.filter((s) => !s.studyInstanceUid);
    const now = this.opts.now().getTime();
    for (const r of rows) {
      if (activeStudies.has(r.study)) continue;
      try {
        const ended = await lastEndedScanOfStudy(this.db, r.study);
        if (ended) {
          await this.late(ended);
          continue;
        }
        if (unresolved.length && (await this.mayBelongTo(r.study, unresolved))) continue;
        const last = parseDbDate(r.last);
        if (now - last.getTime() < this.opts.quietPeriodSeconds * 1000) continue;
        const res = await this.archiver.archiveStudy(r.study);
        await this.group(r.study);
        this.log.info('study no request names archived after the quiet period', {
          study: r.study,
          archived: res.archived,
        });
      } catch (err) {
        this.log.error('cannot archive spooled images', { study: r.study, err: String(err) });
      }
    }
  }

  /** An active request that names no study yet may be for this one (same accession number or patient). */
  private async mayBelongTo(study: string, unresolved: ScanRow[]): Promise<boolean> {
    const s = await findStudy(this.db, study);
    if (!s) return false;
    return unresolved.some(
      (u) =>
        (u.accessionNumber && u.accessionNumber === s.accessionNumber) ||
        (!u.accessionNumber && u.patientId && u.patientId === s.patientId) ||
        (!u.accessionNumber && !u.patientId),
    );
  }

  /** Late images of an ended scan: archived, and its summary's counts brought up to date. */
  private async late(scan: ScanRow): Promise<void> {
    const study = scan.studyInstanceUid!;
    const res = await this.archiver.archiveStudy(study);
    const state = scan.state === 'failed' ? 'failed' : 'finished';
    const file = this.summaryFile(state, scan);
    await this.summaries.run(file, () => this.rewriteLate(scan, study, state, file));
    this.log.info('late images of an ended scan archived; summary updated', {
      scan: scan.id,
      study,
      archived: res.archived,
      file: path.relative(this.dataDir, file),
    });
  }

  /** A forwarding outcome of an ended scan: its summary's `forwards` brought up to date. */
  async forwardsChanged(scanId: string): Promise<void> {
    const scan = await findScan(this.db, scanId);
    if (!scan || (scan.state !== 'finished' && scan.state !== 'failed')) return;
    const file = this.summaryFile(scan.state, scan);
    await this.summaries.run(file, async () => {
      const summary = readSummary(file);
      if (!summary) return;
      summary.forwards = (await forwardsOfScan(this.db, scanId)).map(forwardView);
      writeFileAtomic(file, `${JSON.stringify(summary, null, 2)}\n`);
    });
  }

  private async rewriteLate(scan: ScanRow, study: string, state: 'finished' | 'failed', file: string): Promise<void> {
    const group = await this.group(study);
    const summary = readSummary(file);
    const expected = new Map((summary?.series ?? []).map((s) => [s.seriesInstanceUID, s.expected]));
    const series = await this.seriesSummary(study, expected);
    const updated: ScanSummary = {
      ...(summary ?? {
        studyInstanceUID: study,
        accessionNumber: scan.accessionNumber,
        patientId: scan.patientId,
        state,
        ...(scan.reason ? { reason: scan.reason } : {}),
        requestedAt: scan.requestedAt.toISOString(),
        mppsStatus: null,
        completedAt: (scan.completedAt ?? this.opts.now()).toISOString(),
        source: scan.source,
        scanId: scan.id,
        retrieveAttempts: 0,
      }),
      series,
      archived: await archivedCount(this.db, study),
      ...(group ? { group } : {}),
      updatedAt: this.opts.now().toISOString(),
    };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, `${JSON.stringify(updated, null, 2)}\n`);
  }
}

function readSummary(file: string): ScanSummary | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ScanSummary;
  } catch {
    return undefined;
  }
}
