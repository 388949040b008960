// A clean Debian root for the host-install test: the cached debootstrap (.ci/debian-root.sh), copied per run, and
// commands run inside it with chroot, the way its systemd unit would run them (PID 1 is not systemd here).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { CI, run, type RunResult } from './peers.js';

export const REPO = path.resolve(import.meta.dirname, '../../..');

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function hasTools(...cmds: string[]): boolean {
  return cmds.every(has);
}

/** Skips (or, under CI=true, fails) when a tool is missing; false when the test must stop. */
export function needTools(t: TestContext, why: string, ...cmds: string[]): boolean {
  const missing = cmds.filter((c) => !has(c));
  if (missing.length === 0) return true;
  const reason = `${why}: ${missing.join(', ')} missing`;
  if (CI) throw new Error(reason);
  t.skip(reason);
  return false;
}

/**
 * The cached Debian root (built by .ci/debian-root.sh the first time, a few minutes), or undefined after skipping:
 * it needs root (debootstrap, chroot, mounts) and debootstrap.
 */
export async function cachedDebianRoot(t: TestContext): Promise<string | undefined> {
  if (process.getuid?.() !== 0) {
    const reason = 'the install test needs root (debootstrap, chroot)';
    if (CI) throw new Error(reason);
    t.skip(reason);
    return undefined;
  }
  if (!needTools(t, 'the install test needs', 'debootstrap', 'unshare', 'chroot', 'python3')) return undefined;
  const built = await run('bash', [path.join(REPO, '.ci/debian-root.sh')], { timeoutMs: 30 * 60_000 });
  if (built.code !== 0) throw new Error(`.ci/debian-root.sh failed:\n${built.stderr}`);
  if (built.stderr.trim()) t.diagnostic(built.stderr.trim());
  return built.stdout.trim();
}

export const BUILD_TOOLS = ['dpkg-deb', 'dpkg-shlibdeps'];

/**
 * The .deb under test: the one named by TEST_SCANNODE_DEB (CI builds it once with `npm run package`), or one built
 * now by .ci/package-deb.sh into `outDir` (a minute or two: it compiles the sources afresh).
 */
export async function debUnderTest(outDir: string): Promise<{ deb?: string; failure?: string; took: string }> {
  const started = Date.now();
  const took = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const given = process.env.TEST_SCANNODE_DEB;
  if (given) {
    if (!fs.existsSync(given)) return { failure: `TEST_SCANNODE_DEB=${given}: no such file`, took: '' };
    return { deb: path.resolve(given), took: 'prebuilt (TEST_SCANNODE_DEB)' };
  }
  const r = await run('bash', [path.join(REPO, '.ci/package-deb.sh'), '--out', outDir], { timeoutMs: 20 * 60_000 });
  if (r.code !== 0) return { failure: `${r.stdout}\n${r.stderr}`, took: took() };
  const name = fs.existsSync(outDir) ? fs.readdirSync(outDir).find((f) => f.endsWith('.deb')) : undefined;
  return name ? { deb: path.join(outDir, name), took: took() } : { failure: `no .deb in ${outDir}`, took: took() };
}

/**
 * A private copy of the cached root (reflinked where the file system can). Its dpkg skips the fsync of every unpacked
 * file (force-unsafe-io, as debootstrap itself does): the copy is thrown away, and the package has some 13,000 files.
 */
export async function copyRoot(base: string, dest: string): Promise<void> {
  const r = await run('cp', ['-a', '--reflink=auto', `${base}/.`, dest], { timeoutMs: 10 * 60_000 });
  if (r.code !== 0) throw new Error(`cannot copy the Debian root: ${r.stderr}`);
  fs.writeFileSync(path.join(dest, 'etc/dpkg/dpkg.cfg.d/scannode-test-unsafe-io'), 'force-unsafe-io\n');
}

/** POSIX shell single-quoting. */
export function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * argv that runs `script` (sh) inside `root`: chroot in a mount namespace of its own with /proc mounted (gone with the
 * process), a clean environment. Every step execs, so the spawned pid is the pid of what `script` execs last.
 */
function chrootArgv(root: string, script: string): string[] {
  return [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount -t proc proc "$0/proc" && exec chroot "$0" /usr/bin/env -i PATH="$1" LANG=C.UTF-8 /bin/sh -c "$2"',
    root,
    PATH,
    script,
  ];
}

/** Runs a shell script as root inside the Debian root. */
export function inRoot(root: string, script: string, timeoutMs = 5 * 60_000): Promise<RunResult> {
  const [cmd, ...args] = chrootArgv(root, script);
  return run(cmd!, args, { timeoutMs });
}

/** The [Service] settings of a unit file that decide how its ExecStart runs. */
export interface ServiceUnit {
  execStart: string;
  user: string;
  group: string;
  environment: Record<string, string>;
  workingDirectory: string;
  umask: string;
  noNewPrivileges: boolean;
  stateDirectory: string;
}

/** Reads the [Service] section of a systemd unit (one value per key; Environment= accumulates). */
export function parseServiceUnit(text: string): ServiceUnit {
  const values = new Map<string, string>();
  const environment: Record<string, string> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'Environment') {
      for (const pair of value.split(/\s+/)) {
        const i = pair.indexOf('=');
        environment[pair.slice(0, i)] = pair.slice(i + 1);
      }
    } else values.set(key, value);
  }
  const need = (key: string) => {
    const v = values.get(key);
    if (v === undefined) throw new Error(`the unit has no ${key}=`);
    return v;
  };
  return {
    execStart: need('ExecStart'),
    user: need('User'),
    group: values.get('Group') ?? need('User'),
    environment,
    workingDirectory: values.get('WorkingDirectory') ?? '/',
    umask: values.get('UMask') ?? '0022',
    noNewPrivileges: values.get('NoNewPrivileges') === 'yes',
    stateDirectory: values.get('StateDirectory') ?? '',
  };
}

/**
 * Starts the unit's ExecStart inside `root` as systemd would: as User/Group with their groups, no capabilities
 * (CapabilityBoundingSet= is empty), NoNewPrivileges, UMask, WorkingDirectory, a clean environment with the unit's
 * Environment= and the variables systemd sets (HOME, USER, LOGNAME, NOTIFY_SOCKET). The child's pid is the node's.
 */
export function startAsUnit(root: string, unit: ServiceUnit, extraEnv: Record<string, string>): ChildProcess {
  const home = unit.stateDirectory ? `/var/lib/${unit.stateDirectory}` : '/';
  const env = { HOME: home, USER: unit.user, LOGNAME: unit.user, PATH, ...unit.environment, ...extraEnv };
  const script = [
    `umask ${unit.umask}`,
    `cd ${sq(unit.workingDirectory)}`,
    [
      'exec setpriv',
      `--reuid=${sq(unit.user)} --regid=${sq(unit.group)} --init-groups`,
      '--bounding-set=-all --inh-caps=-all',
      unit.noNewPrivileges ? '--no-new-privs' : '',
      '/usr/bin/env -i',
      ...Object.entries(env).map(([k, v]) => sq(`${k}=${v}`)),
      unit.execStart,
    ].join(' '),
  ].join(' && ');
  const [cmd, ...args] = chrootArgv(root, script);
  return spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH } });
}

export interface NotifyListener {
  /** The messages received so far, e.g. "READY=1\nSTATUS=...". */
  messages: string[];
  /** Resolves with the first message containing `line` (e.g. READY=1). */
  waitFor(line: string, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Stands in for systemd's notify socket: an AF_UNIX datagram socket at `socketPath` (python3, since Node has no such
 * sockets), that takes messages and closes the file descriptors systemd-notify's barrier sends, as systemd does.
 */
export async function notifyListener(socketPath: string): Promise<NotifyListener> {
  const py = [
    'import json, os, socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'os.chmod(sys.argv[1], 0o666)',
    'print(json.dumps("BOUND"), flush=True)',
    'while True:',
    '    msg, fds, _flags, _addr = socket.recv_fds(s, 65536, 16)',
    '    for fd in fds: os.close(fd)',
    '    print(json.dumps(msg.decode()), flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', py, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  const waiters: Array<() => void> = [];
  let buffered = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      messages.push(JSON.parse(buffered.slice(0, nl)) as string);
      buffered = buffered.slice(nl + 1);
    }
    waiters.splice(0).forEach((w) => w());
  });
  const waitFor = (line: string, timeoutMs: number) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${line}" on the notify socket: ${messages}`)), timeoutMs);
      const check = () => {
        const found = messages.find((m) => m.split('\n').includes(line));
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(found);
        } else waiters.push(check);
      };
      check();
    });
  await waitFor('BOUND', 10_000);
  return {
    messages,
    waitFor,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(socketPath, { force: true });
    },
  };
}
