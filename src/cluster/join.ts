/**
 * Owns joining the cluster at start-up, from the config: this node's membership (registry, leases: the scheduler's,
 * and the inbox's when the inbox is watched) and, on PostgreSQL, the wake-up channel to the scheduler's node.
 */
import os from 'node:os';
import type { Config } from '../config/schema.js';
import { ClusterStore } from '../db/clusterStore.js';
import type { Database } from '../db/dataSource.js';
import type { SharedSettings } from '../domain/cluster.js';
import type { Logger } from '../logging/logger.js';
import { Membership } from './membership.js';
import { noWake, pgWake, type Wake } from './wake.js';

export interface ClusterHooks {
  /** A pass is wanted soon (this node took the scheduler lease, or another node woke it). */
  passWanted(): void;
  /** This node took (true) or lost (false) the inbox lease. */
  inbox(held: boolean): void;
  /** The DICOM associations open now (written with each heartbeat). */
  activeAssociations?: () => number;
}

/** This node's id in the cluster: cluster.nodeId, else the host name. */
export function nodeIdOf(config: Config): string {
  return config.cluster.nodeId ?? os.hostname().slice(0, 64);
}

/**
 * What every node of one cluster must share: the AE title scanners call, the archive's layout and duplicate rule, the
 * lease time (takeover) and the forward rules (any node may end a scan and enqueue its forwards).
 */
export function sharedSettings(config: Config): SharedSettings {
  return {
    'dicom.aeTitle': config.dicom.aeTitle,
    'dicom.onConflict': config.dicom.onConflict,
    'completion.grouping': config.completion.grouping,
    'cluster.leaseSeconds': config.cluster.leaseSeconds,
    forward: JSON.stringify(config.forward),
  };
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
    nodeId: nodeIdOf(config),
    aeTitle: config.dicom.aeTitle,
    version,
    database: db.type,
    settings: sharedSettings(config),
    heartbeatMs: cl.heartbeatSeconds * 1000,
    leaseMs: cl.leaseSeconds * 1000,
    // Leases are wall-clock time shared with other nodes: never the injected clock of completion.
    now: () => new Date(),
    // The inbox has one watcher in the cluster: the node holding its lease.
    leases: config.import.watchInbox ? ['scheduler', 'inbox'] : ['scheduler'],
    activeAssociations: hooks.activeAssociations,
    onLease: (name, held) => {
      if (name === 'scheduler' && held) hooks.passWanted();
      if (name === 'inbox') hooks.inbox(held);
    },
  });
  await membership.join();
  if (config.database.type !== 'postgres') return { membership, wake: noWake };
  const { url, schema } = config.database;
  // Only the scheduler's node acts on a wake-up: another one would pass it on (its trigger publishes), and two such
  // nodes would wake each other without end.
  const onWake = () => {
    if (membership.leader) hooks.passWanted();
  };
  return { membership, wake: await pgWake(url, schema, membership.id, onWake, log) };
}
