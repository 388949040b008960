/**
 * Owns GET /api/remotes: the named DICOM nodes of the config (the scanner among them), their roles and address,
 * and the last association each opened to us (from the association audit).
 */
import type { FastifyInstance } from 'fastify';
import { need, type HttpServices } from './common.js';
import { lastAssociationOf } from '../db/studyViews.js';
import { remoteOf } from '../domain/remotes.js';

export function registerRemoteRoutes(app: FastifyInstance, s: HttpServices): void {
  app.get('/api/remotes', async () => {
    const db = need(s.db, 'database');
    const remotes = s.remotes ?? {};
    const out = [];
    for (const [name, r] of Object.entries(remotes)) {
      const last = await lastAssociationOf(db, r.aeTitle);
      const ours = last && remoteOf(remotes, last.callingAe, last.remoteAddress) === name ? last : null;
      out.push({
        name,
        aeTitle: r.aeTitle,
        host: r.host,
        port: r.port,
        tls: !!r.tls,
        roles: r.roles,
        matchAddress: r.matchAddress,
        scanner: name === s.scannerName,
        state: s.remoteStates?.get(name) ?? null,
        lastAssociation: ours
          ? {
              endedAt: ours.endedAt,
              accepted: ours.accepted,
              remoteAddress: ours.remoteAddress,
              instancesReceived: ours.instancesReceived,
              failures: ours.failures,
              rejectReason: ours.rejectReason,
            }
          : null,
      });
    }
    return { remotes: out };
  });
}
