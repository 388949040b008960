import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { forwardsOfScan } from '../../src/db/outboxStore.js';
import { sendEventReport } from '../../src/dimse/scuEventReport.js';
import { createLogger } from '../../src/logging/logger.js';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { finishScan, forwardingNode } from '../helpers/forwarding.js';
import { startTestNode } from '../helpers/node.js';
import { baseUrl, call } from '../helpers/http.js';
import { startOrthanc } from '../helpers/orthanc.js';
import { freePort, needPeer, startProcess, stopProcess, waitForPort } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-fwdcommit-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const log = createLogger({ level: 'error', silent: true });

describe('forwarding with storage commitment', () => {
  test('Orthanc as the destination: the study is stored there and the row is committed only once Orthanc reports it', async (t: TestContext) => {
    if (!needPeer(t, 'Orthanc', 'storescu')) return;
    const ourPort = await freePort();
    // Orthanc sends its report on a new association: it must know our AE title and port.
    const orthanc = await startOrthanc({
      aeTitle: 'ORTHANCDEST',
      modalities: [{ aeTitle: 'SCANNODE', port: ourPort }],
    });
    t.after(() => orthanc.destroy());
    const node = await forwardingNode(orthanc.port, { aeTitle: 'ORTHANCDEST', commitment: true }, ourPort);
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'a'), series: 2, perSeries: 3 });
    const scanId = await finishScan(node, study);
    const row = await waitFor(
      'the outbox row committed',
      async () => {
        const [r] = await forwardsOfScan(node.node.db, scanId);
        assert.notEqual(r?.state, 'given-up', `given up: ${r?.lastError}`);
        return r?.state === 'committed' ? r : undefined;
      },
      60_000,
    );
    assert.deepEqual(
      [row.destination, row.instancesSent, row.instancesCommitted, row.lastError],
      ['research', 6, 6, null],
    );
    assert.match(String(row.commitTransactionUid), /^2\.25\.\d+$/);
    const held = (await orthanc.get('/instances')) as string[];
    assert.equal(held.length, 6, 'Orthanc holds every instance');
    const detail = await call(node, 'GET', `/api/scans/${study[0]!.studyInstanceUid}`);
    assert.deepEqual(
      (detail.json.forwards as Array<Record<string, unknown>>).map((f) => [f.state, f.instancesCommitted]),
      [['committed', 6]],
      'the scan detail shows the commitment',
    );
    const summaryFile = path.join(node.dataDir, 'finished-scans', `${study[0]!.studyInstanceUid}.json`);
    await waitFor('the summary names the commitment', async () => {
      const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { forwards?: Array<Record<string, unknown>> };
      return summary.forwards?.[0]?.state === 'committed' && summary.forwards[0].instancesCommitted === 6;
    });
    const remotes = await call(node, 'GET', '/api/remotes');
    const research = (remotes.json.remotes as Array<Record<string, unknown>>).find((r) => r.name === 'research');
    assert.equal((research?.state as Record<string, unknown>)?.reachable, true, 'the destination is reachable');
    const metrics = await (await fetch(`${baseUrl(node)}/metrics`)).text();
    assert.match(
      metrics,
      /scannode_forward_attempts_total\{destination="research",outcome="committed",node="[^"]+"\} 1\n/,
    );
    assert.match(
      metrics,
      /scannode_remote_associations_total\{remote="research",result="accepted",node="[^"]+"\} [1-9]/,
      "Orthanc's report association is counted for the remote",
    );

    // A report for a transaction we never asked for, from that AE: refused, and the row stays committed.
    const status = await sendEventReport(
      { aeTitle: 'SCANNODE', host: '127.0.0.1', port: ourPort },
      1,
      { TransactionUID: newUid(), ReferencedSOPSequence: [] },
      { callingAe: 'ORTHANCDEST', implementationClassUid: '1.2.3.4', log },
    );
    assert.equal(status, 0x0112, 'no such transaction');
    assert.equal((await forwardsOfScan(node.node.db, scanId))[0]?.state, 'committed');
  });

  test('another scannode as the destination: it commits on the same association, and the row is committed', async (t: TestContext) => {
    if (!needPeer(t, 'storescu')) return;
    const dest = await startTestNode({ extra: { import: { watchInbox: false } } });
    t.after(() => dest.destroy());
    const node = await forwardingNode(dest.port, { aeTitle: 'SCANNODE', commitment: true });
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'c'), series: 1, perSeries: 3 });
    const scanId = await finishScan(node, study);
    const row = await waitFor('the outbox row committed', async () => {
      const [r] = await forwardsOfScan(node.node.db, scanId);
      assert.notEqual(r?.state, 'given-up', `given up: ${r?.lastError}`);
      return r?.state === 'committed' ? r : undefined;
    });
    assert.deepEqual([row.instancesSent, row.instancesCommitted, row.attempts], [3, 3, 1]);
    const held = await call(dest, 'GET', `/api/studies/${study[0]!.studyInstanceUid}`);
    assert.equal(held.status, 200, 'the destination indexed the study');
  });

  test('a destination that does not do storage commitment: the study is sent but not counted delivered, with the reason', async (t: TestContext) => {
    if (!needPeer(t, 'storescu', 'storescp')) return;
    const port = await freePort();
    const out = fs.mkdtempSync(path.join(tmp, 'dest-'));
    const scp = startProcess('storescp', ['-aet', 'RESEARCH', '-od', out, String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    const node = await forwardingNode(port, { commitment: true });
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'b'), series: 1, perSeries: 2 });
    const scanId = await finishScan(node, study);
    const row = await waitFor('a failed commitment attempt', async () => {
      const [r] = await forwardsOfScan(node.node.db, scanId);
      return r?.lastError ? r : undefined;
    });
    assert.equal(row.state, 'pending', 'tried again later');
    assert.match(String(row.lastError), /storage commitment.*(not accepted|rejected)/);
    assert.equal(row.instancesCommitted, 0);
    assert.equal(fs.readdirSync(out).length, 2, 'the instances themselves were stored');
  });
});
