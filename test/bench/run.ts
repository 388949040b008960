/**
 * The benchmark of issue 2 (`npm run bench`; not a test): DCMTK storescu -> DCMTK storescp vs storescu -> scannode.
 *
 *   node dist/test/bench/run.js [--rounds N] [--phases single,multi,rss] [--profile] [--keep]
 *
 * --rounds N   alternating rounds of each measurement (default 3)
 * --phases     which parts to run: single (one association), multi (4 parallel senders), rss (one 1 GiB instance),
 *              import (import.ts: scannode import vs Orthanc REST), move (C-MOVE of the study from Orthanc to storescp
 *              vs scannode), complete (last image to finished-scans with MPPS COMPLETED); default all
 * --profile    start scannode with `node --cpu-prof` (profiles in test-output/prof/<phase>/) and print the top
 *              self-time functions of the single-association runs at the end; also settable with BENCH_PROFILE=1
 * --keep       keep the temp dir (its path is printed)
 * --node-args "A B"     extra node options for scannode (e.g. "--trace-gc"); split on spaces
 * --scannode-log FILE   append everything scannode prints to FILE
 *
 * Everything runs on 127.0.0.1, every process started here is stopped by its pid, the temp dir is removed at the end.
 * Results: printed, and written to test-output/bench.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { writeBigInstance } from './bigfile.js';
import { formatSummary, profileFiles, summarize } from './profsummary.js';
import {
  measureComplete,
  measureMove,
  runImportBench,
  startPeerBench,
  type CompleteMeasurement,
  type ImportFigures,
  type MoveMeasurement,
} from './peers.js';
import {
  countFiles,
  countFilesRecursive,
  freePort,
  killAll,
  procStatusBytes,
  sleep,
  startCaptured,
  stopChild,
  timedRun,
  waitForPort,
  type Captured,
} from './procs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'dist/src/cli.js');
const OUT_DIR = path.join(ROOT, 'test-output');
const PROF_DIR = path.join(OUT_DIR, 'prof');

const SERIES = 2;
const PER_SERIES = 200;
const SIZE = 512;
const SENDERS = 4;
/** 16384 x 16384 x 2 frames x 16 bit = 1 GiB of pixel data. */
const BIG = { rows: 16384, columns: 16384, frames: 2 };

type Phase = 'single' | 'multi' | 'rss' | 'import' | 'move' | 'complete';
const PHASES: Phase[] = ['single', 'multi', 'rss', 'import', 'move', 'complete'];
type Receiver = 'storescp' | 'scannode';

interface Options {
  rounds: number;
  phases: Set<Phase>;
  profile: boolean;
  keep: boolean;
  nodeArgs: string[];
  scannodeLog: string | undefined;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    rounds: 3,
    phases: new Set<Phase>(PHASES),
    profile: process.env.BENCH_PROFILE === '1',
    keep: false,
    nodeArgs: [],
    scannodeLog: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') {
      opts.rounds = Number(argv[++i]);
      if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error('--rounds needs a positive integer');
    } else if (a === '--phases') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean);
      for (const p of list) if (!(PHASES as string[]).includes(p)) throw new Error(`unknown phase ${p}`);
      opts.phases = new Set(list as Phase[]);
    } else if (a === '--profile') opts.profile = true;
    else if (a === '--keep') opts.keep = true;
    else if (a === '--node-args') opts.nodeArgs = (argv[++i] ?? '').split(' ').filter(Boolean);
    else if (a === '--scannode-log') opts.scannodeLog = path.resolve(argv[++i] ?? 'scannode.log');
    else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

interface Receiving {
  kind: Receiver;
  proc: Captured;
  port: number;
  aet: string;
  /** Where the received files land (storescp's -od, scannode's incoming/). */
  storeDir: string;
  /** scannode's SQLite file. */
  dbFile?: string;
}

async function waitReady(r: Receiving, timeoutMs = 30_000): Promise<void> {
  try {
    await waitForPort(r.port, r.proc.child, timeoutMs);
  } catch (err) {
    throw new Error(`${r.kind} did not start: ${(err as Error).message}\n${r.proc.output()}`);
  }
}

async function startStorescp(base: string): Promise<Receiving> {
  const storeDir = path.join(base, 'out');
  fs.mkdirSync(storeDir, { recursive: true });
  const port = await freePort();
  // plain storescp: one process, one association at a time; -pm unknown SOP classes, +xa every transfer syntax
  const proc = startCaptured('storescp', ['-pm', '+xa', '-od', storeDir, String(port)]);
  const r: Receiving = { kind: 'storescp', proc, port, aet: 'STORESCP', storeDir };
  await waitReady(r);
  return r;
}

async function startScannode(base: string, profileTag: string | undefined, opts: Options): Promise<Receiving> {
  fs.mkdirSync(base, { recursive: true });
  const port = await freePort();
  const config = {
    dicom: { host: '127.0.0.1', port },
    dataDir: path.join(base, 'data'),
    database: { type: 'sqlite', path: 'db.sqlite' },
    http: { port: 0 },
    log: { level: 'warn' },
  };
  const cfgFile = path.join(base, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(config, null, 2));
  const nodeArgs: string[] = [...opts.nodeArgs];
  if (profileTag !== undefined) {
    const dir = path.join(PROF_DIR, profileTag);
    fs.mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', dir);
  }
  const proc = startCaptured(
    process.execPath,
    [...nodeArgs, CLI, 'start', '--config', cfgFile],
    process.env,
    opts.scannodeLog,
  );
  const r: Receiving = {
    kind: 'scannode',
    proc,
    port,
    aet: 'SCANNODE',
    storeDir: path.join(base, 'data', 'incoming'),
    dbFile: path.join(base, 'data', 'db.sqlite'), // database.path is relative to dataDir
  };
  await waitReady(r);
  return r;
}

function dbInstanceCount(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT count(*) AS n FROM instances').get() as { n: number };
    return row.n;
  } finally {
    db.close();
  }
}

interface Measurement {
  phase: 'single' | 'multi';
  receiver: Receiver;
  round: number;
  senders: number;
  ms: number;
  instances: number;
  bytes: number;
  instPerSec: number;
  mbPerSec: number;
}

function storescuArgs(r: Receiving, files: string[]): string[] {
  return ['-aet', 'BENCH', '-aec', r.aet, '127.0.0.1', String(r.port), ...files];
}

/** Sends `parts` (one storescu each, all started at once) and returns the wall time from the first start to the last exit. */
async function sendAll(r: Receiving, parts: string[][]): Promise<number> {
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(parts.map((files) => timedRun('storescu', storescuArgs(r, files))));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const res of results) {
    if (res.code !== 0) throw new Error(`storescu -> ${r.kind} exited ${res.code}:\n${res.output.slice(-4000)}`);
  }
  return ms;
}

async function stopReceiver(r: Receiving): Promise<void> {
  await stopChild(r.proc.child);
  if (r.kind === 'scannode' && r.proc.child.exitCode !== 0) {
    throw new Error(`scannode exited ${r.proc.child.exitCode ?? r.proc.child.signalCode}:\n${r.proc.output()}`);
  }
}

async function measure(
  tmp: string,
  phase: 'single' | 'multi',
  kind: Receiver,
  round: number,
  parts: string[][],
  bytes: number,
  opts: Options,
): Promise<Measurement> {
  const base = fs.mkdtempSync(path.join(tmp, `${kind}-${phase}-r${round}-`));
  const instances = parts.reduce((n, p) => n + p.length, 0);
  const r =
    kind === 'storescp' ? await startStorescp(base) : await startScannode(base, opts.profile ? phase : undefined, opts);
  let ms: number;
  try {
    ms = await sendAll(r, parts);
  } catch (err) {
    await stopChild(r.proc.child);
    throw err;
  }
  // Honesty check: every instance sent is on disk (and, for scannode, indexed) before the figure counts.
  const onDisk = kind === 'storescp' ? countFilesRecursive(r.storeDir) : countFiles(r.storeDir, '.dcm');
  await stopReceiver(r);
  if (onDisk !== instances) {
    throw new Error(`${kind} ${phase} round ${round}: ${onDisk} files stored, ${instances} sent\n${r.proc.output()}`);
  }
  if (r.dbFile) {
    const rows = dbInstanceCount(r.dbFile);
    if (rows !== instances) throw new Error(`scannode ${phase} round ${round}: ${rows} rows, ${instances} sent`);
  }
  fs.rmSync(base, { recursive: true, force: true });
  const s = ms / 1000;
  return {
    phase,
    receiver: kind,
    round,
    senders: parts.length,
    ms,
    instances,
    bytes,
    instPerSec: instances / s,
    mbPerSec: bytes / 1e6 / s,
  };
}

interface RssResult {
  instanceBytes: number;
  sendMs: number;
  /** VmHWM before the send (start-up peak) and after it (peak of the whole life), bytes. */
  hwmBefore: number;
  hwmAfter: number;
  /** Largest VmRSS seen by sampling every 20 ms during the send. */
  maxSampledRss: number;
  /** Largest VmRSS per second of the send, MiB. */
  rssPerSecondMiB: number[];
  storedBytes: number;
}

async function measureRss(tmp: string, opts: Options): Promise<RssResult> {
  const bigDir = path.join(tmp, 'big');
  fs.mkdirSync(bigDir, { recursive: true });
  const file = path.join(bigDir, 'big.dcm');
  const instanceBytes = writeBigInstance(file, BIG.rows, BIG.columns, BIG.frames);
  const base = fs.mkdtempSync(path.join(tmp, 'scannode-rss-'));
  const r = await startScannode(base, opts.profile ? 'rss' : undefined, opts);
  const pid = r.proc.child.pid;
  if (pid === undefined) throw new Error('scannode has no pid');
  await sleep(500); // let start-up settle
  const hwmBefore = procStatusBytes(pid, 'VmHWM') ?? 0;
  let maxSampledRss = 0;
  const rssPerSecondMiB: number[] = [];
  let sending = true;
  const t0 = Date.now();
  const sampler = (async () => {
    while (sending) {
      const rss = procStatusBytes(pid, 'VmRSS') ?? 0;
      maxSampledRss = Math.max(maxSampledRss, rss);
      const sec = Math.floor((Date.now() - t0) / 1000);
      rssPerSecondMiB[sec] = Math.max(rssPerSecondMiB[sec] ?? 0, Math.round(rss / MB));
      await sleep(20);
    }
  })();
  let sendMs: number;
  try {
    sendMs = await sendAll(r, [[file]]);
  } finally {
    sending = false;
    await sampler;
  }
  const hwmAfter = procStatusBytes(pid, 'VmHWM') ?? 0;
  const stored = fs.existsSync(r.storeDir)
    ? fs.readdirSync(r.storeDir).filter((n) => n.endsWith('.dcm'))
    : ([] as string[]);
  const first = stored[0];
  const storedBytes = first === undefined ? 0 : fs.statSync(path.join(r.storeDir, first)).size;
  await stopReceiver(r);
  fs.rmSync(file, { force: true });
  fs.rmSync(base, { recursive: true, force: true });
  if (stored.length !== 1 || storedBytes < BIG.rows * BIG.columns * BIG.frames * 2) {
    throw new Error(`rss: ${stored.length} files stored (${storedBytes} bytes), expected 1 of about ${instanceBytes}`);
  }
  return { instanceBytes, sendMs, hwmBefore, hwmAfter, maxSampledRss, rssPerSecondMiB, storedBytes };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  if (s.length === 0) return NaN;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

function split<T>(xs: T[], n: number): T[][] {
  const size = Math.ceil(xs.length / n);
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

const MB = 1024 * 1024;

const loadavg = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/** A markdown table with padded columns. */
function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]) => `| ${widths.map((w, i) => (r[i] ?? '').padEnd(w)).join(' | ')} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
}
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: npm run build first`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-bench-'));
  const cleanup = () => {
    killAll();
    if (!opts.keep) fs.rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const started = Date.now();
  const loadAverageAtStart = os.loadavg();
  if (opts.profile) fs.rmSync(PROF_DIR, { recursive: true, force: true });
  try {
    console.log(
      `scannode bench: node ${process.version}, ${os.cpus().length} CPUs, load ${loadavg()}, rounds=${opts.rounds}, ` +
        `phases=${[...opts.phases].join(',')}${opts.profile ? ', cpu-prof on' : ''}, tmp=${tmp}`,
    );
    const measurements: Measurement[] = [];
    let files: string[] = [];
    let study: GeneratedInstance[] = [];
    let bytes = 0;
    if (['single', 'multi', 'move', 'complete'].some((p) => opts.phases.has(p as Phase))) {
      const t0 = Date.now();
      study = generateStudy({
        dir: path.join(tmp, 'study'),
        series: SERIES,
        perSeries: PER_SERIES,
        rows: SIZE,
        columns: SIZE,
      });
      files = study.map((s) => s.file);
      bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
      console.log(
        `study: ${files.length} instances, ${(bytes / 1e6).toFixed(1)} MB, generated in ${Date.now() - t0} ms`,
      );
    }
    const parts4 = split(files, SENDERS);
    for (let round = 1; round <= opts.rounds; round++) {
      // alternate which receiver goes first, so neither always gets the warmer page cache
      const order: Receiver[] = round % 2 ? ['storescp', 'scannode'] : ['scannode', 'storescp'];
      for (const phase of ['single', 'multi'] as const) {
        if (!opts.phases.has(phase)) continue;
        for (const kind of order) {
          const m = await measure(tmp, phase, kind, round, phase === 'single' ? [files] : parts4, bytes, opts);
          measurements.push(m);
          console.log(
            `round ${round} ${phase.padEnd(6)} ${m.senders} sender(s) -> ${kind.padEnd(8)}: ` +
              `${(m.ms / 1000).toFixed(3)} s, ${f1(m.instPerSec)} inst/s, ${f1(m.mbPerSec)} MB/s`,
          );
        }
      }
    }

    const med = (phase: 'single' | 'multi', kind: Receiver, key: 'instPerSec' | 'mbPerSec') =>
      median(measurements.filter((m) => m.phase === phase && m.receiver === kind).map((m) => m[key]));
    const perRoundRatio = (phase: 'single' | 'multi') =>
      Array.from({ length: opts.rounds }, (_, i) => {
        const a = measurements.find((m) => m.phase === phase && m.receiver === 'scannode' && m.round === i + 1);
        const b = measurements.find((m) => m.phase === phase && m.receiver === 'storescp' && m.round === i + 1);
        return a && b ? a.instPerSec / b.instPerSec : NaN;
      });

    const single = {
      storescp: {
        instPerSec: med('single', 'storescp', 'instPerSec'),
        mbPerSec: med('single', 'storescp', 'mbPerSec'),
      },
      scannode: {
        instPerSec: med('single', 'scannode', 'instPerSec'),
        mbPerSec: med('single', 'scannode', 'mbPerSec'),
      },
      perRoundRatio: perRoundRatio('single'),
      ratio: NaN,
    };
    single.ratio = single.scannode.instPerSec / single.storescp.instPerSec;
    const multi = {
      storescp: { instPerSec: med('multi', 'storescp', 'instPerSec'), mbPerSec: med('multi', 'storescp', 'mbPerSec') },
      scannode: { instPerSec: med('multi', 'scannode', 'instPerSec'), mbPerSec: med('multi', 'scannode', 'mbPerSec') },
      perRoundRatio: perRoundRatio('multi'),
      ratio: NaN,
      scannodeVsSingle: NaN,
      storescpVsSingle: NaN,
    };
    multi.ratio = multi.scannode.instPerSec / multi.storescp.instPerSec;
    multi.scannodeVsSingle = multi.scannode.instPerSec / single.scannode.instPerSec;
    multi.storescpVsSingle = multi.storescp.instPerSec / single.storescp.instPerSec;

    let rss: RssResult | undefined;
    if (opts.phases.has('rss')) {
      console.log(`rss: writing one ${((BIG.rows * BIG.columns * BIG.frames * 2) / MB).toFixed(0)} MiB instance...`);
      rss = await measureRss(tmp, opts);
      console.log(
        `rss: sent ${(rss.instanceBytes / MB).toFixed(0)} MiB in ${(rss.sendMs / 1000).toFixed(1)} s; scannode VmHWM ` +
          `${(rss.hwmBefore / MB).toFixed(1)} MiB before, ${(rss.hwmAfter / MB).toFixed(1)} MiB after; ` +
          `VmRSS per second (MiB): ${rss.rssPerSecondMiB.join(' ')}`,
      );
    }

    let imported: ImportFigures | undefined;
    if (opts.phases.has('import')) imported = runImportBench(ROOT, 2);

    const moves: MoveMeasurement[] = [];
    const completes: CompleteMeasurement[] = [];
    if (opts.phases.has('move') || opts.phases.has('complete')) {
      const peers = await startPeerBench(study);
      try {
        for (let round = 1; opts.phases.has('move') && round <= opts.rounds; round++) {
          const order = round % 2 ? (['storescp', 'scannode'] as const) : (['scannode', 'storescp'] as const);
          for (const kind of order) {
            const m = await measureMove(peers, CLI, tmp, kind, round, files.length);
            moves.push(m);
            console.log(
              `round ${round} move   C-MOVE from orthanc -> ${kind.padEnd(8)}: ${(m.ms / 1000).toFixed(3)} s, ${f1(m.instPerSec)} inst/s`,
            );
          }
        }
        if (opts.phases.has('complete')) {
          for (const settle of ['default', 0] as const) {
            const c = await measureComplete(peers, CLI, tmp, study, settle);
            completes.push(c);
            console.log(
              `complete (retrieve.settleSeconds ${settle === 'default' ? 'default 5' : settle}): storescu ` +
                `${(c.sendMs / 1000).toFixed(2)} s, last image -> finished-scans ${(c.ms / 1000).toFixed(3)} s`,
            );
          }
        }
      } finally {
        await peers.stop();
      }
    }
    const moveMed = (kind: 'storescp' | 'scannode') =>
      median(moves.filter((m) => m.receiver === kind).map((m) => m.ms));
    const moveRatio = moveMed('scannode') / moveMed('storescp');

    const pass = (ok: boolean) => (ok ? 'ok' : 'MISSED');
    const cell = (x: { instPerSec: number; mbPerSec: number }) => `${f1(x.instPerSec)} inst/s, ${f1(x.mbPerSec)} MB/s`;
    const rows: string[][] = [['measurement', 'storescp', 'scannode', 'ratio', 'target']];
    if (opts.phases.has('single')) {
      rows.push([
        `1 association, ${files.length} x 0.5 MB MR`,
        cell(single.storescp),
        cell(single.scannode),
        f2(single.ratio),
        `>= 0.8 ${pass(single.ratio >= 0.8)}`,
      ]);
    }
    if (opts.phases.has('multi')) {
      rows.push([`${SENDERS} parallel senders`, cell(multi.storescp), cell(multi.scannode), f2(multi.ratio), '']);
    }
    if (opts.phases.has('single') && opts.phases.has('multi')) {
      rows.push([
        `${SENDERS} senders / 1 sender`,
        f2(multi.storescpVsSingle),
        f2(multi.scannodeVsSingle),
        '',
        `>= 1.5 ${pass(multi.scannodeVsSingle >= 1.5)}`,
      ]);
    }
    if (rss) {
      rows.push([
        'peak RSS (VmHWM), one 1 GiB instance',
        '',
        `${(rss.hwmAfter / MB).toFixed(1)} MiB`,
        '',
        `<= 200 ${pass(rss.hwmAfter <= 200 * MB)}`,
      ]);
    }
    if (imported) {
      const best = (tool: string) =>
        Math.max(...imported.results.filter((r) => r.tool === tool).map((r) => r.filesPerSecond));
      rows.push([
        `import ${imported.files} files (best; Orthanc = REST upload)`,
        `orthanc ${f1(best('orthanc'))} files/s`,
        `${f1(best('scannode'))} files/s`,
        f2(imported.ratio),
        `>= 2 ${pass(imported.ratio >= 2)}`,
      ]);
    }
    if (moves.length) {
      const ips = (kind: 'storescp' | 'scannode') => files.length / (moveMed(kind) / 1000);
      rows.push([
        `C-MOVE ${files.length} from Orthanc (time)`,
        `${f2(moveMed('storescp') / 1000)} s, ${f1(ips('storescp'))} inst/s`,
        `${f2(moveMed('scannode') / 1000)} s, ${f1(ips('scannode'))} inst/s`,
        f2(moveRatio),
        `<= 1.2 ${pass(moveRatio <= 1.2)}`,
      ]);
    }
    for (const c of completes) {
      rows.push([
        `last image -> finished-scans (settleSeconds ${c.settleSeconds === 'default' ? '5 default' : c.settleSeconds})`,
        '',
        `${f2(c.ms / 1000)} s`,
        '',
        '',
      ]);
    }
    const lines = ['', 'summary (medians over rounds; MB = 10^6 bytes, MiB = 2^20 bytes)', ...table(rows)];
    if (opts.phases.has('single'))
      lines.push(`per-round ratio, 1 association: ${single.perRoundRatio.map(f2).join(' ')}`);
    if (opts.phases.has('multi'))
      lines.push(`per-round ratio, ${SENDERS} senders: ${multi.perRoundRatio.map(f2).join(' ')}`);
    const totalS = (Date.now() - started) / 1000;
    lines.push(
      `bench took ${totalS.toFixed(0)} s; load average at the end ${loadavg()} (other work on the machine skews it)`,
    );
    console.log(lines.join('\n'));

    let profile: ReturnType<typeof summarize> | undefined;
    if (opts.profile) {
      const profs = profileFiles([path.join(PROF_DIR, 'single')]);
      if (profs.length) {
        profile = summarize(profs, { top: 30, window: 'pipeline/ingest.js' });
        console.log(`\ncpu profile of scannode, single-association runs, first to last C-STORE (${PROF_DIR}/single):`);
        console.log(formatSummary(profile));
      }
    }

    fs.mkdirSync(OUT_DIR, { recursive: true });
    const json = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadAverageAtStart,
      loadAverageAtEnd: os.loadavg(),
      rounds: opts.rounds,
      profile: opts.profile,
      study: { instances: files.length, bytes, rows: SIZE, columns: SIZE, series: SERIES },
      single,
      multi: { senders: SENDERS, ...multi },
      rss: rss && {
        ...rss,
        hwmAfterMiB: rss.hwmAfter / MB,
        hwmBeforeMiB: rss.hwmBefore / MB,
        maxSampledRssMiB: rss.maxSampledRss / MB,
      },
      targets: {
        singleRatio: { target: 0.8, value: single.ratio, ok: single.ratio >= 0.8 },
        fourVsOne: { target: 1.5, value: multi.scannodeVsSingle, ok: multi.scannodeVsSingle >= 1.5 },
        peakRssMiB: { target: 200, value: rss ? rss.hwmAfter / MB : null, ok: rss ? rss.hwmAfter <= 200 * MB : null },
      },
      measurements,
      import: imported,
      move: moves.length
        ? { storescpMs: moveMed('storescp'), scannodeMs: moveMed('scannode'), ratio: moveRatio, measurements: moves }
        : undefined,
      complete: completes,
      profileTop: profile?.rows.slice(0, 20),
      seconds: totalS,
    };
    fs.writeFileSync(path.join(OUT_DIR, 'bench.json'), `${JSON.stringify(json, null, 2)}\n`);
    console.log(`written ${path.relative(ROOT, path.join(OUT_DIR, 'bench.json'))}`);
  } finally {
    cleanup();
    if (opts.keep) console.log(`kept ${tmp}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
