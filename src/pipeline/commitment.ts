/**
 * Storage Commitment Push Model SCP (PS3.4 J): persists each N-ACTION request, judges every referenced instance
 * (committed only when indexed here with its file present and the same SOP class), and delivers the N-EVENT-REPORT:
 * on the requester's association while it is open, else on a new association to the known remote, with retries.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import { CommitmentStore, type Reference } from '../db/commitmentStore.js';
import { DicomStatus, DimseError } from '../domain/status.js';
import { describeStatus } from '../domain/statusTable.js';
import { cleanUid } from '../domain/uid.js';
import type { Logger } from '../logging/logger.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from '../storage/part10.js';
import { sendEventReport, type ReportPeer } from '../dimse/scuEventReport.js';
import type { NActionRequest, NResponse } from '../dimse/types.js';

export interface CommitmentOptions {
  dataDir: string;
  ourAe: string;
  /** The remote a report goes to on a new association, by the requester's AE title. */
  peerFor(callingAe: string): ReportPeer | undefined;
  maxTries?: number;
  retryMs?: number;
  /** Whether this node retries undelivered reports (in a cluster: the scheduler's node only); default always. */
  retries?: () => boolean;
  /** A report was delivered to `callingAe`: how many instances it says committed and failed (metrics). */
  onReported?: (callingAe: string, committed: number, failed: number) => void;
}

/** A report is left to the node that received its N-ACTION this long before another node retries it. */
const FIRST_TRY_MS = 30_000;

type Judged = { committed: Reference[]; failed: Array<[...Reference, number]> };

export class Commitments {
  private readonly store: CommitmentStore;
  private timer: NodeJS.Timeout | undefined;
  /** Transactions being delivered now (a retry tick skips them). */
  private readonly inFlight = new Set<string>();

  constructor(
    db: Database,
    private readonly log: Logger,
    private readonly opts: CommitmentOptions,
  ) {
    this.store = new CommitmentStore(db);
  }

  /** The N-ACTION handler: checks and persists, answers Success; the report follows. */
  async nAction(req: NActionRequest): Promise<NResponse> {
    const ds = req.dataset;
    const transactionUid = cleanUid(ds.TransactionUID);
    if (!transactionUid) throw new DimseError(DicomStatus.MissingAttribute, 'no Transaction UID (0008,1195)');
    const seq = ds.ReferencedSOPSequence;
    if (!Array.isArray(seq) || seq.length === 0) {
      throw new DimseError(DicomStatus.MissingAttribute, 'no Referenced SOP Sequence (0008,1199)');
    }
    const refs: Reference[] = [];
    for (const item of seq as Array<Record<string, unknown>>) {
      const c = cleanUid(item?.ReferencedSOPClassUID);
      const i = cleanUid(item?.ReferencedSOPInstanceUID);
      if (!c || !i) throw new DimseError(DicomStatus.InvalidAttributeValue, 'a reference without its two UIDs');
      refs.push([c, i]);
    }
    const callingAe = req.association.callingAe;
    await this.store.save(transactionUid, callingAe, refs, new Date());
    this.log.info('storage commitment requested', { callingAe, transactionUid, instances: refs.length });
    // Not the association's `after`: its release must not wait for the report (deliver() never rejects).
    void this.deliver(transactionUid, callingAe, refs, req.reportOnSameAssociation);
    return { status: DicomStatus.Success };
  }

  /** Judges each reference against the index and the files. */
  async judge(refs: Reference[]): Promise<Judged> {
    const out: Judged = { committed: [], failed: [] };
    let rows: Map<string, { sopClassUid: string; path: string }>;
    try {
      rows = await this.store.instances(refs.map((r) => r[1]));
    } catch (err) {
      this.log.error('storage commitment: index read failed', { err: String(err) });
      return {
        committed: [],
        failed: refs.map((r) => [...r, DicomStatus.ProcessingFailure] as [string, string, number]),
      };
    }
    for (const [cls, uid] of refs) {
      const row = rows.get(uid);
      if (!row) out.failed.push([cls, uid, DicomStatus.NoSuchObjectInstance]);
      else if (row.sopClassUid !== cls) out.failed.push([cls, uid, 0x0119]);
      else if (!fs.existsSync(path.join(this.opts.dataDir, row.path)))
        out.failed.push([cls, uid, DicomStatus.ProcessingFailure]);
      else out.committed.push([cls, uid]);
    }
    return out;
  }

  private async deliver(
    transactionUid: string,
    callingAe: string,
    refs: Reference[],
    same?: NActionRequest['reportOnSameAssociation'],
  ): Promise<void> {
    if (this.inFlight.has(transactionUid)) return;
    this.inFlight.add(transactionUid);
    try {
      const judged = await this.judge(refs);
      const { eventTypeId, dataset } = reportDataset(transactionUid, judged);
      let via = 'same association';
      let status = same ? await same(eventTypeId, dataset) : undefined;
      if (status === undefined) {
        const peer = this.opts.peerFor(callingAe);
        if (!peer) throw new Error(`no remote known for AE "${callingAe}"`);
        status = await sendEventReport(peer, eventTypeId, dataset, {
          callingAe: this.opts.ourAe,
          implementationClassUid: IMPLEMENTATION_CLASS_UID,
          implementationVersionName: IMPLEMENTATION_VERSION,
          log: this.log,
        });
        via = 'new association';
      }
      if (status !== DicomStatus.Success)
        throw new Error(`N-EVENT-REPORT-RSP status ${describeStatus(status, 'N-EVENT-REPORT')}`);
      await this.store.delivered(transactionUid, new Date());
      this.opts.onReported?.(callingAe, judged.committed.length, judged.failed.length);
      this.log.info('storage commitment reported', {
        callingAe,
        transactionUid,
        via,
        committed: judged.committed.length,
        failed: judged.failed.length,
      });
    } catch (err) {
      const rows = await this.store.pending().catch(() => []);
      const row = rows.find((r) => r.transactionUid === transactionUid);
      const giveUp = (row?.attempts ?? 0) + 1 >= (this.opts.maxTries ?? 10);
      this.log.warn('storage commitment report not delivered', { callingAe, transactionUid, err: String(err), giveUp });
      await this.store.failedAttempt(transactionUid, String(err), giveUp).catch(() => undefined);
    } finally {
      this.inFlight.delete(transactionUid);
    }
  }

  /**
   * Delivers what is pending (after a restart), then again every `retryMs`; in a cluster only on the scheduler's
   * node, and only reports whose first try (on the node that took the N-ACTION) is over, so none goes out twice.
   */
  start(): void {
    const tick = async (): Promise<void> => {
      const shared = this.opts.retries !== undefined;
      if (shared && !this.opts.retries!()) return;
      for (const row of await this.store.pending().catch(() => [])) {
        if (shared && row.attempts === 0 && Date.now() - row.receivedAt.getTime() < FIRST_TRY_MS) continue;
        await this.deliver(row.transactionUid, row.callingAe, JSON.parse(row.referenced) as Reference[]);
      }
    };
    const loop = (): void => {
      this.timer = setTimeout(() => void tick().finally(loop), this.opts.retryMs ?? 60_000);
      this.timer.unref();
    };
    void tick().finally(loop);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function reportDataset(transactionUid: string, j: Judged): { eventTypeId: 1 | 2; dataset: Record<string, unknown> } {
  const dataset: Record<string, unknown> = { TransactionUID: transactionUid };
  if (j.committed.length > 0) {
    dataset.ReferencedSOPSequence = j.committed.map(([c, i]) => ({
      ReferencedSOPClassUID: c,
      ReferencedSOPInstanceUID: i,
    }));
  }
  if (j.failed.length > 0) {
    dataset.FailedSOPSequence = j.failed.map(([c, i, reason]) => ({
      ReferencedSOPClassUID: c,
      ReferencedSOPInstanceUID: i,
      FailureReason: reason,
    }));
  }
  return { eventTypeId: j.failed.length > 0 ? 2 : 1, dataset };
}
