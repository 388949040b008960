/** Owns GET /api/nodes: the cluster's nodes (alive, stopped, dead), their heartbeats and which one runs the scheduler. */
import type { FastifyInstance } from 'fastify';
import { need, type HttpServices } from './common.js';

export function registerNodeRoutes(app: FastifyInstance, s: HttpServices): void {
  app.get('/api/nodes', async () => need(s.cluster, 'cluster')());
}
