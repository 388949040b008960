/**
 * A marker while the node runs, in dataDir (or, when nodes share it, in the node's own spool folder: containers of
 * several nodes may all run as the same pid): found at start-up, it says the last run did not stop cleanly.
 */
import fs from 'node:fs';
import path from 'node:path';

const PREFIX = '.scannode-running.';

/** A process with this pid runs on this machine (EPERM: it exists but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates `dataDir/.scannode-running.<pid>` (fsynced) and tells whether a marker of a process that is gone was there:
 * a run that ended by kill -9, a crash or a power loss. Markers of other live processes (another node on the same
 * dataDir) are left alone. `clear` removes ours on a clean stop.
 */
export function startRunMarker(dataDir: string): { uncleanBefore: boolean; clear(): void } {
  let uncleanBefore = false;
  for (const name of fs.readdirSync(dataDir)) {
    if (!name.startsWith(PREFIX)) continue;
    const pid = Number(name.slice(PREFIX.length));
    if (Number.isInteger(pid) && pid !== process.pid && processAlive(pid)) continue;
    uncleanBefore = true;
    fs.rmSync(path.join(dataDir, name), { force: true });
  }
  const mine = path.join(dataDir, `${PREFIX}${process.pid}`);
  const fd = fs.openSync(mine, 'w');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const dfd = fs.openSync(dataDir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
  return { uncleanBefore, clear: () => fs.rmSync(mine, { force: true }) };
}
