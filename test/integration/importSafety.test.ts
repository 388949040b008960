// Imports never remove what should stay (issue 13 items 1-4): the archive is never imported onto itself, a source
// leaves only once its bytes are archived, a swapped folder never leads outside dataDir, special files never block.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes } from '../helpers/files.js';
import { waitFor } from '../helpers/waitFor.js';
import { call } from '../helpers/http.js';
import { needPeer, run } from '../helpers/peers.js';
import { assertUntouched, fingerprint, probeResponsive, releaseFifos, sentinel } from '../helpers/outside.js';
import { archivedFile, batches, cliConfig, drop, importKeeping } from '../helpers/imports.js';
import type { ImportBatchRow } from '../../src/db/importEntities.js';

const FAST = { import: { stableSeconds: 0.3, rescanSeconds: 0.2 } };

async function ended(t: TestNode, name: string, timeoutMs = 60_000): Promise<ImportBatchRow> {
  return waitFor(
    `batch ${name} to end`,
    async () => (await batches(t)).find((b) => b.name === name && !['queued', 'running'].includes(b.state)),
    timeoutMs,
  );
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['dist/src/cli.js', ...args], { encoding: 'utf8' });
}

test('13.2: import of <dataDir>/site/raw/<Study> --move is refused and the archive stays whole, also without the database', async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  try {
    const generated = generateStudy({ dir: path.join(node.dir, 'src'), series: 2, perSeries: 3 });
    const first = await importKeeping(node, path.join(node.dir, 'src'));
    assert.equal(first.archived, 6);
    const study = path.join(node.dataDir, 'site', 'raw', generated[0]!.studyInstanceUid);
    const before = fingerprint(study);
    const cfg = cliConfig(node);
    // A fresh database: what an operator has after losing it.
    const lost = cliConfig(node, path.join(node.dir, 'lost.sqlite'));
    const targets = [
      study,
      path.join(node.dataDir, 'site', 'raw'),
      path.join(node.dataDir, 'site'),
      path.join(node.dataDir, 'incoming'),
      node.dataDir,
      node.dir, // holds dataDir
    ];
    for (const config of [cfg, lost]) {
      for (const target of targets) {
        const r = cli('import', target, '--move', '--config', config);
        assert.equal(r.status, 2, `${target}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /data directory/, target);
        assert.match(r.stderr, /inbox/, `${target}: the message says what to do instead`);
      }
    }
    assertUntouched(study, before, 'the archive');
    for (const g of generated) assert.ok(datasetBytes(archivedFile(node, g)).equals(datasetBytes(g.file)));
    // The inbox is inside dataDir and is the place for imports: accepted.
    drop(node, 'OK', generated.slice(0, 1));
    const ok = cli('import', path.join(node.dataDir, 'inbox', 'OK'), '--move', '--config', cfg);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /FilesArchived \[1\]/);
  } finally {
    await node.destroy();
  }
});

test('13.1 (inbox side): a re-dropped file whose archived copy was deleted leaves the inbox only once archived again', async () => {
  const node = await startTestNode({ extra: FAST });
  try {
    const generated = generateStudy({ dir: path.join(node.dir, 'originals'), series: 1, perSeries: 5, ext: '' });
    drop(node, 'FIRST', generated);
    assert.equal((await ended(node, 'FIRST')).state, 'finished');
    for (const g of generated) assert.ok(fs.existsSync(archivedFile(node, g)));
    // The operator deletes the study to have it sent again.
    fs.rmSync(path.join(node.dataDir, 'site', 'raw', generated[0]!.studyInstanceUid), { recursive: true });
    drop(node, 'AGAIN', generated);
    const again = await ended(node, 'AGAIN');
    // Whatever the batch says, no byte is lost: each file is still in the inbox or archived again, identical.
    for (const g of generated) {
      const source = path.join(node.dataDir, 'inbox', 'AGAIN', path.basename(g.file));
      const inArchive =
        fs.existsSync(archivedFile(node, g)) && datasetBytes(archivedFile(node, g)).equals(datasetBytes(g.file));
      assert.ok(inArchive || fs.existsSync(source), `${path.basename(g.file)}: neither in the inbox nor archived`);
    }
    // And the batch tells the truth about it.
    const inArchive = generated.filter((g) => fs.existsSync(archivedFile(node, g))).length;
    assert.equal(again.archived, inArchive, JSON.stringify(again));
    if (again.state === 'finished') assert.equal(inArchive, generated.length);
    else assert.ok(again.message && again.message.length > 0, 'a batch that is not finished says why');
  } finally {
    await node.destroy();
  }
});

/** Until the ingest fix of 13.1 (spool) is on this branch, Ingest answers such a re-send "duplicate". */
test('13.1: a re-imported file whose stored file is gone is stored and archived again, not counted a duplicate', async () => {
  const node = await startTestNode({ extra: FAST });
  try {
    const generated = generateStudy({ dir: path.join(node.dir, 'originals'), series: 1, perSeries: 5, ext: '' });
    drop(node, 'FIRST', generated);
    assert.equal((await ended(node, 'FIRST')).state, 'finished');
    fs.rmSync(path.join(node.dataDir, 'site', 'raw', generated[0]!.studyInstanceUid), { recursive: true });
    drop(node, 'AGAIN', generated);
    const again = await ended(node, 'AGAIN');
    assert.equal(again.state, 'finished', again.message ?? '');
    assert.deepEqual(
      { read: again.filesRead, archived: again.archived, duplicates: again.duplicates },
      { read: 5, archived: 5, duplicates: 0 },
    );
    for (const g of generated) assert.ok(datasetBytes(archivedFile(node, g)).equals(datasetBytes(g.file)));
    assert.ok(!fs.existsSync(path.join(node.dataDir, 'inbox', 'AGAIN')), 'sources removed once archived again');
  } finally {
    await node.destroy();
  }
});

test('13.3: a folder swapped for a symbolic link during a batch: nothing outside dataDir is read, moved or deleted', async () => {
  const node = await startTestNode({ extra: { import: { watchInbox: false, concurrency: 1 } } });
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-outside-'));
  try {
    const inbox = path.join(node.dataDir, 'inbox');
    const root = path.join(inbox, 'SWAP');
    const generated: GeneratedInstance[] = [];
    // 120 folders of one file each; outside, a folder of the same name with a file of the same name.
    for (let k = 0; k < 120; k++) {
      const d = `d${String(k).padStart(3, '0')}`;
      generated.push(...generateStudy({ dir: path.join(root, d), series: 1, perSeries: 1, ext: '' }));
      sentinel(path.join(outside, d, 's1_i1'));
    }
    const before = fingerprint(outside);
    const moved = path.join(inbox, '.moved');
    fs.mkdirSync(moved);
    let swapped = false;
    const row = await node.node.importer.importPath(
      { path: root, baseDir: inbox, name: 'SWAP', source: 'inbox', keepSources: false, removeEmptyRoot: true },
      (c) => {
        if (swapped || c.filesRead < 30) return;
        // 30 files read and not yet archived: every folder becomes a symbolic link to its twin outside.
        swapped = true;
        for (const d of fs.readdirSync(root)) {
          fs.renameSync(path.join(root, d), path.join(moved, d));
          fs.symlinkSync(path.join(outside, d), path.join(root, d));
        }
      },
    );
    assert.ok(swapped);
    assertUntouched(outside, before, 'the tree outside dataDir');
    // Nothing lost either: every instance is archived or its source is still in the inbox.
    const rows = new Map((await node.instances()).map((r) => [r.sopInstanceUid, r]));
    for (const [k, g] of generated.entries()) {
      const d = `d${String(k).padStart(3, '0')}`;
      const stillThere = fs.existsSync(path.join(moved, d, 's1_i1'));
      const row = rows.get(g.sopInstanceUid);
      assert.ok(stillThere || (row?.state === 'archived' && fs.existsSync(archivedFile(node, g))), `${d} lost`);
    }
    assert.equal(row.archived, [...rows.values()].filter((r) => r.state === 'archived').length);
  } finally {
    await node.destroy();
    fs.rmSync(outside, { recursive: true, force: true });
  }
});

test('13.4: FIFOs named in POST /api/imports never block: C-ECHO and /api/status answer throughout', async (t) => {
  if (!needPeer(t, 'echoscu')) return;
  const node = await startTestNode({ extra: { import: { watchInbox: false } } });
  const inbox = path.join(node.dataDir, 'inbox');
  const fifos = Array.from({ length: 20 }, (_, i) => path.join(inbox, `fifo${i}`));
  try {
    for (const f of fifos) assert.equal((await run('mkfifo', [f])).code, 0);
    const probe = probeResponsive(node);
    const ids: string[] = [];
    // Kept sources (cleanupAfterImport=false) used to be copied into problem/: open() on a FIFO waits for a writer.
    for (const f of fifos) {
      const r = await call(node, 'POST', '/api/imports', { path: path.basename(f), cleanupAfterImport: false });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      ids.push(r.json.id as string);
    }
    // A folder of FIFOs, consumed: they go to problem/ as they are.
    const folder = path.join(inbox, 'PIPES');
    fs.mkdirSync(path.join(folder, 'deep', 'er'), { recursive: true });
    for (const p of ['a', 'deep/b', 'deep/er/c']) assert.equal((await run('mkfifo', [path.join(folder, p)])).code, 0);
    const r = await call(node, 'POST', '/api/imports', { path: 'PIPES' });
    assert.equal(r.status, 202);
    ids.push(r.json.id as string);
    for (const id of ids) {
      const st = await waitFor(`import ${id}`, async () => {
        const s = await call(node, 'GET', `/api/imports/${id}`);
        return s.json.done ? s.json : undefined;
      });
      const problems = st.problems as Array<{ path: string; reason: string }>;
      assert.ok(problems.length >= 1, JSON.stringify(st));
      for (const p of problems) assert.match(p.reason, /FIFO/);
    }
    const report = await probe.stop();
    t.diagnostic(`probe: ${report.echoes} C-ECHO, ${report.statuses} /api/status, slowest ${report.slowestMs} ms`);
    assert.deepEqual(report.failures, []);
    assert.ok(report.echoes > 0 && report.statuses > 0);
    // Kept FIFOs are still where they were; the consumed ones are in problem/, still FIFOs.
    for (const f of fifos) assert.ok(fs.lstatSync(f).isFIFO());
    for (const p of ['a', 'deep/b', 'deep/er/c']) {
      assert.ok(fs.lstatSync(path.join(node.dataDir, 'problem', 'PIPES', p)).isFIFO(), p);
      assert.match(fs.readFileSync(path.join(node.dataDir, 'problem', 'PIPES', `${p}.reason.txt`), 'utf8'), /FIFO/);
    }
    assert.ok(!fs.existsSync(folder), 'the consumed folder is gone');
  } finally {
    releaseFifos(fifos);
    await node.destroy();
  }
});
