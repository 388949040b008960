/**
 * The cluster bench (issue 16; not a test): one scannode node on PostgreSQL against three nodes on one PostgreSQL
 * schema and one data directory behind haproxy (TCP, round robin), the same study from three storescu senders at
 * once, alternating, medians of the rounds; and the database's work per received image on the one node
 * (transactions, row writes, index and sequential scans, from PostgreSQL's cumulative statistics), then the
 * statements one by one on a PostgreSQL of the bench's own with pg_stat_statements loaded (never the machine's).
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { PG_URL, dropSchema, newSchema } from '../helpers/db.js';
import { ownClusterUnavailable, startOwnCluster } from '../helpers/pgcluster.js';
import { haproxyConfig } from '../helpers/haproxy.js';
import { freePort, killAll, sleep, startCaptured, stopChild, timedRun, waitForPort, type Captured } from './procs.js';

export interface ClusterFigures {
  rounds: Array<{ round: number; layout: 'one' | 'three'; seconds: number; instPerSec: number }>;
  one: number;
  three: number;
  ratio: number;
  /** On one node, per received image. */
  perImage: { transactions: number; rowWrites: number; indexScans: number; seqScans: number };
  /** pg_stat_statements on the bench's own PostgreSQL, one node: undefined where it cannot run (why). */
  statements?: StatementFigures | { unavailable: string };
}

export interface StatementFigures {
  /** Statements per received image, BEGIN and COMMIT included: each is one round trip from the node. */
  perImage: number;
  /** The most frequent ones, per received image. */
  top: Array<{ query: string; perImage: number }>;
}

const SENDERS = 3;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2 : NaN;
};

interface Layout {
  port: number;
  procs: Captured[];
}

async function startLayout(cli: string, base: string, schema: string, nodes: number, url = PG_URL): Promise<Layout> {
  const dataDir = path.join(base, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const procs: Captured[] = [];
  const ports: number[] = [];
  for (let i = 1; i <= nodes; i++) {
    const port = await freePort();
    const cfg = path.join(base, `n${i}.json`);
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port },
        http: { port: 0 },
        dataDir,
        database: { type: 'postgres', url, schema },
        cluster: { nodeId: `n${i}`, sharedDataDir: nodes > 1 },
        scheduler: { enabled: false },
        import: { watchInbox: false },
        log: { level: 'warn' },
      }),
    );
    const proc = startCaptured(process.execPath, [cli, 'start', '--config', cfg], process.env);
    procs.push(proc);
    await waitForPort(port, proc.child, 30_000); // one at a time: the first runs the migrations
    ports.push(port);
  }
  if (nodes === 1) return { port: ports[0]!, procs };
  const front = await freePort();
  const hcfg = path.join(base, 'haproxy.cfg');
  fs.writeFileSync(
    hcfg,
    haproxyConfig(
      front,
      ports.map((port, i) => ({ id: `n${i + 1}`, port })),
    ),
  );
  const haproxy = startCaptured('haproxy', ['-db', '-f', hcfg]);
  procs.push(haproxy);
  await waitForPort(front, haproxy.child, 10_000);
  return { port: front, procs };
}

interface Stats {
  xact: number;
  writes: number;
  idx: number;
  seq: number;
}

async function stats(client: pg.Client, schema: string): Promise<Stats> {
  const db = await client.query<{ xact: string }>(
    'select xact_commit + xact_rollback as xact from pg_stat_database where datname = current_database()',
  );
  const t = await client.query<{ writes: string; idx: string; seq: string }>(
    `select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) as writes,
            coalesce(sum(idx_scan), 0) as idx, coalesce(sum(seq_scan), 0) as seq
       from pg_stat_user_tables where schemaname = $1`,
    [schema],
  );
  return {
    xact: Number(db.rows[0]!.xact),
    writes: Number(t.rows[0]!.writes),
    idx: Number(t.rows[0]!.idx),
    seq: Number(t.rows[0]!.seq),
  };
}

export async function benchCluster(tmp: string, cli: string, files: string[], rounds: number): Promise<ClusterFigures> {
  const parts = Array.from({ length: SENDERS }, (_, i) => files.filter((_f, j) => j % SENDERS === i));
  const result: ClusterFigures['rounds'] = [];
  const load: Stats[] = [];
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 ? (['one', 'three'] as const) : (['three', 'one'] as const);
      for (const layout of order) {
        const schema = newSchema();
        const base = fs.mkdtempSync(path.join(tmp, `cluster-${layout}-r${round}-`));
        const l = await startLayout(cli, base, schema, layout === 'one' ? 1 : 3);
        let seconds: number;
        try {
          await sleep(500);
          // The statistics of the schema's tables start once they exist; clear the counters' snapshot cache.
          await client.query('select pg_stat_clear_snapshot()');
          const before = await stats(client, schema);
          const t0 = process.hrtime.bigint();
          const runs = await Promise.all(
            parts.map((p) =>
              timedRun('storescu', ['-aet', 'BENCH', '-aec', 'SCANNODE', '127.0.0.1', String(l.port), ...p]),
            ),
          );
          seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          for (const r of runs)
            if (r.code !== 0) throw new Error(`storescu exited ${r.code}: ${r.output.slice(-2000)}`);
          for (const p of l.procs) await stopChild(p.child);
          if (layout === 'one') {
            await sleep(1500); // cumulative statistics are flushed within a second of the transactions
            await client.query('select pg_stat_clear_snapshot()');
            const after = await stats(client, schema);
            load.push({
              xact: after.xact - before.xact,
              writes: after.writes - before.writes,
              idx: after.idx - before.idx,
              seq: after.seq - before.seq,
            });
          }
          const rows = await client.query<{ n: string }>(`select count(*) as n from "${schema}".instances`);
          if (Number(rows.rows[0]!.n) !== files.length)
            throw new Error(`cluster bench: ${layout}: ${rows.rows[0]!.n} rows of ${files.length}`);
        } finally {
          killAll();
          await dropSchema(schema);
          fs.rmSync(base, { recursive: true, force: true });
        }
        result.push({ round, layout, seconds, instPerSec: files.length / seconds });
        console.log(
          `round ${round} cluster ${layout === 'one' ? 'one node   ' : 'three nodes'} (${SENDERS} senders): ` +
            `${seconds.toFixed(3)} s, ${(files.length / seconds).toFixed(1)} inst/s`,
        );
      }
    }
  } finally {
    await client.end();
  }
  const statements = ownClusterUnavailable()
    ? { unavailable: ownClusterUnavailable()! }
    : await statementsPerImage(tmp, cli, parts, files.length);
  const med = (layout: 'one' | 'three') => median(result.filter((r) => r.layout === layout).map((r) => r.instPerSec));
  const per = (k: keyof Stats) => median(load.map((s) => s[k] / files.length));
  return {
    rounds: result,
    one: med('one'),
    three: med('three'),
    ratio: med('three') / med('one'),
    perImage: { transactions: per('xact'), rowWrites: per('writes'), indexScans: per('idx'), seqScans: per('seq') },
    statements,
  };
}

/** One node on a PostgreSQL of our own with pg_stat_statements: every statement of one received study, counted. */
async function statementsPerImage(tmp: string, cli: string, parts: string[][], n: number): Promise<StatementFigures> {
  const pgc = await startOwnCluster({
    settings: ['shared_preload_libraries=pg_stat_statements', 'pg_stat_statements.track=all'],
  });
  const base = fs.mkdtempSync(path.join(tmp, 'cluster-statements-'));
  const client = new pg.Client({ connectionString: pgc.url });
  try {
    await client.connect();
    await client.query('create extension pg_stat_statements');
    const l = await startLayout(cli, base, 'public', 1, pgc.url);
    await sleep(500);
    await client.query('select pg_stat_statements_reset()');
    const runs = await Promise.all(
      parts.map((p) => timedRun('storescu', ['-aet', 'BENCH', '-aec', 'SCANNODE', '127.0.0.1', String(l.port), ...p])),
    );
    for (const r of runs) if (r.code !== 0) throw new Error(`storescu exited ${r.code}: ${r.output.slice(-2000)}`);
    for (const p of l.procs) await stopChild(p.child);
    const rows = await client.query<{ query: string; calls: string }>(
      `select query, calls from pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
          and query not ilike '%pg_stat_statements%' order by calls desc`,
    );
    const total = rows.rows.reduce((sum, r) => sum + Number(r.calls), 0);
    return {
      perImage: total / n,
      top: rows.rows.slice(0, 8).map((r) => ({
        query: r.query.replace(/\s+/g, ' ').slice(0, 100),
        perImage: Number(r.calls) / n,
      })),
    };
  } finally {
    killAll();
    await client.end().catch(() => undefined);
    pgc.destroy();
    fs.rmSync(base, { recursive: true, force: true });
  }
}
