import path from 'node:path';
import fs from 'node:fs';
import { DataSource } from 'typeorm';
import type { Config } from '../config/schema.js';
import { dialectOf, entities, type Entities } from './entities.js';
import { Initial1763900000001 } from './migrations/0001-initial.js';
import { MppsScans1763900000002 } from './migrations/0002-mpps-scans.js';
import { Retrieve1763900000003 } from './migrations/0003-retrieve.js';
import { Settings1763900000004 } from './migrations/0004-settings.js';
import { Imports1763900000005 } from './migrations/0005-imports.js';
import { Grouping1763900000006 } from './migrations/0006-grouping.js';
import { ImportRetries1763900000017 } from './migrations/0017-import-retries.js';
import { StorageCommitment1763900000018 } from './migrations/0018-storage-commitment.js';
import { Cluster1763900000030 } from './migrations/0030-cluster.js';
import { ForwardOutbox1763900000031 } from './migrations/0031-forward-outbox.js';
import { ScanRemote1763900000032 } from './migrations/0032-scan-remote.js';
import { ForwardCommitment1763900000033 } from './migrations/0033-forward-commitment.js';
import { ClusterSettings1763900000034 } from './migrations/0034-cluster-settings.js';
import { ImportNode1763900000035 } from './migrations/0035-import-node.js';
import { NodePidNamespace1763900000036 } from './migrations/0036-node-pid-namespace.js';
import { outboxEntities, type OutboxEntities } from './outboxEntities.js';
import { clusterEntities, type ClusterEntities } from './clusterEntities.js';
import { commitmentEntities, type CommitmentEntities } from './commitmentEntities.js';
import { importEntities, type ImportEntities } from './importEntities.js';
import { retrieveEntities, type RetrieveEntities } from './retrieveEntities.js';
import { scanEntities, type ScanEntities } from './scanEntities.js';
import { settingsEntities, type SettingsEntities } from './settingsEntities.js';

export const MIGRATIONS = [
  Initial1763900000001,
  MppsScans1763900000002,
  Retrieve1763900000003,
  Settings1763900000004,
  Imports1763900000005,
  Grouping1763900000006,
  ImportRetries1763900000017,
  StorageCommitment1763900000018,
  Cluster1763900000030,
  ForwardOutbox1763900000031,
  ScanRemote1763900000032,
  ForwardCommitment1763900000033,
  ClusterSettings1763900000034,
  ImportNode1763900000035,
  NodePidNamespace1763900000036,
];

export interface Database {
  source: DataSource;
  entities: Entities &
    ScanEntities &
    RetrieveEntities &
    SettingsEntities &
    ImportEntities &
    CommitmentEntities &
    ClusterEntities &
    OutboxEntities;
  type: 'sqlite' | 'postgres';
  close(): Promise<void>;
}

/**
 * Opens the database named by the config and runs pending migrations (never `synchronize`).
 * SQLite runs in WAL mode with synchronous=NORMAL: the spool files are fsynced before a row is written and a start-up
 * recovery re-indexes any file whose row was lost, so the index need not pay an fsync per commit.
 */
export async function openDatabase(config: Config['database'], dataDir: string): Promise<Database> {
  const ents = {
    ...entities(dialectOf(config.type)),
    ...scanEntities(dialectOf(config.type)),
    ...retrieveEntities(dialectOf(config.type)),
    ...settingsEntities(dialectOf(config.type)),
    ...importEntities(dialectOf(config.type)),
    ...commitmentEntities(dialectOf(config.type)),
    ...clusterEntities(dialectOf(config.type)),
    ...outboxEntities(dialectOf(config.type)),
  };
  let source: DataSource;
  if (config.type === 'sqlite') {
    const file = path.resolve(dataDir, config.path);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    source = new DataSource({
      type: 'better-sqlite3',
      database: file,
      entities: Object.values(ents),
      migrations: MIGRATIONS,
      prepareDatabase: (db: { pragma(s: string): unknown }) => {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.pragma('busy_timeout = 5000');
      },
    });
  } else {
    source = new DataSource({
      type: 'postgres',
      url: config.url,
      schema: config.schema,
      entities: Object.values(ents),
      migrations: MIGRATIONS,
      extra: { max: 10 },
    });
  }
  await source.initialize();
  if (config.type === 'postgres' && config.schema) {
    await source.query(`CREATE SCHEMA IF NOT EXISTS "${config.schema}"`);
  }
  await source.runMigrations({ transaction: 'each' });
  return {
    source,
    entities: ents,
    type: config.type,
    close: async () => {
      if (source.isInitialized) await source.destroy();
    },
  };
}

/** What scannode uses of better-sqlite3's Database: its synchronous calls. */
export interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): { run(...params: unknown[]): unknown; get(...params: unknown[]): unknown };
}

/**
 * The better-sqlite3 connection under a SQLite data source (the driver's `databaseConnection`, public API), or
 * undefined on PostgreSQL.
 */
export function sqliteConnection(source: DataSource): SqliteConnection | undefined {
  if (source.options.type !== 'better-sqlite3') return undefined;
  return (source.driver as unknown as { databaseConnection: SqliteConnection }).databaseConnection;
}

/** True when the error is a primary key / unique violation on either database. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  const code = e.driverError?.code ?? e.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
