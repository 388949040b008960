/**
 * Instance rows whose file moves: marked archived in one durable commit (the spool copies are removed only after it
 * returns), or dropped when their file is gone and a new copy takes their place.
 */
import { In } from 'typeorm';
import type { Database } from './dataSource.js';

const CHUNK = 500;

/** The archive path as SQL over the row's own UIDs (what src/domain/paths.ts archivePath gives). */
const ARCHIVE_PATH_SQL =
  "'site/raw/' || study_instance_uid || '/' || series_instance_uid || '/' || sop_instance_uid || '.dcm'";

interface RawSqlite {
  pragma(s: string): unknown;
  prepare(sql: string): { run(...params: unknown[]): unknown };
}

/**
 * Sets state 'archived', the archive path and archivedAt on these rows, durably. SQLite runs with synchronous=NORMAL,
 * where a commit can roll back on power loss while a later unlink of the spool copy survives; these statements run
 * synchronously on the connection with synchronous=FULL (the WAL is fsynced at their commit) and nothing else can
 * interleave. PostgreSQL commits are durable (synchronous_commit on).
 */
export async function markArchived(db: Database, sops: string[], at: Date): Promise<void> {
  const { Instance } = db.entities;
  for (let i = 0; i < sops.length; i += CHUNK) {
    const chunk = sops.slice(i, i + CHUNK);
    const qb = db.source
      .createQueryBuilder()
      .update(Instance)
      .set({ state: 'archived', archivedAt: at, path: () => ARCHIVE_PATH_SQL })
      .where({ sopInstanceUid: In(chunk) });
    if (db.type !== 'sqlite') {
      await qb.execute();
      continue;
    }
    const [sql, params] = qb.getQueryAndParameters();
    // The driver's connection is public API (better-sqlite3's Database); used here for its synchronous calls.
    const raw = (db.source.driver as unknown as { databaseConnection: RawSqlite }).databaseConnection;
    raw.pragma('synchronous = FULL');
    try {
      raw.prepare(sql).run(...params);
    } finally {
      raw.pragma('synchronous = NORMAL');
    }
  }
}

/** Removes the row of an instance whose stored file is gone, before a re-sent copy is stored in its place. */
export async function dropInstanceRow(db: Database, sop: string): Promise<void> {
  await db.source.getRepository(db.entities.Instance).delete({ sopInstanceUid: sop });
}
