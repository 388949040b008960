/**
 * Owns joining the cluster at start-up, from the config: this node's membership (registry, leases: the scheduler's,
 * and the inbox's when the inbox is watched) and, on PostgreSQL, the wake-up channel to the scheduler's node.
 */
import type { Config } from '../config/schema.js';
import { ClusterStore } from '../db/clusterStore.js';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import { Membership } from './membership.js';
import { noWake, pgWake, type Wake } from './wake.js';

export interface ClusterHooks {
  /** A pass is wanted soon (this node took the scheduler lease, or another node woke it). */
  passWanted(): void;
  /** This node took (true) or lost (false) the inbox lease. */
  inbox(held: boolean): void;
}

/** Refuses to start beside a live node it must not run with (ClusterStartError); else joined, beating. */
export async function joinCluster(
  config: Config,
  db: Database,
  version: string,
  log: Logger,
  hooks: ClusterHooks,
): Promise<{ membership: Membership; wake: Wake }> {
  const cl = config.cluster;
  const membership = new Membership(new ClusterStore(db), log, {
    nodeId: cl.nodeId,
    aeTitle: config.dicom.aeTitle,
    version,
    database: db.type,
    heartbeatMs: cl.heartbeatSeconds * 1000,
    leaseMs: cl.leaseSeconds * 1000,
    // Leases are wall-clock time shared with other nodes: never the injected clock of completion.
    now: () => new Date(),
    // The inbox has one watcher in the cluster: the node holding its lease.
    leases: config.import.watchInbox ? ['scheduler', 'inbox'] : ['scheduler'],
    onLease: (name, held) => {
      if (name === 'scheduler' && held) hooks.passWanted();
      if (name === 'inbox') hooks.inbox(held);
    },
  });
  await membership.join();
  if (config.database.type !== 'postgres') return { membership, wake: noWake };
  const { url, schema } = config.database;
  return { membership, wake: await pgWake(url, schema, membership.id, () => hooks.passWanted(), log) };
}
