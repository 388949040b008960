import type { Database } from '../db/dataSource.js';

/** The `settings` key of the flag that `scannode scheduler pause|resume` sets and every scheduler tick reads. */
export const SCHEDULER_PAUSED_KEY = 'scheduler.paused';

export async function isSchedulerPaused(db: Database): Promise<boolean> {
  const row = await db.source.getRepository(db.entities.Setting).findOneBy({ key: SCHEDULER_PAUSED_KEY });
  return row ? JSON.parse(row.value) === true : false;
}

/** Upsert: a save() of an existing key updates it, on either database. */
export async function setSchedulerPaused(db: Database, paused: boolean): Promise<void> {
  await db.source
    .getRepository(db.entities.Setting)
    .save({ key: SCHEDULER_PAUSED_KEY, value: JSON.stringify(paused), updatedAt: new Date() });
}

/** When the flag was last set, for `scheduler status`. */
export async function schedulerPausedSince(db: Database): Promise<Date | undefined> {
  const row = await db.source.getRepository(db.entities.Setting).findOneBy({ key: SCHEDULER_PAUSED_KEY });
  return row ? new Date(row.updatedAt) : undefined;
}
