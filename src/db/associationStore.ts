/** Owns the SQL of the association audit: one row per association, accepted or rejected. */
import type { AssociationSummary } from '../dimse/types.js';
import type { Database } from './dataSource.js';
import { fitRow } from './fit.js';

export async function insertAssociation(db: Database, s: AssociationSummary): Promise<void> {
  const { Association } = db.entities;
  await db.source.getRepository(Association).insert(
    fitRow(Association, {
      id: s.id,
      callingAe: s.callingAe,
      calledAe: s.calledAe,
      remoteAddress: s.remoteAddress,
      accepted: s.accepted,
      rejectReason: s.rejectReason ?? null,
      startedAt: s.startedAt,
      endedAt: s.endedAt,
      durationMs: s.endedAt.getTime() - s.startedAt.getTime(),
      instancesReceived: s.instancesReceived,
      bytesReceived: s.bytesReceived,
      failures: s.failures,
      aborted: s.aborted,
    }),
  );
}
