/**
 * Aggregates the self time of V8 .cpuprofile files (node --cpu-prof) by function + script (+ line), best first.
 * Usage: node dist/test/bench/profsummary.js <file-or-dir>... [--top N] [--window <url part>]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTimeRow {
  fn: string;
  where: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  files: number;
  totalMs: number;
  rows: SelfTimeRow[];
  /** Self time by script (package or file), best first. */
  byScript: SelfTimeRow[];
  /** Inclusive (self + callees) time of functions in our own code (dist/src), best first. */
  inclusiveOwn: SelfTimeRow[];
}

export interface SummarizeOptions {
  top?: number;
  /**
   * Only count samples between the first and the last one whose stack has a frame from a script whose URL contains
   * this (e.g. 'pipeline/ingest.js': from the first to the last C-STORE), leaving out start-up and shut-down.
   */
  window?: string;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  const dist = u.indexOf('/dist/');
  if (dist >= 0) return u.slice(dist + 1);
  return u;
}

function scriptKey(url: string): string {
  const s = shortUrl(url);
  if (!s) return '(native/vm)';
  if (s.startsWith('node:')) return 'node: internals';
  const parts = s.split('/');
  // a package (its first path segment, two for @scope/name) or our own file
  if (url.includes('node_modules/')) return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? s);
  return s;
}

/** Lists .cpuprofile files given files or directories. */
export function profileFiles(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    if (!fs.existsSync(p)) continue;
    if (fs.statSync(p).isDirectory()) {
      for (const e of fs.readdirSync(p, { recursive: true, withFileTypes: true })) {
        if (e.isFile() && e.name.endsWith('.cpuprofile')) out.push(path.join(e.parentPath, e.name));
      }
    } else out.push(p);
  }
  return out.sort();
}

function frameKey(cf: CallFrame): { key: string; fn: string; where: string } {
  const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
  return { key: `${cf.functionName}@${where}`, fn: cf.functionName || '(anonymous)', where };
}

export function summarize(files: string[], options: SummarizeOptions = {}): ProfileSummary {
  const top = options.top ?? 30;
  const byFn = new Map<string, { fn: string; where: string; ms: number }>();
  const byScript = new Map<string, number>();
  const inclusive = new Map<string, { fn: string; where: string; ms: number }>();
  let totalMs = 0;
  for (const file of files) {
    const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
    const nodes = new Map<number, ProfileNode>();
    const parent = new Map<number, number>();
    for (const n of prof.nodes) {
      nodes.set(n.id, n);
      for (const c of n.children ?? []) parent.set(c, n.id);
    }
    const stack = (id: number): ProfileNode[] => {
      const out: ProfileNode[] = [];
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const n = nodes.get(cur);
        if (n) out.push(n);
      }
      return out;
    };
    const samples = prof.samples ?? [];
    const deltas = prof.timeDeltas ?? [];
    let from = 0;
    let to = samples.length - 1;
    if (options.window) {
      const w = options.window;
      const inWindow = (i: number) => {
        const id = samples[i];
        return id !== undefined && stack(id).some((n) => n.callFrame.url.includes(w));
      };
      while (from < samples.length && !inWindow(from)) from++;
      while (to > from && !inWindow(to)) to--;
    }
    // timeDeltas[i] is the time from sample i-1 to sample i: the interval after sample i is charged to sample i.
    for (let i = from; i <= to; i++) {
      const id = samples[i];
      const node = id === undefined ? undefined : nodes.get(id);
      if (!node || id === undefined) continue;
      const us = deltas[i + 1] ?? 0;
      const ms = us / 1000;
      totalMs += ms;
      const seen = new Set<string>();
      for (const n of stack(id)) {
        if (!n.callFrame.url.includes('/dist/src/')) continue;
        const k = frameKey(n.callFrame);
        if (seen.has(k.key)) continue;
        seen.add(k.key);
        const row = inclusive.get(k.key) ?? { fn: k.fn, where: k.where, ms: 0 };
        row.ms += ms;
        inclusive.set(k.key, row);
      }
      const cf = node.callFrame;
      const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
      const key = `${cf.functionName}@${where}`;
      const row = byFn.get(key) ?? { fn: cf.functionName || '(anonymous)', where, ms: 0 };
      row.ms += ms;
      byFn.set(key, row);
      const sk = cf.url ? scriptKey(cf.url) : cf.functionName.startsWith('(') ? cf.functionName : '(native/vm)';
      byScript.set(sk, (byScript.get(sk) ?? 0) + ms);
    }
  }
  const pct = (ms: number) => (totalMs > 0 ? (100 * ms) / totalMs : 0);
  const rows = [...byFn.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top)
    .map((r) => ({ ...r, pct: pct(r.ms) }));
  const scripts = [...byScript.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([where, ms]) => ({ fn: '', where, ms, pct: pct(ms) }));
  const inclusiveOwn = [...inclusive.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top)
    .map((r) => ({ ...r, pct: pct(r.ms) }));
  return { files: files.length, totalMs, rows, byScript: scripts, inclusiveOwn };
}

export function formatSummary(s: ProfileSummary, topScripts = 12): string {
  const lines: string[] = [];
  lines.push(`${s.files} profile(s), ${s.totalMs.toFixed(0)} ms sampled (main thread, idle included)`);
  lines.push('  self ms    %  function  (script:line)');
  for (const r of s.rows) {
    lines.push(`${r.ms.toFixed(1).padStart(8)} ${r.pct.toFixed(1).padStart(5)}  ${r.fn}  ${r.where}`);
  }
  lines.push('  by script / package:');
  for (const r of s.byScript.slice(0, topScripts)) {
    lines.push(`${r.ms.toFixed(1).padStart(8)} ${r.pct.toFixed(1).padStart(5)}  ${r.where}`);
  }
  lines.push('  inclusive (self + callees), our code:');
  for (const r of s.inclusiveOwn.slice(0, topScripts)) {
    lines.push(`${r.ms.toFixed(1).padStart(8)} ${r.pct.toFixed(1).padStart(5)}  ${r.fn}  ${r.where}`);
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  let top = 30;
  let window: string | undefined;
  const inputs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    else if (args[i] === '--window') window = args[++i];
    else inputs.push(args[i] ?? '');
  }
  const files = profileFiles(inputs.length ? inputs : ['test-output/prof']);
  if (files.length === 0) {
    process.stderr.write('no .cpuprofile files found\n');
    process.exit(1);
  }
  process.stdout.write(`${formatSummary(summarize(files, { top, window }))}\n`);
}
