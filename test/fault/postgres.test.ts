/**
 * PostgreSQL restarted under the node (a cluster the test owns): mid-ingest the senders see failures while it is
 * down and never a Success that is then lost; mid-completion the scan finishes once it is back. No restart of scannode.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { createDataset, mppsSend, performedSeries } from '../helpers/mppsClient.js';
import { freePort, needPeer } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';
import { checkAcknowledged, checkSummaries, printTotals, sleep, startNode, storescu, totals } from './harness.js';
import { ownCluster } from '../helpers/pgcluster.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-fault-pg-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('PostgreSQL restarted mid-flight', () => {
  test('mid-ingest: failures while it is down, every Success kept, the node recovers by itself', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const pg = await ownCluster(t);
    if (!pg) return;
    const study = generateStudy({
      dir: path.join(tmp, 'ingest'),
      series: 3,
      perSeries: 100,
      rows: 128,
      columns: 128,
    });
    const bySop = new Map(study.map((s) => [s.file, s]));
    const node = await startNode(path.join(tmp, 'node-ingest'), { database: { type: 'postgres', url: pg.url } });
    t.after(() => node.kill9());
    let down: Promise<void> | undefined;
    const first = storescu(
      node.port,
      study.map((s) => s.file),
      (n) => {
        if (n === 40)
          down = (async () => {
            pg.stop();
            await sleep(2000);
            pg.start();
          })();
      },
    );
    const res = await first.done;
    await down;
    totals.runs++;
    assert.ok(res.acked.length >= 40);
    const crash = /\n(\S*Error[^\n]*\n(?:[^\n]*\n){0,3})/.exec(node.output())?.[1];
    assert.equal(
      node.child.exitCode,
      null,
      `the node crashed while PostgreSQL was down:\n${crash ?? node.output().slice(-1500)}`,
    );
    assert.ok(res.other.length > 0, 'the sender saw failures while the database was down');
    assert.match(
      res.output,
      /Received Store Response \((?!Success)/,
      `answered with a failure status, not silence; the node said:\n${node.output().slice(-3000)}`,
    );
    // The node was never restarted: the same files again, now all Success.
    const again = await storescu(node.port, res.other).done;
    assert.deepEqual(
      again.other,
      [],
      `after the restart of PostgreSQL every store succeeds:\n${again.output.slice(-1500)}`,
    );
    const acked = [...res.acked, ...again.acked].map((f) => bySop.get(f)!);
    const bad = await checkAcknowledged(node, acked, 'postgres mid-ingest');
    assert.deepEqual(bad, []);
  });

  test('mid-completion: the scan finishes once the database is back', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const pg = await ownCluster(t);
    if (!pg) return;
    const study = generateStudy({ dir: path.join(tmp, 'completion'), series: 4, perSeries: 100 });
    const studyUid = study[0]!.studyInstanceUid;
    const node = await startNode(path.join(tmp, 'node-completion'), {
      database: { type: 'postgres', url: pg.url },
      scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() },
      scheduler: { enabled: true, cron: '*/2 * * * * *' },
      retrieve: { settleSeconds: 0, findTimeoutSeconds: 2 },
    });
    t.after(() => node.kill9());
    const sent = await storescu(
      node.port,
      study.map((s) => s.file),
    ).done;
    assert.equal(sent.acked.length, study.length);
    const mpps = newUid();
    await mppsSend(node.port, [{ op: 'create', uid: mpps, dataset: createDataset({ studyInstanceUid: studyUid }) }]);
    const [set] = await mppsSend(node.port, [
      {
        op: 'set',
        uid: mpps,
        dataset: { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(study) },
      },
    ]);
    assert.equal(set!.status, 0);
    await sleep(150);
    pg.stop();
    await sleep(3000);
    pg.start();
    totals.runs++;
    const summary = path.join(node.dataDir, 'finished-scans', `${studyUid}.json`);
    await waitFor('the scan finished after PostgreSQL came back', () => fs.existsSync(summary), 90_000);
    await waitFor(
      'its request file gone',
      () => !fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)),
    );
    assert.equal(await node.stop(), 0);
    const bad = [...(await checkAcknowledged(node, study, 'postgres mid-completion')), ...(await checkSummaries(node))];
    assert.deepEqual(bad, []);
  });

  test('the figures of the PostgreSQL runs', (t) => {
    t.diagnostic(printTotals());
    assert.equal(totals.lost, 0, totals.violations.join('\n'));
  });
});
