/**
 * After the answer: each acknowledged spool file is moved to its final name (incoming/<SOP>.dcm, never replacing)
 * and its index rows written, group-committed: everything that finished while the previous group was being written
 * goes in the next one (one transaction). A failed group (database down) is retried, 1 s doubling to 30 s, or at
 * once when new work arrives; its files are durable meanwhile and recovery would redo it.
 * No fsync here: the file's bytes and seal are already flushed, and a link is atomic, so after a crash the file is
 * under its pool name, its final name or both, and start-up recovery resolves every case. A row may therefore name a
 * file whose final name is not durable yet; recovery places the pool copy before it looks at rows.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Database } from '../db/dataSource.js';
import type { InstanceRow } from '../db/entities.js';
import { insertInstanceBatch, type GroupRows } from '../db/instanceIndex.js';
import type { Logger } from '../logging/logger.js';
import { DATA_DIRS } from '../domain/paths.js';
import { compareDatasets, moveNoReplace } from '../storage/files.js';

export interface IndexJob {
  sop: string;
  /** Where the file is now (absolute): a pool file or an import's `.part` until it is moved, then `target`. */
  file: string;
  /** Its final spool path (absolute). */
  target: string;
  row: InstanceRow;
  groups: GroupRows;
  /** Settles once the job's first attempt is over: undefined when committed, else the error. */
  firstAttempt: Promise<unknown>;
  /** Settles when the rows are committed (or the job is dropped as a copy of what is stored). */
  committed: Promise<void>;
}

interface Entry extends IndexJob {
  placed: boolean;
  attempted: boolean;
  settleFirst: (err: unknown) => void;
  settle: () => void;
}

export interface IndexWriterOptions {
  /** Waits between retries (injected by tests); resolves early when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  onCommitted: (job: IndexJob) => void;
}

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
const MAX_GROUP = 500;
/**
 * The reason a retry's sleep is cut short. Given explicitly: `abort()` without one builds a DOMException with its stack
 * on every call, and `add` wakes the writer once per received image (~0.07 ms each in the receive profile).
 */
const WAKE = 'new work';

export class IndexWriter {
  private readonly queue: Entry[] = [];
  private readonly pending = new Map<string, Entry>();
  private readonly knownSeries = new Set<string>();
  private running: Promise<void> | undefined;
  private wake = new AbortController();
  private stopping = false;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly log: Logger,
    private readonly opts: IndexWriterOptions,
  ) {
    this.sleep = opts.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }).catch(() => undefined));
  }

  /** The acknowledged, not yet indexed file of this SOP Instance UID, if any (absolute path). */
  pendingFile(sop: string): string | undefined {
    return this.pending.get(sop)?.file;
  }

  add(job: Omit<IndexJob, 'firstAttempt' | 'committed'>): IndexJob {
    let settleFirst!: (err: unknown) => void;
    let settle!: () => void;
    const entry: Entry = {
      ...job,
      placed: false,
      attempted: false,
      firstAttempt: new Promise((r) => (settleFirst = r)),
      committed: new Promise((r) => (settle = r)),
      settleFirst: (err) => settleFirst(err),
      settle: () => settle(),
    };
    this.pending.set(job.sop, entry);
    this.queue.push(entry);
    this.wake.abort(WAKE);
    this.running ??= this.run().finally(() => (this.running = undefined));
    return entry;
  }

  private async run(): Promise<void> {
    let retryMs = FIRST_RETRY_MS;
    while (this.queue.length) {
      // Whatever finishes in this turn of the event loop joins the group.
      await new Promise<void>((r) => setImmediate(r));
      this.wake = new AbortController();
      const group = this.queue.slice(0, MAX_GROUP);
      try {
        const committed = await this.write(group);
        this.queue.splice(0, group.length, ...group.filter((e) => !committed.has(e)));
        for (const e of committed) this.done(e);
        if (committed.size < group.length) throw new Error('a file could not be moved to its spool name');
        retryMs = FIRST_RETRY_MS;
      } catch (err) {
        for (const e of group) this.attempted(e, err);
        this.log.error('cannot index received instances; retrying', {
          instances: group.length,
          retryInSeconds: retryMs / 1000,
          err: String(err),
        });
        if (this.stopping) return;
        await this.sleep(retryMs, this.wake.signal);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    }
  }

  private done(e: Entry): void {
    if (this.pending.get(e.sop) === e) this.pending.delete(e.sop);
    this.attempted(e, undefined);
    e.settle();
    this.opts.onCommitted(e);
  }

  private attempted(e: Entry, err: unknown): void {
    if (e.attempted) return;
    e.attempted = true;
    e.settleFirst(err);
  }

  /**
   * Final names, then the rows in one transaction. Returns the entries
   * committed (all but those whose file could not be moved).
   */
  private async write(group: Entry[]): Promise<Set<Entry>> {
    const moved = group.filter((e) => !e.placed);
    for (const e of moved) {
      try {
        await this.place(e);
      } catch (err) {
        // This one waits for the next attempt; the others of the group go on.
        this.log.error('cannot move a received file to its spool name', { sop: e.sop, err: String(err) });
      }
    }
    const rows = group.filter((e) => e.placed);
    const groups = rows.filter((e) => !this.knownSeries.has(e.row.seriesInstanceUid)).map((e) => e.groups);
    await insertInstanceBatch(
      this.db,
      groups,
      rows.map((e) => e.row),
    );
    for (const g of groups) this.knownSeries.add(g.series.seriesInstanceUid);
    return new Set(rows);
  }

  /** Moves one file to its final name; a file already there (a crash's leftover, a race) is kept if identical. */
  private async place(e: Entry): Promise<void> {
    if (moveNoReplace(e.file, e.target) === 'moved') {
      e.file = e.target;
      e.placed = true;
      return;
    }
    if (await compareDatasets(e.file, e.target)) {
      fs.rmSync(e.file, { force: true });
    } else {
      // Already acknowledged, so never dropped: kept aside for an operator, whatever dicom.onConflict says.
      const dest = path.join(this.dataDir, DATA_DIRS.conflicts, `${e.sop}.${Date.now()}.dcm`);
      fs.renameSync(e.file, dest);
      this.log.warn('acknowledged instance differs from the stored one with its UID: quarantined', {
        sop: e.sop,
        file: path.relative(this.dataDir, dest),
      });
    }
    e.file = e.target;
    e.placed = true;
  }

  /** Writes what is queued (one more attempt if the last failed) and stops; what is left, recovery redoes. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.abort(WAKE);
    await this.running;
    if (this.queue.length) {
      this.running = this.run();
      await this.running;
    }
    if (this.queue.length) {
      this.log.warn('index rows not written at shutdown; the next start-up indexes their files', {
        instances: this.queue.length,
      });
    }
  }
}
