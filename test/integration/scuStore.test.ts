import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { StoreAssociationError, storeInstances } from '../../src/dimse/scuStore.js';
import { fileStoreItem } from '../../src/pipeline/forward/storeItems.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { fakeLog } from '../helpers/log.js';
import { freePort, needPeer, startProcess, stopProcess, waitForPort } from '../helpers/peers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-scustore-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const opts = { callingAe: 'SCANNODE', implementationClassUid: '1.2.826.0.1.3680043.10.1561.1', log: fakeLog().log };

describe('C-STORE SCU (our own upper layer)', () => {
  test('sends a study to storescp: every data set arrives byte-identical, each answered Success', async (t) => {
    if (!needPeer(t, 'storescp')) return;
    const port = await freePort();
    const out = fs.mkdtempSync(path.join(tmp, 'out-'));
    const scp = startProcess('storescp', ['-aet', 'DEST', '-od', out, '--max-pdu', '16384', String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    // Two series, big enough to need many PDUs of the destination's 16 KiB.
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 2, perSeries: 3, rows: 256, columns: 256 });
    const items = study.map((s) => fileStoreItem(s.file));
    const outcomes = await storeInstances({ aeTitle: 'DEST', host: '127.0.0.1', port }, items, opts);
    assert.deepEqual(
      outcomes.map((o) => [o.sopInstanceUid, o.status, o.error]),
      study.map((s) => [s.sopInstanceUid, 0, undefined]),
    );
    const received = listFiles(out);
    assert.equal(received.length, study.length);
    const byBytes = new Set(received.map((f) => datasetBytes(f).toString('base64')));
    for (const s of study)
      assert.ok(byBytes.has(datasetBytes(s.file).toString('base64')), `${s.sopInstanceUid} identical`);
  });

  test('an instance whose SOP class the destination refuses fails alone, with the reason', async (t) => {
    if (!needPeer(t, 'storescp')) return;
    const port = await freePort();
    const out = fs.mkdtempSync(path.join(tmp, 'out-'));
    const scp = startProcess('storescp', ['-aet', 'DEST', '-od', out, String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    const study = generateStudy({ dir: path.join(tmp, 'odd'), series: 1, perSeries: 2 });
    const items = study.map((s) => fileStoreItem(s.file));
    const odd = { ...items[0]!, sopClassUid: '1.2.826.0.1.3680043.10.1561.99.1' };
    const outcomes = await storeInstances({ aeTitle: 'DEST', host: '127.0.0.1', port }, [odd, items[1]!], opts);
    assert.match(String(outcomes[0]?.error), /does not take 1\.2\.826\.0\.1\.3680043\.10\.1561\.99\.1/);
    assert.equal(outcomes[1]?.status, 0);
    assert.equal(listFiles(out).length, 1);
  });

  test('a destination that aborts mid-association: every instance gets an outcome naming why, none is thrown', async (t) => {
    if (!needPeer(t, 'storescp')) return;
    const port = await freePort();
    const out = fs.mkdtempSync(path.join(tmp, 'out-'));
    // --abort-after: storescp aborts the association after the first C-STORE-RQ, before answering it.
    const scp = startProcess('storescp', ['-aet', 'DEST', '-od', out, '--abort-after', String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    const study = generateStudy({ dir: path.join(tmp, 'aborted'), series: 1, perSeries: 5 });
    const items = study.map((s) => fileStoreItem(s.file));
    const outcomes = await storeInstances({ aeTitle: 'DEST', host: '127.0.0.1', port }, items, opts);
    assert.deepEqual(
      outcomes.map((o) => o.sopInstanceUid),
      study.map((s) => s.sopInstanceUid),
    );
    for (const o of outcomes) {
      assert.equal(o.status, undefined, `${o.sopInstanceUid} has no DICOM status`);
      assert.match(String(o.error), /abort|closed|ended/i, `${o.sopInstanceUid}: ${o.error}`);
      assert.doesNotMatch(String(o.error), /TypeError|undefined/);
    }
  });

  test('a destination that is down or rejects us is a typed error naming it', async (t) => {
    const down = await freePort();
    const study = generateStudy({ dir: path.join(tmp, 'down'), series: 1, perSeries: 1 });
    await assert.rejects(
      storeInstances({ aeTitle: 'GONE', host: '127.0.0.1', port: down }, [fileStoreItem(study[0]!.file)], opts),
      (e: Error) => e instanceof StoreAssociationError && /GONE@127\.0\.0\.1/.test(e.message),
    );
    if (!needPeer(t, 'storescp')) return;
    const port = await freePort();
    const scp = startProcess('storescp', ['-aet', 'DEST', '--refuse', String(port)]);
    t.after(() => stopProcess(scp));
    await waitForPort(port);
    await assert.rejects(
      storeInstances({ aeTitle: 'DEST', host: '127.0.0.1', port }, [fileStoreItem(study[0]!.file)], opts),
      (e: Error) => e instanceof StoreAssociationError && /association rejected: permanent/.test(e.message),
    );
  });
});
