import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameBytes, nameText, textOfName } from '../../src/domain/fileNames.js';
import {
  classifyImportError,
  importPathRefusal,
  parseCounts,
  retryDelayMs,
  storeFailure,
  UnrecoverableImportError,
  zeroCounts,
} from '../../src/domain/importRules.js';
import { Tally } from '../../src/db/importBatches.js';

const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });

test('file names: valid UTF-8 stays readable, control and non-UTF-8 bytes are escaped, and the bytes come back', () => {
  const cases: Array<[number[], string]> = [
    [[0x61, 0x62], 'ab'],
    [[0x6e, 0x0a, 0x6c], 'n\\x0Al'],
    [[0x63, 0x61, 0x66, 0xe9], 'caf\\xE9'],
    [[...Buffer.from('café ü 日本')], 'café ü 日本'],
    [[0x5c, 0x78, 0x34, 0x31], '\\x5Cx41'],
    [[0xc2, 0x85], '\\xC2\\x85'], // C1 control (NEL)
    [[0xed, 0xa0, 0x80], '\\xED\\xA0\\x80'], // a surrogate is not UTF-8
    [[0xf0, 0x9f, 0x98], '\\xF0\\x9F\\x98'], // cut short
    [[0x7f, 0x00], '\\x7F\\x00'],
  ];
  for (const [bytes, text] of cases) {
    assert.equal(nameText(Buffer.from(bytes)), text, JSON.stringify(bytes));
    assert.deepEqual([...nameBytes(text)], bytes, text);
  }
  assert.equal(textOfName('a\\b'), 'a\\x5Cb');
  assert.equal(nameBytes('plain \\ back').toString(), 'plain \\ back');
});

test('import failures: each errno is permanent or transient, with what to do', () => {
  const permanent = [
    [errno('EACCES'), 'archive', /cannot write the archive site\/raw \(EACCES\): give the node's user write access/],
    [errno('EROFS'), 'spool', /cannot write the spool/],
    [errno('EACCES'), 'store', /the store failed at .*write access to the spool/],
    [errno('EPERM'), 'remove', /cannot remove imported files from .*archived/],
    [errno('EXDEV'), 'archive', /another filesystem and cannot be linked/],
    [errno('ENOTDIR'), 'archive', /make it a folder the node can write/],
  ] as const;
  for (const [err, step, msg] of permanent) {
    const f = classifyImportError(err, step, 'site/raw');
    assert.equal(f.permanent, true, `${err.code} at ${step}`);
    assert.equal(f.name, 'UnrecoverableImportError');
    assert.match(f.message, msg);
    assert.equal(f.cause, err);
  }
  for (const [err, step] of [
    [errno('ENOSPC'), 'archive'],
    [errno('EDQUOT'), 'spool'],
    [errno('EIO'), 'read'],
    [errno('EMFILE'), 'read'],
    [errno('ENOENT'), 'read'],
    [errno('EISDIR'), 'store'],
    [new Error('connection terminated'), 'database'],
    [Object.assign(new Error('the database is locked'), { code: 'SQLITE_BUSY' }), 'database'],
  ] as const) {
    assert.equal(classifyImportError(err, step, 'x').permanent, false, `${err.message} at ${step}`);
  }
  assert.match(classifyImportError(errno('ENOSPC'), 'archive', 'site/raw').message, /out of disk space/);
  // A typed failure stays what it is; a cause's errno counts.
  const typed = new UnrecoverableImportError('no');
  assert.equal(classifyImportError(typed, 'read', 'x'), typed);
  assert.equal(classifyImportError(new Error('wrapped', { cause: errno('EACCES') }), 'archive', 'x').permanent, true);
  assert.equal(storeFailure(0xa700, 'out of disk space (ENOSPC)').permanent, false);
  assert.match(storeFailure(0xa700, undefined).message, /0xA700 out of resources/);
});

test('retry delays double from the base up to the cap', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 8, 50].map((n) => retryDelayMs(n, 30_000, 600_000)),
    [30_000, 60_000, 120_000, 240_000, 600_000, 600_000],
  );
});

test('paths inside the data directory (other than its inbox) and paths holding it are refused', () => {
  const data = '/srv/scannode/data';
  const inbox = `${data}/inbox`;
  assert.equal(importPathRefusal(`${inbox}/ACC1`, data, inbox), undefined);
  assert.equal(importPathRefusal(inbox, data, inbox), undefined);
  assert.equal(importPathRefusal('/mnt/cd/STUDY', data, inbox), undefined);
  assert.equal(importPathRefusal('/srv/scannode/data2', data, inbox), undefined);
  for (const p of [data, `${data}/site/raw/1.2.3`, `${data}/incoming`, `${data}/problem/x`]) {
    assert.match(importPathRefusal(p, data, inbox)!, /inside the data directory .* only its inbox\//);
  }
  for (const p of ['/srv/scannode', '/srv', '/']) {
    assert.match(importPathRefusal(p, data, inbox)!, /holds the data directory/);
  }
});

test('counters: a retry starts from what earlier attempts took out of the folder, and counts the rest again', () => {
  const t = new Tally(zeroCounts());
  t.found(5);
  for (let i = 0; i < 5; i++) t.entry();
  t.read(100, false);
  t.read(100, true);
  t.read(100, false);
  t.archived(100, false, true);
  t.archived(100, true, true);
  t.unread(100, false); // stored, not archived: left in place
  t.problem(true);
  t.error();
  assert.deepEqual(t.c, {
    filesFound: 5,
    filesRead: 2,
    archived: 2,
    duplicates: 1,
    problems: 1,
    errors: 2,
    bytes: 200,
  });
  const carried = parseCounts(JSON.stringify(t.left));
  assert.deepEqual(carried, {
    filesFound: 3,
    filesRead: 2,
    archived: 2,
    duplicates: 1,
    problems: 1,
    errors: 0,
    bytes: 200,
  });
  // The second attempt finds the 2 files left and archives them.
  const r = new Tally(carried);
  r.found(2);
  for (let i = 0; i < 2; i++) {
    r.entry();
    r.read(100, false);
    r.archived(100, false, true);
  }
  r.walkedAll();
  assert.deepEqual(r.c, {
    filesFound: 5,
    filesRead: 4,
    archived: 4,
    duplicates: 1,
    problems: 1,
    errors: 0,
    bytes: 400,
  });
  assert.deepEqual(parseCounts('{"filesRead": -3, "archived": "x"}'), zeroCounts());
  assert.deepEqual(parseCounts('not json'), zeroCounts());
});
