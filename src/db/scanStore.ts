/** Scan rows' data access: the expected instances of a scan (the one chunked insert, moving them to another scan). */
import type { Database } from './dataSource.js';
import type { ScanExpectedRow } from './scanEntities.js';

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
  await db.source
    .getRepository(db.entities.Scan)
    .update({ id: scanId }, { state, reason: reason?.slice(0, 512) ?? null, completedAt: now, updatedAt: now });
}

/** How many scans are in each state (states without a scan are absent); the count as the driver returns it. */
export async function scanCountsByState(db: Database): Promise<Array<{ state: string; n: unknown }>> {
  return db.source
    .getRepository(db.entities.Scan)
    .createQueryBuilder('s')
    .select('s.state', 'state')
    .addSelect('COUNT(*)', 'n')
    .groupBy('s.state')
    .getRawMany<{ state: string; n: unknown }>();
}
