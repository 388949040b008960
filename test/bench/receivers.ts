/**
 * The C-STORE receivers `npm run bench` compares, each started fresh for one measurement and stopped by its pid:
 * scannode, DCMTK storescp (one process; or --fork, one child per association), the same with the fsync shim
 * preloaded (fsyncShim.ts), and Orthanc with its defaults (test/helpers/orthanc.ts). Plus one timed send with the
 * honesty check that every instance sent is stored (and, for scannode, indexed).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startOrthanc } from '../helpers/orthanc.js';
import { shimEnv } from './fsyncShim.js';
import { scannodeConfig } from './peers.js';
import {
  countFiles,
  countFilesRecursive,
  dcmtkEnv,
  freePort,
  startCaptured,
  stopChild,
  timedRun,
  waitForPort,
  type Captured,
} from './procs.js';

export type Receiver =
  'scannode' | 'storescp' | 'storescp+fsync' | 'orthanc' | 'storescp --fork' | 'storescp --fork+fsync';

export interface BenchContext {
  /** dist/src/cli.js */
  cli: string;
  /** The fsync shim's shared object. */
  shim: string;
  /** Where `--profile` puts scannode's CPU profiles (one folder per tag). */
  profDir: string;
  profile: boolean;
  nodeArgs: string[];
  scannodeLog: string | undefined;
}

export interface Receiving {
  kind: Receiver;
  port: number;
  aet: string;
  pid: number | undefined;
  /** Output so far (for error reports). */
  output(): string;
  /**
   * Stops it by pid (throws when scannode did not exit cleanly) and says how many instances it held: files on disk
   * (Orthanc: its instance count, read just before the stop), for scannode also rows in its index.
   */
  finish(): Promise<{ files: number; rows?: number }>;
  /** scannode's received files (for the RSS phase). */
  storeDir?: string;
}

async function waitReady(kind: Receiver, port: number, proc: Captured): Promise<void> {
  try {
    await waitForPort(port, proc.child, 30_000);
  } catch (err) {
    throw new Error(`${kind} did not start: ${(err as Error).message}\n${proc.output()}`);
  }
}

async function startStorescp(kind: Receiver, base: string, ctx: BenchContext): Promise<Receiving> {
  const storeDir = path.join(base, 'out');
  fs.mkdirSync(storeDir, { recursive: true });
  const port = await freePort();
  // -pm unknown SOP classes, +xa every transfer syntax; --fork: one child process per association
  const args = ['-pm', '+xa', '-od', storeDir, String(port)];
  if (kind.includes('--fork')) args.unshift('--fork');
  const env = kind.endsWith('+fsync') ? shimEnv(ctx.shim, dcmtkEnv) : dcmtkEnv;
  const proc = startCaptured('storescp', args, env);
  await waitReady(kind, port, proc);
  return {
    kind,
    port,
    aet: 'STORESCP',
    pid: proc.child.pid,
    output: proc.output,
    async finish() {
      await stopChild(proc.child);
      return { files: countFilesRecursive(storeDir) };
    },
  };
}

export async function startScannode(base: string, ctx: BenchContext, profileTag?: string): Promise<Receiving> {
  fs.mkdirSync(base, { recursive: true });
  const port = await freePort();
  const cfgFile = scannodeConfig(base, port);
  const nodeArgs: string[] = [...ctx.nodeArgs];
  if (ctx.profile && profileTag !== undefined) {
    const dir = path.join(ctx.profDir, profileTag);
    fs.mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', '--cpu-prof-dir', dir);
  }
  const proc = startCaptured(
    process.execPath,
    [...nodeArgs, ctx.cli, 'start', '--config', cfgFile],
    process.env,
    ctx.scannodeLog,
  );
  await waitReady('scannode', port, proc);
  const storeDir = path.join(base, 'data', 'incoming');
  const dbFile = path.join(base, 'data', 'db.sqlite'); // database.path is relative to dataDir
  return {
    kind: 'scannode',
    port,
    aet: 'SCANNODE',
    pid: proc.child.pid,
    output: proc.output,
    storeDir,
    async finish() {
      // after a clean stop: whatever the receive path finishes after its answer is finished too
      await stopChild(proc.child);
      if (proc.child.exitCode !== 0) {
        throw new Error(`scannode exited ${proc.child.exitCode ?? proc.child.signalCode}:\n${proc.output()}`);
      }
      return { files: countFiles(storeDir, '.dcm'), rows: dbInstanceCount(dbFile) };
    },
  };
}

/** Orthanc with its defaults (SQLite index, synchronous storage), accepting any calling AE. */
async function startOrthancReceiver(): Promise<Receiving> {
  const orthanc = await startOrthanc();
  return {
    kind: 'orthanc',
    port: orthanc.port,
    aet: orthanc.aeTitle,
    pid: orthanc.pid,
    output: orthanc.log,
    async finish() {
      try {
        const stats = (await orthanc.get('/statistics')) as { CountInstances: number };
        return { files: stats.CountInstances };
      } finally {
        await orthanc.destroy();
      }
    },
  };
}

export function startReceiver(kind: Receiver, base: string, ctx: BenchContext, profileTag?: string) {
  fs.mkdirSync(base, { recursive: true });
  if (kind === 'scannode') return startScannode(base, ctx, profileTag);
  if (kind === 'orthanc') return startOrthancReceiver();
  return startStorescp(kind, base, ctx);
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

/** Sends `parts` (one storescu each, all started at once); the wall time from the first start to the last exit. */
export async function sendAll(r: Receiving, parts: string[][], extraArgs: string[] = []): Promise<number> {
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(
    parts.map((files) =>
      timedRun('storescu', [...extraArgs, '-aet', 'BENCH', '-aec', r.aet, '127.0.0.1', String(r.port), ...files]),
    ),
  );
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const res of results) {
    if (res.code !== 0) throw new Error(`storescu -> ${r.kind} exited ${res.code}:\n${res.output.slice(-4000)}`);
  }
  return ms;
}

export interface Measurement {
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

/** One fresh receiver, one timed send of `parts`, then the check that everything sent is stored. */
export async function measure(
  tmp: string,
  phase: 'single' | 'multi',
  kind: Receiver,
  round: number,
  parts: string[][],
  bytes: number,
  ctx: BenchContext,
): Promise<Measurement> {
  const base = fs.mkdtempSync(path.join(tmp, `${kind.replace(/[^a-z]+/g, '-')}-${phase}-r${round}-`));
  const instances = parts.reduce((n, p) => n + p.length, 0);
  const r = await startReceiver(kind, base, ctx, phase);
  let ms: number;
  try {
    ms = await sendAll(r, parts);
  } catch (err) {
    await r.finish().catch(() => undefined);
    throw err;
  }
  const stored = await r.finish();
  if (stored.files !== instances || (stored.rows !== undefined && stored.rows !== instances)) {
    throw new Error(
      `${kind} ${phase} round ${round}: ${stored.files} stored, ${stored.rows ?? '-'} indexed, ${instances} sent\n` +
        r.output(),
    );
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
