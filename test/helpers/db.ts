import pg from 'pg';
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
