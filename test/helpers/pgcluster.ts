/** A PostgreSQL cluster the test owns (initdb in a temp dir, pg_ctl on a free port, as the postgres user). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { CI, freePort } from './peers.js';

export interface PgCluster {
  url: string;
  stop(): void;
  start(): void;
  destroy(): void;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return undefined;
  const v = fs.readdirSync(root).sort((a, b) => Number(b) - Number(a))[0];
  return v && fs.existsSync(path.join(root, v, 'bin', 'pg_ctl')) ? path.join(root, v, 'bin') : undefined;
}

/** Why a cluster of our own cannot run here (undefined: it can). */
export function ownClusterUnavailable(): string | undefined {
  if (!binDir()) return 'PostgreSQL server binaries not found under /usr/lib/postgresql/<version>/bin';
  if (process.getuid?.() !== 0) return 'runs the cluster as the postgres user: needs root';
  return undefined;
}

/** Never the machine's shared server: a cluster of our own, stopped and removed in cleanup. */
export async function ownCluster(t: TestContext): Promise<PgCluster | undefined> {
  const why = ownClusterUnavailable();
  if (why) {
    if (CI) throw new Error(why);
    t.skip(why);
    return undefined;
  }
  const c = await startOwnCluster({ settings: ['fsync=off'] });
  t.after(() => c.destroy());
  return c;
}

/**
 * Starts a cluster of our own (initdb, pg_ctl as the postgres user, 127.0.0.1 on a free port) with a database
 * `scannode`; `settings` are more `-c` options (the bench loads pg_stat_statements). The caller destroys it.
 */
export async function startOwnCluster(o: { settings?: string[] } = {}): Promise<PgCluster> {
  const why = ownClusterUnavailable();
  if (why) throw new Error(why);
  const bin = binDir()!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scannode-pg-'));
  fs.chmodSync(dir, 0o755);
  execFileSync('chown', ['postgres:postgres', dir]);
  const data = path.join(dir, 'data');
  const as = (cmd: string, args: string[]) =>
    execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { stdio: 'pipe', cwd: dir });
  as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres']);
  const port = await freePort();
  const extra = (o.settings ?? []).map((c) => `-c ${c}`).join(' ');
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 ${extra}`;
  const start = () => void as('pg_ctl', ['-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', 'start']);
  const stop = () => void as('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  start();
  as('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'scannode']);
  let destroyed = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/scannode`,
    stop,
    start,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        stop();
      } catch {
        // already stopped
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
