/** The `settings` table's data access: one row per key, its JSON text value and when it was last set. */
import type { Database } from './dataSource.js';
import type { SettingRow } from './settingsEntities.js';

export async function readSetting(db: Database, key: string): Promise<SettingRow | null> {
  return db.source.getRepository(db.entities.Setting).findOneBy({ key });
}

/** Upsert: a save() of an existing key updates it, on either database. */
export async function writeSetting(db: Database, key: string, value: unknown): Promise<void> {
  await db.source.getRepository(db.entities.Setting).save({ key, value: JSON.stringify(value), updatedAt: new Date() });
}
