import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { forwardsOfScan } from '../../src/db/outboxStore.js';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { call } from '../helpers/http.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { freePort, needPeer, startProcess, stopProcess, storeAll, waitForPort } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-forward-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function forwardingNode(destPort: number): Promise<TestNode> {
  return startTestNode({
    extra: {
      // A scanner where nothing listens: the MPPS decides completion.
      scanner: { aeTitle: 'NOSCANNER', host: '127.0.0.1', port: await freePort() },
      remotes: {
        research: { aeTitle: 'RESEARCH', host: '127.0.0.1', port: destPort, roles: { send: false, store: true } },
      },
      forward: [{ to: ['research'], when: 'finished' }],
      forwarding: { retrySeconds: 0.5, maxTries: 20 },
      scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
      retrieve: { settleSeconds: 0, findTimeoutSeconds: 5 },
      import: { watchInbox: false },
    },
  });
}

/** A study sent, its MPPS COMPLETED: the scan finishes; returns its id. */
async function finishScan(node: TestNode, study: GeneratedInstance[]): Promise<string> {
  const studyUid = study[0]!.studyInstanceUid;
  const created = await call(node, 'POST', '/api/scans', { studyInstanceUid: studyUid });
  assert.equal(created.status, 201);
  await storeAll(node, study, { aet: 'NOSCANNER' });
  const mpps = newUid();
  assert.equal((await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid }))).status, 0);
  const done = { PerformedSeriesSequence: performedSeries(study), PerformedProcedureStepStatus: 'COMPLETED' };
  assert.equal((await nSet(node.port, mpps, done)).status, 0);
  await node.node.scheduler.runNow();
  await waitFor(
    'the scan to finish',
    async () => (await call(node, 'GET', `/api/scans/${studyUid}`)).json.state === 'finished',
  );
  return String(created.json.id);
}

function assertReceived(out: string, study: GeneratedInstance[]): void {
  const received = listFiles(out);
  assert.equal(received.length, study.length, 'every instance once');
  const got = new Set(received.map((f) => datasetBytes(f).toString('base64')));
  for (const s of study)
    assert.ok(got.has(datasetBytes(s.file).toString('base64')), `${s.sopInstanceUid} byte-identical`);
}

describe('forwarding finished scans', () => {
  test('a finished scan goes to the destination of its rule, byte-identical, and its outbox row says sent', async (t: TestContext) => {
    if (!needPeer(t, 'storescu', 'storescp')) return;
    const port = await freePort();
    const out = fs.mkdtempSync(path.join(tmp, 'dest-'));
    const scp = startProcess('storescp', ['-aet', 'RESEARCH', '-od', out, String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    const node = await forwardingNode(port);
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'a'), series: 2, perSeries: 2 });
    const scanId = await finishScan(node, study);
    const row = await waitFor('the outbox row sent', async () => {
      const [r] = await forwardsOfScan(node.node.db, scanId);
      return r?.state === 'sent' ? r : undefined;
    });
    assert.deepEqual([row.destination, row.attempts, row.instancesSent, row.instancesTotal], ['research', 1, 4, 4]);
    const detail = await call(node, 'GET', `/api/scans/${study[0]!.studyInstanceUid}`);
    assert.deepEqual(
      (detail.json.forwards as Array<Record<string, unknown>>).map((f) => [f.destination, f.state, f.instancesSent]),
      [['research', 'sent', 4]],
      'the scan detail shows its forward state',
    );
    assertReceived(out, study);
  });

  test('a destination that is down is tried again until it is up, then sent exactly once', async (t: TestContext) => {
    if (!needPeer(t, 'storescu', 'storescp')) return;
    const port = await freePort();
    const node = await forwardingNode(port);
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'b'), series: 1, perSeries: 3 });
    const scanId = await finishScan(node, study);
    const failed = await waitFor('a failed attempt', async () => {
      const [r] = await forwardsOfScan(node.node.db, scanId);
      return r && r.attempts >= 1 ? r : undefined;
    });
    assert.equal(failed.state, 'pending');
    assert.match(String(failed.lastError), /RESEARCH@127\.0\.0\.1/);
    const out = fs.mkdtempSync(path.join(tmp, 'dest-'));
    const scp = startProcess('storescp', ['-aet', 'RESEARCH', '-od', out, String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    const sent = await waitFor(
      'the outbox row sent',
      async () => {
        const [r] = await forwardsOfScan(node.node.db, scanId);
        return r?.state === 'sent' ? r : undefined;
      },
      30_000,
    );
    assert.ok(sent.attempts >= 2);
    await node.node.forwarder!.deliverNow();
    assertReceived(out, study);
  });
});
