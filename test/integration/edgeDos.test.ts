/**
 * Issue 11's denial-of-service scenarios against a scannode child process: 200 idle TCP connections, 50 associations
 * never released, a slow drip of 1 byte every 200 ms, a PDU header announcing 4 GiB followed by data, and a peer that
 * holds every association slot and is SIGSTOPped (gone without FIN). Each is followed by a scanner's C-ECHO and
 * C-STORE (DCMTK, TCP_NODELAY=1) that must succeed within 2 s. The node is a child process so that its own RSS
 * (/proc/<pid>/status, VmHWM reset through clear_refs) is measured, not the test's buffers; the figures are printed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test, before, after, type TestContext } from 'node:test';
import { needPeer, run, stopProcess } from '../helpers/peers.js';
import { generateStudy } from '../helpers/dicomgen.js';
import { startNodeProcess, type NodeProcess } from '../helpers/parrotNode.js';
import { ParrotSession, describe as said } from '../helpers/parrotSession.js';
import { associateRq } from '../helpers/parrot.js';
import { REJECT } from '../helpers/parrotCases.js';
import { fixedUid } from '../helpers/parrotDimse.js';

const ARTIM_MS = 6000;
const IDLE_MS = 6000;
/** Slack on a loaded 2-core machine before a connection still open counts as not reclaimed. */
const MARGIN_MS = 6000;
const MAX_ASSOCIATIONS = 16;
const SCANNER_MS = 2000;
const MiB = 1024 * 1024;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-dos-'));
const HOLDER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../helpers/parrotHolder.js');
let node: NodeProcess | undefined;
let startError: Error | undefined;
const figures: string[] = [];

before(async () => {
  try {
    node = await startNodeProcess({
      artimTimeoutSeconds: ARTIM_MS / 1000,
      idleTimeoutSeconds: IDLE_MS / 1000,
      maxAssociations: MAX_ASSOCIATIONS,
    });
    rss('at start');
  } catch (err) {
    startError = err as Error;
  }
});
after(async () => {
  for (const f of figures) console.log(`# RSS ${f}`);
  await node?.destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function up(): NodeProcess {
  if (startError) throw new Error(`the node did not start with the new dicom.* keys: ${startError.message}`);
  assert.ok(node?.alive(), `the node is alive (${node?.exitInfo()})\n${node?.log().slice(-2000)}`);
  return node!;
}

function rss(label: string): number {
  const m = node?.memory();
  const mib = m ? m.rssKiB / 1024 : NaN;
  figures.push(`${label}: ${mib.toFixed(1)} MiB (peak ${((m?.hwmKiB ?? NaN) / 1024).toFixed(1)} MiB)`);
  return mib;
}

let instanceNo = 0;
/** The scanner: echoscu then storescu of a fresh image, each within 2 s, and the image is in the spool. */
async function scanner(t: TestContext, when: string): Promise<void> {
  const n = up();
  const [inst] = generateStudy({ dir: path.join(tmp, `scan${++instanceNo}`), series: 1, perSeries: 1 });
  let at = Date.now();
  const echo = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(n.port)], { timeoutMs: 30_000 });
  const echoMs = Date.now() - at;
  at = Date.now();
  const store = await run('storescu', ['-aec', 'SCANNODE', '127.0.0.1', String(n.port), inst!.file], {
    timeoutMs: 30_000,
  });
  const storeMs = Date.now() - at;
  t.diagnostic(`scanner ${when}: C-ECHO ${echoMs} ms, C-STORE ${storeMs} ms`);
  assert.equal(echo.code, 0, `C-ECHO ${when}: ${echo.stderr}${echo.stdout}`);
  assert.ok(echoMs <= SCANNER_MS, `C-ECHO ${when} took ${echoMs} ms`);
  assert.equal(store.code, 0, `C-STORE ${when}: ${store.stderr}${store.stdout}`);
  assert.ok(storeMs <= SCANNER_MS, `C-STORE ${when} took ${storeMs} ms`);
  assert.ok(fs.existsSync(path.join(n.dataDir, 'incoming', `${inst!.sopInstanceUid}.dcm`)), 'the image is stored');
}

interface Held {
  socket: net.Socket;
  openedAt: number;
  closedAt?: number;
}

/** Plain TCP connections that send nothing. */
async function openIdle(port: number, count: number): Promise<Held[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Held>((resolve) => {
          const h: Held = { socket: net.connect(port, '127.0.0.1'), openedAt: Date.now() };
          h.socket.on('error', () => undefined);
          h.socket.on('close', () => (h.closedAt ??= Date.now()));
          h.socket.once('connect', () => resolve(h));
          h.socket.once('close', () => resolve(h));
        }),
    ),
  );
}

/** Waits until every connection was closed by the node or the deadline passes; returns those still open. */
async function stillOpenAfter<T>(items: T[], closed: (x: T) => boolean, deadline: number): Promise<T[]> {
  while (Date.now() < deadline && items.some((x) => !closed(x))) await new Promise((r) => setTimeout(r, 100));
  return items.filter((x) => !closed(x));
}

/**
 * What a transfer cut off left in incoming/: any non-empty file that is not an acknowledged instance
 * (`incoming/<SOP Instance UID>.dcm`) or is one of `uids` (never acknowledged), once the node had 3 s to clean up.
 */
async function leftovers(n: NodeProcess, uids: string[]): Promise<string[]> {
  const left = () =>
    n.storedFiles().filter((f) => {
      let size = 0;
      try {
        size = fs.statSync(path.join(n.dataDir, f)).size;
      } catch {
        return false;
      }
      const acknowledged = /^incoming\/[0-9.]+\.dcm$/.test(f) && !uids.some((u) => f.includes(u));
      return size > 0 && !acknowledged;
    });
  const deadline = Date.now() + 3000;
  while (left().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return left();
}

describe('edge DoS: each attack, then a scanner C-ECHO and C-STORE within 2 s', () => {
  test('200 idle TCP connections: the scanner gets in while they are open; ARTIM closes every one', async (t) => {
    if (!needPeer(t, 'echoscu', 'storescu')) return;
    const n = up();
    const held = await openIdle(n.port, 200);
    try {
      t.diagnostic(`${held.filter((h) => !h.closedAt).length} of 200 still open after connecting`);
      await scanner(t, 'with 200 idle connections open');
      const open = await stillOpenAfter(held, (h) => !!h.closedAt, Date.now() + ARTIM_MS + MARGIN_MS);
      assert.equal(open.length, 0, `${open.length} idle connections still open after ARTIM + ${MARGIN_MS} ms`);
    } finally {
      held.forEach((h) => h.socket.destroy());
      rss('after 200 idle connections');
    }
  });

  test('50 associations never released: every one answered (AC, or RJ local limit), all reclaimed', async (t) => {
    if (!needPeer(t, 'echoscu', 'storescu')) return;
    const n = up();
    const sessions = await Promise.all(Array.from({ length: 50 }, () => ParrotSession.connect(n.port)));
    try {
      sessions.forEach((s, i) => s.send(associateRq({ calling: `HOLD${i}` })));
      const answers = await Promise.all(sessions.map((s) => s.until((e) => e.kind === 'AC', 15_000)));
      const accepted = answers.filter((a) => a.kind === 'AC').length;
      const [r, src, reason] = REJECT.localLimit;
      const bad = answers.filter(
        (a) => a.kind !== 'AC' && !(a.kind === 'RJ' && a.result === r && a.source === src && a.reason === reason),
      );
      t.diagnostic(`${accepted} accepted, ${50 - accepted - bad.length} rejected (local limit), ${bad.length} other`);
      assert.deepEqual(bad.map(said), [], 'beyond maxAssociations: RJ transient, local limit exceeded, never a drop');
      assert.ok(accepted <= MAX_ASSOCIATIONS, `${accepted} accepted with maxAssociations ${MAX_ASSOCIATIONS}`);
      const open = await stillOpenAfter(sessions, (s) => s.closed, Date.now() + IDLE_MS + MARGIN_MS);
      assert.equal(open.length, 0, `${open.length} of 50 still open after the idle timeout + ${MARGIN_MS} ms`);
      await scanner(t, 'after 50 unreleased associations');
    } finally {
      sessions.forEach((s) => s.destroy());
      rss('after 50 unreleased associations');
    }
  });

  test('10 peers dripping an A-ASSOCIATE-RQ at 1 byte every 200 ms: the scanner gets in, ARTIM cuts them', async (t) => {
    if (!needPeer(t, 'echoscu', 'storescu')) return;
    const n = up();
    const rq = associateRq({ calling: 'DRIP' });
    const started = Date.now();
    const drips = await Promise.all(Array.from({ length: 10 }, () => ParrotSession.connect(n.port)));
    const timers = drips.map((s) => {
      let at = 0;
      return setInterval(() => {
        if (!s.closed && at < rq.length) s.send(rq.subarray(at, ++at));
      }, 200);
    });
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await scanner(t, 'during the drip');
      const open = await stillOpenAfter(drips, (s) => s.closed, started + ARTIM_MS + MARGIN_MS);
      assert.equal(open.length, 0, `${open.length} dripping connections outlived ARTIM + ${MARGIN_MS} ms`);
      assert.ok(!drips.some((s) => s.events.some((e) => e.kind === 'AC')), 'no drip got an association');
    } finally {
      timers.forEach(clearInterval);
      drips.forEach((s) => s.destroy());
      rss('after the drip');
    }
  });

  for (const [what, header, associateFirst] of [
    ['an A-ASSOCIATE-RQ header', [0x01, 0, 0xff, 0xff, 0xff, 0xf0], false],
    ['a P-DATA-TF header after the association', [0x04, 0, 0xff, 0xff, 0xff, 0xf0], true],
  ] as const) {
    test(`${what} announcing 4 GiB, then 256 MiB of data: closed, RSS grows < 50 MiB`, async (t) => {
      if (!needPeer(t, 'echoscu', 'storescu')) return;
      const n = up();
      // A fresh process: memory an earlier scenario made the heap keep would hide this one's growth.
      await n.restart();
      const s = await ParrotSession.connect(n.port);
      if (associateFirst) {
        s.send(associateRq({}));
        assert.equal((await s.until((e) => e.kind === 'AC', 15_000)).kind, 'AC');
      }
      const base = n.memory()!;
      const resetOk = n.resetPeak();
      let peakKiB = base.rssKiB;
      const sampler = setInterval(() => (peakKiB = Math.max(peakKiB, n.memory()?.rssKiB ?? 0)), 20);
      let sent = 0;
      try {
        s.send(Buffer.from(header));
        const chunk = Buffer.alloc(MiB);
        while (sent < 256 * MiB && !s.closed) {
          if (!s.socket.write(chunk)) await new Promise((r) => s.socket.once('drain', r).once('close', r));
          sent += MiB;
        }
        const closed = await s.waitClosed(ARTIM_MS + MARGIN_MS);
        const m = n.memory();
        if (resetOk && m) peakKiB = Math.max(peakKiB, m.hwmKiB);
        const growthMiB = (peakKiB - base.rssKiB) / 1024;
        figures.push(
          `4 GiB ${what}: before ${(base.rssKiB / 1024).toFixed(1)} MiB, peak ${(peakKiB / 1024).toFixed(1)} MiB ` +
            `(+${growthMiB.toFixed(1)} MiB; ${sent / MiB} MiB sent before the close; peak from ${resetOk ? 'VmHWM reset by clear_refs and ' : ''}20 ms samples)`,
        );
        t.diagnostic(figures[figures.length - 1]!);
        assert.ok(
          closed,
          `the node kept the connection open (${sent / MiB} MiB sent): ${s.events.map(said).join(' -> ')}`,
        );
        assert.ok(growthMiB < 50, `RSS grew by ${growthMiB.toFixed(1)} MiB`);
      } finally {
        clearInterval(sampler);
        s.destroy();
      }
      await scanner(t, `after the 4 GiB ${what}`);
    });
  }

  test('a peer holding every association slot is SIGSTOPped (gone without FIN): the idle timer frees every slot', async (t) => {
    if (!needPeer(t, 'echoscu', 'storescu')) return;
    const n = up();
    const holder: ChildProcess = spawn(process.execPath, [HOLDER, String(n.port), String(MAX_ASSOCIATIONS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const ready = await new Promise<string>((resolve) => {
        let out = '';
        holder.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (/READY|FAILED/.test(out)) resolve(out);
        });
        holder.once('exit', () => resolve(`exited: ${out}`));
      });
      assert.match(ready, /READY/, `the holder took ${MAX_ASSOCIATIONS} associations`);
      holder.kill('SIGSTOP');
      const stoppedAt = Date.now();
      const probe = await ParrotSession.connect(n.port);
      probe.send(associateRq({}));
      const full = await probe.until((e) => e.kind === 'AC', 15_000);
      probe.destroy();
      t.diagnostic(`with every slot held: ${said(full)}`);
      assert.equal(full.kind, 'RJ', 'every slot is taken while the peer is stopped');
      // Free again within the idle timeout: maxAssociations new associations are all accepted.
      let freedAt: number | undefined;
      while (!freedAt && Date.now() < stoppedAt + IDLE_MS + MARGIN_MS) {
        const s = await ParrotSession.connect(n.port);
        s.send(associateRq({}));
        if ((await s.until((e) => e.kind === 'AC', 5000)).kind === 'AC') freedAt = Date.now();
        s.destroy();
        if (!freedAt) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(freedAt, `slots still held ${IDLE_MS + MARGIN_MS} ms after the peer stopped`);
      await new Promise((r) => setTimeout(r, 1000));
      const all = await Promise.all(Array.from({ length: MAX_ASSOCIATIONS }, () => ParrotSession.connect(n.port)));
      all.forEach((s) => s.send(associateRq({ calling: 'AGAIN' })));
      const answers = await Promise.all(all.map((s) => s.until((e) => e.kind === 'AC', 15_000)));
      all.forEach((s) => s.destroy());
      t.diagnostic(`slots free again ${freedAt - stoppedAt} ms after SIGSTOP`);
      assert.equal(answers.filter((a) => a.kind === 'AC').length, MAX_ASSOCIATIONS, answers.map(said).join(', '));
      const holderUids = Array.from({ length: MAX_ASSOCIATIONS }, (_, i) => fixedUid(700_000 + i));
      assert.deepEqual(await leftovers(n, holderUids), [], 'the stopped peer left nothing in incoming/');
      await scanner(t, 'after the stopped peer');
    } finally {
      holder.kill('SIGKILL');
      holder.kill('SIGCONT');
      await stopProcess(holder);
      rss('after the SIGSTOPped peer');
    }
  });
});
