/**
 * Owns the import service: starting batches, resuming them (the retry loop for batches whose next attempt is due, the
 * inbox's decisions, an operator's retry), and stopping. One attempt's work is AttemptRunner's (importAttempt.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import type { ImportBatchRow } from '../db/importEntities.js';
import type { Logger } from '../logging/logger.js';
import type { Ingest } from './ingest.js';
import type { Archiver } from './archive.js';
import { DATA_DIRS } from '../domain/paths.js';
import { nameText, textOfName } from '../domain/fileNames.js';
import type { ImportCounts } from '../domain/importRules.js';
import { ImportBatches, isActive, type ImportStatus } from '../db/importBatches.js';
import { FileImporter } from './importFile.js';
import { AttemptRunner, FLUSH_EVERY, type ImportRequest } from './importAttempt.js';

export { FLUSH_EVERY, type ImportRequest } from './importAttempt.js';
export type { ImportCounts } from '../domain/importRules.js';
export type { ImportStatus } from '../db/importBatches.js';
export { metaTransferSyntax } from './importFile.js';

export interface ImporterOptions {
  /** Files of one batch in flight at once. */
  concurrency?: number;
  flushEvery?: number;
  /** First retry delay after a transient failure; it doubles up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Attempts before a batch that keeps failing transiently is failed. */
  maxAttempts?: number;
  /** The clock of retries (tests inject one). */
  now?: () => Date;
  /** This node's id (cluster.nodeId): its batches are recorded as its own; undefined for the command line. */
  node?: string;
}

export class Importer {
  readonly batches: ImportBatches;
  private readonly attempts: AttemptRunner;
  /** Batches of this process: the paths each holds (a loose batch: its files), and its end. */
  private readonly running = new Map<string, { paths: string[]; loose: boolean; done: Promise<ImportBatchRow> }>();
  private readonly claimed = new Set<string>();
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private nextDue: Date | null = null;
  private readonly now: () => Date;
  private inbox: string | undefined;

  constructor(
    db: Database,
    ingest: Ingest,
    archiver: Archiver,
    private readonly dataDir: string,
    private readonly log: Logger,
    opts: ImporterOptions = {},
  ) {
    this.batches = new ImportBatches(db, opts.node);
    this.now = opts.now ?? (() => new Date());
    const files = new FileImporter(db, ingest, dataDir, log);
    this.attempts = new AttemptRunner(
      db,
      this.batches,
      files,
      archiver,
      dataDir,
      () => this.inboxDir,
      log,
      {
        concurrency: opts.concurrency ?? 8,
        flushEvery: opts.flushEvery ?? FLUSH_EVERY,
        retryBaseMs: opts.retryBaseMs ?? 30_000,
        retryMaxMs: opts.retryMaxMs ?? 3_600_000,
        maxAttempts: opts.maxAttempts ?? 10,
        now: this.now,
      },
      () => this.stopping,
    );
  }

  /** The inbox as import paths name it (real path, as text). */
  get inboxDir(): string {
    this.inbox ??= textOfName(fs.realpathSync(path.join(this.dataDir, DATA_DIRS.inbox)));
    return this.inbox;
  }

  /** Start-up: batches a stopped process left behind resume (inbox, REST) or wait for an operator (CLI). */
  async markInterrupted(): Promise<number> {
    const r = await this.batches.interruptedAtStart(this.now());
    if (r.resumed) this.log.info('imports interrupted by the last stop resume', { batches: r.resumed });
    return r.resumed + r.interrupted;
  }

  /** Whether a batch of this process is importing this path, a folder inside it or a folder holding it. */
  isBusy(p: string): boolean {
    if (p === this.inboxDir) return [...this.running.values()].some((r) => r.loose);
    for (const r of [...[...this.running.values()].flatMap((v) => v.paths), ...this.claimed]) {
      if (r === p || r.startsWith(p + path.sep) || p.startsWith(r + path.sep)) return true;
    }
    return false;
  }

  /** Records a new batch and runs it in the background; resolves with its row (state queued) at once. */
  async start(
    req: ImportRequest,
    onProgress?: (c: ImportCounts) => void,
  ): Promise<{ batch: ImportBatchRow; done: Promise<ImportBatchRow> }> {
    if (this.stopping) throw new Error('scannode is stopping');
    // Held while the row is written, so that no second batch of the same path starts meanwhile.
    const claim = req.only ? undefined : req.path;
    if (claim) this.claimed.add(claim);
    try {
      const batch = await this.batches.create(req);
      return { batch, done: this.launch(batch, req, onProgress) };
    } finally {
      if (claim) this.claimed.delete(claim);
    }
  }

  /** Runs a whole import and resolves with its final row. */
  async importPath(req: ImportRequest, onProgress?: (c: ImportCounts) => void): Promise<ImportBatchRow> {
    return (await this.start(req, onProgress)).done;
  }

  /** Another attempt of a batch (the retry loop, the inbox, an operator). */
  resume(batch: ImportBatchRow, req: ImportRequest, onProgress?: (c: ImportCounts) => void): Promise<ImportBatchRow> {
    if (this.stopping) throw new Error('scannode is stopping');
    return this.launch(batch, req, onProgress);
  }

  /**
   * The request a stored batch stands for. A batch of loose inbox files names no files of its own: it is resumed only
   * by the inbox watcher, which gives the loose entries that have settled (`only`).
   */
  requestOf(b: ImportBatchRow, only?: Buffer[]): ImportRequest | undefined {
    const inbox = this.inboxDir;
    const loose = b.source !== 'cli' && b.path === inbox;
    if (loose && !only) return undefined;
    return {
      path: b.path,
      baseDir: b.source === 'cli' ? path.dirname(b.path) : inbox,
      name: b.name,
      source: b.source,
      keepSources: b.keepSources,
      ...(loose ? { only } : { removeEmptyRoot: b.source !== 'cli' }),
      patientId: b.patientId ?? undefined,
      studyLabel: b.studyLabel ?? undefined,
    };
  }

  /**
   * An operator's retry of a failed, retrying or interrupted batch: resumed now (loose inbox files: at the inbox's
   * next scan). `inProcess` is false for the daemon, which leaves CLI batches to `scannode import --retry`.
   */
  async retry(
    id: string,
    opts: { cli: boolean; onProgress?: (c: ImportCounts) => void },
  ): Promise<{ batch: ImportBatchRow; done?: Promise<ImportBatchRow> } | { refused: string; status: number }> {
    const batch = await this.batches.get(id);
    if (!batch) return { refused: `no import ${id}`, status: 404 };
    if (!['failed', 'retrying', 'interrupted'].includes(batch.state)) {
      return {
        refused: `import ${id} is ${batch.state}: only a failed, retrying or interrupted one is retried`,
        status: 409,
      };
    }
    if (batch.source === 'cli' && !opts.cli) {
      return {
        refused: `import ${id} came from the command line: retry it with scannode import --retry ${id}`,
        status: 409,
      };
    }
    const req = this.requestOf(batch);
    if (!req || this.isBusy(batch.path)) {
      await this.batches.update(id, { state: 'retrying', nextAttemptAt: this.now(), message: 'retry asked' });
      return { batch: { ...batch, state: 'retrying' } };
    }
    return { batch, done: this.resume(batch, req, opts.onProgress) };
  }

  /**
   * What the inbox does with a path it found settled: a 'new' batch, an earlier batch to resume, or 'skip' (under
   * way; retried by the node at its time; failed with nothing new since, so waiting for an operator).
   */
  async inboxDecision(p: string, newestChangeMs: number): Promise<'new' | 'skip' | ImportBatchRow> {
    if (this.isBusy(p)) return 'skip';
    const latest = await this.batches.latestFor(p);
    if (!latest) return 'new';
    switch (latest.state) {
      case 'queued':
      case 'running':
        return 'skip';
      case 'retrying':
        // Folders are resumed by the retry loop; loose files only by the inbox, which knows which are settled.
        return p === this.inboxDir && latest.nextAttemptAt && latest.nextAttemptAt <= this.now() ? latest : 'skip';
      case 'failed':
      case 'interrupted':
        return newestChangeMs > (latest.endedAt?.getTime() ?? 0) ? latest : 'skip';
      case 'finished':
        // POST /api/imports with cleanupAfterImport=false asked to leave the folder where it is.
        return latest.keepSources && latest.source === 'rest' ? 'skip' : 'new';
    }
  }

  status(id: string, problemLimit = 1000): Promise<ImportStatus | null> {
    return this.batches.status(id, problemLimit);
  }

  /** Resumes retrying batches when they are due (checked every second against the injected clock; the database every 15 s). */
  startRetries(): void {
    void this.refreshNextDue();
    let ticks = 0;
    this.retryTimer = setInterval(() => {
      if (this.nextDue && this.now() >= this.nextDue) void this.resumeDue();
      // Another node may have made a batch due (a dead node's, resumed by the node that took its spool).
      else if (++ticks % 15 === 0) void this.refreshNextDue();
    }, 1000);
    this.retryTimer.unref();
  }

  async resumeDue(): Promise<number> {
    if (this.stopping) return 0;
    let n = 0;
    try {
      for (const b of await this.batches.due(this.now())) {
        const req = this.requestOf(b);
        if (!req || this.isBusy(b.path)) continue;
        // Several nodes may look at once: the one that claims it runs it.
        if (!(await this.batches.claim(b.id, this.now()))) continue;
        void this.resume(b, req).catch(() => undefined);
        n++;
      }
    } catch (err) {
      this.log.warn('cannot look for imports to retry', { err: String(err) });
    }
    await this.refreshNextDue();
    return n;
  }

  private async refreshNextDue(): Promise<void> {
    this.nextDue = await this.batches.nextDue().catch(() => this.nextDue);
  }

  /** Stops taking files; batches in flight end after the files they hold (state interrupted). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.retryTimer);
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  private launch(batch: ImportBatchRow, req: ImportRequest, onProgress?: (c: ImportCounts) => void) {
    const done = this.attempts.run(batch, req, onProgress).then(async (row) => {
      if (row.state === 'retrying') await this.refreshNextDue();
      return row;
    });
    // A loose batch holds its files, not the whole inbox (a folder beside them may be imported meanwhile).
    const loose = req.only !== undefined;
    const paths = loose ? req.only!.map((n) => `${req.path}/${nameText(n)}`) : [req.path];
    this.running.set(batch.id, { paths, loose, done });
    void done.finally(() => this.running.delete(batch.id)).catch(() => undefined);
    return done;
  }
}

export { isActive };
