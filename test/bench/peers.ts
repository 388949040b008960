/**
 * The parts of `npm run bench` that involve other peers (issues 4 and 5), run from run.ts:
 *  - import:   the import bench (import.ts) in its own process; its figures are read from test-output/bench-import.json
 *  - move:     C-MOVE of a 400-image study from Orthanc to DCMTK storescp vs to scannode, alternating rounds
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cMove } from '../../src/dimse/scu.js';
import type { GeneratedInstance } from '../helpers/dicomgen.js';
import { startOrthanc, type OrthancPeer } from '../helpers/orthanc.js';
import { countFiles, countFilesRecursive, freePort, startCaptured, stopChild, waitForPort } from './procs.js';

export interface ImportFigures {
  files: number;
  bytes: number;
  results: Array<{ tool: string; round: number; seconds: number; filesPerSecond: number; mbPerSecond: number }>;
  ratio: number;
}

/** Runs dist/test/bench/import.js and returns what it wrote to test-output/bench-import.json. */
export function runImportBench(root: string, rounds: number): ImportFigures {
  const script = path.join(root, 'dist/test/bench/import.js');
  const r = spawnSync(process.execPath, [script, '--rounds', String(rounds)], { encoding: 'utf8', stdio: 'pipe' });
  process.stdout.write(r.stdout.replace(/^/gm, 'import: '));
  if (r.status !== 0) throw new Error(`import bench exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(fs.readFileSync(path.join(root, 'test-output', 'bench-import.json'), 'utf8')) as ImportFigures;
}

export interface MoveMeasurement {
  receiver: 'storescp' | 'scannode';
  round: number;
  ms: number;
  instances: number;
  instPerSec: number;
}

export interface PeerBench {
  orthanc: OrthancPeer;
  storescpPort: number;
  scannodePort: number;
  studyUid: string;
  stop(): Promise<void>;
}

const CALLING_AE = 'BENCH';

/** Starts Orthanc with BENCH, STORESCP and SCANNODE in DicomModalities and loads the study into it (REST). */
export async function startPeerBench(study: GeneratedInstance[]): Promise<PeerBench> {
  const storescpPort = await freePort();
  const scannodePort = await freePort();
  const benchPort = await freePort();
  const orthanc = await startOrthanc({
    modalities: [
      { aeTitle: CALLING_AE, port: benchPort },
      { aeTitle: 'STORESCP', port: storescpPort },
      { aeTitle: 'SCANNODE', port: scannodePort },
    ],
    extra: { DicomAssociationCloseDelay: 0 },
  });
  const t0 = Date.now();
  const queue = study.map((s) => s.file);
  const uploader = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) await orthanc.upload([f]);
  };
  await Promise.all([uploader(), uploader(), uploader(), uploader()]);
  console.log(`orthanc: ${study.length} instances loaded over REST in ${Date.now() - t0} ms`);
  const studyUid = study[0]?.studyInstanceUid ?? '';
  return { orthanc, storescpPort, scannodePort, studyUid, stop: () => orthanc.destroy() };
}

/** Writes a bench node's config.json (SQLite, HTTP on any port, warnings only) and returns its path. */
export function scannodeConfig(base: string, port: number, extra: Record<string, unknown> = {}): string {
  const config = {
    dicom: { host: '127.0.0.1', port },
    dataDir: path.join(base, 'data'),
    database: { type: 'sqlite', path: 'db.sqlite' },
    http: { port: 0 },
    log: { level: 'warn' },
    ...extra,
  };
  const file = path.join(base, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

async function startScannode(cli: string, base: string, port: number, extra: Record<string, unknown>) {
  fs.mkdirSync(base, { recursive: true });
  const cfg = scannodeConfig(base, port, extra);
  const proc = startCaptured(process.execPath, [cli, 'start', '--config', cfg], process.env);
  try {
    await waitForPort(port, proc.child, 30_000);
  } catch (err) {
    throw new Error(`scannode did not start: ${(err as Error).message}\n${proc.output()}`);
  }
  return proc;
}

/** One C-MOVE of the whole study (STUDY level) from Orthanc to `receiver`. */
export async function measureMove(
  peers: PeerBench,
  cli: string,
  tmp: string,
  receiver: 'storescp' | 'scannode',
  round: number,
  expected: number,
): Promise<MoveMeasurement> {
  const base = fs.mkdtempSync(path.join(tmp, `move-${receiver}-r${round}-`));
  const storeDir = receiver === 'storescp' ? path.join(base, 'out') : path.join(base, 'data', 'incoming');
  let proc;
  if (receiver === 'storescp') {
    fs.mkdirSync(storeDir, { recursive: true });
    proc = startCaptured('storescp', ['-od', storeDir, '+xa', '-pm', String(peers.storescpPort)]);
    await waitForPort(peers.storescpPort, proc.child, 30_000);
  } else {
    proc = await startScannode(cli, base, peers.scannodePort, { scheduler: { enabled: false } });
  }
  const dest = receiver === 'storescp' ? 'STORESCP' : 'SCANNODE';
  let ms: number;
  try {
    const t0 = process.hrtime.bigint();
    const res = await cMove(
      { aeTitle: peers.orthanc.aeTitle, host: '127.0.0.1', port: peers.orthanc.port },
      CALLING_AE,
      dest,
      'STUDY',
      { studyInstanceUid: peers.studyUid },
      { timeoutMs: 120_000 },
    );
    ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 0 || res.completed !== expected) {
      throw new Error(
        `C-MOVE -> ${dest}: status 0x${res.status.toString(16)}, ${res.completed} completed, ${res.failed} failed`,
      );
    }
  } catch (err) {
    await stopChild(proc.child);
    throw new Error(`${(err as Error).message}\n${proc.output()}`);
  }
  const onDisk = receiver === 'storescp' ? countFilesRecursive(storeDir) : countFiles(storeDir, '.dcm');
  await stopChild(proc.child);
  if (onDisk !== expected) throw new Error(`move -> ${receiver} round ${round}: ${onDisk} files, ${expected} moved`);
  fs.rmSync(base, { recursive: true, force: true });
  return { receiver, round, ms, instances: expected, instPerSec: expected / (ms / 1000) };
}

/**
 * scannode with requireMpps and the scheduler on, Orthanc (holding the study) as its scanner: MPPS N-CREATE, N-SET
 * with the Performed Series Sequence, N-SET COMPLETED, then storescu sends the study; the time from storescu's exit
 * to finished-scans/<StudyUID>.json (polled every 10 ms).
 */
