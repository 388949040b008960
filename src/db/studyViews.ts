/**
 * Read models of what the node received, for the HTTP API and the status page: studies (searched, one with its
 * patient), their series with instance counts, associations. Reads only.
 */
import { Brackets, type SelectQueryBuilder, type ObjectLiteral } from 'typeorm';
import type { Database } from './dataSource.js';
import type { AssociationRow, PatientRow, StudyRow } from './entities.js';

/** The last `limit` associations, the most recently ended first. */
export async function recentAssociations(db: Database, limit: number): Promise<AssociationRow[]> {
  return db.source.getRepository(db.entities.Association).find({ order: { endedAt: 'DESC', id: 'ASC' }, take: limit });
}

/** Associations (of one calling AE, accepted or not, if given), the most recently ended first, one page. */
export async function associationPage(
  db: Database,
  q: { callingAe?: string; accepted?: boolean; limit: number; offset: number },
): Promise<[AssociationRow[], number]> {
  const where = {
    ...(q.callingAe !== undefined && { callingAe: q.callingAe }),
    ...(q.accepted !== undefined && { accepted: q.accepted }),
  };
  return db.source.getRepository(db.entities.Association).findAndCount({
    where,
    order: { endedAt: 'DESC', id: 'ASC' },
    take: q.limit,
    skip: q.offset,
  });
}

/** A study and its patient row (if any). */
export async function studyWithPatient(
  db: Database,
  studyInstanceUid: string,
): Promise<{ study: StudyRow; patient: PatientRow | null } | undefined> {
  const study = await db.source.getRepository(db.entities.Study).findOne({ where: { studyInstanceUid } });
  if (!study) return undefined;
  const patient = await db.source.getRepository(db.entities.Patient).findOne({ where: { patientId: study.patientId } });
  return { study, patient };
}

/**
 * One page of studies matching the query (DICOM-style wildcards in patientId and accessionNumber, a date range),
 * newest first, and the total: raw rows, their columns named as the driver names them (see `pick`).
 */
export async function searchStudies(
  db: Database,
  q: { patientId?: string; accessionNumber?: string; from?: string; to?: string; limit: number; offset: number },
): Promise<{ total: number; rows: Array<Record<string, unknown>> }> {
  const { Study, Patient } = db.entities;
  const qb = db.source
    .getRepository(Study)
    .createQueryBuilder('st')
    .leftJoin(Patient.options.name, 'p', 'p.patientId = st.patientId')
    .select(['st.studyInstanceUid', 'st.patientId', 'st.accessionNumber', 'st.studyDate', 'st.studyTime'])
    .addSelect(['st.studyDescription', 'st.createdAt', 'p.patientName']);
  if (q.patientId) matchValue(qb, 'st.patientId', 'pid', q.patientId);
  if (q.accessionNumber) matchValue(qb, 'st.accessionNumber', 'acc', q.accessionNumber);
  const { from, to } = q;
  if (from || to) {
    qb.andWhere(
      new Brackets((w) => {
        if (from) w.andWhere('st.studyDate >= :from', { from });
        if (to) w.andWhere('st.studyDate <= :to', { to });
      }),
    );
  }
  const total = await qb.getCount();
  const rows = await qb
    .orderBy('st.studyDate', 'DESC')
    .addOrderBy('st.studyTime', 'DESC')
    .addOrderBy('st.studyInstanceUid', 'ASC')
    .offset(q.offset)
    .limit(q.limit)
    .getRawMany<Record<string, unknown>>();
  return { total, rows };
}

/** A DICOM-style match: `*` and `?` wildcards become LIKE patterns, anything else is an exact match. */
function matchValue<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
  column: string,
  param: string,
  value: string,
): void {
  if (/[*?]/.test(value)) {
    const like = value
      .replace(/[\\%_]/g, (c) => `\\${c}`)
      .replace(/\*/g, '%')
      .replace(/\?/g, '_');
    qb.andWhere(`${column} LIKE :${param} ESCAPE '\\'`, { [param]: like });
  } else {
    qb.andWhere(`${column} = :${param}`, { [param]: value });
  }
}

export function pick(r: Record<string, unknown>, ...keys: string[]): string | null {
  for (const k of keys) if (r[k] !== undefined && r[k] !== null) return String(r[k]);
  return null;
}

/** Series of these studies with their instance counts, in series-number order. */
export async function seriesOfStudies(db: Database, studies: string[]) {
  const out = new Map<
    string,
    Array<{
      seriesInstanceUid: string;
      seriesNumber: number | null;
      modality: string | null;
      seriesDescription: string | null;
      instances: number;
    }>
  >();
  if (!studies.length) return out;
  const { Series, Instance } = db.entities;
  const rows = await db.source
    .getRepository(Series)
    .createQueryBuilder('se')
    .leftJoin(Instance.options.name, 'i', 'i.seriesInstanceUid = se.seriesInstanceUid')
    .select('se.studyInstanceUid', 'study')
    .addSelect('se.seriesInstanceUid', 'uid')
    .addSelect('se.seriesNumber', 'number')
    .addSelect('se.modality', 'modality')
    .addSelect('se.seriesDescription', 'description')
    .addSelect('COUNT(i.sopInstanceUid)', 'n')
    .where('se.studyInstanceUid IN (:...studies)', { studies })
    .groupBy('se.studyInstanceUid')
    .addGroupBy('se.seriesInstanceUid')
    .addGroupBy('se.seriesNumber')
    .addGroupBy('se.modality')
    .addGroupBy('se.seriesDescription')
    .getRawMany<{
      study: string;
      uid: string;
      number: number | null;
      modality: string | null;
      description: string | null;
      n: string | number;
    }>();
  for (const r of rows) {
    const list = out.get(r.study) ?? [];
    list.push({
      seriesInstanceUid: r.uid,
      seriesNumber: r.number === null ? null : Number(r.number),
      modality: r.modality,
      seriesDescription: r.description,
      instances: Number(r.n),
    });
    out.set(r.study, list);
  }
  for (const list of out.values())
    list.sort(
      (a, b) =>
        (a.seriesNumber ?? 1e9) - (b.seriesNumber ?? 1e9) || a.seriesInstanceUid.localeCompare(b.seriesInstanceUid),
    );
  return out;
}

/** The last association of a calling AE title (any outcome), or null. */
export async function lastAssociationOf(db: Database, callingAe: string): Promise<AssociationRow | null> {
  return db.source
    .getRepository(db.entities.Association)
    .findOne({ where: { callingAe }, order: { endedAt: 'DESC', id: 'ASC' } });
}
