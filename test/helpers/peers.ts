import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';

export const CI = process.env.CI === 'true';
export const PYDICOM_DATA = '/usr/lib/python3/dist-packages/pydicom/data';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Skips the test with its reason when a peer is missing on a laptop; under CI=true a missing peer is a failure.
 * Returns false when the test must stop.
 */
export function needPeer(t: TestContext, ...cmds: string[]): boolean {
  const missing = cmds.filter((c) => !has(c));
  if (missing.length === 0) return true;
  const reason = `peer missing: ${missing.join(', ')} (apt-get install -y dcmtk orthanc python3-pydicom)`;
  if (CI) throw new Error(reason);
  t.skip(reason);
  return false;
}

/**
 * Skips the test when its suite's node did not start (its database is unavailable on a laptop: the suite's set-up
 * printed why); under CI=true that is a failure. Returns false when the test must stop.
 */
export function needNode<T>(t: TestContext, node: T | undefined): node is T {
  if (node) return true;
  const reason = "this suite's node did not start (its database is unavailable; see the skipped line above)";
  if (CI) throw new Error(reason);
  t.skip(reason);
  return false;
}

/** Environment for DCMTK tools: Debian's DCMTK leaves Nagle on (44 ms stalls per C-STORE) unless told. */
export const dcmtkEnv = { ...process.env, TCP_NODELAY: '1' };

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Default: dcmtkEnv. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Piped to the command's standard input (default: none). */
  input?: NodeJS.ReadableStream;
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? dcmtkEnv, cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input) opts.input.pipe(child.stdin);
    else child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A started child we stop by its own pid. */
export function startProcess(cmd: string, args: string[]): ChildProcess {
  return spawn(cmd, args, { env: dcmtkEnv, stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The one DCMTK storescu wrapper of the tests: to a node on 127.0.0.1, called AE `aec` (default SCANNODE), calling
 * AE `aet` (default storescu's own); `files` are files, directories with `+sd`, or more options.
 */
export function storescu(
  node: { port: number },
  files: ReadonlyArray<string | { file: string }>,
  o: { aet?: string; aec?: string } = {},
): Promise<RunResult> {
  return run('storescu', [
    ...(o.aet ? ['-aet', o.aet] : []),
    '-aec',
    o.aec ?? 'SCANNODE',
    '127.0.0.1',
    String(node.port),
    ...files.map((f) => (typeof f === 'string' ? f : f.file)),
  ]);
}

/** storescu that must succeed (every file acknowledged); nothing to send is nothing to do. */
export async function storeAll(
  node: { port: number },
  files: ReadonlyArray<string | { file: string }>,
  o: { aet?: string; aec?: string } = {},
): Promise<void> {
  if (!files.length) return;
  const r = await storescu(node, files, o);
  if (r.code !== 0) throw new Error(`storescu exited with ${r.code}: ${r.stderr}`);
}
