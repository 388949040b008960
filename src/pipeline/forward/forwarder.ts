/**
 * Owns forwarding ended scans (issue 15): when a scan ends, one outbox row per destination its rules name, written
 * before the scan is marked ended (so a crash re-enqueues nothing twice and loses nothing); then a loop that sends
 * each due row's archived study by C-STORE (scuStore.ts) and marks it sent once the destination answered every
 * instance, or tries again later (backoff doubling from forwarding.retrySeconds) up to forwarding.maxTries.
 * A row that is sent is never sent again.
 */
import type { Config } from '../../config/schema.js';
import type { Database } from '../../db/dataSource.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from '../../storage/part10.js';
import { archivedFilesOf, dueForwards, enqueueForwards, updateForward } from '../../db/outboxStore.js';
import type { OutboxRow } from '../../db/outboxEntities.js';
import type { ScanRow } from '../../db/scanEntities.js';
import { seriesOfStudy } from '../../db/studyStore.js';
import { storeInstances, type StorePeer } from '../../dimse/scuStore.js';
import { forwardBackoffMs, forwardTargets, seriesSelected, type ForwardRule } from '../../domain/forwardRules.js';
import { insideDataDir } from '../../domain/paths.js';
import { describeStatus, isFailure } from '../../domain/statusTable.js';
import type { Logger } from '../../logging/logger.js';
import { Loop } from '../../scheduler/loop.js';
import { fileStoreItem } from './storeItems.js';

export interface ForwarderOptions {
  rules: readonly ForwardRule[];
  /** The destinations by name (remotes with roles.store). */
  peers: Readonly<Record<string, StorePeer>>;
  callingAe: string;
  implementationClassUid: string;
  implementationVersionName?: string;
  maxTries: number;
  retryMs: number;
  now: () => Date;
  /** Whether this node sends (in a cluster: the node holding the scheduler lease); default always. */
  sends?: () => boolean;
}

export class Forwarder {
  private readonly loop: Loop<undefined>;

  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly log: Logger,
    private readonly opts: ForwarderOptions,
  ) {
    this.loop = new Loop<undefined>({
      run: () => this.deliverDue(),
      onError: (err) => this.log.error('forwarding pass failed', { err: String(err) }),
      every: { ms: Math.min(opts.retryMs, 10_000), arg: undefined },
      unref: true,
    });
  }

  /** The forwarder of a node's config: its rules, the remotes it may store to, its retries. */
  static fromConfig(config: Config, db: Database, dataDir: string, log: Logger, sends: () => boolean): Forwarder {
    return new Forwarder(db, dataDir, log, {
      rules: config.forward,
      peers: Object.fromEntries(Object.entries(config.remotes).filter(([, r]) => r.roles.store)),
      callingAe: config.dicom.aeTitle,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION,
      maxTries: config.forwarding.maxTries,
      retryMs: config.forwarding.retrySeconds * 1000,
      now: () => new Date(),
      sends,
    });
  }

  start(): void {
    if (this.opts.rules.length) {
      this.loop.start();
      void this.loop.notify(undefined);
    }
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** Completion's hook: the outbox rows of a scan that ended (none without a study or a matching rule). */
  async enqueue(scan: ScanRow, state: 'finished' | 'failed'): Promise<void> {
    const study = scan.studyInstanceUid;
    if (!study || !this.opts.rules.length) return;
    const modalities = (await seriesOfStudy(this.db, study)).map((s) => s.modality).filter((m): m is string => !!m);
    const targets = forwardTargets(this.opts.rules, state, modalities);
    await enqueueForwards(
      this.db,
      targets.map((t) => ({
        scanId: scan.id,
        studyInstanceUid: study,
        destination: t.destination,
        seriesFilter: t.seriesFilter ?? null,
      })),
      this.opts.now(),
    );
    if (targets.length) void this.loop.notify(undefined);
  }

  /** Runs the due rows now (tests; the loop does it by itself). Resolves when that pass has ended. */
  deliverNow(): Promise<void> {
    return this.loop.notify(undefined);
  }

  private async deliverDue(): Promise<void> {
    if (this.opts.sends && !this.opts.sends()) return;
    for (const row of await dueForwards(this.db, this.opts.now())) await this.deliver(row);
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const peer = this.opts.peers[row.destination];
    const attempts = row.attempts + 1;
    const now = this.opts.now();
    if (!peer) {
      await updateForward(this.db, row.id, {
        state: 'given-up',
        attempts,
        lastError: `no remote named "${row.destination}" with roles.store in the config`,
        updatedAt: now,
      });
      return;
    }
    const files = (await archivedFilesOf(this.db, row.studyInstanceUid)).filter((f) =>
      seriesSelected(row.seriesFilter, f.seriesDescription),
    );
    let error: string | undefined;
    let sent = 0;
    try {
      const items = files.map((f) => fileStoreItem(insideDataDir(this.dataDir, f.path)));
      const outcomes = await storeInstances(peer, items, {
        callingAe: this.opts.callingAe,
        implementationClassUid: this.opts.implementationClassUid,
        implementationVersionName: this.opts.implementationVersionName,
        log: this.log,
      });
      const ok = (o: (typeof outcomes)[number]) => o.status !== undefined && !isFailure(o.status, 'C-STORE');
      sent = outcomes.filter(ok).length;
      const bad = outcomes.find((o) => !ok(o));
      if (bad) {
        error = `${bad.sopInstanceUid}: ${bad.error ?? describeStatus(bad.status!, 'C-STORE')}`;
        if (outcomes.length - sent > 1) error += ` (and ${outcomes.length - sent - 1} more)`;
      }
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const meta = { destination: row.destination, study: row.studyInstanceUid, scan: row.scanId, attempt: attempts };
    if (!error) {
      await updateForward(this.db, row.id, {
        state: 'sent',
        attempts,
        lastError: null,
        instancesSent: sent,
        instancesTotal: files.length,
        updatedAt: this.opts.now(),
      });
      this.log.info('study forwarded', { ...meta, instances: sent });
      return;
    }
    const giveUp = attempts >= this.opts.maxTries;
    await updateForward(this.db, row.id, {
      state: giveUp ? 'given-up' : 'pending',
      attempts,
      lastError: error,
      instancesSent: sent,
      instancesTotal: files.length,
      nextAttemptAt: new Date(now.getTime() + forwardBackoffMs(attempts, this.opts.retryMs)),
      updatedAt: this.opts.now(),
    });
    this.log.warn(giveUp ? 'forwarding given up' : 'forwarding failed; will try again', { ...meta, error });
  }
}
