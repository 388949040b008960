/** Owns the SQL of the cluster: the node registry (register, heartbeat, stop, list) and named leases. */
import type { Database } from './dataSource.js';
import { isUniqueViolation } from './dataSource.js';
import { fitRow } from './fit.js';
import type { ClusterLeaseRow, ClusterNodeRow } from './clusterEntities.js';
import { nodeState, type NodeState } from '../domain/cluster.js';

/** The lease of the cluster's scheduler (cron ticks and reconcile passes run on its holder only). */
export const SCHEDULER_LEASE_NAME = 'scheduler';

export class ClusterStore {
  constructor(private readonly db: Database) {}

  private get nodes() {
    return this.db.source.getRepository(this.db.entities.ClusterNode);
  }
  private get leases() {
    return this.db.source.getRepository(this.db.entities.ClusterLease);
  }

  async listNodes(): Promise<ClusterNodeRow[]> {
    return this.nodes.find({ order: { id: 'ASC' } });
  }

  async node(id: string): Promise<ClusterNodeRow | null> {
    return this.nodes.findOneBy({ id });
  }

  /** Registers (or re-registers, after a restart) this node as running. */
  async register(row: Omit<ClusterNodeRow, 'stoppedAt'>): Promise<void> {
    await this.nodes.save(fitRow(this.db.entities.ClusterNode, { ...row, stoppedAt: null }));
  }

  async heartbeat(id: string, at: Date, associations = 0): Promise<void> {
    await this.nodes.update({ id }, { heartbeatAt: at, associations });
  }

  async markStopped(id: string, at: Date): Promise<void> {
    await this.nodes.update({ id }, { stoppedAt: at, heartbeatAt: at });
  }

  async leaseRows(): Promise<ClusterLeaseRow[]> {
    return this.leases.find({ order: { name: 'ASC' } });
  }

  /**
   * Takes or renews the lease `name` for `holder` until `nowMs + ttlMs`: true when `holder` has it now. One
   * conditional UPDATE (held by us, or expired) or, for a lease never taken, one INSERT; both are atomic on SQLite
   * and PostgreSQL, so two nodes can never both win.
   */
  async acquire(name: string, holder: string, nowMs: number, ttlMs: number): Promise<boolean> {
    const result = await this.leases
      .createQueryBuilder()
      .update()
      .set({ holder, expiresAt: nowMs + ttlMs })
      .where('name = :name', { name })
      .andWhere('(holder = :holder OR expires_at < :now)', { holder, now: nowMs })
      .execute();
    if ((result.affected ?? 0) > 0) return true;
    try {
      await this.leases.insert({ name, holder, expiresAt: nowMs + ttlMs, runs: 0 });
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  /** Gives the lease up at once (a clean stop), so another node need not wait for it to run out. */
  async release(name: string, holder: string): Promise<void> {
    await this.leases.update({ name, holder }, { expiresAt: 0 });
  }

  /** Counts one run of the work the lease guards, only while `holder` holds it. */
  async countRun(name: string, holder: string): Promise<void> {
    await this.leases.increment({ name, holder }, 'runs', 1);
  }
}

/** One node as the status page, the API and `scannode nodes` show it. */
export interface NodeView {
  id: string;
  host: string;
  pid: number;
  version: string;
  aeTitle: string;
  state: NodeState;
  startedAt: string;
  heartbeatAt: string;
  /** Seconds since its last heartbeat. */
  heartbeatAgeSeconds: number;
  /** It holds the scheduler lease (it runs the cron and the reconcile passes of the cluster). */
  scheduler: boolean;
  /** DICOM associations open on it at its last heartbeat. */
  associations: number;
}

export interface ClusterView {
  nodes: NodeView[];
  /** Reconcile passes run under the scheduler lease, cluster-wide. */
  passes: number;
}

/** The registry as operators read it: every node with its state, and which one runs the scheduler. */
export async function clusterView(db: Database, nowMs: number, leaseMs: number): Promise<ClusterView> {
  const store = new ClusterStore(db);
  const [rows, leases] = await Promise.all([store.listNodes(), store.leaseRows()]);
  const lease = leases.find((l) => l.name === SCHEDULER_LEASE_NAME);
  const holder = lease && lease.expiresAt > nowMs ? lease.holder : undefined;
  return {
    passes: lease?.runs ?? 0,
    nodes: rows.map((r) => {
      const state = nodeState(r, nowMs, leaseMs);
      return {
        id: r.id,
        host: r.host,
        pid: r.pid,
        version: r.version,
        aeTitle: r.aeTitle,
        state,
        startedAt: r.startedAt.toISOString(),
        heartbeatAt: r.heartbeatAt.toISOString(),
        heartbeatAgeSeconds: Math.max(0, Math.round((nowMs - r.heartbeatAt.getTime()) / 1000)),
        scheduler: state === 'alive' && holder === r.id,
        associations: state === 'alive' ? r.associations : 0,
      };
    }),
  };
}
