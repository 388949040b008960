import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';
import type { ImportCounts } from '../domain/importRules.js';

/**
 * queued -> running -> finished | failed (an operator must act; see message) | retrying (the node tries again at
 * nextAttemptAt) | interrupted (the process stopped; inbox and REST batches resume at the next start).
 */
export type ImportState = 'queued' | 'running' | 'finished' | 'failed' | 'retrying' | 'interrupted';
export const IMPORT_STATES = ['queued', 'running', 'finished', 'failed', 'retrying', 'interrupted'] as const;
export type ImportSource = 'inbox' | 'rest' | 'cli';

/** One import batch (an inbox folder, a pass over loose inbox files, a REST or CLI import) and its counts. */
export interface ImportBatchRow extends ImportCounts {
  id: string;
  /** The batch's name: the inbox folder's name (sendit), `inbox` for loose files, the folder's name otherwise. */
  name: string;
  source: ImportSource;
  /** Absolute path imported. */
  path: string;
  state: ImportState;
  /** Source files are left in place (CLI, REST with cleanupAfterImport=false). */
  keepSources: boolean;
  patientId: string | null;
  studyLabel: string | null;
  startedAt: Date;
  endedAt: Date | null;
  /** Why the batch is failed or retrying, and what to do about it. */
  message: string | null;
  /** Attempts made (a retry resumes the same batch). */
  attempts: number;
  /** When a retrying batch is tried again. */
  nextAttemptAt: Date | null;
  /** Counters of the files earlier attempts took out of the folder (JSON of ImportCounts), carried into a retry. */
  carried: string | null;
  /** The node running it (cluster.nodeId); null for the command line. */
  node: string | null;
}

/** A file of a batch that went to problem/ (or could not be stored), with why. */
export interface ImportProblemRow {
  id?: number;
  batchId: string;
  /** Path relative to the import's base (and to problem/ when moved there). */
  path: string;
  reason: string;
  /** moved: gone from the import folder (problem/); listed: left where it is; error: left in place for a retry. */
  kind: ImportProblemKind;
}

export type ImportProblemKind = 'moved' | 'listed' | 'error';

const bigintNumber = { to: (v: number) => v, from: (v: string | number | null) => (v === null ? v : Number(v)) };

export function importEntities(d: Dialect) {
  const ImportBatch = new EntitySchema<ImportBatchRow>({
    name: 'ImportBatch',
    tableName: 'import_batches',
    columns: {
      id: { type: 'varchar', length: 36, primary: true },
      name: { type: 'varchar', length: 256 },
      source: { type: 'varchar', length: 16 },
      path: { type: 'varchar', length: 1024 },
      state: { type: 'varchar', length: 16 },
      keepSources: { name: 'keep_sources', type: 'boolean' },
      patientId: { name: 'patient_id', type: 'varchar', length: 64, nullable: true },
      studyLabel: { name: 'study_label', type: 'varchar', length: 128, nullable: true },
      filesFound: { name: 'files_found', type: 'integer' },
      filesRead: { name: 'files_read', type: 'integer' },
      archived: { type: 'integer' },
      duplicates: { type: 'integer' },
      problems: { type: 'integer' },
      errors: { type: 'integer' },
      bytes: { type: 'bigint', transformer: bigintNumber },
      startedAt: { name: 'started_at', type: d.timestamp },
      endedAt: { name: 'ended_at', type: d.timestamp, nullable: true },
      message: { type: 'varchar', length: 1024, nullable: true },
      attempts: { type: 'integer', default: 0 },
      nextAttemptAt: { name: 'next_attempt_at', type: d.timestamp, nullable: true },
      carried: { type: 'varchar', length: 512, nullable: true },
      node: { type: 'varchar', length: 64, nullable: true },
    },
  });
  const ImportProblem = new EntitySchema<ImportProblemRow>({
    name: 'ImportProblem',
    tableName: 'import_problems',
    columns: {
      id: { type: 'integer', primary: true, generated: 'increment' },
      batchId: { name: 'batch_id', type: 'varchar', length: 36 },
      path: { type: 'varchar', length: 1024 },
      reason: { type: 'varchar', length: 1024 },
      kind: { type: 'varchar', length: 8, default: 'listed' },
    },
  });
  return { ImportBatch, ImportProblem };
}

export type ImportEntities = ReturnType<typeof importEntities>;
