/**
 * Owns the spools of dead nodes when nodes share the data directory (cluster.sharedDataDir): the node holding the
 * scheduler lease recovers each dead node's spool (what it acknowledged but had not indexed) under the lease
 * `spool:<node>`, once per incarnation of that node, so its images are archived without waiting for it to come back.
 * A node starting takes the same lease before it recovers its own spool, so the two never run at once. The dead
 * node's import batches (inbox, REST) are made due again, for whichever node's retry loop claims them first.
 */
import type { Config } from '../config/schema.js';
import type { Database } from '../db/dataSource.js';
import { ImportBatches } from '../db/importBatches.js';
import { spoolDirs, type SpoolDirs } from '../domain/paths.js';
import type { Logger } from '../logging/logger.js';
import { recoverSpool } from '../pipeline/spoolRecovery.js';
import { Loop } from '../scheduler/loop.js';
import type { Membership } from './membership.js';

export const spoolLease = (node: string): string => `spool:${node}`;

export interface SpoolTakeoverOptions {
  /** Recovers the spool of `node` (spoolRecovery.ts with ownerDead); resolves with how many files were indexed. */
  recover(node: string): Promise<number>;
  /** Images were indexed: a pass should archive them. */
  recovered(): void;
  /** How often the holder looks for dead nodes (ms). */
  everyMs: number;
}

export class SpoolTakeover {
  private readonly loop: Loop<undefined>;
  /** Node incarnations (id and start) whose spool this node recovered. */
  private readonly done = new Set<string>();

  constructor(
    private readonly membership: Membership,
    private readonly log: Logger,
    private readonly opts: SpoolTakeoverOptions,
  ) {
    this.loop = new Loop<undefined>({
      run: () => this.sweep(),
      onError: (err) => this.log.error('recovery of dead nodes’ spools failed', { err: String(err) }),
      every: { ms: opts.everyMs, arg: undefined },
      unref: true,
    });
  }

  start(): void {
    this.loop.start();
  }

  /** Looks now (tests, and when this node takes the scheduler lease). */
  sweepNow(): Promise<void> {
    return this.loop.notify(undefined);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /**
   * This node's own spool at its start, under its lease: waits while another node is recovering it (at most
   * `waitMs`), then runs `recover`.
   */
  static async claimOwn(membership: Membership, recover: () => Promise<void>, waitMs: number): Promise<void> {
    const until = Date.now() + waitMs;
    for (;;) {
      if (await membership.exclusively(spoolLease(membership.id), recover)) return;
      if (Date.now() > until) throw new Error('another node keeps recovering this node’s spool; try again later');
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  private async sweep(): Promise<void> {
    if (!this.membership.leader) return;
    for (const node of await this.membership.deadNodes()) {
      const key = `${node.id}@${node.startedAt.getTime()}`;
      if (this.done.has(key)) continue;
      let indexed = 0;
      const ran = await this.membership.exclusively(spoolLease(node.id), async () => {
        // Still dead, the same incarnation: a node that came back registers before it claims its own spool.
        const now = await this.membership.deadNodes();
        if (!now.some((n) => n.id === node.id && n.startedAt.getTime() === node.startedAt.getTime())) return;
        indexed = await this.opts.recover(node.id);
      });
      if (!ran) continue;
      this.done.add(key);
      this.log.info('spool of a dead node recovered by this node', { deadNode: node.id, indexed });
      if (indexed) this.opts.recovered();
    }
  }
}

/**
 * The start-up recovery of this node's spool: as it always was with a data directory of its own (`spool` undefined);
 * with a shared one, under its lease, and then the takeover of dead nodes' spools (returned, to start and stop).
 */
export async function recoverOwnSpool(
  membership: Membership,
  ingest: { recover(): Promise<unknown> },
  spool: SpoolDirs | undefined,
  o: { db: Database; dataDir: string; log: Logger; cluster: Config['cluster']; passWanted: () => void },
): Promise<SpoolTakeover | undefined> {
  if (!spool) {
    await ingest.recover();
    return undefined;
  }
  await SpoolTakeover.claimOwn(
    membership,
    async () => void (await ingest.recover()),
    2 * o.cluster.leaseSeconds * 1000,
  );
  return new SpoolTakeover(membership, o.log, {
    recover: async (node) => {
      const resumed = await new ImportBatches(o.db).resumeDeadNode(node, new Date());
      if (resumed) o.log.info('imports of a dead node resume', { deadNode: node, batches: resumed });
      return (await recoverSpool(o.db, o.dataDir, o.log, { spool: spoolDirs(node), ownerDead: true })).indexed;
    },
    recovered: o.passWanted,
    everyMs: o.cluster.heartbeatSeconds * 1000,
  });
}
