/** A real second file system for tests: a tmpfs mounted on a folder (root only), unmounted in cleanup. */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { CI } from './peers.js';

export interface Tmpfs {
  dir: string;
  /** Changes its size (bytes): a full disk gets room again. */
  resize(bytes: number): void;
  unmount(): void;
}

/**
 * Mounts a tmpfs of `bytes` on `dir` (created when missing). When mounting is not permitted (not root, no
 * CAP_SYS_ADMIN in a container) the test is skipped with the reason, and fails under CI=true.
 */
export function mountTmpfs(t: TestContext, dir: string, bytes: number): Tmpfs | undefined {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    const why = `cannot mount a tmpfs (root needed): ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`;
    if (CI) throw new Error(why);
    t.skip(why);
    return undefined;
  }
  let mounted = true;
  const m: Tmpfs = {
    dir,
    resize(n: number) {
      execFileSync('mount', ['-o', `remount,size=${n}`, dir], { stdio: 'pipe' });
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    },
  };
  t.after(() => m.unmount());
  return m;
}
