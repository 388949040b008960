/**
 * Scan rows' data access: the rows themselves (found by id, file, study or what a request asks for), their end, the
 * counts per state, and the expected instances of a scan (the one chunked insert, moving them to another scan).
 */
import { In, IsNull, Not } from 'typeorm';
import type { Database } from './dataSource.js';
import { fitRow } from './fit.js';
import type { ScanExpectedRow, ScanRow } from './scanEntities.js';
import type { ScanRequestSpec } from '../domain/scanRequest.js';

const scansOf = (db: Database) => db.source.getRepository(db.entities.Scan);

export async function findScan(db: Database, id: string): Promise<ScanRow | null> {
  return scansOf(db).findOne({ where: { id } });
}

export async function activeScans(db: Database): Promise<ScanRow[]> {
  return scansOf(db).find({ where: { state: 'active' }, order: { requestedAt: 'ASC' } });
}

export async function activeScanByFile(db: Database, fileName: string): Promise<ScanRow | null> {
  return scansOf(db).findOne({ where: { state: 'active', fileName } });
}

export async function activeScanOfStudy(db: Database, studyInstanceUid: string): Promise<ScanRow | null> {
  return scansOf(db).findOne({ where: { state: 'active', studyInstanceUid } });
}

/** Active scans whose study is not known yet. */
export async function unresolvedActiveScans(db: Database): Promise<ScanRow[]> {
  return scansOf(db).find({ where: { state: 'active', studyInstanceUid: IsNull() } });
}

/** The active request that already asks for what `spec` asks for: the same study, MPPS, accession or patient. */
export async function activeScanFor(db: Database, spec: ScanRequestSpec): Promise<ScanRow | null> {
  if (spec.studyInstanceUid) return activeScanOfStudy(db, spec.studyInstanceUid);
  const unresolved = { state: 'active' as const, studyInstanceUid: IsNull() };
  if (spec.mppsSopInstanceUid)
    return scansOf(db).findOne({ where: { ...unresolved, mppsUid: spec.mppsSopInstanceUid } });
  if (spec.accessionNumber)
    return scansOf(db).findOne({ where: { ...unresolved, accessionNumber: spec.accessionNumber } });
  return scansOf(db).findOne({
    where: {
      ...unresolved,
      accessionNumber: IsNull(),
      patientId: spec.patientId ?? IsNull(),
      studyDate: spec.studyDate ?? IsNull(),
    },
  });
}

export async function insertScan(db: Database, row: ScanRow): Promise<void> {
  await scansOf(db).insert(fitRow(db.entities.Scan, row));
}

export async function updateScan(db: Database, id: string, change: Partial<ScanRow>): Promise<void> {
  await scansOf(db).update({ id }, fitRow(db.entities.Scan, change));
}

export async function deleteScan(db: Database, id: string): Promise<void> {
  await scansOf(db).delete({ id });
}

/** Rows per INSERT: keeps the bound parameters of one statement well under every driver's limit. */
const EXPECTED_CHUNK = 200;

/** Adds expected instances to scans; a (scan, SOP instance) already known is left as it is. */
export async function insertExpected(db: Database, rows: readonly ScanExpectedRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += EXPECTED_CHUNK) {
    await db.source
      .createQueryBuilder()
      .insert()
      .into(db.entities.ScanExpected)
      .values(rows.slice(i, i + EXPECTED_CHUNK))
      .orIgnore()
      .execute();
  }
}

/** The expected instances of one scan. */
export async function expectedOf(db: Database, scanId: string): Promise<ScanExpectedRow[]> {
  return db.source.getRepository(db.entities.ScanExpected).find({ where: { scanId } });
}

/** Moves a scan's expected instances to another scan (one already known there is kept once). */
export async function moveExpected(db: Database, fromScanId: string, toScanId: string): Promise<void> {
  const expected = await expectedOf(db, fromScanId);
  await insertExpected(
    db,
    expected.map((e) => ({ ...e, scanId: toScanId })),
  );
  await db.source.getRepository(db.entities.ScanExpected).delete({ scanId: fromScanId });
}

/** An active scan ends: its state, reason (cut to the column) and completion time. */
export async function markEnded(
  db: Database,
  scanId: string,
  state: 'finished' | 'failed',
  reason: string | undefined,
  now: Date,
): Promise<void> {
  await scansOf(db).update(
    { id: scanId },
    fitRow(db.entities.Scan, { state, reason: reason ?? null, completedAt: now, updatedAt: now }),
  );
}

/** How many scans are in each state (states without a scan are absent); the count as the driver returns it. */
export async function scanCountsByState(db: Database): Promise<Array<{ state: string; n: unknown }>> {
  return scansOf(db)
    .createQueryBuilder('s')
    .select('s.state', 'state')
    .addSelect('COUNT(*)', 'n')
    .groupBy('s.state')
    .getRawMany<{ state: string; n: unknown }>();
}

/** The scan of this study that ended last (finished or failed), if any. */
export async function lastEndedScanOfStudy(db: Database, studyInstanceUid: string): Promise<ScanRow | null> {
  return scansOf(db).findOne({
    where: { studyInstanceUid, state: In(['finished', 'failed']), completedAt: Not(IsNull()) },
    order: { completedAt: 'DESC' },
  });
}

export async function retrieveAttemptCount(db: Database, scanId: string): Promise<number> {
  return db.source.getRepository(db.entities.RetrieveAttempt).countBy({ scanId });
}
