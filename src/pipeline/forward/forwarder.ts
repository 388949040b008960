/**
 * Owns forwarding ended scans (issue 15): when a scan ends, one outbox row per destination its rules name, written
 * before the scan is marked ended (so a crash re-enqueues nothing twice and loses nothing); then a loop that sends
 * each due row's archived study by C-STORE (scuStore.ts) and marks it sent once the destination answered every
 * instance, or tries again later (backoff doubling from forwarding.retrySeconds) up to forwarding.maxTries.
 * A destination with `commitment` is then asked for Storage Commitment (commitment.ts): the row waits, committing,
 * for its report. A row that is sent or committed is never sent again.
 */
import type { Config } from '../../config/schema.js';
import type { Database } from '../../db/dataSource.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from '../../storage/part10.js';
import { dueForwards, enqueueForwards, updateForward } from '../../db/outboxStore.js';
import type { OutboxRow } from '../../db/outboxEntities.js';
import type { ScanRow } from '../../db/scanEntities.js';
import { seriesOfStudy } from '../../db/studyStore.js';
import { storeInstances, type StorePeer } from '../../dimse/scuStore.js';
import type { NEventReportRequest, NResponse } from '../../dimse/types.js';
import { forwardTargets, type ForwardRule } from '../../domain/forwardRules.js';
import { insideDataDir } from '../../domain/paths.js';
import { describeStatus, isFailure } from '../../domain/statusTable.js';
import type { Logger } from '../../logging/logger.js';
import { Loop } from '../../scheduler/loop.js';
import { fileStoreItem } from './storeItems.js';
import { ForwardCommitments, type ForwardOutcome } from './commitment.js';

export type { ForwardOutcome };

export interface ForwarderOptions {
  rules: readonly ForwardRule[];
  /** The destinations by name (remotes with roles.store); `commitment`: ask it for Storage Commitment. */
  peers: Readonly<Record<string, StorePeer & { commitment?: boolean }>>;
  /** The scanner's remote name (a scan without a source remote comes from it; rules' `from`). */
  scannerName: string;
  /** How long a destination has to send its storage commitment report. */
  commitmentWaitMs: number;
  /** Each attempt's outcome, per destination (the remotes' states on the status page). */
  onOutcome?: (o: ForwardOutcome) => void;
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
  private readonly commitments: ForwardCommitments;

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
    this.commitments = new ForwardCommitments(db, log, opts);
  }

  /** The forwarder of a node's config: its rules, the remotes it may store to, its retries. */
  static fromConfig(
    config: Config,
    db: Database,
    dataDir: string,
    log: Logger,
    sends: () => boolean,
    onOutcome?: (o: ForwardOutcome) => void,
  ): Forwarder {
    return new Forwarder(db, dataDir, log, {
      rules: config.forward,
      peers: Object.fromEntries(Object.entries(config.remotes).filter(([, r]) => r.roles.store)),
      scannerName: config.scanner.name,
      commitmentWaitMs: config.forwarding.commitmentWaitSeconds * 1000,
      callingAe: config.dicom.aeTitle,
      implementationClassUid: IMPLEMENTATION_CLASS_UID,
      implementationVersionName: IMPLEMENTATION_VERSION,
      maxTries: config.forwarding.maxTries,
      retryMs: config.forwarding.retrySeconds * 1000,
      now: () => new Date(),
      sends,
      onOutcome,
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
    const targets = forwardTargets(this.opts.rules, state, modalities, scan.remote ?? this.opts.scannerName);
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

  /** The SCP side's N-EVENT-REPORT handler: a destination's storage commitment result on a new association. */
  commitmentReport(req: NEventReportRequest): Promise<NResponse> {
    return this.commitments.reportOnNewAssociation(req);
  }

  private async deliverDue(): Promise<void> {
    if (this.opts.sends && !this.opts.sends()) return;
    for (const row of await dueForwards(this.db, this.opts.now())) await this.deliver(row);
  }

  private async deliver(row: OutboxRow): Promise<void> {
    if (row.state === 'committing') return this.commitments.overdue(row);
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
    const files = await this.commitments.filesOf(row);
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
    if (!error && peer.commitment) {
      this.log.info('study forwarded; asking for storage commitment', { ...meta, instances: sent });
      return this.commitments.ask(row, peer, files, attempts);
    }
    if (!error) {
      this.opts.onOutcome?.({ destination: row.destination, scanId: row.scanId, ok: true });
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
    await this.commitments.failedAttempt(row, attempts, error!, { instancesSent: sent, instancesTotal: files.length });
  }
}
