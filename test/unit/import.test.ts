import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { metaTransferSyntax, type ImportRequest } from '../../src/pipeline/importer.js';
import { IN_PROGRESS, InboxWatcher, type InboxImporter } from '../../src/pipeline/inboxWatcher.js';
import { ImportTree, MAX_DEPTH, type TreeEntry } from '../../src/pipeline/safeTree.js';
import { unlinkIfSame } from '../../src/pipeline/treeEntries.js';
import { buildPart10Header } from '../../src/storage/part10.js';
import { createLogger } from '../../src/logging/logger.js';

test('metaTransferSyntax reads (0002,0010) from a Part 10 header', () => {
  const head = buildPart10Header({
    sopClassUid: '1.2.3',
    sopInstanceUid: '1.2.3.4',
    transferSyntaxUid: '1.2.840.10008.1.2.4.50',
  });
  assert.equal(metaTransferSyntax(head), '1.2.840.10008.1.2.4.50');
  assert.equal(metaTransferSyntax(Buffer.alloc(200)), undefined);
});

test('sendit in-progress folder names', () => {
  for (const n of ['ACC1.tmp', 'ST-000001.tmp2343', 'x.TMP', 'a.tmp.b']) assert.ok(IN_PROGRESS.test(n), n);
  for (const n of ['ACC1', 'tmp', 'ACC1tmp', 'x.tm']) assert.ok(!IN_PROGRESS.test(n), n);
});

async function collect(tree: ImportTree): Promise<Array<{ text: string; kind: TreeEntry['kind'] }>> {
  const out: Array<{ text: string; kind: TreeEntry['kind'] }> = [];
  for await (const e of tree.entries()) {
    out.push({ text: e.text, kind: e.kind });
    await e.dir.release();
  }
  return out.sort((a, b) => a.text.localeCompare(b.text));
}

// The walks below touch a real filesystem: a bound per test names the one that hangs instead of the whole file timing out.
const FS_TEST = { timeout: 60_000 };

test(
  'the import tree yields every entry with its kind, never follows a link, and names raw bytes losslessly',
  FS_TEST,
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-walk-'));
    try {
      fs.mkdirSync(path.join(dir, 'root', 'a', 'b', 'c'), { recursive: true });
      for (const f of ['x', 'a/y', 'a/b/c/z.dcm']) fs.writeFileSync(path.join(dir, 'root', f), 'v');
      fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/root/a/`), Buffer.from([0x6e, 0x0a, 0xff])]), 'v');
      fs.symlinkSync('/etc', path.join(dir, 'root', 'a', 'etc'));
      assert.equal(spawnSync('mkfifo', [path.join(dir, 'root', 'a', 'b', 'pipe')]).status, 0);
      const tree = await ImportTree.open(path.join(dir, 'root'), 'root');
      try {
        assert.equal(await tree.count(), 6);
        assert.deepEqual(
          await collect(tree),
          [
            { text: 'root/a/b/c/z.dcm', kind: 'file' },
            { text: 'root/a/b/pipe', kind: 'fifo' },
            { text: 'root/a/etc', kind: 'symlink' },
            { text: 'root/a/n\\x0A\\xFF', kind: 'file' },
            { text: 'root/a/y', kind: 'file' },
            { text: 'root/x', kind: 'file' },
          ].sort((a, b) => a.text.localeCompare(b.text)),
        );
      } finally {
        await tree.close();
      }
      const one = await ImportTree.open(path.join(dir, 'root', 'x'), 'x');
      try {
        assert.deepEqual(await collect(one), [{ text: 'x', kind: 'file' }]);
      } finally {
        await one.close();
      }
      // A link anywhere on the way to the root stops it.
      fs.symlinkSync(path.join(dir, 'root'), path.join(dir, 'alias'));
      await assert.rejects(ImportTree.open(path.join(dir, 'alias', 'a'), 'a'), { code: 'ELOOP' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'the import tree keeps reading the folder it opened when its path is swapped for a link, and removes only there',
  FS_TEST,
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-swap-'));
    try {
      fs.mkdirSync(path.join(dir, 'root', 'sub'), { recursive: true });
      fs.mkdirSync(path.join(dir, 'outside'));
      fs.writeFileSync(path.join(dir, 'root', 'sub', 'f'), 'inside');
      fs.writeFileSync(path.join(dir, 'outside', 'f'), 'outside');
      const tree = await ImportTree.open(path.join(dir, 'root'), 'root');
      try {
        const it = tree.entries();
        const first = (await it.next()).value as TreeEntry;
        assert.equal(first.text, 'root/sub/f');
        const st = fs.statSync(path.join(dir, 'root', 'sub', 'f'), { bigint: true });
        fs.renameSync(path.join(dir, 'root', 'sub'), path.join(dir, 'root', 'moved'));
        fs.symlinkSync(path.join(dir, 'outside'), path.join(dir, 'root', 'sub'));
        assert.equal(await tree.holds(first.dir), true, 'moved within the tree');
        assert.equal(await unlinkIfSame(first.dir, first.name, { dev: st.dev, ino: st.ino }), 'removed');
        assert.ok(!fs.existsSync(path.join(dir, 'root', 'moved', 'f')));
        assert.equal(fs.readFileSync(path.join(dir, 'outside', 'f'), 'utf8'), 'outside');
        await first.dir.release();
        await it.return(undefined);
      } finally {
        await tree.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(`the import tree reports folders deeper than ${MAX_DEPTH} levels instead of entering them`, FS_TEST, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-deep-'));
  try {
    const deep = path.join(dir, 'root', ...Array.from({ length: MAX_DEPTH + 2 }, () => 'd'));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'f'), 'v');
    const tree = await ImportTree.open(path.join(dir, 'root'), 'root');
    try {
      const entries = await collect(tree);
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.kind, 'too-deep');
    } finally {
      await tree.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'inbox watcher: a loose file is taken once unchanged for stableMs (injected clock), a .tmp folder never',
  FS_TEST,
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-inbox-'));
    const taken: ImportRequest[] = [];
    const fake: InboxImporter = {
      inboxDir: fs.realpathSync(dir),
      inboxDecision: async () => 'new',
      importPath: async (req: ImportRequest) => {
        taken.push(req);
        const gone = req.only ? req.only.map((n) => path.join(req.path, n.toString())) : [req.path];
        for (const f of gone) fs.rmSync(f, { recursive: true, force: true });
      },
      requestOf: () => undefined,
      resume: async () => assert.fail('nothing to resume'),
    };
    let now = 1_000_000_000_000;
    const w = new InboxWatcher(fake, dir, createLogger({ level: 'error', silent: true }), {
      stableMs: 5000,
      rescanMs: 3_600_000,
      now: () => now,
    });
    try {
      fs.writeFileSync(path.join(dir, 'f1'), 'abc');
      fs.mkdirSync(path.join(dir, 'B.tmp'));
      fs.writeFileSync(path.join(dir, 'B.tmp', 'x'), 'x');
      fs.writeFileSync(path.join(dir, '.hidden'), 'x');
      // Files written "now" by the real clock: their mtime is far in the future of the fake clock, so only the
      // fake clock's stability window counts.
      now = Date.now() - 60_000;
      await w.kick();
      assert.equal(taken.length, 0, 'first look: not yet stable');
      now += 2000;
      await w.kick();
      assert.equal(taken.length, 0);
      fs.appendFileSync(path.join(dir, 'f1'), 'more');
      now += 4000;
      await w.kick();
      assert.equal(taken.length, 0, 'changed: the window starts again');
      now += 5000;
      await w.kick();
      assert.equal(taken.length, 1);
      assert.deepEqual(taken[0]!.only, [Buffer.from('f1')]);
      assert.equal(taken[0]!.path, fs.realpathSync(dir));
      assert.equal(taken[0]!.name, 'inbox');
      now += 60_000;
      await w.kick();
      await w.kick();
      assert.equal(taken.length, 1, '.tmp folder and dot files left alone');
      fs.renameSync(path.join(dir, 'B.tmp'), path.join(dir, 'B'));
      await w.kick();
      now += 5000;
      await w.kick();
      assert.equal(taken.length, 2);
      assert.equal(taken[1]!.name, 'B');
      assert.equal(taken[1]!.removeEmptyRoot, true);
    } finally {
      await w.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
