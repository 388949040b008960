import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { DATA_DIRS } from '../domain/paths.js';
import { httpError, type HttpServices } from './common.js';

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

const getSchema = {
  params: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' } },
  },
} as const;

function inside(root: string, p: string): boolean {
  return p.startsWith(root + path.sep);
}

/**
 * Where a requested import path really is: inside inbox/ after `..` and symbolic links are resolved, or an HTTP error.
 * A relative path is taken relative to inbox/.
 */
export function resolveInboxPath(dataDir: string, requested: string): string {
  const inbox = path.resolve(dataDir, DATA_DIRS.inbox);
  const realInbox = fs.realpathSync(inbox);
  const lexical = path.resolve(inbox, requested);
  if (!inside(inbox, lexical) && !inside(realInbox, lexical)) {
    throw httpError(403, `path ${JSON.stringify(requested)} is outside the inbox (${inbox})`);
  }
  let real: string;
  try {
    real = fs.realpathSync(lexical);
  } catch {
    throw httpError(400, `path ${JSON.stringify(requested)} does not exist`);
  }
  if (!inside(realInbox, real)) {
    throw httpError(403, `path ${JSON.stringify(requested)} resolves outside the inbox (a symbolic link to ${real})`);
  }
  return real;
}

/** POST /api/imports (XNAT DICOM Inbox style, but failures are visible in the status) and GET /api/imports/:id. */
export function registerImportRoutes(app: FastifyInstance, s: HttpServices): void {
  app.post<{ Body: ImportBody }>('/api/imports', { schema: postSchema }, async (req, reply) => {
    const target = resolveInboxPath(s.dataDir, req.body.path);
    const inbox = fs.realpathSync(path.resolve(s.dataDir, DATA_DIRS.inbox));
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

  app.get<{ Params: { id: string } }>('/api/imports/:id', { schema: getSchema }, async (req) => {
    const st = await s.importer.status(req.params.id);
    if (!st) throw httpError(404, `no import ${req.params.id}`);
    return {
      id: st.id,
      name: st.name,
      source: st.source,
      path: st.path,
      state: st.state,
      done: st.state !== 'queued' && st.state !== 'running',
      cleanupAfterImport: !st.keepSources,
      patientId: st.patientId,
      studyLabel: st.studyLabel,
      counts: {
        filesFound: st.filesFound,
        filesRead: st.filesRead,
        archived: st.archived,
        duplicates: st.duplicates,
        problems: st.problems,
        errors: st.errors,
        bytes: st.bytes,
      },
      startedAt: st.startedAt,
      endedAt: st.endedAt,
      message: st.message,
      problems: st.problemList,
    };
  });
}
