/** What every HTTP request passes: the Host header check (DNS rebinding), the bearer token on writes, safe errors. */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import bearerAuth from '@fastify/bearer-auth';
import { httpError, isLoopback, type HttpServices } from './common.js';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The host name of a Host header value: `[::1]:8080` -> `::1`, `Example.org.:80` -> `example.org`. */
export function hostName(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined) : h.replace(/:\d*$/, '');
  return name.replace(/\.$/, '');
}

function loopbackName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost') || name === '::1' || /^127(\.\d{1,3}){3}$/.test(name);
}

/**
 * The Host rule (docs/API.md): with `http.allowedHosts` set, only those names (and the loopback names when bound to
 * loopback); without it, a node bound to loopback answers only loopback names (localhost, 127.0.0.0/8, ::1), so a
 * web page that rebinds its own DNS name to 127.0.0.1 gets 403; a node bound elsewhere answers any Host.
 */
export function hostAllowed(name: string, http: HttpServices['http']): boolean {
  const allowed = (http.allowedHosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, ''));
  if (isLoopback(http.host) && loopbackName(name)) return true;
  if (allowed.includes(name)) return true;
  return !isLoopback(http.host) && allowed.length === 0;
}

/**
 * A message safe to send: dataDir paths made relative, any other absolute file path (a symbolic link's target, a
 * temp folder) hidden. API paths (/api/..., /health, /metrics) stay.
 */
export function publicMessage(message: string, dataDir: string): string {
  let out = message;
  const roots = new Set([path.resolve(dataDir)]);
  try {
    roots.add(fs.realpathSync(dataDir));
  } catch {
    // not there: nothing to add
  }
  for (const root of roots) out = out.split(`${root}${path.sep}`).join('').split(root).join('<dataDir>');
  return out.replace(/(^|[\s("'=:,])\/(?!api\/|health\b|metrics\b)[^\s"'),]+/g, '$1<path>');
}

function isBearerError(err: unknown): boolean {
  return (
    typeof (err as FastifyError | undefined)?.code === 'string' &&
    (err as FastifyError).code.startsWith('FST_BEARER_AUTH')
  );
}

export async function registerGuards(app: FastifyInstance, s: HttpServices): Promise<void> {
  const token = s.http.token;
  // @fastify/bearer-auth compares in constant time; it is asked only on writes (reads need no token).
  if (token) await app.register(bearerAuth, { keys: [token], addHook: false, verifyErrorLogLevel: undefined });

  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const name = hostName(req.headers.host);
    if (!hostAllowed(name, s.http)) {
      s.log.warn('HTTP request with a Host header that is not allowed', {
        host: name.slice(0, 100),
        url: req.url.slice(0, 200),
      });
      return done(httpError(403, `Host "${name.slice(0, 100)}" is not allowed here (http.allowedHosts)`));
    }
    if (!WRITE_METHODS.has(req.method)) return done();
    if (!token) {
      if (!isLoopback(s.http.host))
        return done(
          httpError(403, 'write endpoints are disabled: set http.token to allow writes on a non-loopback address'),
        );
      return done();
    }
    app.verifyBearerAuth!(req, reply, (err?: Error) => {
      if (!err) return done();
      const given = /^Bearer /.test(req.headers.authorization ?? '');
      done(
        httpError(
          401,
          given ? 'wrong bearer token' : 'a bearer token is required (Authorization: Bearer <http.token>)',
        ),
      );
    });
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) {
      return reply.status(400).send({ error: 'invalid request', message: publicMessage(err.message, s.dataDir) });
    }
    const status = isBearerError(err) ? 401 : err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status === 500) {
      // The details (paths, driver messages) go to the log, never to the client.
      s.log.error('HTTP request failed', { id: req.id, method: req.method, url: req.url, err: String(err) });
      return reply.status(status).send({
        error: 'internal error',
        message: `the request failed; the node's log has the details (request ${req.id})`,
      });
    }
    if (status > 500) s.log.warn('HTTP request refused', { id: req.id, url: req.url, status, reason: err.message });
    const label =
      status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status >= 500 ? 'unavailable' : 'error';
    return reply.status(status).send({ error: label, message: publicMessage(err.message, s.dataDir) });
  });
}
