import type { FastifyInstance } from 'fastify';
import { httpError, type HttpServices } from './common.js';

/** `GET /metrics`: the node's prom-client registry in the Prometheus text format; 404 when the node has none. */
export function registerMetricsRoute(app: FastifyInstance, s: HttpServices): void {
  app.get('/metrics', async (_req, reply) => {
    const registry = s.metrics;
    if (!registry) throw httpError(404, 'metrics are not enabled on this node');
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
}
