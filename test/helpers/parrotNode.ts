/**
 * The node under attack, run as a child process (`node dist/src/cli.js start --config ...`) so that a peer that kills
 * it is counted as a death instead of taking the test runner down, and so that its own RSS can be read from
 * /proc/<pid>/status without the test's sockets and buffers in the figure. Restartable on the same port and dataDir.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, stopProcess, waitForPort } from './peers.js';
import { listFiles } from './files.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');

export interface NodeProcess {
  port: number;
  dir: string;
  dataDir: string;
  readonly pid: number | undefined;
  alive(): boolean;
  /** How the last child ended (exit code or signal), for the report. */
  exitInfo(): string | undefined;
  /** The last lines the node printed. */
  log(): string;
  /** Start again on the same port and data after a death. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
  /** Resident set size now and its peak (VmRSS, VmHWM) in KiB, from /proc. */
  memory(): { rssKiB: number; hwmKiB: number } | undefined;
  /** Resets VmHWM to the current RSS (writes 5 to /proc/<pid>/clear_refs); false when the kernel refuses. */
  resetPeak(): boolean;
  /** Files under incoming/ (spool, .part, conflicts) and site/raw (archive), relative to dataDir. */
  storedFiles(): string[];
}

export async function startNodeProcess(dicom: Record<string, unknown>): Promise<NodeProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-edge-'));
  const port = await freePort();
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify(
      {
        dicom: { host: '127.0.0.1', port, shutdownGraceSeconds: 1, ...dicom },
        http: { port: 0 },
        dataDir: './data',
        log: { level: process.env.SCANNODE_TEST_LOG ?? 'warn' },
        scheduler: { enabled: false },
        import: { watchInbox: false },
      },
      null,
      2,
    ),
  );
  let child: ChildProcess | undefined;
  let output = '';
  const launch = async (): Promise<void> => {
    const c = spawn(process.execPath, [CLI, 'start', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-8000));
    c.stdout!.on('data', keep);
    c.stderr!.on('data', keep);
    try {
      await waitForPortOrExit(c, port);
    } catch (err) {
      await stopProcess(c);
      throw new Error(`the node did not start: ${(err as Error).message}\n${output.slice(-3000)}`);
    }
  };
  try {
    await launch();
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const dataDir = path.join(dir, 'data');
  const proc = (): string => `/proc/${child?.pid}/status`;
  return {
    port,
    dir,
    dataDir,
    get pid() {
      return child?.pid;
    },
    alive: () => !!child && child.exitCode === null && child.signalCode === null,
    exitInfo: () =>
      child && (child.exitCode !== null || child.signalCode !== null)
        ? `exit ${child.exitCode ?? ''}${child.signalCode ?? ''}`
        : undefined,
    log: () => output,
    restart: async () => {
      if (child) await stopProcess(child);
      await launch();
    },
    stop: async () => {
      if (child) await stopProcess(child);
    },
    destroy: async () => {
      if (child) await stopProcess(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
    memory: () => {
      try {
        const status = fs.readFileSync(proc(), 'utf8');
        const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
        return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
      } catch {
        return undefined;
      }
    },
    resetPeak: () => {
      try {
        fs.writeFileSync(`/proc/${child?.pid}/clear_refs`, '5');
        return true;
      } catch {
        return false;
      }
    },
    storedFiles: () =>
      ['incoming', path.join('site', 'raw')].flatMap((d) =>
        listFiles(path.join(dataDir, d)).map((f) => path.relative(dataDir, f)),
      ),
  };
}

async function waitForPortOrExit(c: ChildProcess, port: number): Promise<void> {
  let onExit: ((code: number | null, sig: string | null) => void) | undefined;
  const exited = new Promise<never>((_, reject) => {
    onExit = (code, sig) => reject(new Error(`exited (${code ?? sig}) before listening`));
    c.once('exit', onExit);
  });
  try {
    await Promise.race([waitForPort(port, 30_000), exited]);
  } finally {
    c.off('exit', onExit!);
    exited.catch(() => undefined);
  }
}
