import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestNode } from '../helpers/node.js';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { PYDICOM_DATA } from '../helpers/peers.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { listFiles } from '../helpers/files.js';
import { waitFor } from '../helpers/waitFor.js';
import { batches } from '../helpers/imports.js';

const PYDICOM_FILES = path.join(PYDICOM_DATA, 'test_files');
const CHARSETS = path.join(PYDICOM_DATA, 'charset_files');

/** Fast watcher settings: a loose file is taken after 0.3 s unchanged, rescan every 0.2 s. */
const FAST = { import: { stableSeconds: 0.3, rescanSeconds: 0.2 } };

/** A folder of pydicom's test files (all transfer syntaxes, no-meta, truncated, bad VR), character sets, a generated
 * study without extensions, an empty file and a text file, in nested folders. Returns the generated instances. */
function fillFolder(dir: string): GeneratedInstance[] {
  const copy = (from: string, to: string) => {
    fs.mkdirSync(to, { recursive: true });
    for (const e of fs.readdirSync(from, { withFileTypes: true })) {
      if (e.isFile()) fs.copyFileSync(path.join(from, e.name), path.join(to, e.name));
    }
  };
  copy(PYDICOM_FILES, path.join(dir, 'pydicom', 'test_files'));
  copy(CHARSETS, path.join(dir, 'pydicom', 'charsets', 'deeper'));
  // the same files again, without extensions
  fs.mkdirSync(path.join(dir, 'noext'), { recursive: true });
  for (const name of ['CT_small.dcm', 'MR_small.dcm', 'MR_truncated.dcm', 'no_meta.dcm']) {
    fs.copyFileSync(path.join(PYDICOM_FILES, name), path.join(dir, 'noext', name.replace(/\.dcm$/, '')));
  }
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not DICOM at all\n');
  return generateStudy({ dir: path.join(dir, 'gen', 'a', 'b'), series: 2, perSeries: 5, ext: '' });
}

function reasonOf(problemDir: string, rel: string): string {
  return fs.readFileSync(path.join(problemDir, `${rel}.reason.txt`), 'utf8');
}

for (const kind of DB_KINDS) {
  test(`inbox: a .tmp folder is left alone until renamed, then archived or explained file by file (${kind})`, async (t) => {
    if (!(await needDb(t, kind))) return;
    const node = await startTestNode({ kind, extra: FAST });
    try {
      const inbox = path.join(node.dataDir, 'inbox');
      const problem = path.join(node.dataDir, 'problem');
      const tmpDir = path.join(inbox, 'ACC42.tmp1234');
      const generated = fillFolder(tmpDir);
      const sources = listFiles(tmpDir).map((f) => path.relative(tmpDir, f));
      // Several scans pass: the folder is untouched.
      for (let i = 0; i < 3; i++) await node.node.inbox!.kick();
      await new Promise((r) => setTimeout(r, 700));
      await node.node.inbox!.kick();
      assert.equal(listFiles(tmpDir).length, sources.length, '.tmp folder untouched');
      assert.equal((await batches(node)).length, 0);

      fs.renameSync(tmpDir, path.join(inbox, 'ACC42'));
      const batch = (await waitFor(
        'the ACC42 batch to finish',
        async () =>
          (await batches(node)).find((b) => b.name === 'ACC42' && b.state !== 'running' && b.state !== 'queued'),
        60_000,
      ))!;
      assert.equal(batch.state, 'finished', batch.message ?? '');
      assert.equal(batch.source, 'inbox');
      assert.equal(batch.filesFound, sources.length);
      assert.equal(batch.filesRead + batch.problems, sources.length, 'every file read or explained');
      assert.equal(batch.errors, 0);
      assert.ok(batch.archived >= generated.length);
      assert.ok(batch.bytes > 0);

      // Nothing lost: the inbox folder is gone only because everything is archived or in problem/.
      assert.ok(!fs.existsSync(path.join(inbox, 'ACC42')), 'inbox folder removed once done');
      const rows = await node.instances();
      for (const g of generated) {
        const row = rows.find((r) => r.sopInstanceUid === g.sopInstanceUid);
        assert.ok(row, `generated ${g.file} indexed`);
        assert.equal(row.state, 'archived');
        assert.ok(fs.existsSync(path.join(node.dataDir, row.path)));
      }
      assert.ok(rows.every((r) => r.state === 'archived'));
      const problems = listFiles(problem).filter((f) => !f.endsWith('.reason.txt'));
      assert.equal(problems.length, batch.problems);
      for (const f of problems) assert.ok(fs.existsSync(`${f}.reason.txt`), `${f} has a reason`);
      // Stored instances + problems account for every source file.
      assert.equal(batch.filesRead - batch.duplicates + batch.duplicates + problems.length, sources.length);

      // The right reasons.
      assert.match(reasonOf(problem, 'ACC42/empty'), /zero bytes/);
      assert.match(reasonOf(problem, 'ACC42/notes.txt'), /not a DICOM Part 10 file/);
      assert.match(reasonOf(problem, 'ACC42/pydicom/test_files/MR_truncated.dcm'), /truncated/);
      assert.match(reasonOf(problem, 'ACC42/noext/MR_truncated'), /truncated/);
      assert.match(reasonOf(problem, 'ACC42/pydicom/test_files/no_meta.dcm'), /no preamble/);
      assert.match(reasonOf(problem, 'ACC42/pydicom/test_files/meta_missing_tsyntax.dcm'), /Transfer Syntax/);
      // CT_small is stored once (the copy without extension is an identical duplicate).
      assert.ok(!fs.existsSync(path.join(problem, 'ACC42/pydicom/test_files/CT_small.dcm')));
      assert.ok(!fs.existsSync(path.join(problem, 'ACC42/noext/CT_small')));
      assert.ok(batch.duplicates >= 2, 'CT_small and MR_small without extension are duplicates');
      // Character sets: all 17 of pydicom's, ISO 2022 multi-valued ones included, are archived.
      for (const name of [
        'chrArab',
        'chrFren',
        'chrGerm',
        'chrGreek',
        'chrHbrw',
        'chrRuss',
        'chrX1',
        'chrX2',
        'chrH31',
      ]) {
        assert.ok(!fs.existsSync(path.join(problem, `ACC42/pydicom/charsets/deeper/${name}.dcm`)), `${name} archived`);
      }
      // None is unreadable (0xC000 / 0xC001): the *Multi variants share their SOP Instance UID with the single-set
      // file of the same name but differ in content, so they are refused as conflicts (0xC003), as any conflicting
      // re-send is; chrSQEncoding and chrSQEncoding1 have no SOP Instance UID in its data set (0xC002).
      const charsetReasons = listFiles(path.join(problem, 'ACC42/pydicom/charsets'))
        .filter((f) => f.endsWith('.dcm.reason.txt'))
        .map((f) => `${path.basename(f)}: ${fs.readFileSync(f, 'utf8').split('\n')[0]}`);
      for (const r of charsetReasons) {
        assert.match(
          r,
          /(Multi\w*\.dcm\.reason\.txt: 0xC003|chrSQEncoding1?\.dcm\.reason\.txt: 0xC002 SOPInstanceUID)/,
          r,
        );
      }
      // The problem list in the database.
      const st = await node.node.importer.status(batch.id);
      assert.equal(st!.problemList.length, batch.problems);
      assert.ok(st!.problemList.some((p) => p.path === path.join('ACC42', 'empty') && p.reason === 'zero bytes'));

      // A restart finds nothing more to import.
      await node.restart();
      await node.node.inbox!.kick();
      assert.equal((await batches(node)).length, 1);
    } finally {
      await node.destroy();
    }
  });

  test(`inbox: a restart in the middle of an import loses nothing and stores nothing twice (${kind})`, async (t) => {
    if (!(await needDb(t, kind))) return;
    const node = await startTestNode({
      kind,
      extra: { import: { stableSeconds: 0.2, rescanSeconds: 0.2, concurrency: 1 } },
    });
    try {
      const inbox = path.join(node.dataDir, 'inbox');
      const generated = generateStudy({ dir: path.join(inbox, 'BIG.tmp', 'x'), series: 3, perSeries: 100, ext: '' });
      fs.renameSync(path.join(inbox, 'BIG.tmp'), path.join(inbox, 'BIG'));
      await waitFor(
        'the import to be under way',
        async () => (await batches(node)).some((b) => b.state === 'running' && b.filesRead + b.problems >= 20),
        30_000,
      );
      await node.restart();
      // The same batch resumes by itself (its sources are still in the inbox: removed only once archived).
      await waitFor('the inbox to be empty', () => !fs.existsSync(path.join(inbox, 'BIG')), 60_000);
      await waitFor('the batch to finish', async () => (await batches(node)).at(-1)!.state === 'finished');
      const all = await batches(node);
      assert.equal(all.length, 1, 'resumed, not a second batch');
      const b = all[0]!;
      assert.equal(b.attempts, 2);
      const rows = await node.instances();
      assert.equal(rows.length, generated.length, 'each instance stored once');
      assert.ok(rows.every((r) => r.state === 'archived'));
      for (const r of rows) assert.ok(fs.existsSync(path.join(node.dataDir, r.path)));
      // Counted once each, over both attempts: what the first took out is carried, what it stored is not a duplicate.
      assert.deepEqual(
        { found: b.filesFound, read: b.filesRead, archived: b.archived, duplicates: b.duplicates, errors: b.errors },
        { found: 300, read: 300, archived: 300, duplicates: 0, errors: 0 },
      );
      assert.equal(listFiles(path.join(node.dataDir, 'problem')).length, 0);
      assert.equal(listFiles(path.join(node.dataDir, 'incoming')).filter((f) => f.endsWith('.part')).length, 0);
    } finally {
      await node.destroy();
    }
  });
}

test('inbox: a loose file still being written is not taken half-written', async () => {
  const node = await startTestNode({ extra: { import: { stableSeconds: 1, rescanSeconds: 0.1 } } });
  try {
    const src = path.join(node.dir, 'src');
    const [g] = generateStudy({ dir: src, series: 1, perSeries: 1, rows: 256, columns: 256, ext: '' });
    const full = fs.readFileSync(g!.file);
    const target = path.join(node.dataDir, 'inbox', 'slowfile');
    // Written in pieces, 300 ms apart, for ~3 s: never unchanged for a whole second.
    const pieces = 10;
    const step = Math.ceil(full.length / pieces);
    for (let i = 0; i < pieces; i++) {
      fs.appendFileSync(target, full.subarray(i * step, (i + 1) * step));
      await new Promise((r) => setTimeout(r, 300));
      if (i < pieces - 1) assert.ok(fs.existsSync(target), `still in the inbox after piece ${i + 1}`);
    }
    await waitFor('the loose file to be imported', () => !fs.existsSync(target), 15_000);
    const rows = await node.instances();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.sopInstanceUid, g!.sopInstanceUid);
    assert.equal(rows[0]!.state, 'archived');
    assert.ok(fs.readFileSync(path.join(node.dataDir, rows[0]!.path)).equals(full), 'archived whole');
    assert.equal(listFiles(path.join(node.dataDir, 'problem')).length, 0);
    const [b] = await batches(node);
    assert.equal(b!.name, 'inbox');
  } finally {
    await node.destroy();
  }
});

test('import of 2,000 files keeps memory flat', async (t) => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  try {
    const src = path.join(node.dir, 'many');
    const generated = generateStudy({ dir: src, series: 4, perSeries: 500, rows: 128, columns: 128, ext: '' });
    assert.equal(generated.length, 2000);
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    const row = await node.node.importer.importPath({
      path: src,
      baseDir: node.dir,
      name: 'many',
      source: 'cli',
      keepSources: true,
    });
    clearInterval(sampler);
    assert.equal(row.state, 'finished');
    assert.equal(row.filesRead, 2000);
    assert.equal(row.archived, 2000);
    const growthMb = (peak - before) / 1e6;
    t.diagnostic(`RSS growth ${growthMb.toFixed(1)} MB for 2,000 files`);
    // 2,000 x 32 KiB = 64 MB of data went through; memory must not grow with it.
    assert.ok(growthMb < 120, `RSS grew by ${growthMb.toFixed(0)} MB`);
    assert.equal(listFiles(src).length, 2000, 'sources kept (keepSources)');
  } finally {
    await node.destroy();
  }
});
