// The fault suite's "inbox tricks": symbolic links at every depth, FIFOs, device nodes, hard links into the archive,
// names with newlines and non-UTF-8 bytes. Nothing outside dataDir is read, moved or deleted; the archive stays
// whole; every file is archived or explained in problem/; the node answers C-ECHO and /api/status throughout.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { datasetBytes } from '../helpers/files.js';
import { waitFor } from '../helpers/waitFor.js';
import { CI, needPeer, run } from '../helpers/peers.js';
import { assertUntouched, fingerprint, probeResponsive, releaseFifos, sentinel } from '../helpers/outside.js';
import { archivedFile, batches, importKeeping } from '../helpers/imports.js';

const FAST = { import: { stableSeconds: 0.3, rescanSeconds: 0.2 } };

/** A path with raw bytes in its last component (newline, non-UTF-8). */
function raw(dir: string, ...bytes: number[]): Buffer {
  return Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(bytes)]);
}

/** Every entry of problem/ (not the reasons), by kind, as name bytes (latin1) -> kind. */
function problemKinds(node: TestNode): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (d: Buffer) => {
    for (const n of fs.readdirSync(d, { encoding: 'buffer' })) {
      const p = Buffer.concat([d, Buffer.from('/'), n]);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) visit(p);
      else if (!n.toString('latin1').endsWith('.reason.txt')) {
        const kind = st.isSymbolicLink()
          ? 'symlink'
          : st.isFIFO()
            ? 'fifo'
            : st.isCharacterDevice()
              ? 'device'
              : st.isFile()
                ? 'file'
                : 'other';
        out.set(p.toString('latin1'), kind);
        assert.ok(fs.existsSync(Buffer.concat([p, Buffer.from('.reason.txt')])), `${p.toString('latin1')}: no reason`);
      }
    }
  };
  visit(Buffer.from(path.join(node.dataDir, 'problem')));
  return out;
}

function reasonOf(file: string): string {
  return fs.readFileSync(`${file}.reason.txt`, 'utf8');
}

async function inboxSettles(node: TestNode): Promise<void> {
  const inbox = path.join(node.dataDir, 'inbox');
  await waitFor(
    'the inbox to be emptied and every batch to end',
    async () =>
      fs.readdirSync(inbox).length === 0 &&
      (await batches(node)).every((b) => !['queued', 'running', 'retrying'].includes(b.state)),
    60_000,
  );
}

async function withTricks(
  t: TestContext,
  build: (ctx: { node: TestNode; inbox: string; outside: string; archivedStudy: GeneratedInstance[] }) => void,
  check: (ctx: { node: TestNode; problems: Map<string, string> }) => void | Promise<void>,
): Promise<void> {
  if (!needPeer(t, 'echoscu')) return;
  const node = await startTestNode({ extra: FAST });
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-outside-'));
  const fifos: string[] = [];
  try {
    const inbox = path.join(node.dataDir, 'inbox');
    // Outside dataDir: DICOM files worth stealing, a folder of them, and sentinels named like inbox files.
    const outsideDicom = generateStudy({ dir: path.join(outside, 'dicomdir'), series: 1, perSeries: 3, ext: '' });
    fs.copyFileSync(outsideDicom[0]!.file, path.join(outside, 'file.dcm'));
    sentinel(path.join(outside, 'dicomdir', 'sub', 's1_i1'));
    sentinel(path.join(outside, 'notes.txt'));
    // An archived study to hard-link from.
    const archivedStudy = generateStudy({ dir: path.join(node.dir, 'A'), series: 1, perSeries: 3 });
    const a = await importKeeping(node, path.join(node.dir, 'A'));
    assert.equal(a.archived, 3);
    const archiveBefore = archivedStudy.map((g) => datasetBytes(archivedFile(node, g)));
    const before = fingerprint(outside);
    const probe = probeResponsive(node);
    build({ node, inbox, outside, archivedStudy });
    fifos.push(...made.fifos.splice(0));
    await inboxSettles(node);
    const report = await probe.stop();
    t.diagnostic(`probe: ${report.echoes} C-ECHO, ${report.statuses} /api/status, slowest ${report.slowestMs} ms`);
    assert.deepEqual(report.failures, []);
    assert.ok(report.echoes > 0 && report.statuses > 0, 'the node was asked while the inbox was busy');
    assertUntouched(outside, before, 'the tree outside dataDir');
    archivedStudy.forEach((g, i) => assert.ok(datasetBytes(archivedFile(node, g)).equals(archiveBefore[i]!)));
    await check({ node, problems: problemKinds(node) });
    // Still answering afterwards.
    const echo = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)]);
    assert.equal(echo.code, 0, echo.stderr);
  } finally {
    // Never readdir({ recursive }) here: it would follow the links into the outside tree.
    releaseFifos([
      ...fifos,
      ...fifos.map((f) =>
        path.join(node.dataDir, 'problem', path.relative(path.join(node.dataDir, 'inbox'), f).replace(/\.tmp\//, '/')),
      ),
    ]);
    await node.destroy();
    fs.rmSync(outside, { recursive: true, force: true });
  }
}

/** What a test made that needs releasing afterwards. */
const made = { fifos: [] as string[] };

test('inbox tricks: symbolic links at every depth, FIFOs, hard links into the archive, odd names', async (t) => {
  let study: GeneratedInstance[] = [];
  let odd: GeneratedInstance[] = [];
  await withTricks(
    t,
    ({ node, inbox, outside, archivedStudy }) => {
      const tmp = path.join(inbox, 'TRICKS.tmp');
      study = generateStudy({ dir: path.join(node.dir, 'b'), series: 2, perSeries: 3, ext: '' });
      fs.mkdirSync(path.join(tmp, 'b'), { recursive: true });
      for (const g of study) fs.copyFileSync(g.file, path.join(tmp, 'b', path.basename(g.file)));
      odd = generateStudy({ dir: path.join(node.dir, 'odd'), series: 1, perSeries: 4, ext: '' });
      const deep = path.join(tmp, 'x', 'y');
      fs.mkdirSync(path.join(deep, 'z'), { recursive: true });
      fs.copyFileSync(odd[0]!.file, raw(deep, 0x6e, 0x65, 0x77, 0x0a, 0x6c, 0x69, 0x6e, 0x65)); // "new\nline"
      fs.copyFileSync(odd[1]!.file, raw(deep, 0x63, 0x61, 0x66, 0xe9, 0xff, 0x2e, 0x64)); // latin-1 bytes
      // Symbolic links: to a folder of DICOM files, to a DICOM file, up into dataDir, dangling; at depths 1 to 4.
      fs.symlinkSync(path.join(outside, 'dicomdir'), path.join(tmp, 'link-dir'));
      fs.symlinkSync(path.join(outside, 'file.dcm'), path.join(tmp, 'x', 'link-file'));
      fs.symlinkSync('../../../../..', path.join(deep, 'link-up'));
      fs.symlinkSync(path.join(outside, 'nothing-here'), path.join(deep, 'z', 'dangling'));
      fs.linkSync(archivedFile(node, archivedStudy[0]!), path.join(tmp, 'x', 'hard'));
      spawnFifo(path.join(tmp, 'x', 'fifo'));
      // Loose files: the same kinds at the top of the inbox.
      fs.symlinkSync(path.join(outside, 'file.dcm'), path.join(inbox, 'loose-link'));
      fs.symlinkSync(path.join(outside, 'dicomdir'), path.join(inbox, 'loose-dir-link'));
      fs.linkSync(archivedFile(node, archivedStudy[1]!), path.join(inbox, 'loose-hard'));
      fs.copyFileSync(odd[2]!.file, raw(inbox, 0x6c, 0x6f, 0x6f, 0x73, 0x65, 0x0a, 0x31)); // "loose\n1"
      fs.copyFileSync(odd[3]!.file, raw(inbox, 0x6c, 0xf6, 0x73, 0x65, 0xfe)); // not UTF-8
      spawnFifo(path.join(inbox, 'loose-fifo'));
      fs.renameSync(tmp, path.join(inbox, 'TRICKS'));
    },
    async ({ node, problems }) => {
      const rows = new Map((await node.instances()).map((r) => [r.sopInstanceUid, r]));
      for (const g of [...study, ...odd]) {
        assert.equal(rows.get(g.sopInstanceUid)?.state, 'archived', path.basename(g.file));
        assert.ok(datasetBytes(archivedFile(node, g)).equals(datasetBytes(g.file)));
      }
      const kinds = [...problems.values()].sort();
      assert.deepEqual(kinds, ['fifo', 'fifo', 'symlink', 'symlink', 'symlink', 'symlink', 'symlink', 'symlink']);
      for (const [p, kind] of problems) {
        const reason = reasonOf(p);
        if (kind === 'symlink') assert.match(reason, /symbolic link/, p);
        if (kind === 'fifo') assert.match(reason, /FIFO/, p);
      }
      const all = await batches(node);
      const tricks = all.find((b) => b.name === 'TRICKS')!;
      assert.equal(tricks.state, 'finished', tricks.message ?? '');
      assert.equal(tricks.filesFound, 6 + 2 + 4 + 1 + 1, 'regular files, odd names, symlinks, hard link, FIFO');
      assert.equal(tricks.filesRead, 6 + 2 + 1);
      assert.equal(tricks.archived, tricks.filesRead);
      assert.equal(tricks.duplicates, 1, 'the hard link into the archive');
      assert.equal(tricks.problems, 5);
    },
  );
});

test('inbox tricks: device nodes are never opened and are moved to problem/ as they are', async (t) => {
  if (process.getuid?.() !== 0) {
    const why = 'mknod needs root';
    if (CI) throw new Error(why);
    t.skip(why);
    return;
  }
  await withTricks(
    t,
    ({ inbox }) => {
      const tmp = path.join(inbox, 'DEV.tmp');
      fs.mkdirSync(path.join(tmp, 'a', 'b'), { recursive: true });
      // /dev/zero never ends: a copy fills the disk; /dev/null reads as an empty file.
      mknod(path.join(tmp, 'zero'), 1, 5);
      mknod(path.join(tmp, 'a', 'b', 'null'), 1, 3);
      mknod(path.join(inbox, 'loose-zero'), 1, 5);
      generateStudy({ dir: path.join(tmp, 'a'), series: 1, perSeries: 2, ext: '' });
      fs.renameSync(tmp, path.join(inbox, 'DEV'));
    },
    ({ problems }) => {
      assert.deepEqual([...problems.values()], ['device', 'device', 'device']);
      for (const p of problems.keys()) assert.match(reasonOf(p), /device/);
    },
  );
});

function spawnFifo(p: string): void {
  assert.equal(spawnSyncOk('mkfifo', [p]), 0);
  made.fifos.push(p);
}

function mknod(p: string, major: number, minor: number): void {
  assert.equal(spawnSyncOk('mknod', [p, 'c', String(major), String(minor)]), 0);
}

function spawnSyncOk(cmd: string, args: string[]): number | null {
  return spawnSync(cmd, args, { stdio: 'inherit' }).status;
}
