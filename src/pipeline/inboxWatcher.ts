/** Owns watching inbox/: which folders and loose entries have settled, and handing them to the importer as batches. */
import fs from 'node:fs';
import type { Logger } from '../logging/logger.js';
import type { ImportBatchRow } from '../db/importEntities.js';
import type { ImportRequest } from './importer.js';
import { nameText } from '../domain/fileNames.js';
import { treeSignature } from './treeEntries.js';
import { Loop } from '../scheduler/loop.js';

/** sendit's convention: a folder named `*.tmp` or `*.tmp<anything>` is still being written. */
export const IN_PROGRESS = /\.tmp[^/\\]*$/i;

/** What the watcher needs of the importer. */
export interface InboxImporter {
  /** The inbox as import paths name it (real path, as text). */
  readonly inboxDir: string;
  inboxDecision(p: string, newestChangeMs: number): Promise<'new' | 'skip' | ImportBatchRow>;
  importPath(req: ImportRequest): Promise<unknown>;
  /** The request a batch stands for (its own source and options), with the settled loose entries for a loose one. */
  requestOf(batch: ImportBatchRow, only?: Buffer[]): ImportRequest | undefined;
  resume(batch: ImportBatchRow, req: ImportRequest): Promise<unknown>;
}

export interface InboxWatcherOptions {
  /** An entry is taken once its signature (size, mtime; for a folder: entries, bytes, newest mtime) held this long. */
  stableMs: number;
  /** Full rescan period, the safety net beside fs.watch. */
  rescanMs: number;
  /** The clock of the stability check (tests inject one). */
  now?: () => number;
}

/**
 * Watches `inbox/`: a folder (not `*.tmp*`) is one batch named after it; loose entries are a stream, taken in one batch
 * per pass once each is unchanged for `stableMs`. Dot files are left alone (rsync and friends write there first).
 * Loose symbolic links, FIFOs and device nodes are taken too (never followed nor opened): they go to problem/.
 * fs.watch wakes it early; the periodic rescan catches anything fs.watch missed and everything left by a previous run.
 * Sources leave the inbox only once archived, so a restart mid-import imports the rest again. A batch that failed is
 * not taken again until something in it changes or an operator retries it; one that is retrying waits for its time.
 */
export class InboxWatcher {
  private readonly seen = new Map<string, { sig: string; since: number }>();
  private watcher: fs.FSWatcher | undefined;
  private soon: NodeJS.Timeout | undefined;
  /** Scans of the inbox: never two at once; a wake-up during one asks for one more. */
  private readonly scans: Loop;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly importer: InboxImporter,
    readonly inboxDir: string,
    private readonly log: Logger,
    private readonly opts: InboxWatcherOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.scans = new Loop<void>({
      run: () => this.scan(),
      onError: (err) => this.log.error('inbox scan failed', { err: String(err) }),
      every: { ms: opts.rescanMs, arg: undefined },
    });
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
    this.scans.start();
    void this.kick();
  }

  /** Runs a scan now (or right after the one running). Resolves when the inbox is idle again. */
  kick(): Promise<void> {
    return this.scans.notify();
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
    clearTimeout(this.soon);
    await this.scans.stop();
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
    const inbox = this.importer.inboxDir;
    const loose: Buffer[] = [];
    let looseChange = 0;
    let waiting = false;
    const present = new Set<string>();
    const folders: Array<{ full: string; name: string }> = [];
    // The inbox itself is the node's; what lies in it is not: names are bytes, entries are never followed.
    const dir = await fs.promises.opendir(this.inboxDir, { encoding: 'buffer' as BufferEncoding });
    for await (const e of dir) {
      if (this.stopped) return;
      const raw = e.name as unknown as Buffer;
      if (raw[0] === 0x2e) continue;
      const name = nameText(raw);
      const full = `${inbox}/${name}`;
      present.add(full);
      if (e.isDirectory()) {
        if (!IN_PROGRESS.test(name)) folders.push({ full, name });
        continue;
      }
      const st = await fs.promises.lstat(Buffer.concat([Buffer.from(`${this.inboxDir}/`), raw])).catch(() => undefined);
      if (!st || st.isDirectory()) continue;
      if (this.stable(full, `${st.ino}:${st.size}:${st.mtimeMs}`, st.mtimeMs)) {
        loose.push(raw);
        looseChange = Math.max(looseChange, st.ctimeMs);
      } else waiting = true;
    }
    for (const k of this.seen.keys()) if (!present.has(k)) this.seen.delete(k);
    if (loose.length && !this.stopped) await this.take(inbox, 'inbox', looseChange, { only: loose });
    for (const { full, name } of folders) {
      if (this.stopped) return;
      const sig = await treeSignature(full);
      if (!sig) continue;
      if (!this.stable(full, sig.sig, sig.newestMtime)) {
        waiting = true;
        continue;
      }
      if (await this.take(full, name, sig.newestCtime, { removeEmptyRoot: true })) this.seen.delete(full);
    }
    // Something is settling: look again once it may be stable rather than waiting for the next full rescan.
    if (waiting) this.kickSoon(Math.max(50, Math.min(this.opts.stableMs, this.opts.rescanMs)));
  }

  /** Imports a settled path as a new batch or another attempt of its last one; false when it is not taken now. */
  private async take(
    full: string,
    name: string,
    newestChange: number,
    extra: Pick<ImportRequest, 'only' | 'removeEmptyRoot'>,
  ): Promise<boolean> {
    const decision = await this.importer.inboxDecision(full, newestChange);
    if (decision === 'skip') return false;
    const req: ImportRequest = {
      path: full,
      baseDir: this.importer.inboxDir,
      name,
      source: 'inbox',
      keepSources: false,
      ...extra,
    };
    if (extra.only) for (const n of extra.only) this.seen.delete(`${full}/${nameText(n)}`);
    if (decision === 'new') {
      await this.importer.importPath(req);
      return true;
    }
    const again = this.importer.requestOf(decision, extra.only);
    if (again) await this.importer.resume(decision, again);
    return again !== undefined;
  }
}
