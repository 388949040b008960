/**
 * Owns `loadScanFacts(db, scan)`: one snapshot of what a reconcile pass needs to decide about a scan, read in one
 * place (what the MPPS named per series, what is here, the MPPS state, the last activity, the retrieve history), so
 * the decision itself (domain/completeness.ts) runs on data, not on queries interleaved with it.
 */
import { In } from 'typeorm';
import type { Database } from './dataSource.js';
import { retrieveOutcome, type RetrieveAttemptRow } from './retrieveEntities.js';
import { parseDbDate, type ScanRow } from './scanEntities.js';
import { expectedOf } from './scanStore.js';
import type { SeriesAttempts, SeriesExpectation } from '../domain/completeness.js';
import type { MppsStatus } from '../domain/mpps.js';

export interface ScanFacts {
  /** SOP Instance UIDs the scan's MPPS (and earlier IMAGE-level C-FINDs) named, per series. */
  expected: Map<string, SeriesExpectation>;
  /** What is stored here of the scan's study, per series (empty while the study is unknown). */
  received: Map<string, Set<string>>;
  /** Several steps for one scan: DISCONTINUED if any is, IN PROGRESS while any is, else COMPLETED. */
  mppsStatus: MppsStatus | null;
  /** The request's creation, the study's last image or the scan's last MPPS event, whichever is latest. */
  lastActivity: Date;
  lastInstance?: Date;
  lastMpps?: Date;
  /** Retrieve history per series ('*' for STUDY-level moves). */
  attempts: Map<string, SeriesAttempts>;
}

export async function loadScanFacts(db: Database, scan: ScanRow): Promise<ScanFacts> {
  const study = scan.studyInstanceUid;
  const [expected, received, steps, attemptRows] = await Promise.all([
    expectedSeries(db, scan.id),
    study ? receivedOf(db, study) : Promise.resolve(new Map<string, Set<string>>()),
    db.source.getRepository(db.entities.MppsStep).find({
      where: { scanId: scan.id },
      select: { status: true, updatedAt: true },
      order: { createdAt: 'ASC' },
    }),
    db.source
      .getRepository(db.entities.RetrieveAttempt)
      .find({ where: { scanId: scan.id }, order: { startedAt: 'ASC' } }),
  ]);
  const lastInstance = received.size ? await lastReceived(db, study!) : undefined;
  const lastMpps = steps.reduce<Date | undefined>((m, s) => (!m || s.updatedAt > m ? s.updatedAt : m), undefined);
  const last = Math.max(scan.requestedAt.getTime(), lastInstance?.getTime() ?? 0, lastMpps?.getTime() ?? 0);
  return {
    expected,
    received,
    mppsStatus: stepsStatus(steps.map((s) => s.status)),
    lastActivity: new Date(last),
    ...(lastInstance ? { lastInstance } : {}),
    ...(lastMpps ? { lastMpps } : {}),
    attempts: attemptsBySeries(attemptRows),
  };
}

/** What is stored of a study, per series. */
export async function receivedOf(db: Database, study: string): Promise<Map<string, Set<string>>> {
  const rows = await db.source.getRepository(db.entities.Instance).find({
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

async function expectedSeries(db: Database, scanId: string): Promise<Map<string, SeriesExpectation>> {
  const out = new Map<string, SeriesExpectation>();
  for (const r of await expectedOf(db, scanId)) {
    let s = out.get(r.seriesInstanceUid);
    if (!s) out.set(r.seriesInstanceUid, (s = { seriesInstanceUid: r.seriesInstanceUid, sopInstanceUids: [] }));
    s.sopInstanceUids.push(r.sopInstanceUid);
  }
  if (out.size) {
    const meta = await db.source.getRepository(db.entities.Series).find({
      where: { seriesInstanceUid: In([...out.keys()]) },
      select: { seriesInstanceUid: true, seriesNumber: true },
    });
    for (const m of meta) out.get(m.seriesInstanceUid)!.seriesNumber = m.seriesNumber;
  }
  return out;
}

async function lastReceived(db: Database, study: string): Promise<Date | undefined> {
  const r = await db.source
    .getRepository(db.entities.Instance)
    .createQueryBuilder('i')
    .select('MAX(i.receivedAt)', 'last')
    .where('i.studyInstanceUid = :s', { s: study })
    .getRawOne<{ last: string | Date | null }>();
  if (!r?.last) return undefined;
  const d = parseDbDate(r.last);
  return Number.isFinite(d.getTime()) ? d : undefined;
}

function stepsStatus(statuses: string[]): MppsStatus | null {
  if (!statuses.length) return null;
  if (statuses.includes('DISCONTINUED')) return 'DISCONTINUED';
  if (statuses.includes('IN PROGRESS')) return 'IN PROGRESS';
  return 'COMPLETED';
}

function attemptsBySeries(rows: RetrieveAttemptRow[]): Map<string, SeriesAttempts> {
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
