/**
 * Import benchmark (issue 5; not a test): `scannode import FOLDER` vs loading the same files into Orthanc over its
 * REST API (POST /instances, 4 uploads in flight), in the same run, alternating rounds.
 *
 *   npm run build && node dist/test/bench/import.js [--rounds N] [--files N] [--size PIXELS]
 *
 * Results: printed, and written to test-output/bench-import.json. Every process started here is stopped by its pid.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { generateStudy } from '../helpers/dicomgen.js';
import { startOrthanc } from '../helpers/orthanc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'dist/src/cli.js');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

interface Result {
  tool: string;
  round: number;
  seconds: number;
  filesPerSecond: number;
  mbPerSecond: number;
}

async function main(): Promise<void> {
  const rounds = arg('rounds', 2);
  const files = arg('files', 400);
  const size = arg('size', 256);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-bench-import-'));
  const src = path.join(tmp, 'src');
  const generated = generateStudy({ dir: src, series: 2, perSeries: files / 2, rows: size, columns: size, ext: '' });
  const all = generated.map((g) => g.file);
  const bytes = all.reduce((n, f) => n + fs.statSync(f).size, 0);
  console.log(`${all.length} files, ${(bytes / 1e6).toFixed(1)} MB (${size}x${size} 16-bit)`);
  const results: Result[] = [];
  const record = (tool: string, round: number, seconds: number) => {
    const r = {
      tool,
      round,
      seconds,
      filesPerSecond: all.length / seconds,
      mbPerSecond: bytes / 1e6 / seconds,
    };
    results.push(r);
    console.log(
      `${tool.padEnd(34)} round ${round}: ${seconds.toFixed(2)} s, ${r.filesPerSecond.toFixed(0)} files/s, ${r.mbPerSecond.toFixed(1)} MB/s`,
    );
  };
  try {
    for (let round = 1; round <= rounds; round++) {
      // scannode: a fresh data dir and SQLite database each round (so nothing is a duplicate).
      const dataDir = path.join(tmp, `data${round}`);
      const cfg = path.join(tmp, `config${round}.json`);
      fs.writeFileSync(cfg, JSON.stringify({ dataDir, database: { type: 'sqlite' }, log: { level: 'error' } }));
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [CLI, 'import', src, '--config', cfg], { encoding: 'utf8' });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`scannode import failed: ${r.stderr}`);
      record('scannode (process, incl. start-up)', round, seconds);
      // The import itself, as a running daemon's inbox or REST import does it (no process start, no database open).
      const rate = /\(([\d.]+) MB\/s, ([\d.]+) files\/s\)/.exec(r.stdout);
      if (rate) record('scannode', round, all.length / Number(rate[2]));
      fs.rmSync(dataDir, { recursive: true, force: true });

      const orthanc = await startOrthanc();
      try {
        const t1 = process.hrtime.bigint();
        const queue = [...all];
        const uploader = async () => {
          for (let f = queue.shift(); f; f = queue.shift()) await orthanc.upload([f]);
        };
        await Promise.all([uploader(), uploader(), uploader(), uploader()]);
        record('orthanc', round, Number(process.hrtime.bigint() - t1) / 1e9);
      } finally {
        await orthanc.destroy();
      }
    }
    const best = (tool: string) => Math.max(...results.filter((r) => r.tool === tool).map((r) => r.filesPerSecond));
    const ratio = best('scannode') / best('orthanc');
    console.log(
      `best files/s: scannode ${best('scannode').toFixed(0)}, orthanc ${best('orthanc').toFixed(0)}: ${ratio.toFixed(2)}x (target >= 2x)`,
    );
    fs.mkdirSync(path.join(ROOT, 'test-output'), { recursive: true });
    fs.writeFileSync(
      path.join(ROOT, 'test-output', 'bench-import.json'),
      JSON.stringify({ files: all.length, bytes, size, results, ratio }, null, 2),
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
