import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import { fastifySSE as fastifySse } from '@fastify/sse';
import { httpError, need, type HttpServices } from './common.js';
import { LiveStatus } from './live.js';
import { scanJson } from './scans.js';
import { forwardsOfScans } from '../db/outboxStore.js';
import { associationJson } from './studies.js';
import { importJson } from './imports.js';
import { VERSION } from '../version.js';
import { Mutex } from 'async-mutex';
import { recentAssociations } from '../db/studyViews.js';

/** The status page's files (copied next to the compiled module by `npm run build`). */
const UI_DIR = fileURLToPath(new URL('./ui/', import.meta.url));

const RECENT = 20;
/** Import batches shown on the page, newest first (the API pages through all of them). */
const RECENT_IMPORTS = 10;
/** Active scans shown on the page (the API pages through all of them). */
const ACTIVE_LIMIT = 500;

async function diskSpace(dataDir: string): Promise<{ freeBytes: number; totalBytes: number } | null> {
  try {
    const st = await fs.promises.statfs(dataDir);
    return { freeBytes: st.bavail * st.bsize, totalBytes: st.blocks * st.bsize };
  } catch {
    return null;
  }
}

/** Everything the status page shows, in one JSON document. */
export async function statusSnapshot(s: HttpServices) {
  const scans = need(s.scans, 'scan requests');
  const db = need(s.db, 'database');
  const progress = (id: string) => s.progress?.(id);
  const [active, finished, failed, associations, disk, imports] = await Promise.all([
    scans.page({ state: 'active', limit: ACTIVE_LIMIT, offset: 0 }),
    scans.page({ state: 'finished', limit: RECENT, offset: 0 }),
    scans.page({ state: 'failed', limit: RECENT, offset: 0 }),
    recentAssociations(db, RECENT),
    diskSpace(s.dataDir),
    s.importer.batches.list({ limit: RECENT_IMPORTS, offset: 0 }),
  ]);
  const forwards = await forwardsOfScans(
    db,
    [...finished.scans, ...failed.scans].map((v) => v.id),
  );
  const ended = (v: (typeof finished.scans)[number]) => {
    const j = scanJson(v, undefined);
    return {
      id: j.id,
      studyInstanceUid: j.studyInstanceUid,
      accessionNumber: j.accessionNumber,
      patientId: j.patientId,
      requestedAt: j.requestedAt,
      remote: j.remote,
      forwards: (forwards.get(v.id) ?? []).map((f) => ({
        destination: f.destination,
        state: f.state,
        attempts: f.attempts,
        lastError: f.lastError,
      })),
      studyDate: j.studyDate,
      state: j.state,
      reason: j.reason,
      mppsStatus: j.mppsStatus,
      completedAt: j.completedAt,
      series: j.series.length,
      received: j.received,
      expected: j.expected,
    };
  };
  const scheduler = s.scheduler?.();
  const cluster = s.cluster ? await s.cluster() : null;
  return {
    cluster,
    generatedAt: (s.now?.() ?? new Date()).toISOString(),
    aeTitle: s.aeTitle ?? null,
    dicom: s.dicom ? { listening: s.dicom.listening, activeAssociations: s.dicom.activeAssociations } : null,
    scheduler: scheduler
      ? {
          paused: scheduler.paused,
          running: scheduler.running,
          lastRunAt: scheduler.lastRunAt ?? null,
          lastRunMs: scheduler.lastRunMs ?? null,
          nextRunAt: scheduler.nextRunAt ?? null,
          lastError: scheduler.lastError ?? null,
        }
      : null,
    disk,
    active: { total: active.total, scans: active.scans.map((v) => scanJson(v, progress(v.id))) },
    finished: { total: finished.total, scans: finished.scans.map(ended) },
    failed: { total: failed.total, scans: failed.scans.map(ended) },
    associations: associations.map((a) => associationJson(a, s.remotes)),
    remotes: Object.entries(s.remotes ?? {}).map(([name, r]) => ({
      name,
      aeTitle: r.aeTitle,
      host: r.host,
      port: r.port,
      roles: r.roles,
      scanner: name === s.scannerName,
      state: s.remoteStates?.get(name) ?? null,
    })),
    imports: { total: imports.total, recent: imports.batches.map((b) => importJson(s, b)) },
  };
}

/**
 * GET /health, GET /api/status (the snapshot), GET /api/events (the same snapshot as server-sent events, sent again
 * whenever it changes), and the status page itself at /.
 */
export async function registerStatusRoutes(app: FastifyInstance, s: HttpServices): Promise<void> {
  app.get('/health', async (_req, reply) => {
    let database: { ok: boolean; type?: string; error?: string } = { ok: true };
    if (s.db) {
      try {
        await s.db.source.query('SELECT 1');
        database = { ok: true, type: s.db.type };
      } catch (err) {
        database = { ok: false, type: s.db.type, error: String(err) };
      }
    }
    const dicom = s.dicom
      ? { ok: s.dicom.listening, listening: s.dicom.listening, activeAssociations: s.dicom.activeAssociations }
      : undefined;
    const ok = database.ok && (dicom?.ok ?? true);
    return reply
      .status(ok ? 200 : 503)
      .send({ status: ok ? 'ok' : 'unavailable', version: VERSION, database, ...(dicom && { dicom }) });
  });

  app.get('/api/status', async () => statusSnapshot(s));

  const live = new LiveStatus(() => statusSnapshot(s), s.log);
  const unsubscribeChanges = s.onChange?.(() => live.touch());
  const open = new Set<FastifyReply>();
  await app.register(fastifySse, { heartbeatInterval: 15_000 });
  // The snapshot is serialized once for all viewers: the route's serializer passes the string through.
  app.get('/api/events', { sse: { kind: 'only', serializer: (d: unknown) => String(d) } }, async (_req, reply) => {
    // Each stream holds a socket and a subscriber for as long as the client likes: their number is capped.
    if (open.size >= s.http.maxEventStreams) {
      throw httpError(503, `too many live status connections (http.maxEventStreams = ${s.http.maxEventStreams})`);
    }
    reply.sse.keepAlive();
    // Headers now: a handler that returns before its first event would otherwise be answered with an empty body.
    reply.sse.sendHeaders();
    open.add(reply);
    // Snapshots are queued so that each is written whole and in order.
    const sends = new Mutex();
    const unsubscribe = live.subscribe((json) => {
      sends.runExclusive(() => reply.sse.send({ event: 'status', data: json })).catch(() => undefined);
    });
    reply.sse.onClose(() => {
      unsubscribe();
      open.delete(reply);
    });
  });
  app.addHook('preClose', async () => {
    unsubscribeChanges?.();
    live.stop();
    for (const reply of open) reply.sse.close();
  });

  await app.register(fastifyStatic, { root: UI_DIR, prefix: '/', wildcard: false, index: 'index.html' });
}
