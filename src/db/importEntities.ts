import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

export type ImportState = 'queued' | 'running' | 'finished' | 'failed' | 'interrupted';
export type ImportSource = 'inbox' | 'rest' | 'cli';

/** One import batch (an inbox folder, a pass over loose inbox files, a REST or CLI import) and its counts. */
export interface ImportBatchRow {
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
  filesFound: number;
  filesRead: number;
  archived: number;
  duplicates: number;
  problems: number;
  errors: number;
  bytes: number;
  startedAt: Date;
  endedAt: Date | null;
  message: string | null;
}

/** A file of a batch that went to problem/ (or could not be stored), with why. */
export interface ImportProblemRow {
  id?: number;
  batchId: string;
  /** Path relative to the import's base (and to problem/ when moved there). */
  path: string;
  reason: string;
}

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
    },
  });
  return { ImportBatch, ImportProblem };
}

export type ImportEntities = ReturnType<typeof importEntities>;
