/** A node that forwards finished scans, and the steps the forwarding tests share (a scan finished by its MPPS). */
import assert from 'node:assert/strict';
import { newUid, type GeneratedInstance } from './dicomgen.js';
import { datasetBytes, listFiles } from './files.js';
import { call } from './http.js';
import { createDataset, nCreate, nSet, performedSeries } from './mppsClient.js';
import { startTestNode, type TestNode } from './node.js';
import { freePort, storeAll } from './peers.js';
import { waitFor } from './waitFor.js';

/** `destination`: the remote "research" (its port, and more of its config); `dicomPort`: ours, when it must be known. */
export async function forwardingNode(
  destPort: number,
  destination: Record<string, unknown> = {},
  dicomPort?: number,
): Promise<TestNode> {
  return startTestNode({
    ...(dicomPort ? { dicom: { port: dicomPort } } : {}),
    extra: {
      // A scanner where nothing listens: the MPPS decides completion.
      scanner: { aeTitle: 'NOSCANNER', host: '127.0.0.1', port: await freePort() },
      remotes: {
        research: {
          aeTitle: 'RESEARCH',
          host: '127.0.0.1',
          port: destPort,
          roles: { send: false, store: true },
          ...destination,
        },
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
export async function finishScan(node: TestNode, study: GeneratedInstance[]): Promise<string> {
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

export function assertReceived(out: string, study: GeneratedInstance[]): void {
  const received = listFiles(out);
  assert.equal(received.length, study.length, 'every instance once');
  const got = new Set(received.map((f) => datasetBytes(f).toString('base64')));
  for (const s of study)
    assert.ok(got.has(datasetBytes(s.file).toString('base64')), `${s.sopInstanceUid} byte-identical`);
}
