/**
 * Docker for the image test (test/install/docker.test.ts): a dockerd of the test's own (bridge and iptables off,
 * containers on the host network only; its socket and pid file under /run/scannode-docker/, its images and build cache
 * under /var/cache/scannode-ci/docker/ so they are reused by the next run), the base image imported from the cached
 * debootstrap root, and docker / docker-compose run against that daemon.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { CI, run, type RunOptions } from './peers.js';

const RUN_DIR = '/run/scannode-docker';
const CACHE_DIR = process.env.CI_DEBIAN_CACHE ?? '/var/cache/scannode-ci';
export const DOCKER_HOST = `unix://${RUN_DIR}/docker.sock`;

/** The environment docker and docker-compose run with: our daemon, the classic builder (no buildx here). */
export function dockerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, DOCKER_HOST, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0', ...extra };
}

/** docker or docker-compose (`cmd`) against our daemon. */
export function docker(cmd: string, args: string[], o: RunOptions = {}) {
  return run(cmd, args, { env: dockerEnv(), ...o });
}

/** Runs a command that must succeed; its output otherwise makes the error. */
export async function must(cmd: string, args: string[], o: RunOptions = {}): Promise<string> {
  const r = await docker(cmd, args, o);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export interface Dockerd {
  /** Stops the daemon if this test started it (by its pid), after its containers are gone. */
  stop(): Promise<void>;
}

const answers = async () => (await docker('docker', ['version'], { timeoutMs: 10_000 })).code === 0;

/**
 * Our dockerd, started when its socket does not answer. Where it cannot start (no privileges, no overlay), the test is
 * skipped with the reason from its log, except under CI=true.
 */
export async function startDockerd(t: TestContext): Promise<Dockerd | undefined> {
  if (await answers()) return { stop: async () => undefined };
  fs.mkdirSync(RUN_DIR, { recursive: true });
  fs.mkdirSync(path.join(CACHE_DIR, 'docker'), { recursive: true });
  const log = path.join(CACHE_DIR, 'docker', 'dockerd.log');
  const out = fs.openSync(log, 'w');
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      `--data-root=${path.join(CACHE_DIR, 'docker', 'data')}`,
      `--exec-root=${path.join(RUN_DIR, 'exec')}`,
      `--host=${DOCKER_HOST}`,
      `--pidfile=${path.join(RUN_DIR, 'docker.pid')}`,
    ],
    { stdio: ['ignore', out, out] },
  );
  fs.closeSync(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    if (await answers()) return { stop };
    await new Promise((r) => setTimeout(r, 500));
  }
  await stop();
  const reason = `dockerd did not start: ${fs.readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ')}`;
  if (CI) throw new Error(reason);
  t.skip(reason);
  return undefined;
}

/**
 * The base image made from the cached Debian root (.ci/debian-root.sh): imported once per build of that root, then
 * found by its tag. Returns the tag and whether it was imported now.
 */
export async function baseImage(root: string): Promise<{ tag: string; imported: boolean }> {
  const stamp = fs
    .readFileSync(path.join(root, '.scannode-ci-ready'), 'utf8')
    .trim()
    .replace(/[^0-9A-Za-z]/g, '');
  const tag = `scannode-ci-base:${path.basename(root).slice(0, 100)}-${stamp}`;
  if ((await docker('docker', ['image', 'inspect', tag], { timeoutMs: 30_000 })).code === 0) {
    return { tag, imported: false };
  }
  const tar = spawn('tar', ['-C', root, '--exclude=./.scannode-ci-ready', '-c', '.'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await must('docker', ['import', '-m', `debootstrap ${path.basename(root)}`, '-', tag], {
    input: tar.stdout,
    timeoutMs: 10 * 60_000,
  });
  return { tag, imported: true };
}

/** `docker build` of `dockerfile` with `context`, on the host network (apt and npm reach their mirrors), from `base`. */
export async function buildImage(context: string, dockerfile: string, tag: string, base: string): Promise<void> {
  await must(
    'docker',
    ['build', '--network', 'host', '--build-arg', `BASE=${base}`, '-f', dockerfile, '-t', tag, context],
    {
      timeoutMs: 15 * 60_000,
    },
  );
}
