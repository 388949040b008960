/**
 * The instance index (as Orthanc's ServerIndex): the patient / study / series / instance rows of one stored file,
 * built here once for the receive path, the spool and archive recoveries and `scannode reindex`, and their writes.
 * A group of spooled instances is written in one transaction (group commit); every insert ignores a row that is
 * already there, so a batch retried after a failure, or one racing a recovery, never fails on its own earlier work.
 * Column widths come from the entities (fit.ts).
 */
import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { Database } from './dataSource.js';
import { isUniqueViolation } from './dataSource.js';
import { preparedStatements } from './prepared.js';
import { dialectOf, entities, type InstanceRow, type PatientRow, type SeriesRow, type StudyRow } from './entities.js';
import { fitRow } from './fit.js';

/** The attributes of a stored file's header the index reads (storage/header.ts `indexAttributes` makes them). */
export interface IndexAttributes {
  text(key: string): string | undefined;
  int(key: string): number | undefined;
  /** The whole kept header as JSON (instances.header). */
  json: string;
}

/** Where a file came from and where it is. */
export interface IndexedFile {
  sop: string;
  sopClass: string;
  study: string;
  series: string;
  path: string;
  size: number;
  transferSyntaxUid: string;
  state: InstanceRow['state'];
  source: InstanceRow['source'];
  callingAe: string | null;
}

/** The schemas, for their declared widths (the same for every dialect). */
const SCHEMAS = entities(dialectOf('sqlite'));

/** The instance row of one file and the patient / study / series rows it belongs to, cut to their column widths. */
export function indexRows(
  h: IndexAttributes,
  f: IndexedFile,
  now = new Date(),
): { row: InstanceRow; groups: GroupRows } {
  const patientId = fitRow(SCHEMAS.Patient, { patientId: h.text('PatientID') ?? '' }).patientId;
  return {
    row: fitRow(SCHEMAS.Instance, {
      sopInstanceUid: f.sop,
      sopClassUid: f.sopClass,
      transferSyntaxUid: f.transferSyntaxUid,
      studyInstanceUid: f.study,
      seriesInstanceUid: f.series,
      instanceNumber: h.int('InstanceNumber') ?? null,
      path: f.path,
      size: f.size,
      state: f.state,
      source: f.source,
      callingAe: f.callingAe,
      receivedAt: now,
      archivedAt: f.state === 'archived' ? now : null,
      header: h.json,
    }),
    groups: {
      patient: fitRow(SCHEMAS.Patient, {
        patientId,
        patientName: h.text('PatientName') ?? null,
        birthDate: h.text('PatientBirthDate') ?? null,
        sex: h.text('PatientSex') ?? null,
        createdAt: now,
      }),
      study: fitRow(SCHEMAS.Study, {
        studyInstanceUid: f.study,
        patientId,
        accessionNumber: h.text('AccessionNumber') ?? null,
        studyDate: h.text('StudyDate') ?? null,
        studyTime: h.text('StudyTime') ?? null,
        studyDescription: h.text('StudyDescription') ?? null,
        createdAt: now,
      }),
      series: fitRow(SCHEMAS.Series, {
        seriesInstanceUid: f.series,
        studyInstanceUid: f.study,
        seriesNumber: h.int('SeriesNumber') ?? null,
        modality: h.text('Modality') ?? null,
        seriesDescription: h.text('SeriesDescription') ?? null,
        createdAt: now,
      }),
    },
  };
}

/**
 * Indexes one file found on disk (archive recovery, `scannode reindex`): its group rows when absent and its instance
 * row. False when the instance row already existed (someone indexed it meanwhile).
 */
export async function indexFoundFile(db: Database, h: IndexAttributes, f: IndexedFile): Promise<boolean> {
  const { row, groups } = indexRows(h, f);
  const { Patient, Study, Series, Instance } = db.entities;
  const ignore = async (entity: EntityTarget<ObjectLiteral>, values: object) =>
    db.source.createQueryBuilder().insert().into(entity).values(values).orIgnore().execute();
  await ignore(Patient, groups.patient);
  await ignore(Study, groups.study);
  await ignore(Series, groups.series);
  try {
    await db.source.getRepository(Instance).insert(row);
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

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
    return instanceSql.insertIgnore(rows, (sql, values) => db.source.query(sql, values));
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
    // The instance rows (every image) with SQL built once, a chunk per statement; the rarer group rows above through
    // the query builder.
    for (let i = 0; i < rows.length; i += CHUNK) {
      await instanceSql.insertIgnore(rows.slice(i, i + CHUNK), (sql, values) => m.query(sql, values));
    }
  });
}

function unique<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const i of items) if (!seen.has(key(i))) seen.set(key(i), i);
  return [...seen.values()];
}
