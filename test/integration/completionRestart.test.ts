import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { generateStudy, newUid } from '../helpers/dicomgen.js';
import { createDataset, nCreate, nSet, performedSeries } from '../helpers/mppsClient.js';
import { startTestNode } from '../helpers/node.js';
import { startOrthanc } from '../helpers/orthanc.js';
import { freePort, needPeer, stopProcess, waitForPort, storescu } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-completion-restart-'));
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) await stopProcess(c);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function archivedFiles(dataDir: string, study: string): string[] {
  const dir = path.join(dataDir, 'site', 'raw', study);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .flatMap((series) => fs.readdirSync(path.join(dir, series)).map((f) => `${series}/${f.replace(/\.dcm$/, '')}`))
    .sort();
}

describe('completion across restarts', () => {
  test('kill -9 of scannode mid-retrieve: after a restart the scan finishes with exactly the study', async (t) => {
    if (!needPeer(t, 'Orthanc')) return;
    const port = await freePort();
    const study = generateStudy({ dir: path.join(tmp, 'study'), series: 2, perSeries: 120, rows: 256, columns: 256 });
    const studyUid = study[0]!.studyInstanceUid;
    const orthanc = await startOrthanc({ aeTitle: 'ORTHANCK', modalities: [{ aeTitle: 'SCANNODE', port }] });
    t.after(() => orthanc.destroy());
    await orthanc.upload(study.map((s) => s.file));

    const dataDir = path.join(tmp, 'data');
    fs.mkdirSync(path.join(dataDir, 'active-scans'), { recursive: true });
    fs.writeFileSync(
      path.join(dataDir, 'active-scans', `${studyUid}.json`),
      JSON.stringify({ studyInstanceUID: studyUid }),
    );
    const config = path.join(tmp, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dicom: { host: '127.0.0.1', port },
        scanner: { aeTitle: 'ORTHANCK', host: '127.0.0.1', port: orthanc.port },
        dataDir: './data',
        scheduler: { cron: '* * * * * *' },
        completion: { quietPeriodSeconds: 1 },
        retrieve: { backoffSeconds: 0 },
        log: { level: 'info' },
      }),
    );
    let log = '';
    const start = () => {
      const child = spawn(process.execPath, [CLI, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      const keep = (d: Buffer) => (log = (log + d.toString()).slice(-20000));
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      return child;
    };
    const spooled = () => fs.readdirSync(path.join(dataDir, 'incoming')).filter((f) => f.endsWith('.dcm')).length;

    const first = start();
    await waitForPort(port, 20_000);
    await waitFor('the C-MOVE under way', () => spooled() >= 20, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${log}`);
    });
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const before = spooled();
    assert.ok(before < study.length, `killed mid-retrieve (${before} of ${study.length} here)`);

    const second = start();
    await waitForPort(port, 20_000);
    const summaryFile = path.join(dataDir, 'finished-scans', `${studyUid}.json`);
    await waitFor('finished-scans summary', () => fs.existsSync(summaryFile), 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${log}`);
    });
    await stopProcess(second);
    const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as {
      state: string;
      archived: number;
      series: Array<{ expected: number; received: number }>;
    };
    assert.equal(summary.state, 'finished');
    assert.equal(summary.archived, study.length);
    assert.deepEqual(
      summary.series.map((s) => [s.expected, s.received]),
      [
        [120, 120],
        [120, 120],
      ],
    );
    assert.deepEqual(
      archivedFiles(dataDir, studyUid),
      study.map((i) => `${i.seriesInstanceUid}/${i.sopInstanceUid}`).sort(),
    );
    assert.equal(fs.existsSync(path.join(dataDir, 'active-scans', `${studyUid}.json`)), false);
    assert.equal(spooled(), 0, 'nothing left in the spool');
  });

  for (const kind of DB_KINDS) {
    test(`completion interrupted after the summary, before the row (${kind}): the next run completes it once`, async (t) => {
      if (!needPeer(t, 'storescu') || !(await needDb(t, kind))) return;
      const node = await startTestNode({
        kind,
        extra: {
          scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() },
          scheduler: { enabled: true, cron: '0 0 0 1 1 *' },
          retrieve: { backoffSeconds: 0 },
        },
      });
      t.after(() => node.destroy());
      const study = generateStudy({ dir: fs.mkdtempSync(path.join(tmp, 'r-')), series: 1, perSeries: 3 });
      const studyUid = study[0]!.studyInstanceUid;
      const r = await storescu(node, [...study.map((s) => s.file)]);
      assert.equal(r.code, 0, r.stderr);
      const mpps = newUid();
      await nCreate(node.port, mpps, createDataset({ studyInstanceUid: studyUid }));
      await nSet(node.port, mpps, {
        PerformedProcedureStepStatus: 'COMPLETED',
        PerformedSeriesSequence: performedSeries(study),
      });
      const summaryFile = path.join(node.dataDir, 'finished-scans', `${studyUid}.json`);
      await waitFor('finished', () => fs.existsSync(summaryFile));
      await node.node.scheduler.runNow();

      // As if the process died after writing the summary and removing the request file, before the row update.
      const db = node.node.db;
      const repo = db.source.getRepository(db.entities.Scan);
      const row = (await repo.findOne({ where: { studyInstanceUid: studyUid } }))!;
      await repo.update({ id: row.id }, { state: 'active', completedAt: null, reason: null });
      await node.restart();
      // Start-up gives the active row its file back; the next run completes it again.
      assert.ok(fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)));
      await node.node.scheduler.runNow();
      await waitFor(
        'finished again',
        async () =>
          (await node.node.db.source.getRepository(node.node.db.entities.Scan).findOne({ where: { id: row.id } }))
            ?.state === 'finished',
      );
      const rows = await node.node.db.source
        .getRepository(node.node.db.entities.Scan)
        .find({ where: { studyInstanceUid: studyUid } });
      assert.equal(rows.length, 1, 'no second request for the study');
      assert.equal(fs.existsSync(path.join(node.dataDir, 'active-scans', `${studyUid}.json`)), false);
      const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as { archived: number; state: string };
      assert.equal(summary.state, 'finished');
      assert.equal(summary.archived, 3);
      assert.equal(archivedFiles(node.dataDir, studyUid).length, 3);
    });
  }
});
