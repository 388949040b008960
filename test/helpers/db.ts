import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, type Database } from '../../src/db/dataSource.js';
import { CI } from './peers.js';

/** The PostgreSQL of this machine (trust auth on loopback); override with SCANNODE_TEST_PG_URL. */
export const PG_URL = process.env.SCANNODE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let available: Promise<string | undefined> | undefined;

/** undefined when PostgreSQL answers, else why not. */
export function postgresUnavailable(): Promise<string | undefined> {
  available ??= (async () => {
    const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('select 1');
      return undefined;
    } catch (err) {
      return `PostgreSQL not reachable at ${PG_URL}: ${(err as Error).message}`;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return available;
}

let n = 0;
/** A fresh schema name for one test's node; dropped by dropSchema. */
export function newSchema(): string {
  return `scannode_t${process.pid}_${Date.now() % 100000}_${++n}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

export type DbKind = 'sqlite' | 'postgres';
export const DB_KINDS: DbKind[] = ['sqlite', 'postgres'];

/** For a postgres test: skip (laptop) or fail (CI) when the server is not there. */
export async function needDb(t: { skip(msg: string): void }, kind: DbKind): Promise<boolean> {
  if (kind === 'sqlite') return true;
  const why = await postgresUnavailable();
  if (!why) return true;
  if (CI) throw new Error(why);
  t.skip(why);
  return false;
}

/**
 * The per-database fixture of tests that use the database without a node: a migrated SQLite file in a temp folder,
 * or a fresh schema on the test PostgreSQL; `done` closes it and removes what it made.
 */
export async function openTestDatabase(kind: DbKind): Promise<{ db: Database; done(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-db-'));
  const schema = kind === 'postgres' ? newSchema() : undefined;
  const db = await openDatabase(
    kind === 'sqlite' ? { type: 'sqlite', path: 'db.sqlite' } : { type: 'postgres', url: PG_URL, schema },
    dir,
  );
  return {
    db,
    done: async () => {
      await db.close();
      if (schema) await dropSchema(schema);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
