/**
 * The spool pool: empty files made ahead in `incoming/.pool/`, each created, fsynced, and its name made durable by a
 * directory fsync, all off the answer path. A C-STORE writes into one it takes, so before Success only that file's
 * data needs a flush (no new name to make durable). Files are named `<pid>-<n>`: another live process's pool (a
 * second node on the same dataDir) is left alone by recovery.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../logging/logger.js';
import { DirSync, type PoolFile } from './spoolWriter.js';

const open = promisify(fs.open);
const fsync = promisify(fs.fsync);
const close = promisify(fs.close);

let counter = 0;

export class SpoolPool {
  /** Ready files, each kept open: the store that takes one writes through that descriptor and closes it. */
  private readonly ready: Array<{ path: string; fd: number }> = [];
  private refilling: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  private readonly dirSync: DirSync;

  constructor(
    readonly dir: string,
    private readonly size: number,
    private readonly log: Logger,
  ) {
    this.dirSync = new DirSync(dir, true);
  }

  /** Starts filling (after recovery has looked at what an earlier run left in the pool). */
  start(): void {
    if (this.started) return;
    this.started = true;
    fs.mkdirSync(this.dir, { recursive: true });
    this.refill();
  }

  /** A ready file, or a new name to create (`fresh`) when the pool is empty or off. */
  take(): PoolFile {
    this.start();
    const ready = this.ready.pop();
    this.refill();
    if (ready) return { ...ready, fresh: false };
    return { path: this.newName(), fresh: true };
  }

  /** Makes the names created in the pool directory durable (for a `fresh` file, before its Success). */
  syncDir(): Promise<void> {
    return this.dirSync.sync();
  }

  private newName(): string {
    return path.join(this.dir, `${process.pid}-${++counter}`);
  }

  private refill(): void {
    if (this.refilling || this.stopped || this.ready.length >= this.size / 2) return;
    this.refilling = this.fill()
      .catch((err: unknown) => void this.log.warn('cannot refill the spool pool', { err: String(err) }))
      .finally(() => (this.refilling = undefined));
  }

  private async fill(): Promise<void> {
    const want = this.size - this.ready.length;
    const settled = await Promise.allSettled(
      Array.from({ length: want }, async () => {
        const file = this.newName();
        const fd = await open(file, 'wx');
        try {
          await fsync(fd);
        } catch (err) {
          fs.close(fd, () => undefined);
          throw err;
        }
        return { path: file, fd };
      }),
    );
    const made = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = settled.find((r) => r.status === 'rejected');
    try {
      await this.dirSync.sync();
    } catch (err) {
      await discard(made);
      throw err;
    }
    if (this.stopped) return void (await discard(made));
    this.ready.push(...made);
    if (failed) throw failed.reason;
  }

  /** Stops refilling and removes the files not handed out (a clean stop leaves no pool behind). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.refilling;
    await discard(this.ready.splice(0));
    await this.dirSync.close();
  }
}

async function discard(files: Array<{ path: string; fd: number }>): Promise<void> {
  await Promise.all(
    files.map(async (f) => {
      await close(f.fd).catch(() => undefined);
      await fs.promises.rm(f.path, { force: true });
    }),
  );
}

/**
 * Spool temporaries and pool files name their process: `...<pid>-<n>.part`, `.pool/<pid>-<n>`. One that belongs to
 * another process still running (a `scannode import` or a second node beside this one) is in use, not debris.
 */
export function ownedByAnotherLiveProcess(name: string): boolean {
  const m = /(?:^|[.-])(\d+)-\d+(?:\.part)?$/.exec(name);
  const pid = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(pid) || pid === process.pid || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
