/**
 * The spool's durability: a pool file torn by a crash is set aside and never indexed; an acknowledged file still in
 * the pool is indexed at start-up; an identical re-send right after Success is stored once; kill -9 right after
 * Success loses nothing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { SpoolWriter } from '../../src/storage/spoolWriter.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { needPeer, storescu } from '../helpers/peers.js';
import { startTestNode } from '../helpers/node.js';
import { checkAcknowledged, startNode, storescu as watchedStorescu } from '../fault/harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-spool-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A pid no process has any more: what a node killed before its restart leaves in its pool file names. */
const deadPid = spawnSync('true').pid;

/** Writes `img` into the pool as a receiving node would have (sealed, flushed), under a dead process's name. */
async function poolFile(dataDir: string, img: GeneratedInstance, n: number): Promise<string> {
  const file = path.join(dataDir, 'incoming/.pool', `${deadPid}-${n}`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const w = new SpoolWriter(
    { path: file, fresh: true },
    {
      sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
      sopInstanceUid: img.sopInstanceUid,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
    },
  );
  const data = datasetBytes(img.file);
  for (let p = 0; p < data.length; p += 16_384) w.write(data.subarray(p, p + 16_384));
  await w.finish();
  return file;
}

describe('spool durability', () => {
  test('a torn pool file is set aside in incoming/torn and never indexed; a sealed one is indexed', async () => {
    const [torn, zeroed, sealed] = generateStudy({ dir: path.join(tmp, 'pool'), series: 1, perSeries: 3 });
    const node = await startTestNode();
    try {
      await node.stop();
      const tornFile = await poolFile(node.dataDir, torn!, 1);
      fs.truncateSync(tornFile, fs.statSync(tornFile).size - 100);
      const zeroFile = await poolFile(node.dataDir, zeroed!, 2);
      const size = fs.statSync(zeroFile).size;
      const fd = fs.openSync(zeroFile, 'r+');
      fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, size - 4096);
      fs.closeSync(fd);
      await poolFile(node.dataDir, sealed!, 3);
      await node.restart();

      const rows = new Map((await node.instances()).map((r) => [r.sopInstanceUid, r]));
      assert.equal(rows.has(torn!.sopInstanceUid), false, 'a file cut short is not indexed');
      assert.equal(rows.has(zeroed!.sopInstanceUid), false, 'a file zero-filled at its end is not indexed');
      for (const img of [torn!, zeroed!]) {
        assert.equal(fs.existsSync(path.join(node.dataDir, 'incoming', `${img.sopInstanceUid}.dcm`)), false);
      }
      assert.equal(listFiles(path.join(node.dataDir, 'incoming/torn')).length, 2, 'both set aside in incoming/torn');
      const row = rows.get(sealed!.sopInstanceUid);
      assert.equal(row?.path, `incoming/${sealed!.sopInstanceUid}.dcm`, 'the sealed file is indexed at its spool name');
      assert.ok(datasetBytes(path.join(node.dataDir, row.path)).equals(datasetBytes(sealed!.file)));
      assert.deepEqual(
        listFiles(path.join(node.dataDir, 'incoming/.pool')),
        [],
        'nothing but empty ready files left in the pool',
      );
    } finally {
      await node.destroy();
    }
  });

  test('an identical re-send right after Success is stored once', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const study = generateStudy({ dir: path.join(tmp, 'resend'), series: 1, perSeries: 5 });
    const node = await startTestNode();
    try {
      // Each file twice in a row on one association: the second arrives right after the first's Success, before its
      // row is written.
      const files = study.flatMap((s) => [s.file, s.file]);
      const r = await storescu(node, ['-v', ...files]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((r.stdout + r.stderr).match(/Received Store Response \(Success\)/g)?.length, files.length);
      const rows = await node.instances();
      assert.equal(rows.length, study.length, 'one row per instance');
      const stored = listFiles(path.join(node.dataDir, 'incoming'));
      assert.equal(stored.length, study.length, `one file per instance: ${stored.join(', ')}`);
      for (const s of study) {
        const file = path.join(node.dataDir, 'incoming', `${s.sopInstanceUid}.dcm`);
        assert.ok(datasetBytes(file).equals(datasetBytes(s.file)), `${s.sopInstanceUid} byte-identical`);
      }
    } finally {
      await node.destroy();
    }
  });

  test('kill -9 right after Success: after a restart the instance is there, byte-identical and indexed', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const study = generateStudy({ dir: path.join(tmp, 'kill'), series: 1, perSeries: 3, rows: 256, columns: 256 });
    for (const [i, img] of study.entries()) {
      const dir = path.join(tmp, `kill-${i}`);
      const node = await startNode(dir, { log: { level: 'warn' } });
      // Killed on the first Success the sender reads; the rest of the files are never acknowledged.
      const sent = await watchedStorescu(node.port, [img.file, ...study.map((s) => s.file)], () => void node.kill9())
        .done;
      await node.kill9();
      assert.ok(sent.acked.length >= 1, sent.output.slice(-2000));
      const again = await startNode(dir);
      try {
        const acked = sent.acked.map((f) => study.find((s) => s.file === f)!);
        assert.deepEqual(await checkAcknowledged(again, acked, `spool kill ${i}`), []);
      } finally {
        await again.kill9();
      }
    }
  });
  test('spooled rows whose files are all gone (dataDir not mounted) are kept; a few, as a crash leaves, are dropped', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const study = generateStudy({ dir: path.join(tmp, 'unmounted'), series: 1, perSeries: 20 });
    const node = await startTestNode();
    try {
      const r = await storescu(node, [...study.map((s) => s.file)]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await node.instances()).length, 20);
      await node.stop();
      // One file gone: what a crash can explain. Its row goes at the next start.
      const spooled = (s: GeneratedInstance) => path.join(node.dataDir, 'incoming', `${s.sopInstanceUid}.dcm`);
      const aside = path.join(tmp, 'aside');
      fs.mkdirSync(aside, { recursive: true });
      fs.renameSync(spooled(study[0]!), path.join(aside, 'one.dcm'));
      await node.restart();
      assert.equal((await node.instances()).length, 19, 'the row of the one missing file dropped');
      await node.stop();
      // Every file gone (the volume not mounted): no row is dropped, and the log says why.
      for (const s of study.slice(1)) fs.renameSync(spooled(s), path.join(aside, `${s.sopInstanceUid}.dcm`));
      await node.restart();
      assert.equal((await node.instances()).length, 19, 'no row dropped');
      const log = fs.readFileSync(path.join(node.dir, 'scannode.log'), 'utf8');
      assert.match(log, /dataDir looks unmounted or emptied; none is dropped/);
      // Mounted again: everything is where it was.
      await node.stop();
      for (const s of study.slice(1)) fs.renameSync(path.join(aside, `${s.sopInstanceUid}.dcm`), spooled(s));
      await node.restart();
      assert.equal((await node.instances()).length, 19);
    } finally {
      await node.destroy();
    }
  });
});
