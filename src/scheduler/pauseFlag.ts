/** The scheduler's pause flag: set by `scannode scheduler pause|resume`, read by every scheduler tick. */
import type { Database } from '../db/dataSource.js';
import { readSetting, writeSetting } from '../db/settings.js';

/** The `settings` key of the flag that `scannode scheduler pause|resume` sets and every scheduler tick reads. */
export const SCHEDULER_PAUSED_KEY = 'scheduler.paused';

export async function isSchedulerPaused(db: Database): Promise<boolean> {
  const row = await readSetting(db, SCHEDULER_PAUSED_KEY);
  return row ? JSON.parse(row.value) === true : false;
}

export async function setSchedulerPaused(db: Database, paused: boolean): Promise<void> {
  await writeSetting(db, SCHEDULER_PAUSED_KEY, paused);
}

/** When the flag was last set, for `scheduler status`. */
export async function schedulerPausedSince(db: Database): Promise<Date | undefined> {
  const row = await readSetting(db, SCHEDULER_PAUSED_KEY);
  return row ? new Date(row.updatedAt) : undefined;
}
