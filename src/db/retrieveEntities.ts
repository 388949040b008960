import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';
import { isFailure } from '../domain/statusTable.js';

/** One C-MOVE the reconciler sent (or tried to send) for a scan. */
export interface RetrieveAttemptRow {
  id: string;
  scanId: string;
  studyInstanceUid: string;
  /** null: a STUDY-level move. */
  seriesInstanceUid: string | null;
  level: 'STUDY' | 'SERIES' | 'IMAGE';
  /** Instances asked for (IMAGE level) or expected to come (SERIES level). */
  requested: number | null;
  completed: number | null;
  failed: number | null;
  warning: number | null;
  remaining: number | null;
  /** Final DICOM status; null when the move ended without one (connection, timeout). */
  status: number | null;
  error: string | null;
  startedAt: Date;
  endedAt: Date;
}

/**
 * What a retrieve attempt came to, defined once for the reconciler and the metrics:
 * - 'failed': it brought nothing (refused or failure status, no final status at all, an error, or no sub-operation
 *   completed of those asked for); the reconciler counts these towards giving up;
 * - 'partial': it ended with a warning status or failed sub-operations, but brought images;
 * - 'ok': every sub-operation completed.
 */
export type RetrieveOutcome = 'ok' | 'partial' | 'failed';

export function retrieveOutcome(
  r: Pick<RetrieveAttemptRow, 'status' | 'error' | 'failed' | 'completed' | 'requested'>,
): RetrieveOutcome {
  if (r.error || r.status === null || isFailure(r.status, 'C-MOVE')) return 'failed';
  if ((r.completed ?? 0) === 0 && (r.requested ?? 0) > 0) return 'failed';
  if (r.status !== 0 || (r.failed ?? 0) > 0) return 'partial';
  return 'ok';
}

export function retrieveEntities(d: Dialect) {
  const RetrieveAttempt = new EntitySchema<RetrieveAttemptRow>({
    name: 'RetrieveAttempt',
    tableName: 'retrieve_attempts',
    columns: {
      id: { type: 'varchar', length: 36, primary: true },
      scanId: { name: 'scan_id', type: 'varchar', length: 36 },
      studyInstanceUid: { name: 'study_instance_uid', type: 'varchar', length: 64 },
      seriesInstanceUid: { name: 'series_instance_uid', type: 'varchar', length: 64, nullable: true },
      level: { type: 'varchar', length: 8 },
      requested: { type: 'integer', nullable: true },
      completed: { type: 'integer', nullable: true },
      failed: { type: 'integer', nullable: true },
      warning: { type: 'integer', nullable: true },
      remaining: { type: 'integer', nullable: true },
      status: { type: 'integer', nullable: true },
      error: { type: 'varchar', length: 512, nullable: true },
      startedAt: { name: 'started_at', type: d.timestamp },
      endedAt: { name: 'ended_at', type: d.timestamp },
    },
  });
  return { RetrieveAttempt };
}

export type RetrieveEntities = ReturnType<typeof retrieveEntities>;
