/**
 * The fault-injection harness: the node as a child process (so kill -9 is real), storescu senders whose -v output
 * tells which SOP Instance UIDs were acknowledged, and the invariants checked from the files and the index alone.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import dimse from 'dcmjs-dimse';
import pg from 'pg';
import { dcmtkEnv, freePort, waitForPort } from '../helpers/peers.js';
import { datasetBytes } from '../helpers/files.js';

// The test's own DICOM clients (MPPS) log every PDU at INFO otherwise.
(dimse as unknown as { log: { setLevel(l: string): void } }).log.setLevel('warn');

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
/** The heavier runs (CI sets it): at least 50 kill -9 runs across the scenarios. */
export const HEAVY = process.env.FAULT_SUITE_HEAVY === '1';

/** What the whole suite saw; printed at the end and written to test-output/fault-summary.json. */
export const totals = { runs: 0, acknowledged: 0, lost: 0, sourcesRemovedUnarchived: 0, violations: [] as string[] };

export function printTotals(): string {
  const line =
    `fault suite: runs=${totals.runs} acknowledged=${totals.acknowledged} lost=${totals.lost} ` +
    `sources removed unarchived=${totals.sourcesRemovedUnarchived}${HEAVY ? ' (heavy)' : ''}`;
  fs.mkdirSync('test-output', { recursive: true });
  const file = path.join('test-output', 'fault-summary.json');
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    all = {};
  }
  all[path.basename(process.argv[1] ?? 'suite')] = { ...totals, heavy: HEAVY, at: new Date().toISOString() };
  fs.writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  return line;
}

/** A small seeded PRNG (mulberry32): a failing run is replayed with FAULT_SUITE_SEED=<seed>. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seeds(n: number, base = Number(process.env.FAULT_SUITE_SEED ?? Date.now() % 1_000_000)): number[] {
  return process.env.FAULT_SUITE_SEED ? [base] : Array.from({ length: n }, (_, i) => base + i * 7919);
}

export interface NodeProc {
  child: ChildProcess;
  port: number;
  httpPort: number;
  dir: string;
  dataDir: string;
  config: Record<string, unknown>;
  output(): string;
  kill9(): Promise<void>;
  stop(): Promise<number | null>;
}

/** Starts `scannode start` on `dir/config.json` (written on the first call) and waits for its DICOM port. */
export async function startNode(dir: string, extra: Record<string, unknown> = {}): Promise<NodeProc> {
  const configFile = path.join(dir, 'config.json');
  let config: Record<string, unknown>;
  if (fs.existsSync(configFile)) config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  else {
    config = {
      dicom: { host: '127.0.0.1', port: await freePort(), shutdownGraceSeconds: 2 },
      http: { port: await freePort() },
      dataDir: './data',
      log: { level: 'info' },
      scheduler: { enabled: false },
      ...extra,
    };
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  }
  const port = (config.dicom as { port: number }).port;
  // SCANNODE_* variables would override the config (and unknown ones are config errors): the child gets none.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SCANNODE_')));
  const child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitForPort(port, 30_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; the node said:\n${out}`);
  }
  return {
    child,
    port,
    httpPort: (config.http as { port: number }).port,
    dir,
    dataDir: path.resolve(dir, 'data'),
    config,
    output: () => out,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface SendResult {
  /** Files whose C-STORE was answered Success. */
  acked: string[];
  /** Files answered with a failure status (or never answered). */
  other: string[];
  output: string;
}

/**
 * storescu -v -nh to the node: every file whose response was Success is acknowledged. `onAck` sees the running count
 * (the scenario decides when to pull the plug).
 */
export function storescu(
  port: number,
  files: string[],
  onAck?: (n: number) => void,
): { done: Promise<SendResult>; child: ChildProcess } {
  const child = spawn('storescu', ['-v', '-nh', '-aec', 'SCANNODE', '127.0.0.1', String(port), ...files], {
    env: dcmtkEnv,
  });
  const acked: string[] = [];
  const answered = new Set<string>();
  let current: string | undefined;
  let buf = '';
  let output = '';
  const onLine = (line: string) => {
    const sending = /Sending file: (.*)$/.exec(line);
    if (sending) current = sending[1]!.trim();
    const rsp = /Received Store Response \((.*)\)/.exec(line);
    if (rsp && current) {
      answered.add(current);
      if (rsp[1] === 'Success') {
        acked.push(current);
        onAck?.(acked.length);
      }
    }
  };
  const feed = (d: Buffer) => {
    output = (output + d.toString()).slice(-50_000);
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    lines.forEach(onLine);
  };
  child.stdout.on('data', feed);
  child.stderr.on('data', feed);
  const done = new Promise<SendResult>((resolve) =>
    child.on('close', () => resolve({ acked, other: files.filter((f) => !acked.includes(f)), output })),
  );
  return { done, child };
}

export interface IndexRow {
  sop: string;
  path: string;
  state: string;
  study: string;
  series: string;
}

/** The instance rows, read straight from the database the config names. */
export async function readIndex(node: {
  dir: string;
  config: Record<string, unknown>;
}): Promise<Map<string, IndexRow>> {
  const sql =
    'select sop_instance_uid as sop, path, state, study_instance_uid as study, series_instance_uid as series from instances';
  const dbc = (node.config.database ?? { type: 'sqlite', path: 'scannode.sqlite' }) as {
    type: string;
    path?: string;
    url?: string;
    schema?: string;
  };
  let rows: IndexRow[];
  if (dbc.type === 'postgres') {
    const client = new pg.Client({ connectionString: dbc.url });
    await client.connect();
    try {
      rows = (await client.query<IndexRow>(sql.replace('instances', `"${dbc.schema ?? 'public'}".instances`))).rows;
    } finally {
      await client.end();
    }
  } else {
    const db = new Database(path.resolve(node.dir, 'data', dbc.path ?? 'scannode.sqlite'), { readonly: true });
    try {
      rows = db.prepare(sql).all() as IndexRow[];
    } finally {
      db.close();
    }
  }
  return new Map(rows.map((r) => [r.sop, r]));
}

export interface Expected {
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  file: string;
}

/** Where an instance can be: its spool name and its archive name. */
function copiesOf(dataDir: string, e: Expected): string[] {
  return [
    path.join(dataDir, 'incoming', `${e.sopInstanceUid}.dcm`),
    path.join(dataDir, 'site/raw', e.studyInstanceUid, e.seriesInstanceUid, `${e.sopInstanceUid}.dcm`),
  ].filter((f) => fs.existsSync(f));
}

/**
 * Every acknowledged instance is present exactly once (spool or archive), byte-identical to what was sent, with a row
 * that points to it. Returns the violations (and counts them in the totals).
 */
export async function checkAcknowledged(
  node: { dir: string; dataDir: string; config: Record<string, unknown> },
  acknowledged: Expected[],
  label: string,
): Promise<string[]> {
  const index = await readIndex(node);
  const bad: string[] = [];
  for (const e of acknowledged) {
    const copies = copiesOf(node.dataDir, e);
    const row = index.get(e.sopInstanceUid);
    if (!copies.length) bad.push(`${e.sopInstanceUid}: acknowledged, no file`);
    else if (copies.length > 1) bad.push(`${e.sopInstanceUid}: present twice (${copies.length} files)`);
    else if (!row) bad.push(`${e.sopInstanceUid}: acknowledged, no row`);
    else if (path.resolve(node.dataDir, row.path) !== copies[0]) bad.push(`${e.sopInstanceUid}: row points elsewhere`);
    else if (!datasetBytes(copies[0]!).equals(datasetBytes(e.file))) bad.push(`${e.sopInstanceUid}: bytes differ`);
  }
  totals.acknowledged += acknowledged.length;
  const lost = bad.filter((b) => /no file|no row|bytes differ/.test(b)).length;
  totals.lost += lost;
  totals.violations.push(...bad.map((b) => `${label}: ${b}`));
  return bad;
}

/** Every finished-scans / failed-scans summary agrees with the archive: per series received, and archived in total. */
export async function checkSummaries(node: {
  dir: string;
  dataDir: string;
  config: Record<string, unknown>;
}): Promise<string[]> {
  const bad: string[] = [];
  const index = await readIndex(node);
  for (const folder of ['finished-scans', 'failed-scans']) {
    const dir = path.join(node.dataDir, folder);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      const s = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as {
        studyInstanceUID: string;
        archived: number;
        series: Array<{ seriesInstanceUID: string; received: number }>;
      };
      const studyDir = path.join(node.dataDir, 'site/raw', s.studyInstanceUID);
      const files = (series: string) =>
        fs.existsSync(path.join(studyDir, series)) ? fs.readdirSync(path.join(studyDir, series)).length : 0;
      const inArchive = fs.existsSync(studyDir) ? fs.readdirSync(studyDir).reduce((n, ser) => n + files(ser), 0) : 0;
      const rows = [...index.values()].filter((r) => r.study === s.studyInstanceUID);
      if (s.archived !== inArchive) bad.push(`${name}: archived ${s.archived}, site/raw holds ${inArchive}`);
      if (rows.some((r) => r.state !== 'archived')) bad.push(`${name}: rows of an ended scan still spooled`);
      for (const ser of s.series) {
        if (ser.received !== files(ser.seriesInstanceUID))
          bad.push(
            `${name}: series ${ser.seriesInstanceUID} received ${ser.received}, archive ${files(ser.seriesInstanceUID)}`,
          );
      }
    }
  }
  totals.violations.push(...bad);
  return bad;
}

/** A folder outside dataDir that nothing may touch: its listing (names, sizes, mtimes, inodes) before and after. */
export function sentinel(dir: string): { check(): void } {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(dir, `keep-${i}.dcm`), `not to be touched ${i}`);
  const snap = () =>
    fs
      .readdirSync(dir)
      .sort()
      .map((n) => {
        const st = fs.lstatSync(path.join(dir, n));
        return `${n}:${st.size}:${st.mtimeMs}:${st.ino}`;
      })
      .join('\n');
  const before = snap();
  return {
    check() {
      assert.equal(snap(), before, 'nothing outside dataDir was touched');
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
