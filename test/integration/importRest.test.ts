import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startTestNode } from '../helpers/node.js';
import { DB_KINDS, needDb } from '../helpers/db.js';
import { PYDICOM_DATA } from '../helpers/peers.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { listFiles } from '../helpers/files.js';
import { waitFor } from '../helpers/waitFor.js';
import { call } from '../helpers/http.js';
import { cliConfig } from '../helpers/imports.js';

const TOKEN = 'a-test-token-0123456789';

for (const kind of DB_KINDS) {
  test(`REST import: 202 with a status URL, polled until finished, counts and problems (${kind})`, async (t) => {
    if (!(await needDb(t, kind))) return;
    const node = await startTestNode({ kind, extra: { import: { watchInbox: false } } });
    try {
      const dir = path.join(node.dataDir, 'inbox', 'proj', 'SESSION1');
      const generated = generateStudy({ dir: path.join(dir, 'sub'), series: 2, perSeries: 4, ext: '' });
      fs.copyFileSync(path.join(PYDICOM_DATA, 'test_files', 'MR_truncated.dcm'), path.join(dir, 'broken'));
      const post = await call(node, 'POST', '/api/imports', {
        path: 'proj/SESSION1',
        patientId: 'P1',
        studyLabel: 'visit 1',
        cleanupAfterImport: true,
      });
      assert.equal(post.status, 202, JSON.stringify(post.json));
      const statusUrl = post.json.statusUrl as string;
      assert.equal(statusUrl, `/api/imports/${String(post.json.id)}`);
      const final = (await waitFor(
        'the import to finish',
        async () => {
          const r = await call(node, 'GET', statusUrl);
          assert.equal(r.status, 200);
          return r.json.done ? r.json : undefined;
        },
        30_000,
      ))!;
      assert.equal(final.state, 'finished');
      assert.equal(final.name, 'SESSION1');
      assert.equal(final.patientId, 'P1');
      assert.equal(final.studyLabel, 'visit 1');
      const counts = final.counts as Record<string, number>;
      assert.deepEqual(
        { found: counts.filesFound, read: counts.filesRead, archived: counts.archived, problems: counts.problems },
        { found: 9, read: 8, archived: 8, problems: 1 },
      );
      const problems = final.problems as Array<{ path: string; reason: string }>;
      assert.equal(problems.length, 1);
      assert.equal(problems[0]!.path, path.join('proj', 'SESSION1', 'broken'));
      assert.match(problems[0]!.reason, /truncated/);
      assert.ok(fs.existsSync(path.join(node.dataDir, 'problem', 'proj', 'SESSION1', 'broken.reason.txt')));
      assert.ok(!fs.existsSync(dir), 'cleanupAfterImport: the session folder is gone');
      const rows = await node.instances();
      assert.deepEqual(rows.map((r) => r.sopInstanceUid).sort(), generated.map((g) => g.sopInstanceUid).sort());
      assert.ok(rows.every((r) => r.state === 'archived'));

      // cleanupAfterImport=false keeps the sources.
      const keep = path.join(node.dataDir, 'inbox', 'KEEP');
      generateStudy({ dir: keep, series: 1, perSeries: 2 });
      const p2 = await call(node, 'POST', '/api/imports', { path: keep, cleanupAfterImport: false });
      assert.equal(p2.status, 202);
      await waitFor('the second import', async () => (await call(node, 'GET', p2.json.statusUrl as string)).json.done);
      assert.equal(listFiles(keep).length, 2);

      // An unknown id, a malformed id.
      assert.equal((await call(node, 'GET', '/api/imports/00000000-0000-0000-0000-000000000000')).status, 404);
      const bad = await call(node, 'GET', '/api/imports/nope');
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error, 'invalid request');
    } finally {
      await node.destroy();
    }
  });
}

test('REST import: paths outside the inbox are refused with a reason; bodies are validated', async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-outside-'));
  try {
    const inbox = path.join(node.dataDir, 'inbox');
    fs.mkdirSync(path.join(inbox, 'ok'), { recursive: true });
    generateStudy({ dir: elsewhere, series: 1, perSeries: 1 });
    fs.symlinkSync(elsewhere, path.join(inbox, 'link-out'));
    const cases: Array<[unknown, number, RegExp]> = [
      [{ path: '../' }, 403, /outside the inbox/],
      [{ path: '../incoming' }, 403, /outside the inbox/],
      [{ path: 'ok/../../site' }, 403, /outside the inbox/],
      [{ path: elsewhere }, 403, /outside the inbox/],
      [{ path: '/etc' }, 403, /outside the inbox/],
      [{ path: 'link-out' }, 403, /symbolic link/],
      [{ path: 'missing' }, 400, /does not exist/],
      [{}, 400, /path/],
      [{ path: 'ok', extra: 1 }, 400, /additional/],
      [{ path: 'ok', cleanupAfterImport: 'yes' }, 400, /boolean/],
    ];
    for (const [body, status, msg] of cases) {
      const r = await call(node, 'POST', '/api/imports', body);
      assert.equal(r.status, status, `${JSON.stringify(body)} -> ${JSON.stringify(r.json)}`);
      assert.match(String(r.json.message), msg, JSON.stringify(body));
      assert.equal(typeof r.json.error, 'string');
    }
    assert.equal(listFiles(elsewhere).length, 1, 'nothing taken from outside');
    assert.equal((await node.instances()).length, 0);
    const nf = await call(node, 'GET', '/api/nothing');
    assert.equal(nf.status, 404);
    assert.equal(nf.json.error, 'not found');
  } finally {
    await node.destroy();
    fs.rmSync(elsewhere, { recursive: true, force: true });
  }
});

test('REST import: a bearer token is required on writes when http.token is set', async () => {
  const node = await startTestNode({ extra: { http: { port: 0, token: TOKEN }, import: { watchInbox: false } } });
  try {
    generateStudy({ dir: path.join(node.dataDir, 'inbox', 'S'), series: 1, perSeries: 1 });
    const none = await call(node, 'POST', '/api/imports', { path: 'S' });
    assert.equal(none.status, 401);
    assert.match(String(none.json.message), /bearer token is required/);
    const wrong = await call(
      node,
      'POST',
      '/api/imports',
      { path: 'S' },
      { authorization: 'Bearer wrong-token-xxxxxxxx' },
    );
    assert.equal(wrong.status, 401);
    assert.equal((await node.instances()).length, 0);
    const ok = await call(node, 'POST', '/api/imports', { path: 'S' }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 202);
    // Reads need no token.
    await waitFor('done', async () => (await call(node, 'GET', ok.json.statusUrl as string)).json.done);
    assert.equal((await node.instances()).length, 1);
  } finally {
    await node.destroy();
  }
});

test('scannode import PATH: one-shot import of any folder with a closing summary (not a TTY: plain lines)', async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  try {
    // The CLI runs beside the running node, on the same config (SQLite WAL).
    const cfg = cliConfig(node);
    const src = path.join(node.dir, 'somewhere', 'STUDY');
    const generated = generateStudy({ dir: path.join(src, 'a'), series: 1, perSeries: 3, ext: '' });
    fs.writeFileSync(path.join(src, 'junk.bin'), 'junk');
    const r = spawnSync(process.execPath, ['dist/src/cli.js', 'import', src, '--config', cfg], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /FilesFound \[4\] {2}FilesRead \[3\] {2}FilesArchived \[3\] {2}FilesIgnored \[0\] {2}FilesError \[1\]/,
    );
    assert.match(r.stdout, /Read rate: Bytes\/Sec \[\d+\]/);
    assert.equal(listFiles(src).length, 4, 'sources kept');
    assert.match(
      fs.readFileSync(path.join(node.dataDir, 'problem', 'STUDY', 'junk.bin.reason.txt'), 'utf8'),
      /not a DICOM/,
    );
    const rows = await node.instances();
    assert.equal(rows.length, generated.length);
    // Again: identical duplicates, stored once.
    const again = spawnSync(process.execPath, ['dist/src/cli.js', 'import', src, '--config', cfg], {
      encoding: 'utf8',
    });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /FilesIgnored \[3\]/);
    assert.equal((await node.instances()).length, generated.length);
    const missing = spawnSync(process.execPath, ['dist/src/cli.js', 'import', '/nonexistent', '--config', cfg], {
      encoding: 'utf8',
    });
    assert.equal(missing.status, 2);
  } finally {
    await node.destroy();
  }
});

test('GET /api/imports lists batches newest first, paged, by state and source; retry refuses what it cannot resume', async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  try {
    const importer = node.node.importer;
    const inbox = fs.realpathSync(path.join(node.dataDir, 'inbox'));
    generateStudy({ dir: path.join(inbox, 'A'), series: 1, perSeries: 2 });
    generateStudy({ dir: path.join(node.dir, 'B'), series: 1, perSeries: 1 });
    const a = await importer.importPath({
      path: path.join(inbox, 'A'),
      baseDir: inbox,
      name: 'A',
      source: 'rest',
      keepSources: true,
    });
    const b = await importer.importPath({
      path: path.join(node.dir, 'B'),
      baseDir: node.dir,
      name: 'B',
      source: 'cli',
      keepSources: true,
    });
    // Refused by the importer itself, whoever asks: the archive is never imported onto itself.
    const c = await importer.importPath({
      path: fs.realpathSync(path.join(node.dataDir, 'site', 'raw')),
      baseDir: node.dataDir,
      name: 'C',
      source: 'cli',
      keepSources: false,
    });
    assert.deepEqual([a.state, b.state, c.state], ['finished', 'finished', 'failed']);
    assert.match(c.message!, /inside the data directory/);

    const all = await call(node, 'GET', '/api/imports');
    assert.equal(all.status, 200);
    assert.equal(all.json.total, 3);
    const list = all.json.imports as Array<Record<string, unknown>>;
    assert.deepEqual(
      list.map((i) => i.name),
      ['C', 'B', 'A'],
      'newest first',
    );
    assert.deepEqual(list[2]!.counts, {
      filesFound: 2,
      filesRead: 2,
      archived: 2,
      duplicates: 0,
      problems: 0,
      errors: 0,
      bytes: a.bytes,
    });
    assert.equal(list[2]!.path, 'inbox/A', 'paths inside dataDir are shown relative to it');
    assert.equal(list[2]!.statusUrl, `/api/imports/${a.id}`);
    const failed = await call(node, 'GET', '/api/imports?state=failed');
    assert.deepEqual(
      (failed.json.imports as Array<{ id: string }>).map((i) => i.id),
      [c.id],
    );
    const page = await call(node, 'GET', '/api/imports?limit=1&offset=1');
    assert.deepEqual(
      (page.json.imports as Array<{ id: string }>).map((i) => i.id),
      [b.id],
    );
    assert.equal(page.json.total, 3);
    const cli = await call(node, 'GET', '/api/imports?source=cli');
    assert.equal(cli.json.total, 2);
    assert.equal((await call(node, 'GET', '/api/imports?state=bogus')).status, 400);
    assert.equal((await call(node, 'GET', '/api/imports?limit=0')).status, 400);

    const retryFinished = await call(node, 'POST', `/api/imports/${a.id}/retry`);
    assert.equal(retryFinished.status, 409);
    assert.match(String(retryFinished.json.message), /is finished/);
    const retryCli = await call(node, 'POST', `/api/imports/${c.id}/retry`);
    assert.equal(retryCli.status, 409);
    assert.match(String(retryCli.json.message), new RegExp(`scannode import --retry ${c.id}`));
    assert.equal((await call(node, 'POST', '/api/imports/00000000-0000-0000-0000-000000000000/retry')).status, 404);
  } finally {
    await node.destroy();
  }
});

test('scannode import --retry ID resumes a failed command-line import; usage errors exit 2', async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  try {
    const cfg = cliConfig(node);
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ['dist/src/cli.js', 'import', ...args, '--config', cfg], { encoding: 'utf8' });
    const src = path.join(node.dir, 'STUDY');
    const [g] = generateStudy({ dir: src, series: 1, perSeries: 4, ext: '' });
    // The study's archive folder is taken by a file: archiving it fails (ENOTDIR) until an operator clears it.
    const studyDir = path.join(node.dataDir, 'site', 'raw', g!.studyInstanceUid);
    fs.writeFileSync(studyDir, 'not a folder');
    const first = cli(src, '--move');
    assert.equal(first.status, 1, first.stderr);
    const id = /Import STUDY \(([0-9a-f-]{36})\): failed/.exec(first.stdout)?.[1];
    assert.ok(id, first.stdout);
    assert.match(first.stdout, new RegExp(`then retry: scannode import --retry ${id}`));
    assert.equal(listFiles(src).length, 4, 'nothing removed');
    fs.rmSync(studyDir);
    const again = cli('--retry', id);
    assert.equal(again.status, 0, again.stderr + again.stdout);
    assert.match(again.stdout, /: finished/);
    assert.match(again.stdout, /FilesFound \[4\] {2}FilesRead \[4\] {2}FilesArchived \[4\] {2}FilesIgnored \[0\]/);
    assert.equal(listFiles(src).length, 0, '--move: sources removed once archived');
    assert.equal(cli('--retry', id).status, 1, 'a finished batch is not retried');
    assert.equal(cli('--retry', '00000000-0000-0000-0000-000000000000').status, 2);
    assert.equal(cli().status, 2);
    assert.equal(cli(src, '--retry', id).status, 2);
  } finally {
    await node.destroy();
  }
});
