import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { forwardsOfScan } from '../../src/db/outboxStore.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { assertReceived, finishScan, forwardingNode } from '../helpers/forwarding.js';
import { call } from '../helpers/http.js';
import { freePort, needPeer, startProcess, stopProcess, waitForPort } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-forward-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

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
    const status = await call(node, 'GET', '/api/status');
    const ended = (status.json.finished as { scans: Array<Record<string, unknown>> }).scans.find(
      (x) => x.id === scanId,
    );
    assert.deepEqual(
      (ended?.forwards as Array<Record<string, unknown>>).map((f) => [f.destination, f.state]),
      [['research', 'sent']],
      'the status page lists the forward state of the finished scan',
    );
    assert.equal(ended?.patientId, 'SN-TEST-1');
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
