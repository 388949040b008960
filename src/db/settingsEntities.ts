import { EntitySchema } from 'typeorm';
import type { Dialect } from './entities.js';

/** A runtime setting a running node reads again on each use (the scheduler's pause flag, say). */
export interface SettingRow {
  key: string;
  /** JSON text. */
  value: string;
  updatedAt: Date;
}

export function settingsEntities(d: Dialect) {
  const Setting = new EntitySchema<SettingRow>({
    name: 'Setting',
    tableName: 'settings',
    columns: {
      key: { type: 'varchar', length: 64, primary: true },
      value: { type: 'text' },
      updatedAt: { name: 'updated_at', type: d.timestamp },
    },
  });
  return { Setting };
}

export type SettingsEntities = ReturnType<typeof settingsEntities>;
