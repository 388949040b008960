/** Owns the import routes: POST /api/imports, GET /api/imports (the list), GET /api/imports/:id, POST .../retry. */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { DATA_DIRS } from '../domain/paths.js';
import { textOfName } from '../domain/fileNames.js';
import { IMPORT_STATES, type ImportBatchRow, type ImportSource, type ImportState } from '../db/importEntities.js';
import { httpError, type HttpServices } from './common.js';
import { pagingProperties } from './scans.js';

interface ImportBody {
  path: string;
  patientId?: string;
  studyLabel?: string;
  cleanupAfterImport?: boolean;
}

const postSchema = {
  body: {
    type: 'object',
    required: ['path'],
    additionalProperties: false,
    properties: {
      path: { type: 'string', minLength: 1, maxLength: 1024 },
      patientId: { type: 'string', minLength: 1, maxLength: 64 },
      studyLabel: { type: 'string', minLength: 1, maxLength: 128 },
      cleanupAfterImport: { type: 'boolean' },
    },
  },
} as const;

const idSchema = {
  params: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' } },
  },
} as const;

const listSchema = {
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      state: { type: 'string', enum: IMPORT_STATES },
      source: { type: 'string', enum: ['inbox', 'rest', 'cli'] },
      ...pagingProperties,
    },
  },
} as const;

function inside(root: string, p: string): boolean {
  return p.startsWith(root + path.sep);
}

/**
 * Where a requested import path really is: inside inbox/ after `..` and symbolic links are resolved, or an HTTP error.
 * A relative path is taken relative to inbox/. (The import itself then opens every folder on the way without
 * following links, so a link swapped in after this check stops it.)
 */
export function resolveInboxPath(dataDir: string, requested: string): string {
  const inbox = path.resolve(dataDir, DATA_DIRS.inbox);
  const realInbox = fs.realpathSync(inbox);
  const lexical = path.resolve(inbox, requested);
  if (!inside(inbox, lexical) && !inside(realInbox, lexical)) {
    throw httpError(403, `path ${JSON.stringify(requested)} is outside the inbox`);
  }
  let real: string;
  try {
    real = fs.realpathSync(lexical);
  } catch {
    throw httpError(400, `path ${JSON.stringify(requested)} does not exist`);
  }
  if (!inside(realInbox, real)) {
    throw httpError(403, `path ${JSON.stringify(requested)} is a symbolic link that leads outside the inbox`);
  }
  return real;
}

/** A path of the data directory as the API shows it: relative to dataDir when inside it (never a machine path). */
function shownPath(s: HttpServices, p: string): string {
  const data = textOfName(fs.realpathSync(s.dataDir));
  return p.startsWith(`${data}/`) ? p.slice(data.length + 1) : p;
}

/** A batch as the list and the status show it. */
export function importJson(s: HttpServices, b: ImportBatchRow) {
  return {
    id: b.id,
    name: b.name,
    source: b.source,
    path: shownPath(s, b.path),
    state: b.state,
    done: b.state !== 'queued' && b.state !== 'running',
    cleanupAfterImport: !b.keepSources,
    patientId: b.patientId,
    studyLabel: b.studyLabel,
    counts: {
      filesFound: b.filesFound,
      filesRead: b.filesRead,
      archived: b.archived,
      duplicates: b.duplicates,
      problems: b.problems,
      errors: b.errors,
      bytes: b.bytes,
    },
    startedAt: b.startedAt,
    endedAt: b.endedAt,
    attempts: b.attempts,
    nextAttemptAt: b.nextAttemptAt,
    message: b.message,
    statusUrl: `/api/imports/${b.id}`,
  };
}

/** POST /api/imports (XNAT DICOM Inbox style, but failures are visible in the status), the list, one, its retry. */
export function registerImportRoutes(app: FastifyInstance, s: HttpServices): void {
  app.post<{ Body: ImportBody }>('/api/imports', { schema: postSchema }, async (req, reply) => {
    const target = textOfName(resolveInboxPath(s.dataDir, req.body.path));
    const inbox = s.importer.inboxDir;
    if (s.importer.isBusy(target)) throw httpError(409, `an import of ${path.relative(inbox, target)} is running`);
    const { batch } = await s.importer.start({
      path: target,
      baseDir: inbox,
      name: path.basename(target),
      source: 'rest',
      keepSources: req.body.cleanupAfterImport === false,
      removeEmptyRoot: true,
      patientId: req.body.patientId,
      studyLabel: req.body.studyLabel,
    });
    const statusUrl = `/api/imports/${batch.id}`;
    return reply.status(202).header('location', statusUrl).send({ id: batch.id, state: batch.state, statusUrl });
  });

  app.get<{ Querystring: { state?: ImportState; source?: ImportSource; limit: number; offset: number } }>(
    '/api/imports',
    { schema: listSchema },
    async (req) => {
      const { state, source, limit, offset } = req.query;
      const page = await s.importer.batches.list({ state, source, limit, offset });
      return { total: page.total, limit, offset, imports: page.batches.map((b) => importJson(s, b)) };
    },
  );

  app.get<{ Params: { id: string } }>('/api/imports/:id', { schema: idSchema }, async (req) => {
    const st = await s.importer.status(req.params.id);
    if (!st) throw httpError(404, `no import ${req.params.id}`);
    return { ...importJson(s, st), problems: st.problemList };
  });

  app.post<{ Params: { id: string } }>('/api/imports/:id/retry', { schema: idSchema }, async (req, reply) => {
    const r = await s.importer.retry(req.params.id, { cli: false });
    if ('refused' in r) throw httpError(r.status, r.refused);
    s.changed?.();
    const statusUrl = `/api/imports/${r.batch.id}`;
    return reply
      .status(202)
      .header('location', statusUrl)
      .send({ id: r.batch.id, state: r.done ? 'running' : r.batch.state, statusUrl });
  });
}
