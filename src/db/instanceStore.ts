/**
 * Owns the reads and updates of instance rows (the writes of new rows are instanceIndex.ts): where an instance is,
 * the instances of a study or in a state, counts; rows marked archived in one durable commit (the spool copies are
 * removed only after it returns), or dropped when their file is gone and a new copy takes their place.
 */
import { In, type FindOptionsSelect } from 'typeorm';
import { sqliteConnection, type Database } from './dataSource.js';
import type { InstanceRow } from './entities.js';

const CHUNK = 500;

/** The archive path as SQL over the row's own UIDs (what src/domain/paths.ts archivePath gives). */
const ARCHIVE_PATH_SQL =
  "'site/raw/' || study_instance_uid || '/' || series_instance_uid || '/' || sop_instance_uid || '.dcm'";

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
    // The driver's connection, for its synchronous calls.
    const raw = sqliteConnection(db.source)!;
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
  await repo(db).delete({ sopInstanceUid: sop });
}

/** What the archive, the recoveries and the imports read of a row. */
export type InstancePlace = Pick<
  InstanceRow,
  'sopInstanceUid' | 'studyInstanceUid' | 'seriesInstanceUid' | 'path' | 'state' | 'source' | 'receivedAt'
>;
const PLACE: FindOptionsSelect<InstanceRow> = {
  sopInstanceUid: true,
  studyInstanceUid: true,
  seriesInstanceUid: true,
  path: true,
  state: true,
  source: true,
  receivedAt: true,
};

const repo = (db: Database) => db.source.getRepository(db.entities.Instance);

/** One instance's row (where it is, what state), or null. */
export async function instancePlace(db: Database, sop: string): Promise<InstancePlace | null> {
  return repo(db).findOne({ where: { sopInstanceUid: sop }, select: PLACE });
}

export async function instanceExists(db: Database, sop: string): Promise<boolean> {
  return repo(db).existsBy({ sopInstanceUid: sop });
}

/** The rows of a study and/or in a state. */
export async function instancePlaces(
  db: Database,
  where: { study?: string; state?: InstanceRow['state'] },
): Promise<InstancePlace[]> {
  return repo(db).find({
    where: {
      ...(where.study !== undefined && { studyInstanceUid: where.study }),
      ...(where.state !== undefined && { state: where.state }),
    },
    select: PLACE,
  });
}

/** The rows of these SOP Instance UIDs (looked up in chunks), by UID. */
export async function instancePlacesOf(db: Database, sops: string[]): Promise<Map<string, InstancePlace>> {
  const out = new Map<string, InstancePlace>();
  for (let i = 0; i < sops.length; i += CHUNK) {
    const found = await repo(db).find({ where: { sopInstanceUid: In(sops.slice(i, i + CHUNK)) }, select: PLACE });
    for (const r of found) out.set(r.sopInstanceUid, r);
  }
  return out;
}

/** One page of all rows in UID order (a walk over the whole index). */
export async function instancePage(db: Database, skip: number, take: number): Promise<InstancePlace[]> {
  return repo(db).find({ select: PLACE, order: { sopInstanceUid: 'ASC' }, skip, take });
}

export async function countInstances(
  db: Database,
  where: { study: string; series?: string; state?: InstanceRow['state'] },
): Promise<number> {
  return repo(db).countBy({
    studyInstanceUid: where.study,
    ...(where.series !== undefined && { seriesInstanceUid: where.series }),
    ...(where.state !== undefined && { state: where.state }),
  });
}

/** Instances and bytes per state (spooled, archived); counts as the driver returns them (pg: strings). */
export async function instanceCountsByState(
  db: Database,
): Promise<Array<{ state: string; n: unknown; bytes: unknown }>> {
  return repo(db)
    .createQueryBuilder('i')
    .select('i.state', 'state')
    .addSelect('COUNT(*)', 'n')
    .addSelect('COALESCE(SUM(i.size), 0)', 'bytes')
    .groupBy('i.state')
    .getRawMany<{ state: string; n: unknown; bytes: unknown }>();
}

/** The index holds at least one instance. */
export async function anyInstance(db: Database): Promise<boolean> {
  return repo(db).exists();
}
