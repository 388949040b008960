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
import { listFiles, waitFor } from '../helpers/files.js';
import { call } from '../helpers/http.js';

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
    const cfg = path.join(node.dir, 'cli-config.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        dataDir: node.dataDir,
        database: { type: 'sqlite', path: path.join(node.dir, 'db.sqlite') },
        log: { level: 'error' },
      }),
    );
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
