import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { startDcmqrscp } from '../helpers/dcmqrscp.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { listFiles } from '../helpers/files.js';
import { startTestNode } from '../helpers/node.js';
import { freePort, needPeer, startProcess, stopProcess, waitForPort, storescu } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-storm-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('C-MOVE retry storm', () => {
  test('the scanner answers Success with completed > 0 but sends elsewhere: fruitless, backed off, scan failed', async (t) => {
    if (!needPeer(t, 'dcmqrscp', 'dcmqridx', 'storescu', 'storescp')) return;
    // What the scanner's entry for our AE title points to: some other storage SCP.
    const elsewhereDir = fs.mkdtempSync(path.join(tmp, 'elsewhere-'));
    const elsewhere = await freePort();
    const storescp = startProcess('storescp', ['-od', elsewhereDir, String(elsewhere)]);
    t.after(() => stopProcess(storescp));
    await waitForPort(elsewhere);
    const study = generateStudy({ dir: fs.mkdtempSync(path.join(tmp, 's-')), series: 1, perSeries: 3 });
    const studyUid = study[0]!.studyInstanceUid;
    const qr = await startDcmqrscp({
      aeTitle: 'QRSTORM',
      destinations: [{ aeTitle: 'SCANNODE', port: elsewhere }],
      files: study.map((s) => s.file),
    });
    t.after(() => qr.destroy());
    let offset = 0;
    const now = () => new Date(Date.now() + offset);
    const node = await startTestNode({
      now,
      extra: {
        scanner: { aeTitle: 'QRSTORM', host: '127.0.0.1', port: qr.port },
        scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
        completion: { quietPeriodSeconds: 60, failAfterHours: 24 },
        retrieve: {
          maxAttempts: 3,
          backoffSeconds: 30,
          settleSeconds: 0,
          findTimeoutSeconds: 10,
          moveTimeoutSeconds: 30,
        },
      },
    });
    t.after(() => node.destroy());
    const r = await storescu(node, [study[0]!.file]);
    assert.equal(r.code, 0, r.stderr);
    fs.writeFileSync(
      path.join(node.dataDir, 'active-scans', `${studyUid}.json`),
      JSON.stringify({ studyInstanceUID: studyUid }),
    );
    const db = node.node.db;
    const attempts = () => db.source.getRepository(db.entities.RetrieveAttempt).find({ order: { startedAt: 'ASC' } });
    await waitFor('active scan', () =>
      db.source.getRepository(db.entities.Scan).existsBy({ studyInstanceUid: studyUid, state: 'active' }),
    );

    await node.node.scheduler.runNow();
    const first = await attempts();
    assert.equal(first.length, 1);
    assert.equal(first[0]!.completed, 2, 'the scanner says it sent the 2 missing images');
    assert.match(first[0]!.error ?? '', /^fruitless: the scanner reported 2 sent, none arrived here/);
    assert.ok(listFiles(elsewhereDir).length >= 2, 'they went to the other SCP');

    await node.node.scheduler.runNow();
    await node.node.scheduler.runNow();
    assert.equal((await attempts()).length, 1, 'backoff: no C-MOVE on every pass');

    offset += 31_000;
    await node.node.scheduler.runNow();
    assert.equal((await attempts()).length, 2, 'a second attempt after the backoff');
    offset += 61_000;
    await node.node.scheduler.runNow();
    assert.equal((await attempts()).length, 3);
    const file = path.join(node.dataDir, 'failed-scans', `${studyUid}.json`);
    const summary = await waitFor('failed-scans summary', () =>
      fs.existsSync(file)
        ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { reason: string; retrieveAttempts: number })
        : undefined,
    );
    assert.match(
      summary.reason,
      /^series 1: 2 of 3 missing after 3 C-MOVE attempts: fruitless: the scanner reported 2 sent/,
    );
    assert.equal(summary.retrieveAttempts, 3, 'retrieve.maxAttempts reached, no more');
  });
});
