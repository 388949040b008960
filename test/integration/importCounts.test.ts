// Imports that tell the truth (issue 17): the counters in every path (a batch failing midway, a retried batch,
// duplicates, problems), a permanent failure that stops and waits for an operator, a transient one retried with
// backoff, and the flush interval the docs name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { PYDICOM_DATA } from '../helpers/peers.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { datasetBytes, listFiles } from '../helpers/files.js';
import { waitFor } from '../helpers/waitFor.js';
import { call } from '../helpers/http.js';
import { FLUSH_EVERY } from '../../src/pipeline/importer.js';
import type { ImportBatchRow } from '../../src/db/importEntities.js';
import { archivedFile, batch, batches, drop } from '../helpers/imports.js';

const FAST = { stableSeconds: 0.3, rescanSeconds: 0.2 };

function counts(b: ImportBatchRow) {
  const { filesFound, filesRead, archived, duplicates, problems, errors } = b;
  return { filesFound, filesRead, archived, duplicates, problems, errors };
}

/** The archive made unusable the way a misconfigured mount does it: site/raw is not a folder. */
function breakArchive(node: TestNode): void {
  const raw = path.join(node.dataDir, 'site', 'raw');
  fs.rmSync(raw, { recursive: true, force: true });
  fs.writeFileSync(raw, 'not a folder\n');
}

function repairArchive(node: TestNode): void {
  const raw = path.join(node.dataDir, 'site', 'raw');
  fs.rmSync(raw, { force: true });
  fs.mkdirSync(raw);
}

for (const kind of DB_KINDS) {
  test(`a batch failing midway counts what it stored, stops, waits for an operator, and a retry archives it all (${kind})`, async (t) => {
    if (!(await needDb(t, kind))) return;
    const node = await startTestNode({ kind, extra: { import: FAST } });
    try {
      const generated = generateStudy({ dir: path.join(node.dir, 'src'), series: 3, perSeries: 100, ext: '' });
      breakArchive(node);
      drop(node, 'MID', generated);
      const id = (await waitFor(
        'the batch to end',
        async () =>
          (await batches(node)).find((b) => b.name === 'MID' && b.state !== 'running' && b.state !== 'queued'),
        60_000,
      ))!.id;
      const failed = await batch(node, id);
      assert.equal(failed.state, 'failed');
      assert.match(failed.message!, /cannot write the archive site\/raw .*ENOTDIR/);
      assert.match(failed.message!, new RegExp(`retry: POST /api/imports/${id}/retry`));
      // What it says is what happened: every file it read is stored, none archived, none removed from the inbox.
      const rows = await node.instances();
      assert.equal(failed.filesRead, rows.length, 'filesRead = instances stored');
      // The first archive run (at FLUSH_EVERY files) failed; reading went on meanwhile, then stopped.
      assert.ok(failed.filesRead >= FLUSH_EVERY && failed.filesRead < 300, String(failed.filesRead));
      assert.deepEqual(counts(failed), {
        filesFound: 300,
        filesRead: rows.length,
        archived: 0,
        duplicates: 0,
        problems: 0,
        errors: 0,
      });
      assert.equal(listFiles(path.join(node.dataDir, 'inbox', 'MID')).length, 300);
      // Nothing goes on after it ended, and the inbox does not take it again while nothing changes.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await node.instances()).length, rows.length, 'no worker kept storing after the end');
      const after = await batches(node);
      assert.equal(after.length, 1, 'not imported again');
      assert.equal(after[0]!.attempts, 1);
      assert.deepEqual(counts(after[0]!), counts(failed));
      // The status page says so.
      const st = await call(node, 'GET', '/api/status');
      const recent = (st.json.imports as { recent: Array<Record<string, unknown>> }).recent;
      assert.equal(recent[0]!.id, id);
      assert.equal(recent[0]!.state, 'failed');
      assert.match(String(recent[0]!.message), /site\/raw/);

      repairArchive(node);
      const r = await call(node, 'POST', `/api/imports/${id}/retry`);
      assert.equal(r.status, 202, JSON.stringify(r.json));
      await waitFor('the retry to finish', async () => (await batch(node, id)).state === 'finished', 60_000);
      const done = await batch(node, id);
      // The files the first attempt stored are archived now and counted so; they are not duplicates of anything.
      assert.deepEqual(counts(done), {
        filesFound: 300,
        filesRead: 300,
        archived: 300,
        duplicates: 0,
        problems: 0,
        errors: 0,
      });
      assert.equal(done.attempts, 2);
      assert.ok(!fs.existsSync(path.join(node.dataDir, 'inbox', 'MID')), 'sources removed once archived');
      for (const g of generated) assert.ok(datasetBytes(archivedFile(node, g)).equals(datasetBytes(g.file)));
    } finally {
      await node.destroy();
    }
  });
}

test('a transient failure is retried with backoff (injected clock), given up after maxAttempts, then retried by an operator', async () => {
  let now = Date.parse('2026-03-01T10:00:00Z');
  const node = await startTestNode({
    now: () => new Date(now),
    extra: { import: { watchInbox: false, retrySeconds: 60, retryMaxSeconds: 600, maxAttempts: 3, concurrency: 1 } },
  });
  try {
    const generated = generateStudy({ dir: path.join(node.dir, 'src'), series: 1, perSeries: 20, ext: '' });
    drop(node, 'TR', generated);
    // The spool name of one instance is taken by a folder: its store fails (0xA700 out of resources, or EISDIR).
    const blocked = generated[12]!;
    const obstacle = path.join(node.dataDir, 'incoming', `${blocked.sopInstanceUid}.dcm`);
    fs.mkdirSync(obstacle);
    const post = await call(node, 'POST', '/api/imports', { path: 'TR' });
    assert.equal(post.status, 202);
    const id = post.json.id as string;
    const ended = async (attempts: number) =>
      waitFor(`attempt ${attempts}`, async () => {
        const b = await batch(node, id);
        return b.attempts === attempts && b.state !== 'running' ? b : undefined;
      });
    const first = await ended(1);
    assert.equal(first.state, 'retrying');
    assert.match(first.message!, /the store (refused a file: 0xA700|failed at the spool \(EISDIR\))/);
    assert.equal(first.nextAttemptAt!.getTime(), now + 60_000);
    // Stopped at the failure: what was read before it is archived and gone from the inbox, the rest stays.
    assert.equal(first.errors, 1);
    assert.equal(first.archived, first.filesRead);
    assert.equal(listFiles(path.join(node.dataDir, 'inbox', 'TR')).length, 20 - first.archived);
    // Not due yet: nothing happens.
    assert.equal(await node.node.importer.resumeDue(), 0);
    now += 60_000;
    assert.equal(await node.node.importer.resumeDue(), 1);
    const second = await ended(2);
    assert.equal(second.state, 'retrying');
    assert.equal(second.nextAttemptAt!.getTime(), now + 120_000, 'the delay doubles');
    now += 120_000;
    await node.node.importer.resumeDue();
    const third = await ended(3);
    assert.equal(third.state, 'failed');
    assert.match(third.message!, /gave up after 3 attempts: the store/);
    now += 3_600_000;
    assert.equal(await node.node.importer.resumeDue(), 0, 'a failed batch is not retried by the node');

    fs.rmdirSync(obstacle);
    const r = await call(node, 'POST', `/api/imports/${id}/retry`);
    assert.equal(r.status, 202);
    const done = await ended(4);
    assert.equal(done.state, 'finished', done.message ?? '');
    assert.deepEqual(counts(done), {
      filesFound: 20,
      filesRead: 20,
      archived: 20,
      duplicates: 0,
      problems: 0,
      errors: 0,
    });
    assert.equal((await call(node, 'GET', `/api/imports/${id}`)).json.problems instanceof Array, true);
    assert.deepEqual((await call(node, 'GET', `/api/imports/${id}`)).json.problems, [], 'the error is cleared');
    assert.ok(!fs.existsSync(path.join(node.dataDir, 'inbox', 'TR')));
  } finally {
    await node.destroy();
  }
});

test('duplicates and problems are counted once each, and archived counts every file whose bytes are archived', async () => {
  const node = await startTestNode({ extra: { import: FAST } });
  try {
    const generated = generateStudy({ dir: path.join(node.dir, 'src'), series: 2, perSeries: 5, ext: '' });
    const src = path.join(node.dir, 'src');
    const keep = (name: string) =>
      node.node.importer.importPath({ path: src, baseDir: node.dir, name, source: 'cli', keepSources: true });
    assert.deepEqual(counts(await keep('first')), {
      filesFound: 10,
      filesRead: 10,
      archived: 10,
      duplicates: 0,
      problems: 0,
      errors: 0,
    });
    const again = await keep('again');
    assert.equal(again.state, 'finished');
    assert.deepEqual(counts(again), {
      filesFound: 10,
      filesRead: 10,
      archived: 10,
      duplicates: 10,
      problems: 0,
      errors: 0,
    });
    // Through the inbox, with three files that are not importable beside them.
    const tmp = path.join(node.dataDir, 'inbox', 'MIXED.tmp');
    drop(node, 'MIXED.tmp', generated);
    fs.writeFileSync(path.join(tmp, 'notes.txt'), 'not DICOM\n');
    fs.writeFileSync(path.join(tmp, 'empty'), '');
    fs.copyFileSync(path.join(PYDICOM_DATA, 'test_files', 'MR_truncated.dcm'), path.join(tmp, 'truncated'));
    fs.renameSync(tmp, path.join(node.dataDir, 'inbox', 'MIXED'));
    const mixed = await waitFor('MIXED', async () =>
      (await batches(node)).find((b) => b.name === 'MIXED' && b.state === 'finished'),
    );
    assert.deepEqual(counts(mixed), {
      filesFound: 13,
      filesRead: 10,
      archived: 10,
      duplicates: 10,
      problems: 3,
      errors: 0,
    });
    const st = await node.node.importer.status(mixed.id);
    assert.deepEqual(
      st!.problemList.map((p) => p.kind),
      ['moved', 'moved', 'moved'],
    );
    assert.equal(
      listFiles(path.join(node.dataDir, 'problem', 'MIXED')).filter((f) => !f.endsWith('.reason.txt')).length,
      3,
    );
    assert.ok(!fs.existsSync(path.join(node.dataDir, 'inbox', 'MIXED')));
  } finally {
    await node.destroy();
  }
});

test(`sources are archived and released every ${FLUSH_EVERY} files, the number ARCHITECTURE.md gives`, async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false, concurrency: 1 } } });
  try {
    const inbox = path.join(node.dataDir, 'inbox');
    generateStudy({ dir: path.join(inbox, 'STEPS'), series: 3, perSeries: 150, rows: 16, columns: 16, ext: '' });
    const seen = new Set<number>();
    const row = await node.node.importer.importPath(
      {
        path: path.join(fs.realpathSync(inbox), 'STEPS'),
        baseDir: fs.realpathSync(inbox),
        name: 'STEPS',
        source: 'inbox',
        keepSources: false,
        removeEmptyRoot: true,
      },
      (c) => seen.add(c.archived),
    );
    assert.equal(row.archived, 450);
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      [0, FLUSH_EVERY, 2 * FLUSH_EVERY, 450],
    );
    const docs = fs.readFileSync('docs/ARCHITECTURE.md', 'utf8');
    assert.match(docs, new RegExp(`every ${FLUSH_EVERY} stored files`));
  } finally {
    await node.destroy();
  }
});

test('the inbox takes a failed folder again only once something in it changes; loose files resume on a retry', async () => {
  const node = await startTestNode({ extra: { import: FAST } });
  try {
    const inbox = path.join(node.dataDir, 'inbox');
    const generated = generateStudy({ dir: path.join(node.dir, 'src'), series: 1, perSeries: 4, ext: '' });
    const studyDir = path.join(node.dataDir, 'site', 'raw', generated[0]!.studyInstanceUid);
    fs.writeFileSync(studyDir, 'not a folder');
    drop(node, 'F', generated.slice(0, 3));
    const f = await waitFor('F to fail', async () =>
      (await batches(node)).find((b) => b.name === 'F' && b.state === 'failed'),
    );
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await batch(node, f.id)).attempts, 1, 'unchanged: not taken again');
    // The operator clears the way and the sender adds the missing file: the same batch resumes and finishes.
    fs.rmSync(studyDir);
    fs.copyFileSync(generated[3]!.file, path.join(inbox, 'F', path.basename(generated[3]!.file)));
    await waitFor('F to finish', async () => (await batch(node, f.id)).state === 'finished', 30_000);
    const done = await batch(node, f.id);
    assert.equal(done.attempts, 2);
    assert.deepEqual(counts(done), { filesFound: 4, filesRead: 4, archived: 4, duplicates: 0, problems: 0, errors: 0 });
    assert.equal((await batches(node)).length, 1);

    // Loose files: a failed pass waits; a retry asked through the API lets the inbox take them again.
    const loose = generateStudy({ dir: path.join(node.dir, 'loose'), series: 1, perSeries: 2, ext: '' });
    const looseDir = path.join(node.dataDir, 'site', 'raw', loose[0]!.studyInstanceUid);
    fs.writeFileSync(looseDir, 'not a folder');
    for (const g of loose) fs.copyFileSync(g.file, path.join(inbox, `loose-${path.basename(g.file)}`));
    const l = await waitFor('the loose pass to fail', async () =>
      (await batches(node)).find((b) => b.name === 'inbox' && b.state === 'failed'),
    );
    fs.rmSync(looseDir);
    await new Promise((r) => setTimeout(r, 800));
    assert.equal((await batch(node, l.id)).attempts, 1);
    const r = await call(node, 'POST', `/api/imports/${l.id}/retry`);
    assert.equal(r.status, 202);
    await waitFor('the loose batch to finish', async () => (await batch(node, l.id)).state === 'finished', 30_000);
    assert.equal((await batch(node, l.id)).archived, 2);
    assert.deepEqual(fs.readdirSync(inbox), []);
  } finally {
    await node.destroy();
  }
});
