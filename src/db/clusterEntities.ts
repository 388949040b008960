/** The cluster's tables: the node registry (one row per node, with its heartbeat) and named leases. */
import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

export interface ClusterNodeRow {
  /** cluster.nodeId: stable across restarts of the same node. */
  id: string;
  host: string;
  pid: number;
  /** The PID namespace `pid` is in (`pid:[inode]` on Linux), null where unknown. */
  pidNamespace: string | null;
  version: string;
  aeTitle: string;
  startedAt: Date;
  heartbeatAt: Date;
  /** Set by a clean stop; null while running (or after a crash, until the lease runs out). */
  stoppedAt: Date | null;
  /** The settings all nodes must share, as JSON (domain/cluster.ts sharedSettings), as this node started. */
  settings: string | null;
  /** DICOM associations open on this node at its last heartbeat. */
  associations: number;
}

export interface ClusterLeaseRow {
  /** What is held: 'scheduler' (the cron and the reconcile passes of the whole cluster). */
  name: string;
  holder: string;
  /** Epoch milliseconds (a number compares the same way in SQLite and PostgreSQL). */
  expiresAt: number;
  /** How many times work ran under this lease (the scheduler: reconcile passes), for tests and the status page. */
  runs: number;
}

/** bigint comes back from pg as a string. */
const epochMs = { to: (v: number) => v, from: (v: string | number) => Number(v) };

export function clusterEntities(d: Dialect) {
  const ClusterNode = new EntitySchema<ClusterNodeRow>({
    name: 'ClusterNode',
    tableName: 'cluster_nodes',
    columns: {
      id: { type: 'varchar', length: 64, primary: true },
      host: { type: 'varchar', length: 255 },
      pid: { type: 'integer' },
      pidNamespace: { name: 'pid_namespace', type: 'varchar', length: 64, nullable: true },
      version: { type: 'varchar', length: 32 },
      aeTitle: { name: 'ae_title', type: 'varchar', length: 16 },
      startedAt: { name: 'started_at', type: d.timestamp },
      heartbeatAt: { name: 'heartbeat_at', type: d.timestamp },
      stoppedAt: { name: 'stopped_at', type: d.timestamp, nullable: true },
      settings: { type: 'text', nullable: true },
      associations: { type: 'integer', default: 0 },
    },
  });
  const ClusterLease = new EntitySchema<ClusterLeaseRow>({
    name: 'ClusterLease',
    tableName: 'cluster_leases',
    columns: {
      name: { type: 'varchar', length: 64, primary: true },
      holder: { type: 'varchar', length: 64 },
      expiresAt: { name: 'expires_at', type: 'bigint', transformer: epochMs },
      runs: { type: 'integer', default: 0 },
    },
  });
  return { ClusterNode, ClusterLease };
}

export type ClusterEntities = ReturnType<typeof clusterEntities>;
