import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logging/logger.js';
import type { Importer } from './importer.js';

/** sendit's convention: a folder named `*.tmp` or `*.tmp<anything>` is still being written. */
export const IN_PROGRESS = /\.tmp[^/\\]*$/i;

export interface InboxWatcherOptions {
  /** An entry is taken once its signature (size, mtime; for a folder: files, bytes, newest mtime) held this long. */
  stableMs: number;
  /** Full rescan period, the safety net beside fs.watch. */
  rescanMs: number;
  /** The clock of the stability check (tests inject one). */
  now?: () => number;
}

/**
 * Watches `inbox/`: a folder (not `*.tmp*`) is one batch named after it; loose files are a stream, taken in one batch
 * per pass once each is unchanged for `stableMs`. Dot files are left alone (rsync and friends write there first).
 * fs.watch wakes it early; the periodic rescan catches anything fs.watch missed and everything left by a previous run.
 * Sources leave the inbox only once archived, so a restart mid-import imports the rest again: what was already
 * stored is an identical duplicate, stored once.
 */
export class InboxWatcher {
  private readonly seen = new Map<string, { sig: string; since: number }>();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly importer: Importer,
    readonly inboxDir: string,
    private readonly log: Logger,
    private readonly opts: InboxWatcherOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    fs.mkdirSync(this.inboxDir, { recursive: true });
    try {
      this.watcher = fs.watch(this.inboxDir, () => this.kickSoon(100));
      this.watcher.on('error', (err) => {
        this.log.warn('inbox watch error; the periodic rescan goes on', { err: String(err) });
      });
    } catch (err) {
      this.log.warn('cannot watch the inbox; relying on the periodic rescan', { err: String(err) });
    }
    this.timer = setInterval(() => void this.kick(), this.opts.rescanMs);
    void this.kick();
  }

  /** Runs a scan now (or right after the one running). Resolves when the inbox is idle again. */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        try {
          await this.scan();
        } catch (err) {
          this.log.error('inbox scan failed', { err: String(err) });
        }
      } while (this.again && !this.stopped);
    })().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  private kickSoon(ms: number): void {
    if (this.stopped || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.kick();
    }, ms);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.timer);
    clearTimeout(this.soon);
    await this.scanning;
  }

  private stable(key: string, sig: string, newestMtime: number): boolean {
    const now = this.now();
    const prev = this.seen.get(key);
    if (!prev || prev.sig !== sig) {
      this.seen.set(key, { sig, since: now });
      return false;
    }
    return now - prev.since >= this.opts.stableMs || now - newestMtime >= this.opts.stableMs;
  }

  private async scan(): Promise<void> {
    const loose: string[] = [];
    let waiting = false;
    const present = new Set<string>();
    const dir = await fs.promises.opendir(this.inboxDir);
    const folders: string[] = [];
    for await (const e of dir) {
      if (this.stopped) return;
      if (e.name.startsWith('.')) continue;
      const full = path.join(this.inboxDir, e.name);
      present.add(full);
      if (this.importer.isBusy(full)) continue;
      if (e.isDirectory()) {
        if (IN_PROGRESS.test(e.name)) continue;
        folders.push(full);
      } else if (e.isFile()) {
        let st: fs.Stats;
        try {
          st = await fs.promises.stat(full);
        } catch {
          continue;
        }
        if (this.stable(full, `${st.size}:${st.mtimeMs}`, st.mtimeMs)) loose.push(full);
        else waiting = true;
      }
    }
    for (const k of this.seen.keys()) if (!present.has(k)) this.seen.delete(k);
    if (loose.length && !this.stopped) {
      for (const f of loose) this.seen.delete(f);
      await this.importer.importPath({
        path: this.inboxDir,
        baseDir: this.inboxDir,
        name: 'inbox',
        source: 'inbox',
        keepSources: false,
        files: loose,
      });
    }
    for (const full of folders) {
      if (this.stopped) return;
      if (this.importer.isBusy(full) || (await this.importer.importedKeepingSources(full))) continue;
      const sig = await folderSignature(full);
      if (!sig) continue;
      if (!this.stable(full, sig.sig, sig.newest)) {
        waiting = true;
        continue;
      }
      this.seen.delete(full);
      await this.importer.importPath({
        path: full,
        baseDir: this.inboxDir,
        name: path.basename(full),
        source: 'inbox',
        keepSources: false,
        removeEmptyRoot: true,
      });
    }
    // Something is settling: look again once it may be stable rather than waiting for the next full rescan.
    if (waiting) this.kickSoon(Math.max(50, Math.min(this.opts.stableMs, this.opts.rescanMs)));
  }
}

/** Files, bytes and newest mtime of a folder tree; undefined when it holds no file. */
async function folderSignature(root: string): Promise<{ sig: string; newest: number } | undefined> {
  let files = 0;
  let bytes = 0;
  let newest = 0;
  const visit = async (dir: string): Promise<void> => {
    const st = await fs.promises.stat(dir);
    newest = Math.max(newest, st.mtimeMs);
    for await (const e of await fs.promises.opendir(dir)) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await visit(p);
      else if (e.isFile()) {
        const s = await fs.promises.stat(p).catch(() => undefined);
        if (!s) continue;
        files++;
        bytes += s.size;
        newest = Math.max(newest, s.mtimeMs);
      }
    }
  };
  try {
    await visit(root);
  } catch {
    return undefined;
  }
  return files ? { sig: `${files}:${bytes}:${newest}`, newest } : undefined;
}
