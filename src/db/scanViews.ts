/**
 * The read model of scan requests for the HTTP API, the status page and the CLI: a request row joined with its MPPS
 * steps and per-series progress (expected by the MPPS, received by scannode). Reads only; nothing here changes a row.
 */
import { In } from 'typeorm';
import type { Database } from './dataSource.js';
import type { MppsStepRow, ScanRow, ScanState } from './scanEntities.js';
import type { RetrieveAttemptRow } from './retrieveEntities.js';
import { isValidUid } from '../domain/uid.js';
import { expectedInstances, type MppsStatus } from '../domain/mpps.js';

export interface ScanSeriesView {
  seriesInstanceUid: string;
  seriesNumber: number | null;
  modality: string | null;
  seriesDescription: string | null;
  /** SOP Instance UIDs the MPPS names for this series (0 when it names none). */
  expected: number;
  /** Instances of this series stored by scannode. */
  received: number;
  /** Of the expected ones, how many are stored. */
  receivedExpected: number;
}

export interface ScanView extends ScanRow {
  mppsStatus: string | null;
  mpps: Array<Pick<MppsStepRow, 'sopInstanceUid' | 'status' | 'startDate' | 'startTime' | 'endDate' | 'endTime'>>;
  series: ScanSeriesView[];
}

const scansOf = (db: Database) => db.source.getRepository(db.entities.Scan);

/** Every request (in one state, if given), oldest first. */
export async function listScans(db: Database, state?: ScanState): Promise<ScanView[]> {
  const rows = await scansOf(db).find({ where: state ? { state } : {}, order: { requestedAt: 'ASC' } });
  return scanViews(db, rows);
}

/**
 * One page of requests, newest first for ended ones and oldest first for active ones (the order people read them
 * in), with the total for paging.
 */
export async function scanPage(
  db: Database,
  opts: {
    state?: ScanState;
    limit: number;
    offset: number;
  },
): Promise<{ total: number; scans: ScanView[] }> {
  const [rows, total] = await scansOf(db).findAndCount({
    where: opts.state ? { state: opts.state } : {},
    order: opts.state === 'active' ? { requestedAt: 'ASC', id: 'ASC' } : { updatedAt: 'DESC', id: 'ASC' },
    take: opts.limit,
    skip: opts.offset,
  });
  return { total, scans: await scanViews(db, rows) };
}

/** A scan by StudyInstanceUID (the active one first, else the newest) or by its id. */
export async function describeScan(db: Database, key: string): Promise<ScanView | undefined> {
  const rows = await scansOf(db).find({
    where: isValidUid(key) ? { studyInstanceUid: key } : { id: key },
    order: { requestedAt: 'DESC' },
  });
  const row = rows.find((r) => r.state === 'active') ?? rows[0];
  return row ? (await scanViews(db, [row]))[0] : undefined;
}

/**
 * Per-series progress of many scans with a fixed number of queries (the status page shows hundreds of series):
 * expected (MPPS references) and received counts grouped by series, the series rows, and the MPPS steps.
 */
export async function scanViews(db: Database, scans: ScanRow[]): Promise<ScanView[]> {
  if (!scans.length) return [];
  const { ScanExpected, Instance, Series, MppsStep } = db.entities;
  const ids = scans.map((s) => s.id);
  const studies = [...new Set(scans.map((s) => s.studyInstanceUid).filter((u): u is string => !!u))];
  const key = (a: string, b: string) => `${a}\u0000${b}`;
  const count = (rows: Array<{ k1: string; k2: string; n: string | number }>) =>
    new Map(rows.map((r) => [key(r.k1, r.k2), Number(r.n)]));
  const source = db.source;
  /** Expected instances per (scan, series); with `received`, only those that have an instance row. */
  const expectedPerSeries = (received: boolean) => {
    const q = source.getRepository(ScanExpected).createQueryBuilder('e');
    if (received) q.innerJoin(Instance.options.name, 'i', 'i.sopInstanceUid = e.sopInstanceUid');
    return q
      .select('e.scanId', 'k1')
      .addSelect('e.seriesInstanceUid', 'k2')
      .addSelect('COUNT(*)', 'n')
      .where('e.scanId IN (:...ids)', { ids })
      .groupBy('e.scanId')
      .addGroupBy('e.seriesInstanceUid')
      .getRawMany()
      .then(count);
  };
  const [expected, receivedExpected, received, steps] = await Promise.all([
    expectedPerSeries(false),
    expectedPerSeries(true),
    studies.length
      ? source
          .getRepository(Instance)
          .createQueryBuilder('i')
          .select('i.studyInstanceUid', 'k1')
          .addSelect('i.seriesInstanceUid', 'k2')
          .addSelect('COUNT(*)', 'n')
          .where('i.studyInstanceUid IN (:...studies)', { studies })
          .groupBy('i.studyInstanceUid')
          .addGroupBy('i.seriesInstanceUid')
          .getRawMany()
          .then(count)
      : new Map<string, number>(),
    source.getRepository(MppsStep).find({ where: { scanId: In(ids) }, order: { createdAt: 'ASC' } }),
  ]);
  const seriesUids = new Set<string>();
  for (const k of [...expected.keys(), ...received.keys()]) seriesUids.add(k.split('\u0000')[1]!);
  const meta = seriesUids.size
    ? await source.getRepository(Series).find({ where: { seriesInstanceUid: In([...seriesUids]) } })
    : [];
  const metaBy = new Map(meta.map((m) => [m.seriesInstanceUid, m]));
  // Series not received yet are described by the MPPS that names them.
  const fromMpps = new Map<string, { description: string | null; modality: string | null }>();
  const stepsBy = new Map<string, MppsStepRow[]>();
  for (const step of steps) {
    if (!step.scanId) continue;
    stepsBy.set(step.scanId, [...(stepsBy.get(step.scanId) ?? []), step]);
    const ds = JSON.parse(step.dataset) as Record<string, unknown>;
    const modality = typeof ds.Modality === 'string' ? ds.Modality : null;
    for (const ser of expectedInstances(ds).series) {
      fromMpps.set(ser.seriesInstanceUid, { description: ser.seriesDescription ?? null, modality });
    }
  }
  const seriesOf = (prefix: string, m: Map<string, number>) =>
    [...m.keys()].filter((k) => k.startsWith(`${prefix}\u0000`)).map((k) => k.split('\u0000')[1]!);
  return scans.map((scan) => {
    const uids = new Set([
      ...seriesOf(scan.id, expected),
      ...(scan.studyInstanceUid ? seriesOf(scan.studyInstanceUid, received) : []),
    ]);
    const series: ScanSeriesView[] = [...uids].map((uid) => {
      const m = metaBy.get(uid);
      return {
        seriesInstanceUid: uid,
        seriesNumber: m?.seriesNumber ?? null,
        modality: m?.modality ?? fromMpps.get(uid)?.modality ?? null,
        seriesDescription: m?.seriesDescription ?? fromMpps.get(uid)?.description ?? null,
        expected: expected.get(key(scan.id, uid)) ?? 0,
        received: scan.studyInstanceUid ? (received.get(key(scan.studyInstanceUid, uid)) ?? 0) : 0,
        receivedExpected: receivedExpected.get(key(scan.id, uid)) ?? 0,
      };
    });
    series.sort(
      (a, b) =>
        (a.seriesNumber ?? 1e9) - (b.seriesNumber ?? 1e9) || a.seriesInstanceUid.localeCompare(b.seriesInstanceUid),
    );
    const own = stepsBy.get(scan.id) ?? [];
    const current = own.find((s) => s.sopInstanceUid === scan.mppsUid) ?? own[own.length - 1];
    return {
      ...scan,
      mppsStatus: (current?.status as MppsStatus | undefined) ?? null,
      mpps: own.map((s) => ({
        sopInstanceUid: s.sopInstanceUid,
        status: s.status,
        startDate: s.startDate,
        startTime: s.startTime,
        endDate: s.endDate,
        endTime: s.endTime,
      })),
      series,
    };
  });
}

/** A scan's retrieve attempts, newest first (at most `limit`). */
export async function retrieveAttemptsOf(db: Database, scanId: string, limit: number): Promise<RetrieveAttemptRow[]> {
  return db.source.getRepository(db.entities.RetrieveAttempt).find({
    where: { scanId },
    order: { startedAt: 'DESC' },
    take: limit,
  });
}
