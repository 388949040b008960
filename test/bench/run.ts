/**
 * `npm run bench` (issues 2 and 12; not a test): scannode against DCMTK storescp, storescp + fsync (fsyncShim.ts) and
 * Orthanc as C-STORE receivers, in the same run, on the same data, alternating, medians over rounds.
 *
 *   node dist/test/bench/run.js [--rounds N] [--quick] [--phases single,multi,rss,...] [--profile] [--keep]
 *
 * --rounds N   alternating rounds of each rate measurement (default 5)
 * --quick      smoke run: 1 round, a 50-image study, small RSS objects, no import phase (figures not comparable)
 * --phases     single (one association vs storescp, storescp+fsync, Orthanc), multi (4 senders vs storescp --fork,
 *              with and without fsync), rss (peak RSS: one 1 GiB instance, a 2.5 GiB object without Pixel Data),
 *              import (import.ts), move (C-MOVE of the study from Orthanc to storescp vs scannode), complete
 *              (completion.ts: last image / N-SET to finished-scans, dcmqrscp as the scanner), forward (forward.ts:
 *              scannode's C-STORE SCU vs dcmsend, both to storescp), cluster (cluster.ts: one node on PostgreSQL vs
 *              three behind haproxy, and the database's work per image); default all
 * --profile    start scannode with `node --cpu-prof` (test-output/prof/<phase>/) and print the top self-time
 *              functions of the single-association runs; also BENCH_PROFILE=1
 * --keep       keep the temp dir (its path is printed)
 * --node-args "A B"     node options for scannode (default --max-semi-space-size=4, as it is started); --scannode-log FILE  append scannode's output to FILE
 *
 * Everything runs on 127.0.0.1 with TCP_NODELAY=1 for DCMTK; every process started here is stopped by its pid.
 * Results: printed, and written to test-output/bench.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateStudy, type GeneratedInstance } from '../helpers/dicomgen.js';
import { buildFsyncShim } from './fsyncShim.js';
import { benchCompletion } from './completion.js';
import { measureMove, runImportBench, startPeerBench } from './peers.js';
import type { ImportFigures, MoveMeasurement } from './peers.js';
import { killAll } from './procs.js';
import { formatSummary, profileFiles, summarize } from './profsummary.js';
import { benchForward, type ForwardFigures } from './forward.js';
import { benchCluster, type ClusterFigures } from './cluster.js';
import { measure, type BenchContext, type Measurement, type Receiver } from './receivers.js';
import { f1, f2, formatTargets, rates, table, targetRows, type Figures } from './report.js';
import { describe, measureRss, type BigObject, type RssResult } from './rss.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const OUT_DIR = path.join(ROOT, 'test-output');
const SENDERS = 4;
const SIZE = 512;
const SERIES = 2;

type Phase = 'single' | 'multi' | 'rss' | 'import' | 'move' | 'complete' | 'forward' | 'cluster';
const PHASES: Phase[] = ['single', 'multi', 'rss', 'import', 'move', 'complete', 'forward', 'cluster'];
/** Receivers of each rate phase; the order turns by one each round, so none always gets the warmer cache. */
const SINGLE: Receiver[] = ['scannode', 'storescp', 'storescp+fsync', 'orthanc'];
const MULTI: Receiver[] = ['scannode', 'storescp --fork', 'storescp --fork+fsync'];

interface Options {
  rounds: number;
  quick: boolean;
  phases: Set<Phase>;
  profile: boolean;
  keep: boolean;
  nodeArgs: string[];
  scannodeLog: string | undefined;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    rounds: 5,
    quick: false,
    phases: new Set<Phase>(PHASES),
    profile: process.env.BENCH_PROFILE === '1',
    keep: false,
    // As the node is started (package.json's start script, the Debian package's /usr/bin/scannode).
    nodeArgs: ['--max-semi-space-size=4'],
    scannodeLog: undefined,
  };
  let rounds: number | undefined;
  let phases: Phase[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') {
      rounds = Number(argv[++i]);
      if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer');
    } else if (a === '--quick') opts.quick = true;
    else if (a === '--phases') {
      phases = (argv[++i] ?? '').split(',').filter(Boolean) as Phase[];
      for (const p of phases) if (!PHASES.includes(p)) throw new Error(`unknown phase ${p}`);
    } else if (a === '--profile') opts.profile = true;
    else if (a === '--keep') opts.keep = true;
    else if (a === '--node-args') opts.nodeArgs = (argv[++i] ?? '').split(' ').filter(Boolean);
    else if (a === '--scannode-log') opts.scannodeLog = path.resolve(argv[++i] ?? 'scannode.log');
    else throw new Error(`unknown argument ${a}`);
  }
  if (opts.quick) {
    opts.rounds = 1;
    opts.phases.delete('import');
  }
  if (rounds !== undefined) opts.rounds = rounds;
  if (phases) opts.phases = new Set(phases);
  return opts;
}

const turn = <T>(xs: T[], by: number): T[] => xs.map((_, i) => xs[(i + by) % xs.length] as T);

function split<T>(xs: T[], n: number): T[][] {
  const size = Math.ceil(xs.length / n);
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

const loadavg = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const cli = path.join(ROOT, 'dist/src/cli.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: npm run build first`);
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
  const profDir = path.join(OUT_DIR, 'prof');
  if (opts.profile) fs.rmSync(profDir, { recursive: true, force: true });
  const ctx: BenchContext = {
    cli,
    shim: buildFsyncShim(OUT_DIR),
    profDir,
    profile: opts.profile,
    nodeArgs: opts.nodeArgs,
    scannodeLog: opts.scannodeLog,
  };
  const perSeries = opts.quick ? 25 : 200;
  const bigObjects: BigObject[] = opts.quick
    ? [
        { kind: 'instance', rows: 4096, columns: 4096, frames: 2 },
        { kind: 'raw', bytes: 256 * 1024 * 1024 },
      ]
    : [
        { kind: 'instance', rows: 16384, columns: 16384, frames: 2 }, // 1 GiB of pixel data
        { kind: 'raw', bytes: 2.5 * 1024 * 1024 * 1024 },
      ];
  try {
    console.log(
      `scannode bench: node ${process.version}, ${os.cpus().length} CPUs, load ${loadavg()}, rounds=${opts.rounds}, ` +
        `phases=${[...opts.phases].join(',')}${opts.quick ? ', QUICK (smoke run)' : ''}, tmp=${tmp}`,
    );
    let study: GeneratedInstance[] = [];
    if (['single', 'multi', 'move', 'complete', 'forward', 'cluster'].some((p) => opts.phases.has(p as Phase))) {
      const t0 = Date.now();
      const dir = path.join(tmp, 'study');
      study = generateStudy({ dir, series: SERIES, perSeries, rows: SIZE, columns: SIZE });
      console.log(`study: ${study.length} instances, generated in ${Date.now() - t0} ms`);
    }
    const files = study.map((s) => s.file);
    const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);

    const measurements: Measurement[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const phase of ['single', 'multi'] as const) {
        if (!opts.phases.has(phase)) continue;
        const parts = phase === 'single' ? [files] : split(files, SENDERS);
        for (const kind of turn(phase === 'single' ? SINGLE : MULTI, round - 1)) {
          const m = await measure(tmp, phase, kind, round, parts, bytes, ctx);
          measurements.push(m);
          console.log(
            `round ${round} ${phase.padEnd(6)} ${m.senders} sender(s) -> ${kind.padEnd(21)}: ` +
              `${(m.ms / 1000).toFixed(3)} s, ${f1(m.instPerSec)} inst/s, ${f1(m.mbPerSec)} MB/s`,
          );
        }
      }
    }

    const rss: RssResult[] = [];
    if (opts.phases.has('rss')) {
      for (const big of bigObjects) {
        console.log(`rss: ${describe(big)}...`);
        const r = await measureRss(tmp, big, ctx);
        rss.push(r);
        console.log(
          `rss: ${describe(big)} stored in ${(r.sendMs / 1000).toFixed(1)} s; scannode VmHWM ` +
            `${f1(r.hwmBefore / 1024 / 1024)} MiB before, ${f1(r.hwmAfter / 1024 / 1024)} MiB after; ` +
            `VmRSS per second (MiB): ${r.rssPerSecondMiB.join(' ')}`,
        );
      }
    }

    let imported: ImportFigures | undefined;
    if (opts.phases.has('import')) imported = runImportBench(ROOT, 2);

    const moves: MoveMeasurement[] = [];
    if (opts.phases.has('move')) {
      const peers = await startPeerBench(study);
      try {
        for (let round = 1; opts.phases.has('move') && round <= opts.rounds; round++) {
          const order = round % 2 ? (['storescp', 'scannode'] as const) : (['scannode', 'storescp'] as const);
          for (const kind of order) {
            const m = await measureMove(peers, cli, tmp, kind, round, files.length);
            moves.push(m);
            console.log(
              `round ${round} move   C-MOVE from orthanc -> ${kind.padEnd(8)}: ${(m.ms / 1000).toFixed(3)} s, ` +
                `${f1(m.instPerSec)} inst/s`,
            );
          }
        }
      } finally {
        await peers.stop();
      }
    }

    // The completion latency (test/bench/completion.ts): its own dcmqrscp scanner and node per round.
    let completion: Awaited<ReturnType<typeof benchCompletion>> | undefined;
    if (opts.phases.has('complete')) {
      completion = await benchCompletion({ rounds: opts.rounds });
      console.log('\ncompletion latency (dcmqrscp as the scanner, default config):');
      for (const line of table(completion.rows)) console.log(line);
    }
    let forward: ForwardFigures | undefined;
    if (opts.phases.has('forward')) forward = await benchForward(tmp, files, opts.rounds);
    let cluster: ClusterFigures | undefined;
    if (opts.phases.has('cluster')) cluster = await benchCluster(tmp, cli, files, opts.rounds);
    const figures: Figures = {
      instances: files.length,
      senders: SENDERS,
      single: rates(measurements, 'single'),
      multi: rates(measurements, 'multi'),
      rss,
      rssLabels: rss.map((r) => describe(bigObjects.find((b) => b.kind === r.object) ?? bigObjects[0]!)),
      moves,
      completion: completion?.json as Figures['completion'],
      importRatio: imported ? { files: imported.files, ratio: imported.ratio } : undefined,
      forward,
    };
    const rows = targetRows(figures);
    const totalS = (Date.now() - started) / 1000;
    const lines = [
      '',
      `summary: scannode against each receiver (medians over ${opts.rounds} round(s); ratio = scannode / other)`,
      ...formatTargets(rows),
    ];
    for (const [phase, r] of [
      ['1 association', figures.single],
      [`${SENDERS} senders`, figures.multi],
    ] as const) {
      for (const [kind, x] of Object.entries(r)) {
        if (kind === 'scannode' || !x) continue;
        lines.push(`per-round ratio, ${phase} vs ${kind}: ${x.perRoundRatio.map(f2).join(' ')}`);
      }
    }
    if (cluster) {
      const p = cluster.perImage;
      lines.push(
        `cluster (PostgreSQL, 3 senders): one node ${f1(cluster.one)} inst/s, three nodes behind haproxy ` +
          `${f1(cluster.three)} inst/s, ratio ${f2(cluster.ratio)} (${os.cpus().length} CPUs shared by all)`,
        `database work per received image (one node): ${f2(p.transactions)} transactions, ${f2(p.rowWrites)} row ` +
          `writes, ${f2(p.indexScans)} index scans, ${f2(p.seqScans)} sequential scans`,
      );
      const st = cluster.statements;
      if (st && 'unavailable' in st) lines.push(`statements per image: not measured (${st.unavailable})`);
      else if (st) {
        lines.push(`statements per received image (one node, pg_stat_statements): ${f2(st.perImage)} round trips`);
        for (const q of st.top) lines.push(`  ${f2(q.perImage)}  ${q.query}`);
      }
    }
    if (opts.quick) lines.push('QUICK run: smaller data and one round; the figures are a smoke test, not a result');
    lines.push(`bench took ${totalS.toFixed(0)} s; load average at the end ${loadavg()} (other work skews it)`);
    console.log(lines.join('\n'));

    let profile: ReturnType<typeof summarize> | undefined;
    if (opts.profile) {
      const profs = profileFiles([path.join(profDir, 'single')]);
      if (profs.length) {
        profile = summarize(profs, { top: 30, window: 'pipeline/ingest.js' });
        console.log(`\ncpu profile of scannode, single-association runs (${profDir}/single):`);
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
      quick: opts.quick,
      profile: opts.profile,
      study: { instances: files.length, bytes, rows: SIZE, columns: SIZE, series: SERIES },
      targets: rows,
      single: figures.single,
      multi: { senders: SENDERS, ...figures.multi },
      rss,
      measurements,
      import: imported,
      move: moves,
      complete: completion?.json,
      forward,
      cluster,
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
