/**
 * kill -9 at random points (seeded; FAULT_SUITE_SEED replays one run): receiving from 4 senders, completion and
 * archiving of a 400-image study, an inbox import of 1000 files with --move, MPPS N-SET writes. After each kill the
 * node restarts and the invariants are checked from the files and the index.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { generateStudy, newUid, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { createDataset, mppsSend, performedSeries } from '../helpers/mppsClient.js';
import { freePort, needPeer } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';
import {
  CLI,
  HEAVY,
  checkAcknowledged,
  checkSummaries,
  printTotals,
  rng,
  seeds,
  sentinel,
  sleep,
  startNode,
  storescu,
  totals,
} from './harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-fault-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const RUNS = HEAVY
  ? { receive: 50, completion: 12, importMove: 12, mpps: 12 }
  : { receive: 2, completion: 1, importMove: 1, mpps: 2 };

function byFile(imgs: GeneratedInstance[]): Map<string, GeneratedInstance> {
  return new Map(imgs.map((i) => [i.file, i]));
}

describe('kill -9 at random points', () => {
  test(`receive from 4 senders (${RUNS.receive} runs)`, async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const sets = [0, 1, 2, 3].map((k) =>
      generateStudy({
        dir: path.join(tmp, `recv-src-${k}`),
        series: 2,
        perSeries: HEAVY ? 40 : 30,
        rows: 128,
        columns: 128,
      }),
    );
    const all = byFile(sets.flat());
    for (const seed of seeds(RUNS.receive)) {
      const r = rng(seed);
      const dir = path.join(tmp, `recv-${seed}`);
      const guard = sentinel(path.join(dir, 'outside'));
      const node = await startNode(dir);
      const total = all.size;
      const killAt = 5 + Math.floor(r() * (total * 0.8));
      let acks = 0;
      const senders = sets.map((s) =>
        storescu(
          node.port,
          s.map((i) => i.file),
          () => {
            if (++acks === killAt) void node.kill9();
          },
        ),
      );
      const results = await Promise.all(senders.map((s) => s.done));
      await node.kill9();
      totals.runs++;
      const acked = results.flatMap((x) => x.acked).map((f) => all.get(f)!);
      const again = await startNode(dir);
      const bad = await checkAcknowledged(again, acked, `receive seed ${seed}`);
      assert.deepEqual(bad, [], `seed ${seed}: killed after ${acks} acks`);
      assert.deepEqual(
        listFiles(path.join(again.dataDir, 'incoming')).filter((f) => f.endsWith('.part')),
        [],
      );
      // Recovery emptied the pool of the killed node: sealed files placed, torn ones (never acknowledged) set aside.
      assert.deepEqual(listFiles(path.join(again.dataDir, 'incoming/.pool')), []);
      assert.equal(await again.stop(), 0, 'a clean stop after recovery');
      guard.check();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`completion and archiving of a 400-image study (${RUNS.completion} runs)`, async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const study = generateStudy({ dir: path.join(tmp, 'compl-src'), series: 4, perSeries: 100 });
    const studyUid = study[0]!.studyInstanceUid;
    for (const seed of seeds(RUNS.completion)) {
      const r = rng(seed);
      const dir = path.join(tmp, `compl-${seed}`);
      const guard = sentinel(path.join(dir, 'outside'));
      const node = await startNode(dir, {
        scanner: { aeTitle: 'GONE', host: '127.0.0.1', port: await freePort() },
        scheduler: { enabled: true, cron: '*/2 * * * * *' },
        retrieve: { settleSeconds: 0, findTimeoutSeconds: 2 },
      });
      const sent = await storescu(
        node.port,
        study.map((i) => i.file),
      ).done;
      assert.equal(sent.acked.length, study.length, sent.output.slice(-2000));
      const mpps = newUid();
      const [created] = await mppsSend(node.port, [
        { op: 'create', uid: mpps, dataset: createDataset({ studyInstanceUid: studyUid }) },
      ]);
      assert.equal(created!.status, 0);
      const done = { PerformedProcedureStepStatus: 'COMPLETED', PerformedSeriesSequence: performedSeries(study) };
      const [set] = await mppsSend(node.port, [{ op: 'set', uid: mpps, dataset: done }]);
      assert.equal(set!.status, 0);
      // Archiving 400 images takes about a second here: the kill lands before, during or after it.
      await sleep(Math.floor(r() * 1500));
      await node.kill9();
      totals.runs++;
      const again = await startNode(dir);
      const summaryFile = path.join(again.dataDir, 'finished-scans', `${studyUid}.json`);
      await waitFor('the scan finished after the restart', () => fs.existsSync(summaryFile), 60_000);
      await waitFor(
        'the scan row',
        () => !fs.existsSync(path.join(again.dataDir, 'active-scans', `${studyUid}.json`)),
        10_000,
      );
      assert.equal(await again.stop(), 0);
      const bad = [
        ...(await checkAcknowledged(again, study, `completion seed ${seed}`)),
        ...(await checkSummaries(again)),
      ];
      assert.deepEqual(bad, [], `seed ${seed}`);
      assert.deepEqual(listFiles(path.join(again.dataDir, 'incoming')), [], 'spool empty once archived');
      guard.check();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`import of 1000 files with --move (${RUNS.importMove} runs)`, async () => {
    const master = generateStudy({
      dir: path.join(tmp, 'import-master'),
      series: 10,
      perSeries: 100,
      rows: 32,
      columns: 32,
    });
    const bySop = new Map(master.map((m) => [m.sopInstanceUid, m]));
    for (const seed of seeds(RUNS.importMove)) {
      const r = rng(seed);
      const dir = path.join(tmp, `import-${seed}`);
      const guard = sentinel(path.join(dir, 'outside'));
      const src = path.join(dir, 'inbox-src');
      fs.mkdirSync(src, { recursive: true });
      const sourceOf = new Map<string, string>();
      for (const m of master) {
        const to = path.join(src, `${m.sopInstanceUid}.dcm`);
        fs.copyFileSync(m.file, to);
        sourceOf.set(to, m.sopInstanceUid);
      }
      const node = await startNode(dir, { import: { watchInbox: false } });
      await node.stop();
      const cfg = path.join(dir, 'config.json');
      const importer = spawn(process.execPath, [CLI, 'import', src, '--move', '--config', cfg], { stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => importer.once('exit', () => resolve()));
      await sleep(200 + Math.floor(r() * 2500));
      importer.kill('SIGKILL');
      await exited;
      totals.runs++;
      // No source is gone unless its bytes are in the archive with their row.
      const gone = [...sourceOf].filter(([f]) => !fs.existsSync(f)).map(([, sop]) => bySop.get(sop)!);
      const archivedNow = gone.map((m) => ({ ...m, file: m.file }));
      const unarchived = await checkAcknowledged(node, archivedNow, `import seed ${seed} (sources removed)`);
      const removedUnarchived = unarchived.filter((b) => !/present twice/.test(b));
      totals.sourcesRemovedUnarchived += removedUnarchived.length;
      assert.deepEqual(removedUnarchived, [], `seed ${seed}: ${gone.length} sources removed at the kill`);
      // The same import again finishes the job; a node start then tidies what the kill left in the spool.
      const rerun = await new Promise<number | null>((resolve) =>
        spawn(process.execPath, [CLI, 'import', src, '--move', '--config', cfg], { stdio: 'ignore' }).once(
          'exit',
          resolve,
        ),
      );
      assert.equal(rerun, 0, `seed ${seed}: the import run again succeeds`);
      const tidy = await startNode(dir);
      assert.equal(await tidy.stop(), 0);
      totals.acknowledged -= archivedNow.length; // counted again below, once per instance
      const bad = await checkAcknowledged(tidy, master, `import seed ${seed}`);
      assert.deepEqual(bad, [], `seed ${seed}`);
      assert.deepEqual(listFiles(src), [], 'every source consumed once archived');
      for (const m of master.slice(0, 20)) {
        const a = path.join(
          tidy.dataDir,
          'site/raw',
          m.studyInstanceUid,
          m.seriesInstanceUid,
          `${m.sopInstanceUid}.dcm`,
        );
        assert.ok(datasetBytes(a).equals(datasetBytes(m.file)));
      }
      guard.check();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`MPPS N-SET writes (${RUNS.mpps} runs)`, async () => {
    const rank: Record<string, number> = { 'IN PROGRESS': 1, COMPLETED: 2, DISCONTINUED: 2 };
    for (const seed of seeds(RUNS.mpps)) {
      const r = rng(seed);
      const dir = path.join(tmp, `mpps-${seed}`);
      const node = await startNode(dir);
      const acked = new Map<string, string>();
      let killed = false;
      const client = (async () => {
        while (!killed) {
          const uid = newUid();
          const study = newUid();
          const ops = [
            { op: 'create' as const, uid, dataset: createDataset({ studyInstanceUid: study }), status: 'IN PROGRESS' },
            {
              op: 'set' as const,
              uid,
              dataset: { PerformedProcedureStepDescription: 'updated' },
              status: 'IN PROGRESS',
            },
            { op: 'set' as const, uid, dataset: { PerformedProcedureStepStatus: 'COMPLETED' }, status: 'COMPLETED' },
          ];
          for (const o of ops) {
            try {
              const [res] = await mppsSend(node.port, [{ op: o.op, uid: o.uid, dataset: o.dataset }]);
              if (res?.status === 0) acked.set(uid, o.status);
            } catch {
              return;
            }
          }
        }
      })();
      await waitFor('a first acknowledged N-CREATE', () => acked.size > 0, 20_000);
      await sleep(Math.floor(r() * 1500));
      killed = true;
      await node.kill9();
      await client;
      totals.runs++;
      const again = await startNode(dir);
      assert.equal(await again.stop(), 0);
      const db = new Database(path.join(again.dataDir, 'scannode.sqlite'), { readonly: true });
      const rows = new Map(
        (
          db.prepare('select sop_instance_uid as uid, status from mpps_steps').all() as Array<{
            uid: string;
            status: string;
          }>
        ).map((x) => [x.uid, x.status]),
      );
      db.close();
      const bad: string[] = [];
      for (const [uid, status] of acked) {
        const row = rows.get(uid);
        if (!row || rank[row]! < rank[status]!)
          bad.push(`${uid}: acknowledged ${status}, index says ${row ?? 'nothing'}`);
        const file = path.join(again.dataDir, 'scanner', `${uid}.dcm`);
        if (!fs.existsSync(file)) bad.push(`${uid}: acknowledged, no scanner/ file`);
        else {
          // A later N-SET may have been applied without its answer getting back before the kill: at least as far.
          const bytes = fs.readFileSync(file);
          const held = ['COMPLETED', 'DISCONTINUED', 'IN PROGRESS'].find((x) => bytes.includes(Buffer.from(x)));
          if (!held || rank[held]! < rank[status]!)
            bad.push(`${uid}: acknowledged ${status}, scanner/ file holds ${held ?? 'no status'}`);
        }
      }
      totals.acknowledged += acked.size;
      totals.lost += bad.length;
      totals.violations.push(...bad.map((b) => `mpps seed ${seed}: ${b}`));
      assert.ok(acked.size > 0, 'some operations were acknowledged before the kill');
      assert.deepEqual(bad, [], `seed ${seed}`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('the figures of the kill -9 runs', (t) => {
  t.diagnostic(printTotals());
  assert.equal(totals.lost + totals.sourcesRemovedUnarchived, 0, totals.violations.join('\n'));
});
