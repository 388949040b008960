/**
 * Owns one attempt of an import batch: open the tree (refusing the data directory's own folders), count it, take its
 * entries with N workers (a failure stops them taking more, never leaves one running), archive every FLUSH_EVERY
 * files and at the end, settle each (archived, then its source removed), and decide the outcome: finished, failed
 * with a reason an operator can act on, or retrying with backoff.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import type { ImportBatchRow, ImportSource, ImportState } from '../db/importEntities.js';
import type { Logger } from '../logging/logger.js';
import type { Archiver } from './archive.js';
import { DATA_DIRS } from '../domain/paths.js';
import { textOfName } from '../domain/fileNames.js';
import {
  classifyImportError,
  importPathRefusal,
  parseCounts,
  retryDelayMs,
  UnrecoverableImportError,
  zeroCounts,
  type ImportCounts,
  type ImportFailure,
} from '../domain/importRules.js';
import { Tally, type ImportBatches } from '../db/importBatches.js';
import type { BatchContext, FileImporter, Taken } from './importFile.js';
import { settleTaken } from './importRelease.js';
import { ImportTree, identKey, treeSupport } from './safeTree.js';

/** Stored files archived (and their sources released) at a time: bounds what a batch holds. Docs: ARCHITECTURE. */
export const FLUSH_EVERY = 200;

/** What an import is asked to do. Paths are text as `nameText` writes them (raw name bytes survive). */
export interface ImportRequest {
  /** Absolute path of the file or folder tree to import. */
  path: string;
  /** Problem paths (problem/<relative>, the problem list) are relative to this folder. */
  baseDir: string;
  /** The batch's name (sendit: the folder's name, usually an accession number). */
  name: string;
  source: ImportSource;
  /** Leave the source files where they are (copy); otherwise they are removed once archived. */
  keepSources: boolean;
  /** Only these names at the top of `path` (the inbox's loose files), instead of walking it. */
  only?: Buffer[];
  /** Remove `path` itself once it is empty (an inbox folder batch). */
  removeEmptyRoot?: boolean;
  patientId?: string;
  studyLabel?: string;
}

export interface AttemptOptions {
  concurrency: number;
  flushEvery: number;
  retryBaseMs: number;
  retryMaxMs: number;
  maxAttempts: number;
  now: () => Date;
}

/** One attempt's working state. */
interface Attempt extends BatchContext {
  req: ImportRequest;
  tally: Tally;
  pending: Taken[];
  failure?: ImportFailure;
  archiveBroken: boolean;
  removeBroken: boolean;
  flushing?: Promise<void>;
  tree?: ImportTree;
}

export class AttemptRunner {
  constructor(
    private readonly db: Database,
    private readonly batches: ImportBatches,
    private readonly files: FileImporter,
    private readonly archiver: Archiver,
    private readonly dataDir: string,
    private readonly inboxDir: () => string,
    private readonly log: Logger,
    private readonly opts: AttemptOptions,
    private readonly stopping: () => boolean,
  ) {}

  async run(
    batch: ImportBatchRow,
    req: ImportRequest,
    onProgress?: (c: ImportCounts) => void,
  ): Promise<ImportBatchRow> {
    const attemptNo = batch.attempts + 1;
    const tally = new Tally(req.keepSources ? zeroCounts() : parseCounts(batch.carried));
    const a: Attempt = {
      id: batch.id,
      name: batch.name,
      keepSources: req.keepSources,
      firstStartedAt: batch.startedAt,
      resumed: attemptNo > 1,
      addProblem: (text, reason, kind) => this.batches.addProblem(batch.id, text, reason, kind),
      req,
      tally,
      pending: [],
      archiveBroken: false,
      removeBroken: false,
    };
    const started = Date.now();
    let lastSave = 0;
    // Progress saves run one at a time and the final update waits for the last: a late one never overwrites it.
    let saving: Promise<void> | undefined;
    const progress = () => {
      onProgress?.({ ...tally.c });
      if (saving || Date.now() - lastSave < 500) return;
      lastSave = Date.now();
      saving = this.batches
        .saveCounts(batch.id, tally.c)
        .catch(() => undefined)
        .finally(() => (saving = undefined));
    };
    this.log.info('import started', { batch: batch.id, name: batch.name, source: batch.source, attempt: attemptNo });
    let walkedAll = false;
    try {
      await this.batches.begin(batch, attemptNo, tally.c);
      a.tree = await this.openTree(req);
      tally.found(await a.tree.count());
      progress();
      walkedAll = await this.walk(a, progress);
    } catch (err) {
      fail(a, classifyImportError(err, 'read', this.shown(req.path)));
    }
    // Whatever ended the walk, what was stored is archived and its sources released (unless archiving failed).
    while (a.pending.length && !a.archiveBroken) await this.flush(a);
    await a.flushing;
    await saving;
    for (const t of a.pending.splice(0)) await t.dir.release();
    const clean = walkedAll && !a.failure && tally.c.errors === 0 && !this.stopping();
    if (clean) tally.walkedAll();
    if (clean && !req.keepSources) await a.tree?.pruneEmpty(req.removeEmptyRoot ?? false).catch(() => undefined);
    await a.tree?.close().catch(() => undefined);
    const end = this.outcome(batch, a, attemptNo);
    const row: ImportBatchRow = {
      ...batch,
      ...tally.c,
      ...end,
      attempts: attemptNo,
      endedAt: new Date(),
      carried: req.keepSources ? null : JSON.stringify(tally.left),
    };
    try {
      await this.batches.update(batch.id, {
        ...tally.c,
        ...end,
        attempts: attemptNo,
        endedAt: row.endedAt,
        carried: row.carried,
      });
    } catch (err) {
      this.log.error('cannot record the end of an import', { batch: batch.id, err: String(err) });
    }
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const line = {
      batch: batch.id,
      name: batch.name,
      state: end.state,
      attempt: attemptNo,
      ...tally.c,
      seconds: Number(seconds.toFixed(3)),
      filesPerSecond: Number((tally.c.filesRead / seconds).toFixed(1)),
      bytesPerSecond: Math.round(tally.c.bytes / seconds),
      ...(end.message && { reason: end.message }),
    };
    if (end.state === 'finished' || end.state === 'interrupted') this.log.info('import ended', line);
    else this.log.warn('import ended', line);
    onProgress?.({ ...tally.c });
    return row;
  }

  /** A path as messages show it: relative to the data directory when inside it (the API never shows machine paths). */
  private shown(p: string): string {
    const data = textOfName(fs.realpathSync(this.dataDir));
    return p.startsWith(`${data}/`) ? p.slice(data.length + 1) : p;
  }

  /** Opens the tree, refusing what may not be imported (the data directory's own folders). */
  private async openTree(req: ImportRequest): Promise<ImportTree> {
    const why = treeSupport();
    if (why) throw new UnrecoverableImportError(why);
    const dataDir = textOfName(fs.realpathSync(this.dataDir));
    const refusal = importPathRefusal(req.path, dataDir, this.inboxDir());
    if (refusal) throw new UnrecoverableImportError(refusal);
    const exclude = new Set<string>();
    for (const d of Object.values(DATA_DIRS)) {
      if (d === DATA_DIRS.inbox) continue;
      const st = await fs.promises.stat(path.join(this.dataDir, d), { bigint: true }).catch(() => undefined);
      if (st) exclude.add(identKey(st));
    }
    const root = await fs.promises.stat(this.dataDir, { bigint: true });
    exclude.add(identKey(root));
    const rootText = path.relative(req.baseDir, req.path) || path.basename(req.path);
    try {
      return await ImportTree.open(req.path, req.only ? '' : rootText, { exclude, only: req.only });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const where = this.shown(req.path);
      if (code === 'ENOENT') throw new UnrecoverableImportError(`${where} does not exist (any more)`);
      if (code === 'ELOOP') {
        throw new UnrecoverableImportError(`${where}: a folder on the way is a symbolic link (not followed)`);
      }
      throw classifyImportError(err, 'read', where);
    }
  }

  /** Takes every entry with `concurrency` workers; a failure stops them taking more, never leaves one running. */
  private async walk(a: Attempt, progress: () => void): Promise<boolean> {
    const it = a.tree!.entries();
    let exhausted = false;
    const worker = async () => {
      for (;;) {
        if (a.failure || this.stopping()) return;
        const next = await it.next();
        if (next.done) {
          exhausted = true;
          return;
        }
        a.tally.entry();
        const out = await this.files.take(next.value, a);
        if (out.kind === 'vanished') a.tally.vanished();
        else if (out.kind === 'problem') a.tally.problem(out.moved);
        else if (out.kind === 'kept') a.tally.error();
        else if (out.kind === 'error') {
          a.tally.error();
          fail(a, out.failure as ImportFailure);
        } else {
          a.tally.read(out.taken.size, out.taken.duplicate);
          a.pending.push(out.taken);
        }
        progress();
        if (a.pending.length >= this.opts.flushEvery) await this.flush(a);
      }
    };
    try {
      await Promise.allSettled(Array.from({ length: this.opts.concurrency }, worker));
    } finally {
      await it.return(undefined);
    }
    return exhausted && !a.failure;
  }

  /** Archives the studies of the files taken so far, then settles each (archived? source removed). One at a time. */
  private flush(a: Attempt): Promise<void> {
    if (a.flushing) return a.flushing;
    if (a.archiveBroken || a.pending.length === 0) return Promise.resolve();
    const taken = a.pending.splice(0);
    a.flushing = (async () => {
      try {
        for (const study of new Set(taken.map((t) => t.study))) await this.archiver.archiveStudy(study);
      } catch (err) {
        a.archiveBroken = true;
        a.pending.unshift(...taken);
        fail(a, classifyImportError(err, 'archive', DATA_DIRS.site));
        return;
      }
      await settleTaken(this.db, this.dataDir, a, taken, this.log);
    })().finally(() => (a.flushing = undefined));
    return a.flushing;
  }

  private outcome(
    batch: ImportBatchRow,
    a: Attempt,
    attemptNo: number,
  ): { state: ImportState; message: string | null; nextAttemptAt: Date | null } {
    const retryHint =
      batch.source === 'cli'
        ? `scannode import --retry ${batch.id}`
        : `POST /api/imports/${batch.id}/retry or scannode import --retry ${batch.id}`;
    const failed = (why: string) => ({
      state: 'failed' as const,
      message: `${why} - then retry: ${retryHint}`,
      nextAttemptAt: null,
    });
    if (this.stopping() && !a.failure) {
      // Inbox and REST batches resume at the next start; one from the command line waits for its operator.
      if (batch.source === 'cli') {
        return { state: 'interrupted', message: `stopped before the end - resume: ${retryHint}`, nextAttemptAt: null };
      }
      return {
        state: 'retrying',
        message: 'stopped with the node: resumes at the next start',
        nextAttemptAt: this.opts.now(),
      };
    }
    const f = a.failure;
    if (f) {
      if (f.permanent || batch.source === 'cli') return failed(f.message);
      const max = this.opts.maxAttempts;
      if (attemptNo >= max) return failed(`gave up after ${attemptNo} attempts: ${f.message}`);
      const next = new Date(
        this.opts.now().getTime() + retryDelayMs(attemptNo, this.opts.retryBaseMs, this.opts.retryMaxMs),
      );
      return {
        state: 'retrying',
        message: `${f.message} - tried again by the node at ${next.toISOString()} (attempt ${attemptNo + 1})`,
        nextAttemptAt: next,
      };
    }
    if (a.tally.c.errors > 0) {
      return failed(`${a.tally.c.errors} file(s) could not be archived and were left in place (see the problem list)`);
    }
    return { state: 'finished', message: null, nextAttemptAt: null };
  }
}

/** The first failure ends the attempt; later ones are consequences. */
function fail(a: Attempt, f: ImportFailure): void {
  a.failure ??= f;
}
