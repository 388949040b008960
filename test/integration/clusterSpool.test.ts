import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ClusterStore } from '../../src/db/clusterStore.js';
import { ImportBatches } from '../../src/db/importBatches.js';
import { instancePlace } from '../../src/db/instanceStore.js';
import { archivePath } from '../../src/domain/paths.js';
import { needDb } from '../helpers/db.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes } from '../helpers/files.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { freePort, needPeer, stopProcess, storeAll, waitForPort } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-clusterspool-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cluster = { heartbeatSeconds: 0.2, leaseSeconds: 1, sharedDataDir: true };
const completion = { quietPeriodSeconds: 1 };
/** The passes (and their sweep of spooled studies no request names) every second, on the scheduler's node. */
const scheduler = { enabled: true, cron: '* * * * * *' };

/** Every instance has its row, archived, and its file under site/raw byte-identical to what was sent. */
async function assertArchived(node: TestNode, study: GeneratedInstance[]): Promise<void> {
  for (const s of study) {
    const row = await instancePlace(node.node.db, s.sopInstanceUid);
    assert.equal(row?.state, 'archived', `${s.sopInstanceUid} archived`);
    const file = path.join(node.dataDir, archivePath(s.studyInstanceUid, s.seriesInstanceUid, s.sopInstanceUid));
    assert.ok(datasetBytes(file).equals(datasetBytes(s.file)), `${s.sopInstanceUid} byte-identical`);
  }
}

describe('nodes sharing one data directory', () => {
  test('each node spools apart; after kill -9 of a node, another archives every image it acknowledged', async (t) => {
    if (!needPeer(t, 'storescu') || !(await needDb(t, 'postgres'))) return;
    const b = await startTestNode({
      kind: 'postgres',
      extra: { cluster: { ...cluster, nodeId: 'b' }, completion, scheduler },
    });
    t.after(() => b.destroy());
    assert.ok(fs.existsSync(path.join(b.dataDir, 'incoming/nodes/b/.pool')), "node b's own spool");

    const port = await freePort();
    const config = path.join(tmp, 'a.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port },
        http: { port: 0 },
        dataDir: b.dataDir,
        database: b.node.loaded.config.database,
        cluster: { ...cluster, nodeId: 'a' },
        completion,
        scheduler,
        log: { level: 'warn' },
      }),
    );
    const a = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: 'ignore' });
    t.after(() => stopProcess(a));
    await waitForPort(port, 20_000);
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 2, perSeries: 10 });
    await storeAll({ port }, study);
    // Every image acknowledged by a: killed before it may have indexed or archived them.
    a.kill('SIGKILL');
    await new Promise((r) => a.once('exit', r));
    await waitFor(
      'node b archives the study node a acknowledged',
      async () => {
        for (const s of study)
          if ((await instancePlace(b.node.db, s.sopInstanceUid))?.state !== 'archived') return false;
        return true;
      },
      30_000,
    );
    await assertArchived(b, study);
  });

  test("a dead node's spool file without its row is indexed and archived by the scheduler's node", async (t) => {
    if (!(await needDb(t, 'postgres'))) return;
    const b = await startTestNode({
      kind: 'postgres',
      extra: { cluster: { ...cluster, nodeId: 'b' }, completion, scheduler },
    });
    t.after(() => b.destroy());
    // A node "ghost" that died long ago, having renamed one acknowledged file into its spool but not written its row,
    // and left an import's half copy.
    const [one] = generateStudy({ dir: path.join(tmp, 'ghost'), series: 1, perSeries: 1 });
    const spool = path.join(b.dataDir, 'incoming/nodes/ghost');
    fs.mkdirSync(spool, { recursive: true });
    fs.copyFileSync(one!.file, path.join(spool, `${one!.sopInstanceUid}.dcm`));
    fs.writeFileSync(path.join(spool, 'import-1234abcd-999999-1.part'), 'half');
    // And an import it was running.
    const ghostImports = new ImportBatches(b.node.db, 'ghost');
    const batch = await ghostImports.create({
      name: 'g',
      source: 'rest',
      path: path.join(tmp, 'nowhere'),
      keepSources: true,
    });
    await b.node.db.source.getRepository(b.node.db.entities.ImportBatch).update({ id: batch.id }, { state: 'running' });
    const long = new Date(Date.now() - 3_600_000);
    await new ClusterStore(b.node.db).register({
      id: 'ghost',
      host: 'elsewhere',
      pid: 4242,
      pidNamespace: null,
      version: '0.0.0',
      aeTitle: 'SCANNODE',
      startedAt: long,
      heartbeatAt: long,
      settings: null,
      associations: 0,
    });
    await waitFor(
      'the ghost spool indexed and archived',
      async () => {
        return (await instancePlace(b.node.db, one!.sopInstanceUid))?.state === 'archived';
      },
      20_000,
    );
    await assertArchived(b, [one!]);
    assert.ok(!fs.existsSync(path.join(spool, 'import-1234abcd-999999-1.part')), 'the half copy removed');
    const after = await waitFor('the ghost import taken over', async () => {
      const r = await ghostImports.get(batch.id);
      return r && r.state !== 'running' ? r : undefined;
    });
    assert.ok(after.node === 'b' || /node ghost died/.test(String(after.message)), JSON.stringify(after));
  });

  test('a due import batch is claimed by exactly one node', async (t) => {
    if (!(await needDb(t, 'postgres'))) return;
    const b = await startTestNode({ kind: 'postgres', extra: { cluster: { nodeId: 'b' } } });
    t.after(() => b.destroy());
    const x = new ImportBatches(b.node.db, 'x');
    const y = new ImportBatches(b.node.db, 'y');
    const row = await x.create({ name: 'c', source: 'rest', path: path.join(tmp, 'c'), keepSources: true });
    const now = new Date();
    await x.update(row.id, { state: 'retrying', nextAttemptAt: new Date(now.getTime() - 1000) });
    const claims = await Promise.all([x.claim(row.id, now), y.claim(row.id, now)]);
    assert.deepEqual(claims.filter(Boolean).length, 1, `one claim wins: ${JSON.stringify(claims)}`);
    assert.equal((await x.get(row.id))?.node, claims[0] ? 'x' : 'y');
    // The winner dies before it begins the attempt: the batch is due again, not stuck without a next attempt.
    const winner = claims[0] ? 'x' : 'y';
    assert.equal((await x.get(row.id))?.nextAttemptAt, null);
    assert.equal(await new ImportBatches(b.node.db).resumeDeadNode(winner, now), 1);
    assert.deepEqual(
      (await x.due(new Date(now.getTime() + 1))).map((r) => r.id),
      [row.id],
    );
  });
});
