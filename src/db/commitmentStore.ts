/** SQL of storage commitment: the request rows (pending until reported) and the instance rows a judgement reads. */
import type { Database } from './dataSource.js';
import { fitRow } from './fit.js';
import type { CommitmentRow } from './commitmentEntities.js';

export type Reference = [sopClassUid: string, sopInstanceUid: string];

export class CommitmentStore {
  constructor(private readonly db: Database) {}

  /** Records a request (a repeated Transaction UID replaces the earlier one: the requester asks again). */
  async save(transactionUid: string, callingAe: string, refs: Reference[], now: Date): Promise<void> {
    await this.db.source.getRepository(this.db.entities.Commitment).save({
      transactionUid,
      callingAe,
      referenced: JSON.stringify(refs),
      state: 'pending',
      attempts: 0,
      lastError: null,
      receivedAt: now,
      deliveredAt: null,
    });
  }

  pending(): Promise<CommitmentRow[]> {
    return this.db.source.getRepository(this.db.entities.Commitment).find({ where: { state: 'pending' } });
  }

  async delivered(transactionUid: string, now: Date): Promise<void> {
    await this.db.source
      .getRepository(this.db.entities.Commitment)
      .update({ transactionUid }, { state: 'delivered', deliveredAt: now, lastError: null });
  }

  async failedAttempt(transactionUid: string, error: string, giveUp: boolean): Promise<void> {
    const repo = this.db.source.getRepository(this.db.entities.Commitment);
    await repo.increment({ transactionUid }, 'attempts', 1);
    await repo.update(
      { transactionUid },
      fitRow(this.db.entities.Commitment, { lastError: error, ...(giveUp ? { state: 'given-up' as const } : {}) }),
    );
  }

  /** The instance rows (SOP class, dataDir-relative path) of these SOP Instance UIDs, by UID. */
  async instances(uids: string[]): Promise<Map<string, { sopClassUid: string; path: string }>> {
    const out = new Map<string, { sopClassUid: string; path: string }>();
    const repo = this.db.source.getRepository(this.db.entities.Instance);
    for (let i = 0; i < uids.length; i += 500) {
      const rows = await repo
        .createQueryBuilder('i')
        .select(['i.sopInstanceUid', 'i.sopClassUid', 'i.path'])
        .where('i.sopInstanceUid IN (:...uids)', { uids: uids.slice(i, i + 500) })
        .getMany();
      for (const r of rows) out.set(r.sopInstanceUid, { sopClassUid: r.sopClassUid, path: r.path });
    }
    return out;
  }
}
