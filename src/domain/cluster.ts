/** Owns the cluster's rules, without I/O: whether a registered node is alive, and whether this node may start. */

export interface NodeRecord {
  id: string;
  host: string;
  pid: number;
  pidNamespace?: string | null;
  heartbeatAt: Date;
  stoppedAt: Date | null;
  settings?: string | null;
}

/** The settings every node of one cluster must share: one AE title, one archive layout, one way to judge. */
export type SharedSettings = Record<string, string | number | boolean | null>;

/** Which shared setting differs from a live node's, named with both values (undefined: they agree). */
export function settingsDisagreement(
  mine: SharedSettings,
  id: string,
  theirs: string | null | undefined,
): string | undefined {
  if (!theirs) return undefined;
  let other: SharedSettings;
  try {
    other = JSON.parse(theirs) as SharedSettings;
  } catch {
    return undefined;
  }
  for (const key of Object.keys(mine).sort()) {
    if (!(key in other)) continue; // a setting the other node's version did not know
    const [a, b] = [JSON.stringify(mine[key]), JSON.stringify(other[key])];
    if (a !== b) {
      return `${key} is ${a} here but ${b} on running node "${id}": every node of a cluster must share it (change it on all nodes, one at a time after stopping them all)`;
    }
  }
  return undefined;
}

export type NodeState = 'alive' | 'stopped' | 'dead';

export interface Here {
  id: string;
  host: string;
  pid: number;
  /** This process's PID namespace (null where unknown): pids of rows in another one say nothing here. */
  pidNamespace: string | null;
  /** Whether a process with this pid runs on this host (asked only for rows of this host and namespace). */
  pidAlive: (pid: number) => boolean;
}

/**
 * A node is stopped once it said so, dead once its heartbeat is older than the lease (or, on this host and in this
 * PID namespace, once its process is gone: a node killed with -9 and started again need not wait for its own lease),
 * alive otherwise. A row of this very process (same host, namespace and pid) is an earlier incarnation: dead. So is a
 * row of this node's own id on this host from another namespace (its container restarted). The pids of another
 * namespace say nothing: containers on the host network share the host name, and each may run its node as pid 7.
 */
export function nodeState(row: NodeRecord, nowMs: number, leaseMs: number, here?: Here): NodeState {
  if (row.stoppedAt) return 'stopped';
  if (nowMs - row.heartbeatAt.getTime() > leaseMs) return 'dead';
  if (!here || row.host !== here.host) return 'alive';
  if ((row.pidNamespace ?? null) === here.pidNamespace) {
    return row.pid === here.pid || !here.pidAlive(row.pid) ? 'dead' : 'alive';
  }
  return row.id === here.id ? 'dead' : 'alive';
}

/** Why this node may not start next to the nodes registered (undefined: it may). */
export function startRefusal(
  here: Here,
  database: 'sqlite' | 'postgres',
  rows: NodeRecord[],
  nowMs: number,
  leaseMs: number,
  settings: SharedSettings = {},
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
    const differs = settingsDisagreement(settings, row.id, row.settings);
    if (differs) return differs;
  }
  return undefined;
}
