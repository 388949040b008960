import type { FastifyInstance } from 'fastify';
import { Brackets, type SelectQueryBuilder, type ObjectLiteral } from 'typeorm';
import { httpError, need, type HttpServices } from './common.js';
import { pagingProperties } from './scans.js';
import type { AssociationRow } from '../db/entities.js';

const studiesSchema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      patientId: { type: 'string', minLength: 1, maxLength: 64 },
      accessionNumber: { type: 'string', minLength: 1, maxLength: 16 },
      // YYYYMMDD, or a range YYYYMMDD-YYYYMMDD with either end open, as in a DICOM query.
      studyDate: { type: 'string', pattern: '^([0-9]{8})?(-([0-9]{8})?)?$', minLength: 8, maxLength: 17 },
      ...pagingProperties,
    },
  },
} as const;

const studySchema = {
  params: {
    type: 'object',
    required: ['studyUid'],
    properties: { studyUid: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9.]+$' } },
  },
} as const;

const associationsSchema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      callingAe: { type: 'string', minLength: 1, maxLength: 16 },
      accepted: { type: 'boolean' },
      ...pagingProperties,
    },
  },
} as const;

interface StudyQuery {
  patientId?: string;
  accessionNumber?: string;
  studyDate?: string;
  limit: number;
  offset: number;
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

/** GET /api/studies (search), GET /api/studies/:studyUid, GET /api/associations. */
export function registerStudyRoutes(app: FastifyInstance, s: HttpServices): void {
  app.get<{ Querystring: StudyQuery }>('/api/studies', { schema: studiesSchema }, async (req) => {
    const db = need(s.db, 'database');
    const { Study, Patient } = db.entities;
    const q = req.query;
    const qb = db.source
      .getRepository(Study)
      .createQueryBuilder('st')
      .leftJoin(Patient.options.name, 'p', 'p.patientId = st.patientId')
      .select(['st.studyInstanceUid', 'st.patientId', 'st.accessionNumber', 'st.studyDate', 'st.studyTime'])
      .addSelect(['st.studyDescription', 'st.createdAt', 'p.patientName']);
    if (q.patientId) matchValue(qb, 'st.patientId', 'pid', q.patientId);
    if (q.accessionNumber) matchValue(qb, 'st.accessionNumber', 'acc', q.accessionNumber);
    if (q.studyDate) {
      const [from, to] = q.studyDate.includes('-') ? q.studyDate.split('-') : [q.studyDate, q.studyDate];
      if (!from && !to) throw httpError(400, 'studyDate "-" names no date');
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
    const uids = rows.map((r) => String(r.st_studyInstanceUid ?? r.st_study_instance_uid));
    const series = await seriesOf(s, uids);
    return {
      total,
      limit: q.limit,
      offset: q.offset,
      studies: rows.map((r, i) => {
        const uid = uids[i]!;
        const ser = series.get(uid) ?? [];
        return {
          studyInstanceUid: uid,
          patientId: pick(r, 'st_patientId', 'st_patient_id'),
          patientName: pick(r, 'p_patientName', 'p_patient_name'),
          accessionNumber: pick(r, 'st_accessionNumber', 'st_accession_number'),
          studyDate: pick(r, 'st_studyDate', 'st_study_date'),
          studyTime: pick(r, 'st_studyTime', 'st_study_time'),
          studyDescription: pick(r, 'st_studyDescription', 'st_study_description'),
          instances: ser.reduce((n, x) => n + x.instances, 0),
          series: ser,
        };
      }),
    };
  });

  app.get<{ Params: { studyUid: string } }>('/api/studies/:studyUid', { schema: studySchema }, async (req) => {
    const db = need(s.db, 'database');
    const study = await db.source
      .getRepository(db.entities.Study)
      .findOne({ where: { studyInstanceUid: req.params.studyUid } });
    if (!study) throw httpError(404, `no study ${req.params.studyUid}`);
    const patient = await db.source
      .getRepository(db.entities.Patient)
      .findOne({ where: { patientId: study.patientId } });
    const series = (await seriesOf(s, [study.studyInstanceUid])).get(study.studyInstanceUid) ?? [];
    return {
      studyInstanceUid: study.studyInstanceUid,
      patient: patient
        ? {
            patientId: patient.patientId,
            patientName: patient.patientName,
            birthDate: patient.birthDate,
            sex: patient.sex,
          }
        : { patientId: study.patientId },
      accessionNumber: study.accessionNumber,
      studyDate: study.studyDate,
      studyTime: study.studyTime,
      studyDescription: study.studyDescription,
      groupKey: study.groupKey ?? null,
      instances: series.reduce((n, x) => n + x.instances, 0),
      series,
    };
  });

  app.get<{ Querystring: { callingAe?: string; accepted?: boolean; limit: number; offset: number } }>(
    '/api/associations',
    { schema: associationsSchema },
    async (req) => {
      const db = need(s.db, 'database');
      const q = req.query;
      const where = {
        ...(q.callingAe !== undefined && { callingAe: q.callingAe }),
        ...(q.accepted !== undefined && { accepted: q.accepted }),
      };
      const [rows, total] = await db.source.getRepository(db.entities.Association).findAndCount({
        where,
        order: { endedAt: 'DESC', id: 'ASC' },
        take: q.limit,
        skip: q.offset,
      });
      return {
        total,
        limit: q.limit,
        offset: q.offset,
        associations: rows.map(associationJson),
      };
    },
  );
}

function pick(r: Record<string, unknown>, ...keys: string[]): string | null {
  for (const k of keys) if (r[k] !== undefined && r[k] !== null) return String(r[k]);
  return null;
}

/** Series of these studies with their instance counts, in series-number order. */
async function seriesOf(s: HttpServices, studies: string[]) {
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
  const db = need(s.db, 'database');
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

/** One association row as the API shows it (also in /api/status). */
export function associationJson(a: AssociationRow) {
  return {
    id: a.id,
    callingAe: a.callingAe,
    calledAe: a.calledAe,
    remoteAddress: a.remoteAddress,
    accepted: a.accepted,
    rejectReason: a.rejectReason,
    startedAt: a.startedAt,
    endedAt: a.endedAt,
    durationMs: a.durationMs,
    instancesReceived: a.instancesReceived,
    bytesReceived: Number(a.bytesReceived),
    failures: a.failures,
    aborted: a.aborted,
  };
}
