/** Owns the SQL of the forwarding outbox: rows enqueued once per (scan, destination), the due ones, their outcome. */
import { randomUUID } from 'node:crypto';
import { In, LessThanOrEqual } from 'typeorm';
import type { Database } from './dataSource.js';
import { fitRow } from './fit.js';
import type { OutboxRow } from './outboxEntities.js';

const repo = (db: Database) => db.source.getRepository(db.entities.Outbox);

/** New rows, pending now; a (scan, destination) already there is left as it is (a re-run of completion). */
export async function enqueueForwards(
  db: Database,
  rows: Array<Pick<OutboxRow, 'scanId' | 'studyInstanceUid' | 'destination' | 'seriesFilter'>>,
  now: Date,
): Promise<void> {
  if (!rows.length) return;
  const { Outbox } = db.entities;
  const values = rows.map((r) =>
    fitRow(Outbox, {
      id: randomUUID(),
      ...r,
      state: 'pending' as const,
      attempts: 0,
      nextAttemptAt: now,
      lastError: null,
      instancesSent: 0,
      instancesTotal: 0,
      commitTransactionUid: null,
      instancesCommitted: 0,
      createdAt: now,
      updatedAt: now,
    }),
  );
  await db.source.createQueryBuilder().insert().into(Outbox).values(values).orIgnore().execute();
}

/** Rows whose next attempt is due (pending), or whose commitment report is overdue (committing), oldest first. */
export async function dueForwards(db: Database, now: Date, limit = 20): Promise<OutboxRow[]> {
  return repo(db).find({
    where: [
      { state: 'pending', nextAttemptAt: LessThanOrEqual(now) },
      { state: 'committing', nextAttemptAt: LessThanOrEqual(now) },
    ],
    order: { nextAttemptAt: 'ASC', id: 'ASC' },
    take: limit,
  });
}

/** The row waiting on a storage commitment transaction, if any. */
export async function forwardOfTransaction(db: Database, transactionUid: string): Promise<OutboxRow | null> {
  return repo(db).findOne({ where: { commitTransactionUid: transactionUid, state: 'committing' } });
}

/** The outbox rows of several scans (a page of the status page), by scan id. */
export async function forwardsOfScans(db: Database, scanIds: string[]): Promise<Map<string, OutboxRow[]>> {
  const out = new Map<string, OutboxRow[]>();
  if (!scanIds.length) return out;
  const rows = await repo(db).find({ where: { scanId: In(scanIds) }, order: { destination: 'ASC' } });
  for (const r of rows) out.set(r.scanId, [...(out.get(r.scanId) ?? []), r]);
  return out;
}

export async function forwardsOfScan(db: Database, scanId: string): Promise<OutboxRow[]> {
  return repo(db).find({ where: { scanId }, order: { destination: 'ASC' } });
}

/** A row as the API and the scan summary show it: the next attempt (or the commitment deadline) only while due. */
export function forwardView(f: OutboxRow) {
  return {
    destination: f.destination,
    state: f.state,
    attempts: f.attempts,
    nextAttemptAt: f.state === 'pending' || f.state === 'committing' ? f.nextAttemptAt : null,
    lastError: f.lastError,
    instancesSent: f.instancesSent,
    instancesTotal: f.instancesTotal,
    instancesCommitted: f.instancesCommitted,
    updatedAt: f.updatedAt,
  };
}

export async function updateForward(db: Database, id: string, change: Partial<OutboxRow>): Promise<void> {
  await repo(db).update({ id }, fitRow(db.entities.Outbox, change));
}

/** The archived instances of a study with their series' description, for the forward filter. */
export async function archivedFilesOf(
  db: Database,
  study: string,
): Promise<
  Array<{
    path: string;
    sopClassUid: string;
    sopInstanceUid: string;
    seriesDescription: string | null;
    modality: string | null;
  }>
> {
  const { Instance, Series } = db.entities;
  return db.source
    .getRepository(Instance)
    .createQueryBuilder('i')
    .innerJoin(Series.options.name, 's', 's.seriesInstanceUid = i.seriesInstanceUid')
    .select('i.path', 'path')
    .addSelect('i.sopClassUid', 'sopClassUid')
    .addSelect('i.sopInstanceUid', 'sopInstanceUid')
    .addSelect('s.seriesDescription', 'seriesDescription')
    .addSelect('s.modality', 'modality')
    .where('i.studyInstanceUid = :study', { study })
    .andWhere("i.state = 'archived'")
    .orderBy('i.path', 'ASC')
    .getRawMany();
}
