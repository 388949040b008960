/** Owns the SQL of retrieve attempts: one row per C-MOVE the reconciler sent (or tried to send) for a scan. */
import type { Database } from './dataSource.js';
import { fitRow } from './fit.js';
import type { RetrieveAttemptRow } from './retrieveEntities.js';

export async function insertRetrieveAttempt(db: Database, row: RetrieveAttemptRow): Promise<RetrieveAttemptRow> {
  const fitted = fitRow(db.entities.RetrieveAttempt, row);
  await db.source.getRepository(db.entities.RetrieveAttempt).insert(fitted);
  return fitted;
}
