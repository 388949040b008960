import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test, before, after } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { needPeer, needNode, storescu } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { ArchiveError, Archiver } from '../../src/pipeline/archive.js';
import { mountTmpfs } from '../helpers/mount.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-archive-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const kind of DB_KINDS) {
  describe(`archive on ${kind}`, () => {
    let node: TestNode;
    before(async () => {
      if (!(await needDb({ skip: (why) => console.log(`# skipped: ${why}`) }, kind))) return;
      node = await startTestNode({ kind });
    });
    after(async () => node?.destroy());

    test('a study moves from the spool to site/raw/<Study>/<Series>/<SOP>.dcm; a re-run after a crash finishes', async (t) => {
      if (!needNode(t, node) || !needPeer(t, 'storescu')) return;
      const study = generateStudy({ dir: path.join(tmp, kind), series: 2, perSeries: 3 });
      const r = await storescu(node, [...study.map((s) => s.file)]);
      assert.equal(r.code, 0, r.stderr);
      // A crash half-way: one instance already linked into the archive, its row still "spooled".
      const first = study[0]!;
      const firstTarget = path.join(
        node.dataDir,
        'site/raw',
        first.studyInstanceUid,
        first.seriesInstanceUid,
        `${first.sopInstanceUid}.dcm`,
      );
      fs.mkdirSync(path.dirname(firstTarget), { recursive: true });
      fs.linkSync(path.join(node.dataDir, 'incoming', `${first.sopInstanceUid}.dcm`), firstTarget);

      const archiver = new Archiver(node.node.db, node.dataDir, node.node.log);
      const res = await archiver.archiveStudy(first.studyInstanceUid);
      assert.equal(res.archived, 6);
      assert.deepEqual(res.missing, []);
      for (const s of study) {
        const file = path.join(
          node.dataDir,
          'site/raw',
          s.studyInstanceUid,
          s.seriesInstanceUid,
          `${s.sopInstanceUid}.dcm`,
        );
        assert.ok(datasetBytes(file).equals(datasetBytes(s.file)), 'archived intact');
      }
      assert.deepEqual(listFiles(path.join(node.dataDir, 'incoming')), [], 'spool emptied');
      const rows = await node.instances();
      assert.ok(rows.every((row) => row.state === 'archived' && row.path.startsWith('site/raw/')));
      const again = await archiver.archiveStudy(first.studyInstanceUid);
      assert.equal(again.archived, 0);
      assert.equal(again.alreadyArchived, 6, 'a second run finds the job done');
    });
  });
}

/** The archive file of an instance. */
function archived(dataDir: string, s: { studyInstanceUid: string; seriesInstanceUid: string; sopInstanceUid: string }) {
  return path.join(dataDir, 'site/raw', s.studyInstanceUid, s.seriesInstanceUid, `${s.sopInstanceUid}.dcm`);
}

describe('archive on a separate file system (site/raw on its own tmpfs)', () => {
  test('link fails with EXDEV: copied, fsynced, verified; rows archived; spool emptied', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const node = await startTestNode();
    t.after(() => node.destroy());
    const mount = mountTmpfs(t, path.join(node.dataDir, 'site/raw'), 64 << 20);
    if (!mount) return;
    const study = generateStudy({ dir: path.join(tmp, 'exdev'), series: 2, perSeries: 3 });
    const r = await storescu(node, [...study.map((s) => s.file)]);
    assert.equal(r.code, 0, r.stderr);
    const archiver = new Archiver(node.node.db, node.dataDir, node.node.log);
    const res = await archiver.archiveStudy(study[0]!.studyInstanceUid);
    assert.equal(res.archived, 6);
    assert.equal(res.copied, 6, 'every file copied across file systems');
    const spoolDev = fs.statSync(path.join(node.dataDir, 'incoming')).dev;
    for (const s of study) {
      const file = archived(node.dataDir, s);
      assert.notEqual(fs.statSync(file).dev, spoolDev, 'on the other file system');
      assert.ok(datasetBytes(file).equals(datasetBytes(s.file)), 'archived intact');
    }
    assert.deepEqual(listFiles(path.join(node.dataDir, 'incoming')), [], 'spool emptied');
    assert.deepEqual(
      listFiles(mount.dir).filter((f) => path.basename(f).startsWith('.')),
      [],
      'no temporary left',
    );
    const rows = await node.instances();
    assert.ok(rows.every((row) => row.state === 'archived' && row.path.startsWith('site/raw/')));
    await node.stop();
    mount.unmount();
  });

  test('disk full in site/raw: nothing partial, the rest stays spooled, finished once space returns', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const node = await startTestNode();
    t.after(() => node.destroy());
    // Room for about 4 of the 10 files (each ~130 KB).
    const mount = mountTmpfs(t, path.join(node.dataDir, 'site/raw'), 600 * 1024);
    if (!mount) return;
    const study = generateStudy({ dir: path.join(tmp, 'full'), series: 1, perSeries: 10, rows: 256, columns: 256 });
    const r = await storescu(node, [...study.map((s) => s.file)]);
    assert.equal(r.code, 0, r.stderr);
    const archiver = new Archiver(node.node.db, node.dataDir, node.node.log);
    const studyUid = study[0]!.studyInstanceUid;
    await assert.rejects(archiver.archiveStudy(studyUid), (err: Error) => {
      assert.ok(err instanceof ArchiveError);
      assert.match(err.message, /out of disk space in site\/raw \(ENOSPC\)/);
      assert.doesNotMatch(err.message, /\/tmp\//, 'no absolute path in the reason');
      return true;
    });
    const inArchive = listFiles(mount.dir);
    assert.ok(
      inArchive.every((f) => !path.basename(f).startsWith('.')),
      'no temporary (partial) file left in the archive',
    );
    const rows = await node.instances();
    for (const row of rows) {
      const s = study.find((x) => x.sopInstanceUid === row.sopInstanceUid)!;
      const file = row.state === 'archived' ? archived(node.dataDir, s) : path.join(node.dataDir, row.path);
      assert.ok(datasetBytes(file).equals(datasetBytes(s.file)), `${row.state} copy intact`);
    }
    assert.equal(rows.filter((x) => x.state === 'archived').length, inArchive.length, 'a row per archived file');
    assert.ok(
      rows.some((x) => x.state === 'spooled'),
      'the rest waits in the spool',
    );
    mount.resize(16 << 20);
    const res = await archiver.archiveStudy(studyUid);
    assert.equal(res.archived + res.alreadyArchived, study.length);
    assert.ok((await node.instances()).every((x) => x.state === 'archived'));
    assert.deepEqual(listFiles(path.join(node.dataDir, 'incoming')), [], 'spool emptied');
    await node.stop();
    mount.unmount();
  });
});
