import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import { archivePath } from '../../src/domain/paths.js';
import { PG_URL, dropSchema, needDb, newSchema } from '../helpers/db.js';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes } from '../helpers/files.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { freePort, needPeer, startProcess, stopProcess, storeAll, waitForPort } from '../helpers/peers.js';
import { haproxyConfig } from '../helpers/haproxy.js';
import { waitFor } from '../helpers/waitFor.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-haproxy-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface ClusterNode {
  id: string;
  dicom: number;
  http: number;
  proc: ChildProcess;
}

interface Cluster {
  nodes: ClusterNode[];
  /** haproxy's DICOM port (TCP, round robin over the nodes). */
  front: number;
  dataDir: string;
  schema: string;
  sql<T>(text: string, values?: unknown[]): Promise<T[]>;
  api<T>(node: ClusterNode, url: string): Promise<T>;
}

const LEASE_SECONDS = 3;

/** Three CLI nodes on one PostgreSQL schema and one data directory, behind haproxy in TCP mode. */
/** `cron`: the scheduler's ticks (default every second); a yearly one leaves the passes to events and wake-ups. */
async function startCluster(t: TestContext, name: string, cron = '* * * * * *'): Promise<Cluster> {
  const schema = newSchema();
  const dataDir = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  t.after(async () => {
    await client.end();
    await dropSchema(schema);
  });
  const nodes: ClusterNode[] = [];
  t.after(async () => {
    for (const n of nodes) await stopProcess(n.proc);
  });
  for (const id of ['n1', 'n2', 'n3']) {
    const [dicom, http] = [await freePort(), await freePort()];
    const config = path.join(dataDir, `${id}.json`);
    fs.writeFileSync(
      config,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port: dicom },
        http: { host: '127.0.0.1', port: http },
        dataDir,
        database: { type: 'postgres', url: PG_URL, schema },
        cluster: { nodeId: id, sharedDataDir: true, heartbeatSeconds: 0.5, leaseSeconds: LEASE_SECONDS },
        // The scanner is down: the MPPS decides completion, and nothing is missing to pull.
        scanner: { aeTitle: 'NOSCANNER', host: '127.0.0.1', port: await freePort() },
        scheduler: { enabled: true, cron },
        retrieve: { findTimeoutSeconds: 2 },
        import: { watchInbox: false },
        log: { level: 'warn' },
      }),
    );
    const proc = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: 'ignore' });
    nodes.push({ id, dicom, http, proc });
    // One at a time: the first one runs the migrations.
    await waitForPort(dicom, 30_000);
  }
  const front = await freePort();
  const cfg = path.join(dataDir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    haproxyConfig(
      front,
      nodes.map((n) => ({ id: n.id, port: n.dicom })),
      true,
    ),
  );
  const haproxy = startProcess('haproxy', ['-db', '-f', cfg]);
  t.after(() => stopProcess(haproxy));
  await waitForPort(front);
  return {
    nodes,
    front,
    dataDir,
    schema,
    sql: async <T>(text: string, values?: unknown[]) =>
      (await client.query(text.replaceAll('$schema', `"${schema}"`), values)).rows as T[],
    api: async <T>(node: ClusterNode, url: string) =>
      (await (await fetch(`http://127.0.0.1:${node.http}${url}`)).json()) as T,
  };
}

function bySeries(study: GeneratedInstance[]): GeneratedInstance[][] {
  const m = new Map<string, GeneratedInstance[]>();
  for (const s of study) m.set(s.seriesInstanceUid, [...(m.get(s.seriesInstanceUid) ?? []), s]);
  return [...m.values()];
}

/** One summary in finished-scans/, every instance archived once, byte-identical, with its row. */
async function assertFinishedOnce(c: Cluster, study: GeneratedInstance[]): Promise<void> {
  const studyUid = study[0]!.studyInstanceUid;
  // The summary is written before the scan is marked finished (a crash between the two re-runs both): wait for both.
  const finished = async () =>
    Number(
      (
        await c.sql<{ n: string }>(
          "select count(*) as n from $schema.scans where study_instance_uid = $1 and state = 'finished'",
          [studyUid],
        )
      )[0]!.n,
    );
  await waitFor('the scan marked finished', async () => (await finished()) > 0);
  assert.equal(await finished(), 1, 'one finished scan');
  const summaries = fs.readdirSync(path.join(c.dataDir, 'finished-scans')).filter((f) => f.startsWith(studyUid));
  assert.deepEqual(summaries, [`${studyUid}.json`], 'one summary');
  const rows = await c.sql<{ sop: string; state: string }>(
    'select sop_instance_uid as sop, state from $schema.instances where study_instance_uid = $1',
    [studyUid],
  );
  assert.equal(rows.length, study.length, 'one row per instance');
  assert.ok(
    rows.every((r) => r.state === 'archived'),
    'every row archived',
  );
  for (const s of study) {
    const file = path.join(c.dataDir, archivePath(s.studyInstanceUid, s.seriesInstanceUid, s.sopInstanceUid));
    assert.ok(datasetBytes(file).equals(datasetBytes(s.file)), `${s.sopInstanceUid} byte-identical`);
  }
}

/** storescu through haproxy until an association takes it (a node just gone is refused until the check sees it). */
async function storeUntilAccepted(port: number, files: GeneratedInstance[]): Promise<void> {
  await waitFor(
    'an association through haproxy',
    async () => {
      try {
        await storeAll({ port }, files);
        return true;
      } catch {
        return false;
      }
    },
    60_000,
  );
}

/** The node holding the scheduler lease, among `alive`, as their /api/nodes tell it. */
async function leader(c: Cluster, alive: ClusterNode[]): Promise<ClusterNode | undefined> {
  for (const n of alive) {
    const view = await c.api<{ nodes: Array<{ id: string; state: string; scheduler: boolean }> }>(n, '/api/nodes');
    const id = view.nodes.find((x) => x.scheduler && x.state === 'alive')?.id;
    const found = alive.find((x) => x.id === id);
    if (found) return found;
  }
  return undefined;
}

describe('three nodes behind haproxy', () => {
  test('a study through haproxy, its MPPS to another node: finished exactly once, no C-MOVE', async (t) => {
    if (!needPeer(t, 'storescu', 'haproxy') || !(await needDb(t, 'postgres'))) return;
    const c = await startCluster(t, 'once');
    const study = generateStudy({ dir: path.join(tmp, 'once'), series: 3, perSeries: 4, accessionNumber: 'HA1' });
    const studyUid = study[0]!.studyInstanceUid;
    const mpps = newUid();
    assert.equal((await nCreate(c.nodes[2]!.dicom, mpps, createDataset({ studyInstanceUid: studyUid }))).status, 0);
    assert.equal((await nSet(c.nodes[2]!.dicom, mpps, { PerformedSeriesSequence: performedSeries(study) })).status, 0);
    // One association per series: round robin spreads them over the nodes.
    for (const series of bySeries(study)) await storeAll({ port: c.front }, series);
    const done = { PerformedProcedureStepStatus: 'COMPLETED' };
    assert.equal((await nSet(c.nodes[0]!.dicom, mpps, done)).status, 0);
    await waitFor(
      'the scan finished',
      async () => fs.existsSync(path.join(c.dataDir, 'finished-scans', `${studyUid}.json`)),
      30_000,
    );
    await assertFinishedOnce(c, study);
    const spread = await c.sql<{ n: string }>(
      'select count(distinct id) as n from $schema.associations where instances_received > 0',
    );
    assert.ok(Number(spread[0]!.n) >= 3, 'the series came on several associations');
    const moves = await c.sql<{ n: string }>('select count(*) as n from $schema.retrieve_attempts');
    assert.equal(Number(moves[0]!.n), 0, 'nothing was missing: no C-MOVE on any node');

    // Idle, the cron fires every second on each node: one pass per tick for the whole cluster, not three.
    const passes = async () =>
      Number(
        (await c.sql<{ runs: number }>("select runs from $schema.cluster_leases where name = 'scheduler'"))[0]!.runs,
      );
    const before = await passes();
    await new Promise((r) => setTimeout(r, 4000));
    const ticks = (await passes()) - before;
    assert.ok(ticks >= 2 && ticks <= 6, `${ticks} passes in 4 s of 1 s cron ticks on 3 nodes`);
  });

  test('an N-SET COMPLETED on a node that does not run the passes: finished within seconds, by the wake-up', async (t) => {
    if (!needPeer(t, 'storescu', 'haproxy') || !(await needDb(t, 'postgres'))) return;
    // No cron tick in the test's time: only the wake-up of the scheduler's node can finish the scan.
    const c = await startCluster(t, 'wake', '0 0 0 1 1 *');
    const study = generateStudy({ dir: path.join(tmp, 'wake'), series: 2, perSeries: 3, accessionNumber: 'HA4' });
    const studyUid = study[0]!.studyInstanceUid;
    const holder = await waitFor('a scheduler node', () => leader(c, c.nodes), 10_000);
    const other = c.nodes.find((n) => n !== holder)!;
    const mpps = newUid();
    assert.equal((await nCreate(other.dicom, mpps, createDataset({ studyInstanceUid: studyUid }))).status, 0);
    assert.equal((await nSet(other.dicom, mpps, { PerformedSeriesSequence: performedSeries(study) })).status, 0);
    await storeAll({ port: other.dicom }, study);
    const sent = Date.now();
    assert.equal((await nSet(other.dicom, mpps, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
    await waitFor(
      'the scan finished',
      async () => fs.existsSync(path.join(c.dataDir, 'finished-scans', `${studyUid}.json`)),
      20_000,
    );
    const seconds = (Date.now() - sent) / 1000;
    await assertFinishedOnce(c, study);
    assert.ok(seconds < 5, `finished ${seconds.toFixed(2)} s after the N-SET on another node`);
    console.log(`wake-up: N-SET COMPLETED on ${other.id}, scan finished by ${holder.id} ${seconds.toFixed(2)} s later`);
  });

  test('a rolling restart of each node mid-study: the scan finishes once, nothing lost or duplicated', async (t) => {
    if (!needPeer(t, 'storescu', 'haproxy') || !(await needDb(t, 'postgres'))) return;
    const c = await startCluster(t, 'rolling');
    const study = generateStudy({ dir: path.join(tmp, 'rolling'), series: 3, perSeries: 4, accessionNumber: 'HA3' });
    const studyUid = study[0]!.studyInstanceUid;
    const mpps = newUid();
    assert.equal((await nCreate(c.nodes[0]!.dicom, mpps, createDataset({ studyInstanceUid: studyUid }))).status, 0);
    assert.equal((await nSet(c.nodes[0]!.dicom, mpps, { PerformedSeriesSequence: performedSeries(study) })).status, 0);
    const series = bySeries(study);
    // Each node in turn: stopped (SIGTERM), started again with the same config, while a series comes through haproxy.
    for (let i = 0; i < c.nodes.length; i++) {
      const node = c.nodes[i]!;
      const config = path.join(c.dataDir, `${node.id}.json`);
      await stopProcess(node.proc);
      await storeUntilAccepted(c.front, series[i]!);
      node.proc = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: 'ignore' });
      await waitForPort(node.dicom, 30_000);
    }
    assert.equal((await nSet(c.nodes[1]!.dicom, mpps, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
    await waitFor(
      'the scan finished',
      async () => fs.existsSync(path.join(c.dataDir, 'finished-scans', `${studyUid}.json`)),
      60_000,
    );
    await assertFinishedOnce(c, study);
  });

  test('kill -9 of the scheduler node mid-study: another takes over and the scan finishes with every image', async (t) => {
    if (!needPeer(t, 'storescu', 'haproxy') || !(await needDb(t, 'postgres'))) return;
    const c = await startCluster(t, 'kill');
    const study = generateStudy({ dir: path.join(tmp, 'kill'), series: 3, perSeries: 4, accessionNumber: 'HA2' });
    const studyUid = study[0]!.studyInstanceUid;
    const [first, ...rest] = bySeries(study);
    const mpps = newUid();
    const victim = await waitFor('a scheduler node', () => leader(c, c.nodes), 10_000);
    const others = c.nodes.filter((n) => n !== victim);
    assert.equal((await nCreate(others[0]!.dicom, mpps, createDataset({ studyInstanceUid: studyUid }))).status, 0);
    assert.equal((await nSet(others[0]!.dicom, mpps, { PerformedSeriesSequence: performedSeries(study) })).status, 0);
    await storeAll({ port: victim.dicom }, first!);
    const killedAt = Date.now();
    victim.proc.kill('SIGKILL');
    await new Promise((r) => victim.proc.once('exit', r));
    const next = await waitFor('another node takes the scheduler', () => leader(c, others), 20_000);
    const takeoverSeconds = (Date.now() - killedAt) / 1000;
    assert.notEqual(next, victim);
    // The rest through haproxy: its health check takes the dead node out.
    for (const series of rest) await storeUntilAccepted(c.front, series);
    assert.equal((await nSet(others[1]!.dicom, mpps, { PerformedProcedureStepStatus: 'COMPLETED' })).status, 0);
    await waitFor(
      'the scan finished on a surviving node',
      async () => fs.existsSync(path.join(c.dataDir, 'finished-scans', `${studyUid}.json`)),
      30_000,
    );
    const finishedSeconds = (Date.now() - killedAt) / 1000;
    await assertFinishedOnce(c, study);
    assert.ok(takeoverSeconds <= LEASE_SECONDS + 5, `taken over in ${takeoverSeconds} s`);
    console.log(
      `failover: scheduler taken over ${takeoverSeconds.toFixed(1)} s after kill -9 (lease ${LEASE_SECONDS} s); scan finished ${finishedSeconds.toFixed(1)} s after; images lost: 0 of ${study.length}`,
    );
  });
});
