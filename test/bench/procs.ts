import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Environment for DCMTK tools: Debian's DCMTK leaves Nagle on (44 ms stalls per C-STORE) unless told. */
export const dcmtkEnv = { ...process.env, TCP_NODELAY: '1' };

/** Every child this benchmark started and has not seen exit yet; stopped by pid on the way out. */
const live = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.on('exit', () => live.delete(child));
  return child;
}

/** Kills every child still running, each by its own pid. */
export function killAll(): void {
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Waits until 127.0.0.1:port accepts a connection (or the child dies / time runs out). */
export async function waitForPort(port: number, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`process ${child.pid} exited (${child.exitCode ?? child.signalCode}) before port ${port} opened`);
    }
    if (await tryConnect(port)) return;
    await sleep(50);
  }
  throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Sends SIGTERM to the child's pid and waits for it to exit (SIGKILL after the grace time). */
export function stopChild(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  const pid = child.pid;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    process.kill(pid, 'SIGTERM');
  });
}

export interface Captured {
  child: ChildProcess;
  output(): string;
}

/** Starts a child with stdout+stderr captured (last 64 KiB kept, enough for an error report). */
export function startCaptured(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = dcmtkEnv,
  /** Also append everything the child prints to this file. */
  logFile?: string,
): Captured {
  const child = track(spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  const keep = (d: Buffer) => {
    if (logFile) fs.appendFileSync(logFile, d);
    out += d.toString();
    if (out.length > 65536) out = out.slice(-65536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => out };
}

export interface RunResult {
  code: number | null;
  ms: number;
  output: string;
}

/** Runs a command to its end and measures its wall time (from spawn to exit). */
export function timedRun(cmd: string, args: string[], timeoutMs = 600_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const { child, output } = startCaptured(cmd, args);
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, output: output() });
    });
  });
}

/** Reads a "VmXXX:   1234 kB" line of /proc/<pid>/status, in bytes (undefined when the process is gone). */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Number of regular files directly in dir whose name ends with ext ('' for any). */
export function countFiles(dir: string, ext = ''): number {
  if (!fs.existsSync(dir)) return 0;
  return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(ext)).length;
}

/** Number of regular files under dir (recursive). */
export function countFilesRecursive(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += countFilesRecursive(p);
    else if (e.isFile()) n++;
  }
  return n;
}
