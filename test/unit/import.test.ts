import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { metaTransferSyntax, walk, type Importer, type ImportRequest } from '../../src/pipeline/importer.js';
import { IN_PROGRESS, InboxWatcher } from '../../src/pipeline/inboxWatcher.js';
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

test('walk yields every file of a nested tree', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-walk-'));
  try {
    fs.mkdirSync(path.join(dir, 'a', 'b', 'c'), { recursive: true });
    for (const f of ['x', 'a/y', 'a/b/c/z.dcm']) fs.writeFileSync(path.join(dir, f), 'v');
    const seen: string[] = [];
    for await (const f of walk(dir)) seen.push(path.relative(dir, f));
    assert.deepEqual(seen.sort(), ['a/b/c/z.dcm', 'a/y', 'x']);
    const one: string[] = [];
    for await (const f of walk(path.join(dir, 'x'))) one.push(f);
    assert.deepEqual(one, [path.join(dir, 'x')]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('inbox watcher: a loose file is taken once unchanged for stableMs (injected clock), a .tmp folder never', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-inbox-'));
  const taken: ImportRequest[] = [];
  const fake = {
    isBusy: () => false,
    importedKeepingSources: async () => false,
    importPath: async (req: ImportRequest) => {
      taken.push(req);
      for (const f of req.files ?? [req.path]) fs.rmSync(f, { recursive: true, force: true });
    },
  } as unknown as Importer;
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
    assert.deepEqual(taken[0]!.files, [path.join(dir, 'f1')]);
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
});
