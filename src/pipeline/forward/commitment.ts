/**
 * Owns the Storage Commitment of forwarded studies (PS3.4 J, we are the SCU) and the outcome of each outbox attempt:
 * after the C-STOREs a destination with `commitment` is asked (N-ACTION, scuCommit.ts) under a new Transaction UID
 * saved on the row first (state committing), so a report that comes on a new association, or after a restart, still
 * finds it. A complete report marks the row committed; a failure, a refusal or no report within
 * forwarding.commitmentWaitSeconds is a failed attempt, tried again with backoff (the study sent and asked again).
 */
import type { Database } from '../../db/dataSource.js';
import { archivedFilesOf, forwardOfTransaction, updateForward } from '../../db/outboxStore.js';
import type { OutboxRow } from '../../db/outboxEntities.js';
import { requestCommitment } from '../../dimse/scuCommit.js';
import type { StorePeer } from '../../dimse/scuStore.js';
import type { NEventReportRequest, NResponse } from '../../dimse/types.js';
import { judgeCommitment, readCommitmentResult } from '../../domain/commitmentReport.js';
import { forwardBackoffMs, seriesSelected } from '../../domain/forwardRules.js';
import { DicomStatus, DimseError } from '../../domain/status.js';
import { describeStatus } from '../../domain/statusTable.js';
import { newUid } from '../../domain/uid.js';
import type { Logger } from '../../logging/logger.js';

/** One attempt's outcome for a destination (success: delivered, and committed when asked). */
export interface ForwardOutcome {
  destination: string;
  scanId: string;
  ok: boolean;
  /** A success with Storage Commitment asked and given. */
  committed?: boolean;
  error?: string;
}

export interface CommitmentOptions {
  peers: Readonly<Record<string, StorePeer & { commitment?: boolean }>>;
  callingAe: string;
  implementationClassUid: string;
  implementationVersionName?: string;
  maxTries: number;
  retryMs: number;
  commitmentWaitMs: number;
  now: () => Date;
  onOutcome?: (o: ForwardOutcome) => void;
}

type ArchivedFile = Awaited<ReturnType<typeof archivedFilesOf>>[number];

export class ForwardCommitments {
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    private readonly opts: CommitmentOptions,
  ) {}

  /** The archived files a row sends (its series filter applied), in a stable order. */
  async filesOf(row: OutboxRow): Promise<ArchivedFile[]> {
    return (await archivedFilesOf(this.db, row.studyInstanceUid)).filter((f) =>
      seriesSelected(row.seriesFilter, f.seriesDescription),
    );
  }

  /** Every file was stored: save the transaction, then ask; a report on the same association is applied at once. */
  async ask(row: OutboxRow, peer: StorePeer, files: ArchivedFile[], attempts: number): Promise<void> {
    const transactionUid = newUid();
    const now = this.opts.now();
    await updateForward(this.db, row.id, {
      state: 'committing',
      attempts,
      lastError: null,
      instancesSent: files.length,
      instancesTotal: files.length,
      instancesCommitted: 0,
      commitTransactionUid: transactionUid,
      nextAttemptAt: new Date(now.getTime() + this.opts.commitmentWaitMs),
      updatedAt: now,
    });
    const current = { ...row, attempts, commitTransactionUid: transactionUid, state: 'committing' as const };
    try {
      const asked = await requestCommitment(peer, transactionUid, files, {
        callingAe: this.opts.callingAe,
        implementationClassUid: this.opts.implementationClassUid,
        implementationVersionName: this.opts.implementationVersionName,
        log: this.log,
      });
      if (asked.actionStatus !== 0) {
        const why = `storage commitment refused: ${describeStatus(asked.actionStatus, 'N-ACTION')}`;
        return this.failedAttempt(current, attempts, why);
      }
      if (asked.report) await this.apply(current, asked.report.dataset);
    } catch (err) {
      await this.failedAttempt(current, attempts, `storage commitment: ${(err as Error).message}`);
    }
  }

  /** A report on a new association: it must name a transaction we wait on, from that destination's AE title. */
  async reportOnNewAssociation(req: NEventReportRequest): Promise<NResponse> {
    const tx = readCommitmentResult(req.dataset).transactionUid;
    if (!tx) throw new DimseError(DicomStatus.MissingAttribute, 'no Transaction UID (0008,1195)');
    const row = await forwardOfTransaction(this.db, tx);
    const peer = row && this.opts.peers[row.destination];
    if (!row || !peer || peer.aeTitle !== req.association.callingAe) {
      this.log.warn('storage commitment report for no transaction of ours', {
        callingAe: req.association.callingAe,
        transactionUid: tx,
      });
      throw new DimseError(
        DicomStatus.NoSuchObjectInstance,
        `no transaction ${tx} waits on ${req.association.callingAe}`,
      );
    }
    await this.apply(row, req.dataset);
    return { status: DicomStatus.Success };
  }

  /** A committing row past its wait: no report came. */
  async overdue(row: OutboxRow): Promise<void> {
    const wait = Math.round(this.opts.commitmentWaitMs / 1000);
    await this.failedAttempt(row, row.attempts, `no storage commitment report within ${wait} s`);
  }

  /** A failed attempt: tried again after the backoff, or given up after forwarding.maxTries. */
  async failedAttempt(
    row: OutboxRow,
    attempts: number,
    error: string,
    extra: Partial<Pick<OutboxRow, 'instancesSent' | 'instancesTotal'>> = {},
  ): Promise<void> {
    const now = this.opts.now();
    const giveUp = attempts >= this.opts.maxTries;
    await updateForward(this.db, row.id, {
      state: giveUp ? 'given-up' : 'pending',
      attempts,
      lastError: error,
      ...extra,
      nextAttemptAt: new Date(now.getTime() + forwardBackoffMs(attempts, this.opts.retryMs)),
      updatedAt: now,
    });
    this.opts.onOutcome?.({ destination: row.destination, scanId: row.scanId, ok: false, error });
    const meta = { destination: row.destination, study: row.studyInstanceUid, scan: row.scanId, attempt: attempts };
    this.log.warn(giveUp ? 'forwarding given up' : 'forwarding failed; will try again', { ...meta, error });
  }

  private async apply(row: OutboxRow, dataset: Record<string, unknown>): Promise<void> {
    const sent = (await this.filesOf(row)).map((f) => f.sopInstanceUid);
    const verdict = judgeCommitment(sent, readCommitmentResult(dataset));
    const meta = { destination: row.destination, study: row.studyInstanceUid, scan: row.scanId };
    if (!verdict.complete) {
      await updateForward(this.db, row.id, { instancesCommitted: verdict.committed });
      return this.failedAttempt(row, row.attempts, verdict.error!);
    }
    await updateForward(this.db, row.id, {
      state: 'committed',
      instancesCommitted: verdict.committed,
      lastError: null,
      updatedAt: this.opts.now(),
    });
    this.opts.onOutcome?.({ destination: row.destination, scanId: row.scanId, ok: true, committed: true });
    this.log.info('forwarded study committed by its destination', { ...meta, instances: verdict.committed });
  }
}
