// Hostile-import helpers: a tree outside dataDir whose every entry is fingerprinted (nothing may read, move or delete
// it), and a probe that keeps asking the node for C-ECHO and /api/status while something else runs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { run } from './peers.js';
import { baseUrl } from './http.js';
import type { TestNode } from './node.js';

/** What a tree outside dataDir looks like: per entry (raw name bytes, hex) its kind, inode, size, hash; and its atime. */
export type Fingerprint = Map<string, { desc: string; atimeMs: number }>;

/** Two days back: with relatime, any later read (of a file) or listing (of a folder) moves atime to now. */
const OLD = 2 * 86_400_000;

/**
 * Every entry below `dir` (never following symbolic links), with its content hash for regular files. Files and
 * folders get an atime older than their mtime, so that a later read or listing shows (relatime mounts).
 */
export function fingerprint(dir: string): Fingerprint {
  const out: Fingerprint = new Map();
  const visit = (d: Buffer) => {
    for (const name of fs.readdirSync(d, { encoding: 'buffer' })) {
      const p = Buffer.concat([d, Buffer.from('/'), name]);
      const st = fs.lstatSync(p);
      const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? `link->${fs.readlinkSync(p)}` : st.mode.toString(8);
      const hash = st.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : '';
      if (st.isDirectory()) visit(p);
      if (st.isFile() || st.isDirectory()) fs.utimesSync(p, new Date(st.mtimeMs - OLD), st.mtime);
      out.set(p.toString('hex'), { desc: `${kind} ino=${st.ino} size=${st.size} ${hash}`, atimeMs: atime(p) });
    }
  };
  visit(Buffer.from(dir));
  fs.utimesSync(dir, new Date(fs.statSync(dir).mtimeMs - OLD), fs.statSync(dir).mtime);
  out.set('.', { desc: 'root', atimeMs: atime(Buffer.from(dir)) });
  return out;
}

function atime(p: Buffer): number {
  return fs.lstatSync(p).atimeMs;
}

/**
 * Asserts that nothing below `dir` was read, listed, added, removed, moved, replaced or changed since `before`.
 * atimes are compared first, before this check itself reads anything.
 */
export function assertUntouched(dir: string, before: Fingerprint, what: string): void {
  const show = (k: string) => (k === '.' ? dir : Buffer.from(k, 'hex').toString('latin1'));
  const read: string[] = [];
  for (const [k, v] of before) {
    const p = k === '.' ? Buffer.from(dir) : Buffer.from(k, 'hex');
    try {
      if (atime(p) !== v.atimeMs) read.push(show(k));
    } catch {
      // gone: reported below
    }
  }
  const after = fingerprint(dir);
  const removed = [...before.keys()].filter((k) => !after.has(k)).map(show);
  const changed = [...before.keys()].filter((k) => after.has(k) && after.get(k)!.desc !== before.get(k)!.desc);
  const added = [...after.keys()].filter((k) => !before.has(k)).map(show);
  assert.deepEqual(
    { read, removed, changed: changed.map(show), added },
    { read: [], removed: [], changed: [], added: [] },
    `${what} was touched`,
  );
}

/** A file outside dataDir with a recognisable content, named like the inbox file it may be confused with. */
export function sentinel(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `sentinel: must never be read, moved or deleted (${file})\n`);
}

/** Answers seen while the probe ran: the slowest C-ECHO and /api/status, and failures. */
export interface ProbeReport {
  echoes: number;
  statuses: number;
  slowestMs: number;
  failures: string[];
}

/**
 * Asks for a C-ECHO (DCMTK echoscu) and GET /api/status over and over until stopped; each must answer within
 * `deadlineMs`. What a blocked thread pool or event loop would show as a timeout.
 */
export function probeResponsive(node: TestNode, deadlineMs = 5000): { stop(): Promise<ProbeReport> } {
  const report: ProbeReport = { echoes: 0, statuses: 0, slowestMs: 0, failures: [] };
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      const echo = await run('echoscu', ['-aec', 'SCANNODE', '127.0.0.1', String(node.port)], {
        timeoutMs: deadlineMs,
      });
      if (echo.code !== 0) report.failures.push(`C-ECHO: exit ${echo.code} ${echo.stderr.slice(0, 200)}`);
      else report.echoes++;
      const t1 = Date.now();
      try {
        const res = await fetch(`${baseUrl(node)}/api/status`, { signal: AbortSignal.timeout(deadlineMs) });
        if (res.status !== 200) report.failures.push(`/api/status: HTTP ${res.status}`);
        else report.statuses++;
        await res.text();
      } catch (err) {
        report.failures.push(`/api/status: ${(err as Error).message}`);
      }
      report.slowestMs = Math.max(report.slowestMs, t1 - t0, Date.now() - t1);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return report;
    },
  };
}

/** Opens every FIFO for writing once (non-blocking) so that a reader stuck in open() gets EOF and lets go. */
export function releaseFifos(paths: string[]): void {
  for (const p of paths) {
    try {
      fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // no reader waiting (ENXIO) or already gone: nothing to release
    }
  }
}
