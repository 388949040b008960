import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SCAN_STATES, type ScanState } from '../db/scanEntities.js';
import { makeRequest } from '../domain/scanRequest.js';
import { sourceRemoteProblem } from '../pipeline/remoteDirectory.js';
import { DATA_DIRS } from '../domain/paths.js';
import { statusLabel } from '../domain/statusTable.js';
import { retrieveAttemptsOf, type ScanView } from '../db/scanViews.js';
import { forwardView, forwardsOfScan } from '../db/outboxStore.js';
import type { ScanProgress } from '../pipeline/retrieve/reconciler.js';
import { httpError, need, type HttpServices } from './common.js';

/** Query-string paging, shared by the list endpoints. */
export const pagingProperties = {
  limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
  offset: { type: 'integer', minimum: 0, maximum: 1_000_000, default: 0 },
} as const;

const listSchema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { state: { type: 'string', enum: SCAN_STATES }, ...pagingProperties },
  },
} as const;

const keySchema = {
  params: {
    type: 'object',
    required: ['key'],
    properties: { key: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[0-9a-fA-F.-]+$' } },
  },
} as const;

const postSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      studyInstanceUid: { type: 'string', minLength: 1, maxLength: 64 },
      accessionNumber: { type: 'string', minLength: 1, maxLength: 16 },
      patientId: { type: 'string', minLength: 1, maxLength: 64 },
      studyDate: { type: 'string', pattern: '^[0-9]{8}$' },
      remote: { type: 'string', minLength: 1, maxLength: 64 },
    },
  },
} as const;

interface PostBody {
  studyInstanceUid?: string;
  accessionNumber?: string;
  patientId?: string;
  studyDate?: string;
  /** The remote to retrieve from, by name (default: the scanner). */
  remote?: string;
}

/** A scan as the API shows it: expected per series is the larger of the MPPS references and the scanner's count. */
export function scanJson(v: ScanView, progress: ScanProgress | undefined) {
  const series = v.series.map((s) => {
    const expected = Math.max(s.expected, progress?.expected[s.seriesInstanceUid] ?? 0);
    return {
      seriesInstanceUid: s.seriesInstanceUid,
      seriesNumber: s.seriesNumber,
      modality: s.modality,
      seriesDescription: s.seriesDescription,
      expected: expected || null,
      received: s.received,
    };
  });
  const expected = series.reduce((n, s) => n + (s.expected ?? 0), 0);
  const received = series.reduce((n, s) => n + Math.min(s.received, s.expected ?? s.received), 0);
  return {
    id: v.id,
    studyInstanceUid: v.studyInstanceUid,
    accessionNumber: v.accessionNumber,
    patientId: v.patientId,
    studyDate: v.studyDate,
    /** The remote it is retrieved from (null: the scanner). */
    remote: v.remote ?? null,
    state: v.state,
    source: v.source,
    reason: v.reason,
    mppsStatus: v.mppsStatus,
    waiting: v.state === 'active' ? (progress?.waiting ?? null) : null,
    lastCheckedAt: progress?.checkedAt ?? null,
    requestedAt: v.requestedAt,
    updatedAt: v.updatedAt,
    completedAt: v.completedAt,
    expected: expected || null,
    received: v.series.reduce((n, s) => n + s.received, 0),
    receivedOfExpected: received,
    series,
  };
}

/** GET /api/scans, GET /api/scans/:key (StudyInstanceUID or request id), POST /api/scans. */
export function registerScanRoutes(app: FastifyInstance, s: HttpServices): void {
  const progress = (id: string) => s.progress?.(id);

  app.get<{ Querystring: { state?: ScanState; limit: number; offset: number } }>(
    '/api/scans',
    { schema: listSchema },
    async (req) => {
      const scans = need(s.scans, 'scan requests');
      const { state, limit, offset } = req.query;
      const page = await scans.page({ state, limit, offset });
      return { total: page.total, limit, offset, scans: page.scans.map((v) => scanJson(v, progress(v.id))) };
    },
  );

  app.get<{ Params: { key: string } }>('/api/scans/:key', { schema: keySchema }, async (req) => {
    const scans = need(s.scans, 'scan requests');
    const db = need(s.db, 'database');
    const view = await scans.describe(req.params.key);
    if (!view) throw httpError(404, `no scan request for ${req.params.key}`);
    const [attempts, forwards] = await Promise.all([retrieveAttemptsOf(db, view.id, 100), forwardsOfScan(db, view.id)]);
    const study = view.studyInstanceUid;
    const ended = view.state === 'finished' || view.state === 'failed';
    return {
      ...scanJson(view, progress(view.id)),
      mpps: view.mpps,
      requestFile: view.state === 'active' && view.fileName ? `${DATA_DIRS.activeScans}/${view.fileName}` : null,
      summaryFile:
        ended && s.summaryFile
          ? path
              .relative(s.dataDir, s.summaryFile(view.state as 'finished' | 'failed', view))
              .split(path.sep)
              .join('/')
          : null,
      archivePath: study ? `${DATA_DIRS.site}/${study}` : null,
      retrieveAttempts: attempts.map((a) => ({
        at: a.startedAt,
        endedAt: a.endedAt,
        level: a.level,
        seriesInstanceUid: a.seriesInstanceUid,
        requested: a.requested,
        completed: a.completed,
        failed: a.failed,
        warning: a.warning,
        remaining: a.remaining,
        status: a.status === null ? null : statusLabel(a.status),
        error: a.error,
      })),
      forwards: forwards.map(forwardView),
    };
  });

  app.post<{ Body: PostBody }>('/api/scans', { schema: postSchema }, async (req, reply) => {
    const scans = need(s.scans, 'scan requests');
    const b = req.body;
    const given = [b.studyInstanceUid, b.accessionNumber, b.patientId].filter((v) => v !== undefined).length;
    if (given !== 1) throw httpError(400, 'give exactly one of studyInstanceUid, accessionNumber, patientId');
    if (b.studyDate && !b.patientId) throw httpError(400, 'studyDate goes with patientId');
    const parsed = makeRequest({
      studyInstanceUid: b.studyInstanceUid ?? null,
      accessionNumber: b.accessionNumber ?? null,
      patientId: b.patientId ?? null,
      studyDate: b.studyDate ?? null,
      remote: b.remote ?? null,
    });
    if (!parsed.ok) throw httpError(400, parsed.reason);
    const sourceProblem = sourceRemoteProblem(s.remotes ?? {}, s.scannerName ?? 'scanner', parsed.spec.remote);
    if (sourceProblem) throw httpError(400, sourceProblem);
    const { scan, created } = await scans.add(parsed.spec, 'api');
    const url = `/api/scans/${scan.studyInstanceUid ?? scan.id}`;
    s.changed?.();
    return reply
      .status(created ? 201 : 200)
      .header('location', url)
      .send({ created, url, ...scanJson((await scans.views([scan]))[0]!, progress(scan.id)) });
  });
}
