/** Owns the cluster's rules, without I/O: whether a registered node is alive, and whether this node may start. */

export interface NodeRecord {
  id: string;
  host: string;
  pid: number;
  heartbeatAt: Date;
  stoppedAt: Date | null;
}

export type NodeState = 'alive' | 'stopped' | 'dead';

export interface Here {
  id: string;
  host: string;
  pid: number;
  /** Whether a process with this pid runs on this host (asked only for rows of this host). */
  pidAlive: (pid: number) => boolean;
}

/**
 * A node is stopped once it said so, dead once its heartbeat is older than the lease (or, on this host, once its
 * process is gone: a node killed with -9 and started again need not wait for its own lease), alive otherwise.
 * A row of this very process (same host and pid) is an earlier incarnation: dead (a container restarts as pid 1).
 */
export function nodeState(row: NodeRecord, nowMs: number, leaseMs: number, here?: Here): NodeState {
  if (row.stoppedAt) return 'stopped';
  if (nowMs - row.heartbeatAt.getTime() > leaseMs) return 'dead';
  if (here && row.host === here.host && (row.pid === here.pid || !here.pidAlive(row.pid))) return 'dead';
  return 'alive';
}

/** Why this node may not start next to the nodes registered (undefined: it may). */
export function startRefusal(
  here: Here,
  database: 'sqlite' | 'postgres',
  rows: NodeRecord[],
  nowMs: number,
  leaseMs: number,
): string | undefined {
  for (const row of rows) {
    if (nodeState(row, nowMs, leaseMs, here) !== 'alive') continue;
    const who = `pid ${row.pid} on ${row.host}, last heartbeat ${Math.round((nowMs - row.heartbeatAt.getTime()) / 1000)} s ago`;
    if (database === 'sqlite') {
      return (
        `the SQLite database is in use by scannode node "${row.id}" (${who}): SQLite serves one node; ` +
        'several nodes need PostgreSQL (docs/OPERATIONS.md, "Several nodes")'
      );
    }
    if (row.id === here.id) {
      return `node id "${row.id}" is already running (${who}); give each node its own cluster.nodeId`;
    }
  }
  return undefined;
}
