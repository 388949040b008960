import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ClusterStore, clusterView } from '../../src/db/clusterStore.js';
import { Membership, ClusterStartError } from '../../src/cluster/membership.js';
import { createLogger } from '../../src/logging/logger.js';
import { DB_KINDS, needDb, openTestDatabase } from '../helpers/db.js';
import { freePort, stopProcess, waitForPort } from '../helpers/peers.js';
import { startTestNode } from '../helpers/node.js';
import { waitFor } from '../helpers/waitFor.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-cluster-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const log = createLogger({ level: 'error', silent: true });

for (const kind of DB_KINDS) {
  describe(`the scheduler lease on ${kind}`, () => {
    test('one node runs the scheduler; a clean stop hands it over; a silent holder loses it after the lease', async (t) => {
      if (!(await needDb(t, kind))) return;
      const { db, done } = await openTestDatabase(kind);
      t.after(done);
      let now = Date.parse('2026-11-25T00:00:00Z');
      const clock = () => new Date(now);
      const member = (id: string) =>
        new Membership(new ClusterStore(db), log, {
          nodeId: id,
          aeTitle: 'SCANNODE',
          version: '1.0.0',
          database: 'postgres',
          heartbeatMs: 5000,
          leaseMs: 30_000,
          now: clock,
          // No timers in this test: beats are called by hand.
          timers: { setInterval: () => 0, clearInterval: () => undefined },
        });
      const a = member('a');
      const b = member('b');
      await a.join();
      await b.join();
      assert.equal(a.leader, true, 'the first node takes the scheduler');
      assert.equal(b.leader, false);
      now += 5000;
      await a.beat();
      await b.beat();
      assert.deepEqual([a.leader, b.leader], [true, false], 'renewed by its holder, not taken');
      await a.countPass();
      await b.countPass();
      const view = await clusterView(db, now, 30_000);
      assert.equal(view.passes, 1, 'only the holder counts a pass');
      assert.deepEqual(
        view.nodes.map((n) => [n.id, n.state, n.scheduler]),
        [
          ['a', 'alive', true],
          ['b', 'alive', false],
        ],
      );

      await a.leave();
      await b.beat();
      assert.equal(b.leader, true, 'a clean stop gives the lease to the next heartbeat');
      assert.equal((await clusterView(db, now, 30_000)).nodes[0]?.state, 'stopped');

      // b goes silent (as if killed): a third node takes over only once b's lease has run out.
      const c = member('c');
      await c.join();
      assert.equal(c.leader, false);
      now += 29_000;
      await c.beat();
      assert.equal(c.leader, false, 'not before the lease runs out');
      now += 2000;
      await c.beat();
      assert.equal(c.leader, true, 'taken over from the silent holder');
      assert.equal(b.leader, false, 'the silent holder no longer counts itself the leader');
      const states = (await clusterView(db, now, 30_000)).nodes.map((n) => [n.id, n.state]);
      assert.deepEqual(states, [
        ['a', 'stopped'],
        ['b', 'dead'],
        ['c', 'alive'],
      ]);
      await b.leave();
      await c.leave();
    });
  });
}

describe('several nodes', () => {
  test('a second node on the same SQLite database is refused with a clear error; after kill -9 it starts', async (t) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'sqlite-'));
    const port = await freePort();
    const config = path.join(dir, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port },
        http: { port: 0 },
        dataDir: './data',
        scheduler: { enabled: false },
        log: { level: 'warn' },
      }),
    );
    const first = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: 'ignore' });
    t.after(() => stopProcess(first));
    await waitForPort(port, 20_000);

    const otherPort = await freePort();
    const second = path.join(dir, 'second.json');
    fs.writeFileSync(
      second,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port: otherPort },
        http: { port: 0 },
        dataDir: './data',
        log: { level: 'warn' },
      }),
    );
    const refused = spawnSync(process.execPath, [CLI, 'start', '--config', second], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.notEqual(refused.status, 0, 'the second node does not run');
    assert.match(refused.stderr + refused.stdout, /SQLite database is in use by scannode node .*pid \d+/);

    const nodes = spawnSync(process.execPath, [CLI, 'nodes', '--config', config], { encoding: 'utf8' });
    assert.equal(nodes.status, 0, nodes.stderr);
    assert.match(nodes.stdout, new RegExp(`^\\* \\S+ +alive +\\S+:${first.pid}`, 'm'), 'scannode nodes lists it');

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const restarted = spawn(process.execPath, [CLI, 'start', '--config', second], { stdio: 'ignore' });
    t.after(() => stopProcess(restarted));
    await waitForPort(otherPort, 20_000);
  });

  test('two nodes on one PostgreSQL: one runs the reconcile passes and one watches the inbox; both hand over on stop; /api/nodes shows both', async (t) => {
    if (!(await needDb(t, 'postgres'))) return;
    const cluster = { heartbeatSeconds: 0.2, leaseSeconds: 1 };
    const scheduler = { enabled: true, cron: '* * * * * *' };
    const a = await startTestNode({
      kind: 'postgres',
      extra: { scheduler, cluster: { ...cluster, nodeId: 'node-a' } },
    });
    let stopB = async (): Promise<void> => undefined;
    // Hooks run in the order they were added: node-b stops before node-a drops the shared schema.
    t.after(() => stopB());
    t.after(() => a.destroy());
    const b = await startTestNode({
      kind: 'postgres',
      dataDir: a.dataDir,
      extra: { scheduler, cluster: { ...cluster, nodeId: 'node-b' }, database: a.node.loaded.config.database },
    });
    stopB = () => b.stop();
    assert.equal(a.node.membership.leader, true);
    assert.equal(b.node.membership.leader, false);
    assert.ok(a.node.inbox, 'the first node watches the inbox');
    assert.equal(b.node.inbox, undefined, 'one inbox watcher in the cluster');
    const passes = async () => (await clusterView(b.node.db, Date.now(), 1000)).passes;
    await waitFor('three cron ticks of the cluster', async () => (await passes()) >= 3, 10_000);
    assert.ok(a.node.scheduler.state.runs >= 3);
    const ranOnB = (await b.node.metrics.registry.getSingleMetricAsString('scannode_scheduler_runs_total')).match(
      /} (\d+)/g,
    );
    assert.ok(!ranOnB || ranOnB.every((m) => m.endsWith(' 0')), `node-b ran no pass: ${String(ranOnB)}`);

    const port = (b.node.http.server.address() as { port: number }).port;
    const api = (await (await fetch(`http://127.0.0.1:${port}/api/nodes`)).json()) as {
      nodes: Array<{ id: string; state: string; scheduler: boolean; associations: number }>;
    };
    assert.deepEqual(
      api.nodes.map((n) => [n.id, n.state, n.scheduler]),
      [
        ['node-a', 'alive', true],
        ['node-b', 'alive', false],
      ],
    );
    assert.ok(
      api.nodes.every((n) => n.associations === 0),
      'each node says how many associations it has open (none here)',
    );

    await a.stop();
    await waitFor('node-b takes the scheduler', () => b.node.membership.leader, 5000);
    await waitFor('node-b takes the inbox', () => b.node.inbox, 5000);
    const before = await passes();
    await waitFor('node-b runs passes', async () => (await passes()) > before, 5000);
  });

  test('two nodes with one id on PostgreSQL: the second is refused', async (t) => {
    if (!(await needDb(t, 'postgres'))) return;
    const a = await startTestNode({ kind: 'postgres', extra: { cluster: { nodeId: 'same' } } });
    t.after(() => a.destroy());
    // Another process's row: this test process cannot be two processes, so the first node's row gets a live pid.
    const sleeper = spawn('sleep', ['30']);
    t.after(() => stopProcess(sleeper));
    const { schema } = a.node.loaded.config.database as { schema: string };
    await a.node.db.source.query(`UPDATE "${schema}".cluster_nodes SET pid = $1 WHERE id = 'same'`, [sleeper.pid]);
    await assert.rejects(
      startTestNode({
        kind: 'postgres',
        dataDir: a.dataDir,
        extra: { cluster: { nodeId: 'same' }, database: a.node.loaded.config.database },
      }),
      (err: Error) => err instanceof ClusterStartError && /node id "same" is already running/.test(err.message),
    );
  });

  test('a node started with another AE title than a running node of its cluster is refused, naming both', async (t) => {
    if (!(await needDb(t, 'postgres'))) return;
    const a = await startTestNode({ kind: 'postgres', extra: { cluster: { nodeId: 'first' } } });
    t.after(() => a.destroy());
    // As above: the first node's row gets another live process's pid.
    const sleeper = spawn('sleep', ['30']);
    t.after(() => stopProcess(sleeper));
    const { schema } = a.node.loaded.config.database as { schema: string };
    await a.node.db.source.query(`UPDATE "${schema}".cluster_nodes SET pid = $1 WHERE id = 'first'`, [sleeper.pid]);
    await assert.rejects(
      startTestNode({
        kind: 'postgres',
        dicom: { aeTitle: 'ELSEWHERE' },
        extra: { cluster: { nodeId: 'second' }, database: a.node.loaded.config.database },
      }),
      (err: Error) =>
        err instanceof ClusterStartError &&
        /dicom\.aeTitle is "ELSEWHERE" here but "SCANNODE" on running node "first"/.test(err.message),
    );
    const nodes = await new ClusterStore(a.node.db).listNodes();
    assert.deepEqual(
      nodes.map((n) => n.id),
      ['first'],
      'the refused node is not registered',
    );
  });
});
