import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test, before, after } from 'node:test';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { needPeer, run } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { Archiver } from '../../src/pipeline/archive.js';

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
      if (!node || !needPeer(t, 'storescu')) return;
      const study = generateStudy({ dir: path.join(tmp, kind), series: 2, perSeries: 3 });
      const r = await run('storescu', [
        '-aec',
        'SCANNODE',
        '127.0.0.1',
        String(node.port),
        ...study.map((s) => s.file),
      ]);
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

      const archiver = new Archiver(node.node.db!, node.dataDir, node.node.log);
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
