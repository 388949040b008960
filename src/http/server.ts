import Fastify, { type FastifyInstance } from 'fastify';
import { Ajv } from 'ajv';
import { registerImportRoutes } from './imports.js';
import { registerScanRoutes } from './scans.js';
import { registerStudyRoutes } from './studies.js';
import { registerStatusRoutes } from './status.js';
import { registerMetricsRoute } from './metrics.js';
import { registerNodeRoutes } from './nodes.js';
import { registerRemoteRoutes } from './remotes.js';
import { isLoopback, type HttpServices } from './common.js';
import { registerGuards } from './guard.js';

export { httpError, isLoopback, type HttpServices } from './common.js';

/**
 * The HTTP API as a fastify app (not listening). Write endpoints need `Authorization: Bearer <http.token>` when a token
 * is set; without one they are refused unless the server listens on loopback only. Errors are JSON
 * `{ error, message }` with the matching status; request bodies and params are validated by their route schemas.
 */
export async function buildHttpApp(s: HttpServices): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  // JSON bodies are taken as typed (no "123" for 123); query strings and path parameters are text, so they are
  // coerced to the schema's types (limit=10, accepted=true).
  const ajvOptions = { removeAdditional: false, useDefaults: true, allErrors: true, strict: false } as const;
  const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false });
  const textAjv = new Ajv({ ...ajvOptions, coerceTypes: true });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));

  await registerGuards(app, s);
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: 'not found', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );

  registerImportRoutes(app, s);
  registerScanRoutes(app, s);
  registerStudyRoutes(app, s);
  registerMetricsRoute(app, s);
  registerNodeRoutes(app, s);
  registerRemoteRoutes(app, s);
  await registerStatusRoutes(app, s);
  return app;
}

/** Builds the app and listens on http.host:http.port. */
export async function startHttp(s: HttpServices): Promise<FastifyInstance> {
  const app = await buildHttpApp(s);
  await app.listen({ host: s.http.host, port: s.http.port });
  const addr = app.server.address();
  s.log.info('HTTP listening', {
    address: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : String(addr),
    writes: s.http.token ? 'bearer token' : isLoopback(s.http.host) ? 'loopback, no token' : 'disabled (no token)',
  });
  return app;
}
