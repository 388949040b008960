/**
 * The `active-scans/` folder, the admin's view of scan requests: watching it (fs.watch plus a periodic rescan), reading
 * and checking the files dropped there, moving refused ones to `problem/` with a `.reason.txt`, and writing and
 * removing request files for the rules. What a file means (a new request, a cancel) is decided by the rules, called
 * through `RequestRules`; this module knows files, not the database.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ScanRow } from '../../db/scanEntities.js';
import type { Logger } from '../../logging/logger.js';
import { DATA_DIRS } from '../../domain/paths.js';
import {
  isRequestFileName,
  parseRequestFile,
  REQUEST_FILE_LIMIT,
  type ScanRequestSpec,
} from '../../domain/scanRequest.js';
import { writeFileAtomic } from '../../storage/atomicWrite.js';
import { Loop } from '../../scheduler/loop.js';

export interface RequestWatcherOptions {
  /** Safety-net rescan of active-scans/ (fs.watch misses events on some file systems). */
  rescanMs?: number;
  /** A file modified more recently than this may still be being written: look again later. */
  settleMs?: number;
  /** Why a request may not name this source remote (unknown, or not roles.retrieve); undefined: it may. */
  sourceProblem?: (remote: string) => string | undefined;
}

/**
 * A request file's bytes, or why it is refused: opened without following a symbolic link and without blocking (a
 * FIFO swapped in after the lstat), checked to be a regular file within the size limit on the open descriptor, and
 * only then read. A 10 GB file is never read.
 */
function readRequestFile(file: string): Buffer | string {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    return `cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return 'not a regular file';
    if (st.size > REQUEST_FILE_LIMIT) return `larger than ${REQUEST_FILE_LIMIT} bytes (${st.size}); not read`;
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** What the watcher asks of the request rules. Every call but `exclusive` is made inside `exclusive`. */
export interface RequestRules {
  /** Runs fn in turn with every other change to requests. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  activeRequests(): Promise<ScanRow[]>;
  /** The active request whose file is `fileName`, if any. */
  activeRequest(fileName: string): Promise<ScanRow | null>;
  /** A valid file no active request owns: the request it makes (or the active one asking the same). */
  addFromFile(spec: ScanRequestSpec): Promise<ScanRow>;
  cancel(row: ScanRow, reason: string): Promise<void>;
  /** Writes (back) the file of an active request. */
  writeFile(row: ScanRow): Promise<void>;
}

export class RequestWatcher {
  readonly dir: string;
  private readonly problemDir: string;
  private watcher: fs.FSWatcher | undefined;
  /** The periodic rescan: never two at once, one more at most while one runs. */
  private readonly rescans: Loop;
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** Request files known to be on disk while running: when one disappears, someone removed it. */
  private readonly seen = new Set<string>();
  private running = false;
  /** Request files read and matched to their active row: name -> dev:ino:size:mtime when read. */
  private readonly unchanged = new Map<string, string>();
  private readonly rescanMs: number;
  private readonly settleMs: number;

  constructor(
    private readonly dataDir: string,
    private readonly rules: RequestRules,
    private readonly log: Logger,
    private readonly opts: RequestWatcherOptions = {},
  ) {
    this.dir = path.join(dataDir, DATA_DIRS.activeScans);
    this.problemDir = path.join(dataDir, DATA_DIRS.problem);
    this.rescanMs = opts.rescanMs ?? 10_000;
    this.settleMs = opts.settleMs ?? 300;
    this.rescans = new Loop<void>({
      run: () => this.rules.exclusive(() => this.rescan(false)),
      onError: (err) => this.log.error('active-scans rescan failed', { err: String(err) }),
      every: { ms: this.rescanMs, arg: undefined },
      unref: true,
    });
  }

  // -- life cycle ------------------------------------------------------------------------------------------------

  /** Creates the folders, takes in what is there (start-up pass), then watches. */
  async start(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    fs.mkdirSync(this.problemDir, { recursive: true });
    this.running = true;
    await this.rules.exclusive(() => this.rescan(true));
    this.watch();
    this.rescans.start();
  }

  /** Stops watching; work already queued with the rules still runs (the caller awaits it). */
  stop(): void {
    this.running = false;
    this.watcher?.close();
    this.watcher = undefined;
    // The rescan in flight runs inside `exclusive`, which the caller awaits.
    void this.rescans.stop();
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  private watch(): void {
    try {
      this.watcher = fs.watch(this.dir, (_event, filename) => {
        if (filename) this.schedule(filename.toString(), 50);
      });
      this.watcher.on('error', (err) => {
        this.log.warn('watching active-scans/ failed; the periodic rescan goes on', { err: String(err) });
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.log.warn('cannot watch active-scans/; relying on the periodic rescan', { err: String(err) });
    }
  }

  private schedule(name: string, delayMs: number): void {
    if (!this.running || name.startsWith('.')) return;
    const prev = this.pending.get(name);
    if (prev) clearTimeout(prev);
    const t = setTimeout(() => {
      this.pending.delete(name);
      this.rules
        .exclusive(() => this.checkName(name))
        .catch((err: unknown) => this.log.error('cannot process request file', { file: name, err: String(err) }));
    }, delayMs);
    t.unref();
    this.pending.set(name, t);
  }

  // -- reading the folder ----------------------------------------------------------------------------------------

  /** One pass over active-scans/ and the active rows. `startup`: a row without its file gets the file back. */
  private async rescan(startup: boolean): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    if (this.running && !this.watcher && !startup) this.watch();
    // One bad file or row must not stop the pass (nor, at start-up, the node).
    const guard = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        this.log.error('scan request sync failed', { what, err: String(err) });
      }
    };
    for (const name of fs.readdirSync(this.dir)) {
      if (name.startsWith('.')) continue;
      await guard(name, () => this.processFile(name));
    }
    const rows = await this.rules.activeRequests();
    for (const row of rows) {
      if (!row.fileName || fs.existsSync(path.join(this.dir, row.fileName))) continue;
      await guard(row.fileName, () =>
        !startup && this.seen.has(row.fileName!)
          ? this.rules.cancel(row, 'request file removed from active-scans/')
          : this.rules.writeFile(row),
      );
    }
  }

  private async checkName(name: string): Promise<void> {
    if (fs.existsSync(path.join(this.dir, name))) {
      await this.processFile(name);
      return;
    }
    if (!this.seen.has(name)) return;
    const row = await this.rules.activeRequest(name);
    if (row) await this.rules.cancel(row, 'request file removed from active-scans/');
    else this.seen.delete(name);
  }

  private async processFile(name: string): Promise<void> {
    const file = path.join(this.dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      return;
    }
    if (!st.isFile()) {
      this.toProblem(name, 'not a regular file');
      return;
    }
    if (!isRequestFileName(name)) {
      this.toProblem(name, `file name "${name}" is not accepted (letters, digits, . _ - only)`);
      return;
    }
    if (Date.now() - st.mtimeMs < this.settleMs) {
      this.schedule(name, this.settleMs);
      return;
    }
    // A file already taken and not changed since (same inode, size and mtime) is not read again on every rescan.
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.unchanged.get(name) === key) return;
    const content = readRequestFile(file);
    if (typeof content === 'string') {
      this.toProblem(name, content);
      return;
    }
    const parsed = parseRequestFile(name, content);
    const row = await this.rules.activeRequest(name);
    if (row) {
      this.seen.add(name);
      if (parsed.ok) this.unchanged.set(name, key);
      if (!parsed.ok) {
        this.toProblem(name, parsed.reason);
        await this.rules.writeFile(row);
      }
      return;
    }
    if (!parsed.ok) {
      this.toProblem(name, parsed.reason);
      return;
    }
    const sourceProblem = parsed.spec.remote ? this.opts.sourceProblem?.(parsed.spec.remote) : undefined;
    if (sourceProblem) {
      this.toProblem(name, sourceProblem);
      return;
    }
    const scan = await this.rules.addFromFile(parsed.spec);
    if (scan.fileName !== name) {
      // The request lives under its canonical name (e.g. `<uid>.json` for a FIONA-style `<uid>`).
      fs.rmSync(file, { force: true });
    }
  }

  private toProblem(name: string, reason: string): void {
    this.unchanged.delete(name);
    fs.mkdirSync(this.problemDir, { recursive: true });
    let dest = path.join(this.problemDir, name);
    if (fs.existsSync(dest)) dest = path.join(this.problemDir, `${name}.${Date.now()}`);
    try {
      fs.renameSync(path.join(this.dir, name), dest);
      fs.writeFileSync(`${dest}.reason.txt`, `${path.join(DATA_DIRS.activeScans, name)}: ${reason}\n`);
      this.log.warn('invalid scan request file moved to problem/', {
        file: name,
        to: path.relative(this.dataDir, dest),
        reason,
      });
    } catch (err) {
      this.log.error('cannot move invalid request file to problem/', { file: name, err: String(err) });
    }
  }

  // -- writing for the rules -------------------------------------------------------------------------------------

  exists(name: string): boolean {
    return fs.existsSync(path.join(this.dir, name));
  }

  /** Writes a request file; from now on, its disappearance is a cancel. */
  write(name: string, content: string): void {
    fs.mkdirSync(this.dir, { recursive: true });
    writeFileAtomic(path.join(this.dir, name), content);
    this.seen.add(name);
  }

  /** A request file found on disk for an active request: from now on, its disappearance is a cancel. */
  markSeen(name: string): void {
    this.seen.add(name);
  }

  /** The request ended: its file going away is no longer news. */
  forget(name: string): void {
    this.seen.delete(name);
  }

  /** Removes a request file without that counting as a cancel. */
  remove(name: string | null): void {
    if (!name) return;
    this.unchanged.delete(name);
    this.seen.delete(name);
    fs.rmSync(path.join(this.dir, name), { force: true });
  }
}
