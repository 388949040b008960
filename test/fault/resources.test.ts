/**
 * Resources that go away under a running node: the archive's disk fills up during archiving (a tmpfs on site/raw),
 * and the scanner is killed (kill -9 by pid) in the middle of a C-MOVE.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { startDcmqrscp } from '../helpers/dcmqrscp.js';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { createDataset, mppsSend, performedSeries } from '../helpers/mppsClient.js';
import { mountTmpfs } from '../helpers/mount.js';
import { freePort, needPeer } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';
import { checkAcknowledged, checkSummaries, printTotals, startNode, storescu, totals } from './harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-fault-res-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The children of a process, from /proc (by pid, never by name). */
function childPids(pid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function scanJson(port: number, study: string): Promise<{ state: string; waiting: string | null }> {
  const r = await fetch(`http://127.0.0.1:${port}/api/scans/${study}`);
  return (await r.json()) as { state: string; waiting: string | null };
}

describe('resources that go away', () => {
  test('disk full during archiving: active with the reason, nothing partial, finished when space returns', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const dir = path.join(tmp, 'full');
    const node = await startNode(dir, {
      scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() },
      scheduler: { enabled: true, cron: '*/2 * * * * *' },
      retrieve: { settleSeconds: 0, findTimeoutSeconds: 2 },
    });
    t.after(() => node.kill9());
    const mount = mountTmpfs(t, path.join(node.dataDir, 'site/raw'), 1 << 20);
    if (!mount) return;
    const study = generateStudy({ dir: path.join(tmp, 'full-src'), series: 2, perSeries: 20, rows: 256, columns: 256 });
    const studyUid = study[0]!.studyInstanceUid;
    assert.equal(
      (
        await storescu(
          node.port,
          study.map((s) => s.file),
        ).done
      ).acked.length,
      study.length,
    );
    const mpps = newUid();
    await mppsSend(node.port, [{ op: 'create', uid: mpps, dataset: createDataset({ studyInstanceUid: studyUid }) }]);
    const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(study) };
    assert.equal((await mppsSend(node.port, [{ op: 'set', uid: mpps, dataset: done }]))[0]!.status, 0);
    totals.runs++;
    const waiting = await waitFor('the reason on the active scan', async () => {
      const s = await scanJson(node.httpPort, studyUid);
      return s.state === 'active' && s.waiting?.includes('out of disk space') ? s.waiting : undefined;
    });
    assert.match(waiting, /^archiving failed: out of disk space in site\/raw \(ENOSPC\)/);
    const partial = fs
      .readdirSync(mount.dir, { recursive: true })
      .map(String)
      .filter((f) => path.basename(f).startsWith('.'));
    assert.deepEqual(partial, [], 'no partial (temporary) file in the archive');
    assert.deepEqual(
      await checkAcknowledged(node, study, 'disk full (while full)'),
      [],
      'every image in one place, intact',
    );
    totals.acknowledged -= study.length;
    mount.resize(64 << 20);
    await waitFor(
      'finished once space returned',
      () => fs.existsSync(path.join(node.dataDir, 'finished-scans', `${studyUid}.json`)),
      30_000,
    );
    await waitFor(
      'the request file gone',
      () => !fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)),
    );
    assert.equal(await node.stop(), 0);
    assert.deepEqual([...(await checkAcknowledged(node, study, 'disk full')), ...(await checkSummaries(node))], []);
    mount.unmount();
  });

  test('the scanner killed mid-C-MOVE: the attempt recorded with backoff, the scan completes when it is back', async (t) => {
    if (!needPeer(t, 'dcmqrscp', 'dcmqridx', 'storescu')) return;
    const dir = path.join(tmp, 'scanner');
    const port = await freePort();
    const study = generateStudy({
      dir: path.join(tmp, 'scanner-src'),
      series: 1,
      perSeries: 300,
      rows: 256,
      columns: 256,
    });
    const studyUid = study[0]!.studyInstanceUid;
    const qrOpts = {
      aeTitle: 'QRKILL',
      destinations: [{ aeTitle: 'SCANNODE', port }],
      files: study.map((s) => s.file),
    };
    let qr = await startDcmqrscp(qrOpts);
    const recordedPort = qr.port;
    t.after(() => qr.destroy());
    const node = await startNode(dir, {
      dicom: { host: '127.0.0.1', port, shutdownGraceSeconds: 2 },
      scanner: { aeTitle: 'QRKILL', host: '127.0.0.1', port: qr.port },
      scheduler: { enabled: true, cron: '*/2 * * * * *' },
      completion: { quietPeriodSeconds: 2 },
      retrieve: { settleSeconds: 0, backoffSeconds: 1, findTimeoutSeconds: 5, moveTimeoutSeconds: 60 },
    });
    t.after(() => node.kill9());
    assert.equal((await storescu(node.port, [study[0]!.file]).done).acked.length, 1);
    fs.writeFileSync(
      path.join(node.dataDir, 'active-scans', `${studyUid}.json`),
      JSON.stringify({ studyInstanceUID: studyUid }),
    );
    const spool = path.join(node.dataDir, 'incoming');
    await waitFor('the C-MOVE under way', () => fs.readdirSync(spool).length >= 20, 30_000);
    // dcmqrscp forks a process per association: the one doing the C-MOVE dies with its parent.
    for (const child of childPids(qr.pid!)) process.kill(child, 'SIGKILL');
    process.kill(qr.pid!, 'SIGKILL');
    totals.runs++;
    const api = async () =>
      (await (await fetch(`http://127.0.0.1:${node.httpPort}/api/scans/${studyUid}`)).json()) as {
        state: string;
        retrieveAttempts: Array<{ error: string | null; completed: number | null }>;
      };
    const recorded = await waitFor(
      'the broken attempt recorded',
      async () => {
        const s = await api();
        return s.retrieveAttempts.find((a) => a.error) ? s : undefined;
      },
      30_000,
    );
    assert.equal(recorded.state, 'active');
    await qr.destroy();
    qr = await startDcmqrscp({ ...qrOpts, port: recordedPort });
    await waitFor(
      'finished once the scanner is back',
      () => fs.existsSync(path.join(node.dataDir, 'finished-scans', `${studyUid}.json`)),
      90_000,
    );
    assert.equal(await node.stop(), 0);
    assert.deepEqual(
      [...(await checkAcknowledged(node, study, 'scanner killed')), ...(await checkSummaries(node))],
      [],
    );
  });

  test('the figures of the resource runs', (t) => {
    t.diagnostic(printTotals());
    assert.equal(totals.lost, 0, totals.violations.join('\n'));
  });
});
