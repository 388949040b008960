/**
 * Power-loss ordering (issue 13.6), read from the system calls of a running node (strace -f -y attached to it): a
 * quarantined conflicting copy's directory is fsynced before the sender is answered, and the archive's Study / Series
 * directories are fsynced in their parents before any spool copy is unlinked; every C-STORE is answered only after
 * the flush of its spool file returned.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { after, test, type TestContext } from 'node:test';
import { generateStudy } from '../helpers/dicomgen.js';
import { freePort, needPeer, run } from '../helpers/peers.js';
import { waitFor } from '../helpers/waitFor.js';
import { sleep, startNode, storescu } from './harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-durable-order-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CALLS = 'rename,renameat,renameat2,link,linkat,fsync,fdatasync,unlink,unlinkat,mkdir,mkdirat';

interface Call {
  line: number;
  name: string;
  text: string;
}

/**
 * strace -f -y lines: `<pid> <name>(<args>) = <result>`, or split in two by another thread (`<unfinished ...>`, then
 * `<... name resumed>`): a call is placed where it returned. Only calls that succeeded.
 */
function parseTrace(file: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, string>();
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((text, line) => {
      const started = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/.exec(text);
      if (started) return void pending.set(started[1]!, `${started[2]!}(${started[3]!}`);
      const resumed = /^(\d+)\s+<\.\.\. \w+ resumed>(.*)$/.exec(text);
      const full = resumed ? `${resumed[1]!} ${pending.get(resumed[1]!) ?? ''}${resumed[2]!}` : text;
      const m = /^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)/.exec(full);
      if (m && m[3] !== '-1') calls.push({ line, name: m[1]!, text: full });
    });
  return calls;
}

/** strace attached to a running process (`calls`: its -e trace= list); `stop` ends it and parses what it saw. */
async function trace(t: TestContext, pid: number, calls: string, file: string): Promise<{ stop(): Promise<Call[]> }> {
  const tracer = spawn('strace', ['-f', '-y', '-qq', '-e', `trace=${calls}`, '-o', file, '-p', String(pid)]);
  const traced = new Promise((resolve) => tracer.once('exit', resolve));
  t.after(() => tracer.kill('SIGKILL'));
  await waitFor('strace attached', () => fs.existsSync(file));
  await sleep(500);
  return {
    async stop() {
      tracer.kill('SIGINT');
      await traced;
      return parseTrace(file);
    },
  };
}

/** The first fsync / fdatasync, after call index `from`, of a descriptor open on exactly `dir`. */
function dirSyncAfter(calls: Call[], from: number, dir: string): number {
  return calls.findIndex((c, i) => i > from && /^f(data)?sync$/.test(c.name) && c.text.includes(`<${dir}>)`));
}

test('a quarantined copy and the archive directories are fsynced before what depends on them', async (t) => {
  if (!needPeer(t, 'storescu', 'dcmodify', 'strace')) return;
  const node = await startNode(path.join(tmp, 'node'), {
    dicom: { host: '127.0.0.1', port: await freePort(), shutdownGraceSeconds: 2, onConflict: 'quarantine' },
    import: { stableSeconds: 0.3, rescanSeconds: 0.2 },
  });
  t.after(() => node.kill9());
  const tracer = await trace(t, node.child.pid!, CALLS, path.join(tmp, 'trace.txt'));

  // A stored instance, then a copy with other content under the same SOP Instance UID: quarantined, answered Success.
  const [first] = generateStudy({ dir: path.join(tmp, 'first'), series: 1, perSeries: 1 });
  assert.equal((await storescu(node.port, [first!.file]).done).acked.length, 1);
  const changed = path.join(tmp, 'changed.dcm');
  fs.copyFileSync(first!.file, changed);
  assert.equal((await run('dcmodify', ['-nb', '-m', 'SeriesDescription=changed', changed])).code, 0);
  assert.equal((await storescu(node.port, [changed]).done).acked.length, 1, 'the conflicting copy answered Success');

  // An inbox import: spooled, archived under site/raw/<Study>/<Series>/, the spool copies then removed.
  const study = generateStudy({ dir: path.join(tmp, 'inboxed'), series: 2, perSeries: 2 });
  const staging = path.join(node.dataDir, 'inbox', 'BATCH.tmp');
  fs.mkdirSync(staging, { recursive: true });
  for (const g of study) fs.copyFileSync(g.file, path.join(staging, path.basename(g.file)));
  fs.renameSync(staging, path.join(node.dataDir, 'inbox', 'BATCH'));
  const raw = path.join(node.dataDir, 'site', 'raw');
  const archived = (g: (typeof study)[number]) =>
    path.join(raw, g.studyInstanceUid, g.seriesInstanceUid, `${g.sopInstanceUid}.dcm`);
  await waitFor(
    'the batch archived and its spool copies removed',
    () =>
      study.every((g) => fs.existsSync(archived(g))) &&
      study.every((g) => !fs.existsSync(path.join(node.dataDir, 'incoming', `${g.sopInstanceUid}.dcm`))),
    60_000,
  );
  await sleep(500);
  const calls = await tracer.stop();

  const quarantined = calls.findIndex((c) => /^rename/.test(c.name) && c.text.includes('/conflicts/'));
  assert.ok(quarantined >= 0, 'the conflicting copy was renamed into conflicts/');
  const conflicts = path.dirname(/, "([^"]+)"/.exec(calls[quarantined]!.text)![1]!);
  assert.ok(dirSyncAfter(calls, quarantined, conflicts) > quarantined, 'conflicts/ fsynced after the rename');

  const studyDir = path.join(raw, study[0]!.studyInstanceUid);
  const firstUnlink = calls.findIndex(
    (c) => /^unlink/.test(c.name) && study.some((g) => c.text.includes(`incoming/${g.sopInstanceUid}.dcm`)),
  );
  assert.ok(firstUnlink >= 0, 'the spool copies were unlinked');
  const made = [studyDir, ...new Set(study.map((g) => path.join(studyDir, g.seriesInstanceUid)))];
  for (const dir of made) {
    const mk = calls.findIndex((c) => /^mkdir/.test(c.name) && c.text.includes(`"${dir}"`));
    assert.ok(mk >= 0 && mk < firstUnlink, `${path.relative(node.dataDir, dir)} created before the first unlink`);
    const synced = dirSyncAfter(calls, mk, path.dirname(dir));
    assert.ok(
      synced > mk && synced < firstUnlink,
      `${path.relative(node.dataDir, path.dirname(dir))} fsynced after creating ${path.basename(dir)} and before a spool copy was removed`,
    );
  }
});

test('every C-STORE is answered only after its spool file was flushed', async (t) => {
  if (!needPeer(t, 'storescu', 'strace')) return;
  const node = await startNode(path.join(tmp, 'answers'), {
    dicom: { host: '127.0.0.1', port: await freePort(), shutdownGraceSeconds: 2 },
  });
  t.after(() => node.kill9());
  // The socket writes (A-ASSOCIATE-AC, each C-STORE-RSP, A-RELEASE-RP) and the flushes; spool batches are pwritev.
  const tracer = await trace(t, node.child.pid!, 'fdatasync,write,writev', path.join(tmp, 'answers-trace.txt'));

  const study = generateStudy({ dir: path.join(tmp, 'answered'), series: 1, perSeries: 20, rows: 256, columns: 256 });
  const sent = await storescu(
    node.port,
    study.map((g) => g.file),
  ).done;
  assert.equal(sent.acked.length, study.length);
  await sleep(300);
  const calls = await tracer.stop();

  const flushes = calls.flatMap((c, i) => (c.name === 'fdatasync' && c.text.includes('/.pool/') ? [i] : []));
  // The association's socket: the one the A-ASSOCIATE-AC (PDU type 2) went out on; the node's log is a socket too.
  const fdOf = (c: Call) => /^\d+\s+writev?\((\d+<[^>]+>)/.exec(c.text)?.[1];
  const accept = calls.find((c) => c.name === 'write' && /<(socket|TCP)[^>]*>, "\\2\\0\\0\\0/.test(c.text));
  assert.ok(accept, 'the A-ASSOCIATE-AC was written');
  const socketWrites = calls.flatMap((c, i) => (/^writev?$/.test(c.name) && fdOf(c) === fdOf(accept) ? [i] : []));
  assert.equal(flushes.length, study.length, 'one flush per image');
  // One association: the A-ASSOCIATE-AC, then one C-STORE-RSP per image in order, then the A-RELEASE-RP.
  assert.equal(socketWrites.length, study.length + 2, 'the association accept, one answer per image, the release');
  for (let k = 0; k < study.length; k++) {
    assert.ok(
      flushes[k]! < socketWrites[k + 1]!,
      `answer ${k + 1} written after the flush of image ${k + 1} returned (flush at ${flushes[k]}, answer at ${socketWrites[k + 1]})`,
    );
  }
});
