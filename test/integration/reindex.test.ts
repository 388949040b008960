import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { needPeer, run, storeAll } from '../helpers/peers.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-reindex-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const archiveFile = (dataDir: string, s: GeneratedInstance) =>
  path.join(dataDir, 'site/raw', s.studyInstanceUid, s.seriesInstanceUid, `${s.sopInstanceUid}.dcm`);

/** Rows as the index holds them, by SOP Instance UID. */
async function rows(node: TestNode): Promise<Map<string, { state: string; path: string }>> {
  return new Map((await node.instances()).map((r) => [r.sopInstanceUid, { state: r.state, path: r.path }]));
}

/** What a power loss under SQLite synchronous=NORMAL can leave: archived rows back to 'spooled', spool names gone. */
async function rollBackArchiveRows(node: TestNode, imgs: GeneratedInstance[]): Promise<void> {
  const db = node.node.db;
  for (const i of imgs) {
    await db.source
      .getRepository(db.entities.Instance)
      .update({ sopInstanceUid: i.sopInstanceUid }, { state: 'spooled', path: `incoming/${i.sopInstanceUid}.dcm` });
  }
}

/** A marker left by a run that was killed (a pid that is not running). */
function uncleanMarker(dataDir: string): void {
  fs.writeFileSync(path.join(dataDir, '.scannode-running.4194000'), '');
}

describe('archive recovery and scannode reindex', () => {
  test('database lost: `scannode reindex` rebuilds the index from site/raw and the spool', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const node = await startTestNode();
    t.after(() => node.destroy());
    const a = generateStudy({ dir: path.join(tmp, 'lost-a'), series: 2, perSeries: 3 });
    const b = generateStudy({ dir: path.join(tmp, 'lost-b'), series: 1, perSeries: 2 });
    await storeAll(node, [...a, ...b]);
    await node.node.archiver.archiveStudy(a[0]!.studyInstanceUid);
    await node.stop();
    for (const f of fs.readdirSync(node.dir)) if (f.startsWith('db.sqlite')) fs.rmSync(path.join(node.dir, f));
    const config = path.join(node.dir, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({ dataDir: node.dataDir, database: { type: 'sqlite', path: path.join(node.dir, 'db.sqlite') } }),
    );
    const r = await run(process.execPath, [CLI, 'reindex', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /spool: +2 files indexed/);
    assert.match(r.stdout, /archive: 1 studies, 6 files; 6 indexed/);
    assert.match(r.stdout, /rows whose file is in neither place: 0/);
    await node.restart();
    const index = await rows(node);
    for (const s of a) {
      assert.deepEqual(index.get(s.sopInstanceUid), {
        state: 'archived',
        path: `site/raw/${s.studyInstanceUid}/${s.seriesInstanceUid}/${s.sopInstanceUid}.dcm`,
      });
    }
    for (const s of b)
      assert.deepEqual(index.get(s.sopInstanceUid), { state: 'spooled', path: `incoming/${s.sopInstanceUid}.dcm` });
    const db = node.node.db;
    const study = await db.source
      .getRepository(db.entities.Study)
      .findOneBy({ studyInstanceUid: a[0]!.studyInstanceUid });
    assert.equal(study?.patientId, 'SN-TEST-1', 'study rows rebuilt from the headers');
    const again = await run(process.execPath, [CLI, 'reindex', '--config', config]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /archive: 1 studies, 6 files; 0 indexed/, 'a second run changes nothing');
  });

  test('index rolled back after the spool copy went (power loss): rows back at start-up, files untouched', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const node = await startTestNode();
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'rollback'), series: 2, perSeries: 4 });
    await storeAll(node, study);
    await node.node.archiver.archiveStudy(study[0]!.studyInstanceUid);
    await rollBackArchiveRows(node, study);
    uncleanMarker(node.dataDir);
    await node.restart();
    const walked = await node.node.reindexing;
    assert.ok(walked, 'the archive was walked after the unclean stop');
    const index = await rows(node);
    for (const s of study) {
      assert.equal(index.get(s.sopInstanceUid)?.state, 'archived', `row of ${s.sopInstanceUid} back`);
      assert.ok(datasetBytes(archiveFile(node.dataDir, s)).equals(datasetBytes(s.file)), 'archive intact');
    }
    await node.restart();
    assert.equal(node.node.reindexing, undefined, 'a clean stop does not walk the archive again');
  });

  test('a stop between the archive row and the spool unlink: the spool copy goes at start-up', async (t) => {
    if (!needPeer(t, 'storescu')) return;
    const node = await startTestNode();
    t.after(() => node.destroy());
    const study = generateStudy({ dir: path.join(tmp, 'leftover'), series: 1, perSeries: 3 });
    await storeAll(node, study);
    await node.node.archiver.archiveStudy(study[0]!.studyInstanceUid);
    // The spool names as they were before the unlink: the same inodes as the archive files.
    for (const s of study)
      fs.linkSync(archiveFile(node.dataDir, s), path.join(node.dataDir, 'incoming', `${s.sopInstanceUid}.dcm`));
    await node.restart();
    assert.deepEqual(listFiles(path.join(node.dataDir, 'incoming')), [], 'no spool copy left');
    for (const s of study) assert.ok(datasetBytes(archiveFile(node.dataDir, s)).equals(datasetBytes(s.file)));
    assert.ok([...(await rows(node)).values()].every((r) => r.state === 'archived'));
  });
});
