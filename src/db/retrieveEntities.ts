import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

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
