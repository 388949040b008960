/**
 * The index rows of a group of spooled instances, written in one transaction (group commit): the patient / study /
 * series rows they need and their instance rows. Every insert ignores a row that is already there, so a batch
 * retried after a failure, or one racing a recovery, never fails on its own earlier work.
 */
import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { Database } from './dataSource.js';
import { preparedStatements } from './prepared.js';
import type { InstanceRow, PatientRow, SeriesRow, StudyRow } from './entities.js';

export interface GroupRows {
  patient: PatientRow;
  study: StudyRow;
  series: SeriesRow;
}

/** Rows per INSERT statement (bound parameters stay far below SQLite's and PostgreSQL's limits). */
const CHUNK = 200;

const statements = new WeakMap<Database, ReturnType<typeof preparedStatements>>();

export async function insertInstanceBatch(db: Database, groups: GroupRows[], rows: InstanceRow[]): Promise<void> {
  const { Patient, Study, Series, Instance } = db.entities;
  let instanceSql = statements.get(db);
  if (!instanceSql) statements.set(db, (instanceSql = preparedStatements(db.source, Instance)));
  if (groups.length === 0 && rows.length === 1) {
    // A group of one (one sender at a time): its own statement commits it, without BEGIN / COMMIT around it.
    return instanceSql.insertIgnore(rows[0]!, (sql, values) => db.source.query(sql, values));
  }
  await db.source.transaction(async (m) => {
    const insert = async <T extends ObjectLiteral>(entity: EntityTarget<T>, values: T[]) => {
      for (let i = 0; i < values.length; i += CHUNK) {
        await m
          .createQueryBuilder()
          .insert()
          .into(entity)
          .values(values.slice(i, i + CHUNK))
          .orIgnore()
          .execute();
      }
    };
    if (groups.length) {
      await insert(
        Patient,
        unique(
          groups.map((g) => g.patient),
          (p) => p.patientId,
        ),
      );
      await insert(
        Study,
        unique(
          groups.map((g) => g.study),
          (s) => s.studyInstanceUid,
        ),
      );
      await insert(
        Series,
        unique(
          groups.map((g) => g.series),
          (s) => s.seriesInstanceUid,
        ),
      );
    }
    // The instance rows (every image) with SQL built once; the rarer group rows above through the query builder.
    for (const row of rows) await instanceSql.insertIgnore(row, (sql, values) => m.query(sql, values));
  });
}

function unique<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const i of items) if (!seen.has(key(i))) seen.set(key(i), i);
  return [...seen.values()];
}
