/** Read models of what the node received, for the HTTP API and the status page: reads only. */
import type { Database } from './dataSource.js';
import type { AssociationRow } from './entities.js';

/** The last `limit` associations, the most recently ended first. */
export async function recentAssociations(db: Database, limit: number): Promise<AssociationRow[]> {
  return db.source.getRepository(db.entities.Association).find({ order: { endedAt: 'DESC', id: 'ASC' }, take: limit });
}
