import type { FastifyInstance } from 'fastify';
import { httpError, need, type HttpServices } from './common.js';
import { pagingProperties } from './scans.js';
import type { AssociationRow } from '../db/entities.js';
import { associationPage, pick, searchStudies, seriesOfStudies, studyWithPatient } from '../db/studyViews.js';
import { remoteOf } from '../domain/remotes.js';

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

/** GET /api/studies (search), GET /api/studies/:studyUid, GET /api/associations. */
export function registerStudyRoutes(app: FastifyInstance, s: HttpServices): void {
  app.get<{ Querystring: StudyQuery }>('/api/studies', { schema: studiesSchema }, async (req) => {
    const db = need(s.db, 'database');
    const q = req.query;
    let from: string | undefined;
    let to: string | undefined;
    if (q.studyDate) {
      [from, to] = q.studyDate.includes('-') ? q.studyDate.split('-') : [q.studyDate, q.studyDate];
      if (!from && !to) throw httpError(400, 'studyDate "-" names no date');
    }
    const { total, rows } = await searchStudies(db, {
      patientId: q.patientId,
      accessionNumber: q.accessionNumber,
      from: from || undefined,
      to: to || undefined,
      limit: q.limit,
      offset: q.offset,
    });
    const uids = rows.map((r) => String(r.st_studyInstanceUid ?? r.st_study_instance_uid));
    const series = await seriesOfStudies(db, uids);
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
    const found = await studyWithPatient(db, req.params.studyUid);
    if (!found) throw httpError(404, `no study ${req.params.studyUid}`);
    const { study, patient } = found;
    const series = (await seriesOfStudies(db, [study.studyInstanceUid])).get(study.studyInstanceUid) ?? [];
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
      const [rows, total] = await associationPage(db, q);
      return {
        total,
        limit: q.limit,
        offset: q.offset,
        associations: rows.map((a) => associationJson(a, s.remotes)),
      };
    },
  );
}

/** One association row as the API shows it (also in /api/status). */
/** An audit row as the API shows it, named by the remote it came from (config `remotes`) when one matches. */
export function associationJson(a: AssociationRow, remotes: HttpServices['remotes'] = {}) {
  return {
    id: a.id,
    remote: remoteOf(remotes, a.callingAe, a.remoteAddress) ?? null,
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
