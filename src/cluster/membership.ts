/**
 * Owns this node's membership of the cluster: refusing to start beside a live node it must not run with, the
 * heartbeat, and the lease on the scheduler (the cron and the reconcile passes run on one node of the cluster at a
 * time; another takes over within cluster.leaseSeconds of its last heartbeat). On SQLite the cluster is one node.
 */
import fs from 'node:fs';
import os from 'node:os';
import { SCHEDULER_LEASE_NAME as SCHEDULER_LEASE, type ClusterStore } from '../db/clusterStore.js';
import { nodeState, startRefusal, type Here, type SharedSettings } from '../domain/cluster.js';
import type { Logger } from '../logging/logger.js';
import { Loop, type LoopTimers } from '../scheduler/loop.js';
import type { RunReason } from '../scheduler/scheduler.js';
import type { Wake } from './wake.js';
import { processAlive } from '../pipeline/runMarker.js';

/** `pid:[inode]` of this process's PID namespace (Linux), null where there is none to read. */
export function currentPidNamespace(): string | null {
  try {
    return fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

export interface MembershipOptions {
  nodeId?: string;
  aeTitle: string;
  version: string;
  database: 'sqlite' | 'postgres';
  /** The settings every node must share: a node whose differ from a live node's is refused. */
  settings?: SharedSettings;
  heartbeatMs: number;
  leaseMs: number;
  now: () => Date;
  /**
   * The leases this node bids for (default: the scheduler's). Each is held by one node of the cluster at a time:
   * 'scheduler' (cron ticks and reconcile passes), 'inbox' (the inbox watcher).
   */
  leases?: readonly string[];
  /** Called when this node takes or loses a lease. */
  onLease?: (name: string, held: boolean) => void;
  /** The DICOM associations open now, written with each heartbeat (the status page's nodes). */
  activeAssociations?: () => number;
  timers?: LoopTimers;
  /** Injected for tests: whether a process runs here (default: signal 0). */
  pidAlive?: (pid: number) => boolean;
  host?: string;
  pid?: number;
  /** Injected for tests: this process's PID namespace (default: read from /proc). */
  pidNamespace?: string | null;
}

/** A node that may not start: the reason names the node in the way and what to do. */
export class ClusterStartError extends Error {
  override name = 'ClusterStartError';
}

export class Membership {
  readonly id: string;
  private readonly here: Here;
  private readonly loop: Loop<undefined>;
  /** Until when (this node's clock) each lease is ours; absent when not held. */
  private readonly until = new Map<string, number>();
  private readonly leases: readonly string[];
  private joined = false;

  constructor(
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly opts: MembershipOptions,
  ) {
    this.id = opts.nodeId ?? os.hostname().slice(0, 64);
    this.here = {
      id: this.id,
      host: opts.host ?? os.hostname(),
      pid: opts.pid ?? process.pid,
      pidNamespace: opts.pidNamespace === undefined ? currentPidNamespace() : opts.pidNamespace,
      pidAlive: opts.pidAlive ?? processAlive,
    };
    this.leases = opts.leases ?? [SCHEDULER_LEASE];
    this.loop = new Loop({
      run: () => this.beat(),
      onError: (err) => this.log.warn('cluster heartbeat failed', { node: this.id, err: String(err) }),
      every: { ms: opts.heartbeatMs, arg: undefined },
      unref: true,
      timers: opts.timers,
    });
  }

  /** Registers this node, after checking no live node is in the way; then beats and bids for its leases. */
  async join(): Promise<void> {
    const now = this.opts.now();
    const refusal = startRefusal(
      this.here,
      this.opts.database,
      await this.store.listNodes(),
      now.getTime(),
      this.opts.leaseMs,
      this.opts.settings,
    );
    if (refusal) throw new ClusterStartError(refusal);
    await this.store.register({
      id: this.id,
      host: this.here.host,
      pid: this.here.pid,
      pidNamespace: this.here.pidNamespace,
      version: this.opts.version,
      aeTitle: this.opts.aeTitle,
      startedAt: now,
      heartbeatAt: now,
      settings: this.opts.settings ? JSON.stringify(this.opts.settings) : null,
      associations: 0,
    });
    this.joined = true;
    this.log.info('joined the cluster', { node: this.id, database: this.opts.database });
    await this.bid(now);
    this.loop.start();
  }

  /** This node runs the scheduler now (holds its lease). */
  get leader(): boolean {
    return this.holds(SCHEDULER_LEASE);
  }

  /** This node holds the lease `name` now (with a heartbeat of margin against clock skew). */
  holds(name: string): boolean {
    return this.opts.now().getTime() < (this.until.get(name) ?? 0) - this.opts.heartbeatMs;
  }

  /** One heartbeat: the registry row, then each lease (renewed, or taken over from a dead holder). */
  async beat(): Promise<void> {
    const now = this.opts.now();
    await this.store.heartbeat(this.id, now, this.opts.activeAssociations?.() ?? 0);
    await this.bid(now);
  }

  /** Counts a reconcile pass of the cluster, in the database (the lease row), while this node holds the lease. */
  async countPass(): Promise<void> {
    await this.store.countRun(SCHEDULER_LEASE, this.id);
  }

  private async bid(now: Date): Promise<void> {
    for (const name of this.leases) {
      const was = this.holds(name);
      const won = await this.store.acquire(name, this.id, now.getTime(), this.opts.leaseMs);
      if (won) this.until.set(name, now.getTime() + this.opts.leaseMs);
      else this.until.delete(name);
      if (won !== was) {
        this.log.info(won ? `this node now holds the ${name} lease` : `another node holds the ${name} lease`, {
          node: this.id,
        });
        this.opts.onLease?.(name, won);
      }
    }
  }

  /**
   * Runs `work` under the one-off lease `name` (not renewed: `work` must end within cluster.leaseSeconds, or another
   * node may take it). False when another node holds it; the lease is given up once `work` ends.
   */
  async exclusively(name: string, work: () => Promise<void>): Promise<boolean> {
    if (!(await this.store.acquire(name, this.id, this.opts.now().getTime(), this.opts.leaseMs))) return false;
    try {
      await work();
    } finally {
      await this.store.release(name, this.id);
    }
    return true;
  }

  /** The nodes of the cluster that died (silent for a lease, never said they stopped), this one never among them. */
  async deadNodes(): Promise<Array<{ id: string; startedAt: Date }>> {
    const now = this.opts.now().getTime();
    return (await this.store.listNodes()).filter(
      (n) => n.id !== this.id && nodeState(n, now, this.opts.leaseMs, this.here) === 'dead',
    );
  }

  /** Stops beating, gives its leases up (others take them at their next heartbeat) and marks the node stopped. */
  async leave(): Promise<void> {
    await this.loop.stop();
    if (!this.joined) return;
    this.joined = false;
    const held = [...this.until.keys()];
    this.until.clear();
    for (const name of held) await this.store.release(name, this.id);
    await this.store.markStopped(this.id, this.opts.now());
  }
}

/**
 * The scheduler's job on this node: the node holding the scheduler lease runs the pass (counted in the database);
 * another node runs none, and an image or N-SET it received (a trigger) wakes the node that does.
 */
export function clusterJob(
  membership: Membership,
  wake: Wake,
  pass: () => Promise<void>,
): (reason: RunReason) => Promise<void> {
  return async (reason) => {
    if (!membership.leader) {
      if (reason === 'trigger') await wake.publish();
      return;
    }
    await membership.countPass();
    await pass();
  };
}
