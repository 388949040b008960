import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Database } from '../db/dataSource.js';
import type { ImportBatchRow, ImportProblemRow, ImportSource } from '../db/importEntities.js';
import type { Logger } from '../logging/logger.js';
import type { Ingest } from './ingest.js';
import type { Archiver } from './archive.js';
import { DATA_DIRS } from '../domain/paths.js';
import { DicomStatus, hex } from '../domain/status.js';
import { HEAD_BYTES } from '../storage/header.js';
import { datasetOffset } from '../storage/files.js';

/** What an import is asked to do. */
export interface ImportRequest {
  /** Absolute path of the file or folder tree to import. */
  path: string;
  /** Relative paths (problem/<relative>, the problem list) are taken against this folder. */
  baseDir: string;
  /** The batch's name (sendit: the folder's name, usually an accession number). */
  name: string;
  source: ImportSource;
  /** Leave the source files where they are (copy); otherwise they are removed once archived. */
  keepSources: boolean;
  /** Only these files (the inbox's loose files), instead of walking `path`. */
  files?: string[];
  /** Remove `path` itself once it is empty (an inbox folder batch). */
  removeEmptyRoot?: boolean;
  patientId?: string;
  studyLabel?: string;
}

/** A new batch's counters. */
function zeroCounts(): ImportCounts {
  return { filesFound: 0, filesRead: 0, archived: 0, duplicates: 0, problems: 0, errors: 0, bytes: 0 };
}

/** The counters of a batch, as its row keeps them. */
export type ImportCounts = Pick<
  ImportBatchRow,
  'filesFound' | 'filesRead' | 'archived' | 'duplicates' | 'problems' | 'errors' | 'bytes'
>;

export interface ImportStatus extends ImportBatchRow {
  problemList: Array<{ path: string; reason: string }>;
}

export interface ImporterOptions {
  /** Files of one batch in flight at once. */
  concurrency?: number;
  /** Archive and remove sources after this many stored files (bounds what a batch keeps in memory). */
  flushEvery?: number;
}

/** Statuses that mean "this file is not importable DICOM": it goes to problem/ with its reason. */
const UNREADABLE = new Set<number>([
  DicomStatus.CannotUnderstand,
  DicomStatus.Truncated,
  DicomStatus.InvalidUid,
  DicomStatus.ConflictingDuplicate,
  DicomStatus.DataSetDoesNotMatchSopClass,
]);

let tmpCounter = 0;

/**
 * Imports files and folder trees through the same pipeline as C-STORE (`Ingest.commit`): each file is copied (or
 * hard-linked, when its source is consumed) into the spool, fsynced and committed; what is not importable DICOM goes to
 * `problem/<relative path>` with `<name>.reason.txt`, and the import goes on. Every `flushEvery` stored files, and at
 * the end, the studies touched are archived and only then the consumed source files removed. The tree is walked
 * lazily (never listed whole), so memory stays flat however many files there are. Counts live in `import_batches`.
 */
export class Importer {
  private readonly running = new Map<string, { path: string; done: Promise<ImportBatchRow> }>();
  private stopping = false;
  private readonly concurrency: number;
  private readonly flushEvery: number;

  constructor(
    private readonly db: Database,
    private readonly ingest: Ingest,
    private readonly archiver: Archiver,
    private readonly dataDir: string,
    private readonly log: Logger,
    opts: ImporterOptions = {},
  ) {
    this.concurrency = opts.concurrency ?? 8;
    this.flushEvery = opts.flushEvery ?? 200;
  }

  private get batches() {
    return this.db.source.getRepository(this.db.entities.ImportBatch);
  }

  private get problemRows() {
    return this.db.source.getRepository(this.db.entities.ImportProblem);
  }

  /** Batches left queued or running by a process that stopped: their sources are still there and get imported again. */
  async markInterrupted(): Promise<number> {
    let n = 0;
    for (const state of ['queued', 'running'] as const) {
      const r = await this.batches.update({ state }, { state: 'interrupted', endedAt: new Date() });
      n += r.affected ?? 0;
    }
    return n;
  }

  /** Whether a batch is importing this path, a folder inside it or a folder holding it. */
  isBusy(p: string): boolean {
    for (const r of this.running.values()) {
      if (r.path === p || r.path.startsWith(p + path.sep) || p.startsWith(r.path + path.sep)) return true;
    }
    return false;
  }

  /** A finished import that kept its sources (cleanupAfterImport=false) already took this path. */
  async importedKeepingSources(p: string): Promise<boolean> {
    return this.batches.existsBy({ path: p.slice(0, 1024), keepSources: true, state: 'finished' });
  }

  /** Records the batch and runs it in the background; resolves with its row (state queued) at once. */
  async start(
    req: ImportRequest,
    onProgress?: (c: ImportCounts) => void,
  ): Promise<{ batch: ImportBatchRow; done: Promise<ImportBatchRow> }> {
    if (this.stopping) throw new Error('scannode is stopping');
    const batch = await this.create(req);
    const done = this.run(batch, req, onProgress);
    this.running.set(batch.id, { path: req.path, done });
    void done.finally(() => this.running.delete(batch.id)).catch(() => undefined);
    return { batch, done };
  }

  /** Runs a whole import and resolves with its final row. */
  async importPath(req: ImportRequest, onProgress?: (c: ImportCounts) => void): Promise<ImportBatchRow> {
    const { done } = await this.start(req, onProgress);
    return done;
  }

  async status(id: string, problemLimit = 1000): Promise<ImportStatus | null> {
    const batch = await this.batches.findOneBy({ id });
    if (!batch) return null;
    const problems = await this.problemRows.find({ where: { batchId: id }, order: { id: 'ASC' }, take: problemLimit });
    return { ...batch, problemList: problems.map((p) => ({ path: p.path, reason: p.reason })) };
  }

  /** Stops taking files; batches in flight end after the files they hold (state interrupted). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  private async create(req: ImportRequest): Promise<ImportBatchRow> {
    const row: ImportBatchRow = {
      id: randomUUID(),
      name: req.name.slice(0, 256),
      source: req.source,
      path: req.path.slice(0, 1024),
      state: 'queued',
      keepSources: req.keepSources,
      patientId: req.patientId?.slice(0, 64) ?? null,
      studyLabel: req.studyLabel?.slice(0, 128) ?? null,
      ...zeroCounts(),
      startedAt: new Date(),
      endedAt: null,
      message: null,
    };
    await this.batches.insert(row);
    return row;
  }

  private files(req: ImportRequest): AsyncGenerator<string> {
    if (req.files) return fromList(req.files);
    return walk(req.path);
  }

  private async run(
    batch: ImportBatchRow,
    req: ImportRequest,
    onProgress?: (c: ImportCounts) => void,
  ): Promise<ImportBatchRow> {
    const started = Date.now();
    const c: ImportCounts = zeroCounts();
    const work = new BatchWork();
    let lastSave = 0;
    const save = async (extra: Partial<ImportBatchRow> = {}) => {
      lastSave = Date.now();
      await this.batches.update({ id: batch.id }, { ...c, ...extra });
    };
    const progress = () => {
      onProgress?.({ ...c });
      if (Date.now() - lastSave > 500) void save().catch(() => undefined);
    };
    this.log.info('import started', { batch: batch.id, name: batch.name, source: batch.source, path: req.path });
    let state: ImportBatchRow['state'] = 'finished';
    let message: string | null = null;
    try {
      await this.batches.update({ id: batch.id }, { state: 'running' });
      // A first, cheap pass counts the files (a progress bar needs the total); nothing is held but the count.
      for await (const file of this.files(req)) {
        void file;
        c.filesFound++;
        if (c.filesFound % 1000 === 0) progress();
      }
      await save();
      progress();
      const it = this.files(req);
      let flushing: Promise<void> = Promise.resolve();
      const flush = () => {
        const taken = work.take();
        flushing = flushing.then(() => this.flush(taken, c));
        return flushing;
      };
      const worker = async () => {
        for (;;) {
          if (this.stopping) return;
          const next = await it.next();
          if (next.done) return;
          await this.one(next.value, req, batch, c, work);
          progress();
          if (work.stored + work.sources.length >= this.flushEvery) await flush();
        }
      };
      await Promise.all(Array.from({ length: this.concurrency }, worker));
      await flush();
      if (this.stopping) state = 'interrupted';
      if (!req.keepSources && !req.files && state === 'finished')
        removeEmptyDirs(req.path, req.removeEmptyRoot ?? false);
      if (c.errors > 0) {
        state = state === 'interrupted' ? state : 'failed';
        message = `${c.errors} file(s) could not be stored and were left in place (see the problem list)`;
      }
    } catch (err) {
      state = 'failed';
      message = `import failed: ${(err as Error).message}`.slice(0, 1024);
      this.log.error('import failed', { batch: batch.id, err: String(err) });
    }
    const endedAt = new Date();
    await save({ state, endedAt, message });
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    this.log.info('import finished', {
      batch: batch.id,
      name: batch.name,
      state,
      start: batch.startedAt.toISOString(),
      end: endedAt.toISOString(),
      ...c,
      seconds: Number(seconds.toFixed(3)),
      filesPerSecond: Number((c.filesRead / seconds).toFixed(1)),
      bytesPerSecond: Math.round(c.bytes / seconds),
    });
    onProgress?.({ ...c });
    return { ...batch, ...c, state, endedAt, message };
  }

  /** One file: spool copy -> Ingest.commit -> counted; or problem/ with a reason. */
  private async one(file: string, req: ImportRequest, batch: ImportBatchRow, c: ImportCounts, work: BatchWork) {
    const rel = path.relative(req.baseDir, file) || path.basename(file);
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(file);
    } catch (err) {
      // Gone between the listing and now (someone else took it): nothing to import, nothing lost.
      this.log.warn('import: file vanished before it was read', { file, err: String(err) });
      return;
    }
    if (st.isSymbolicLink()) return this.problem(file, rel, 'a symbolic link: not followed', batch, c, false);
    if (st.size === 0) return this.problem(file, rel, 'zero bytes', batch, c, !req.keepSources);
    let head: Buffer;
    let tail: Buffer;
    try {
      ({ head, tail } = await readEnds(file, st.size));
    } catch (err) {
      c.errors++;
      await this.recordProblem(batch.id, rel, `cannot read: ${(err as Error).message}`);
      return;
    }
    if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') {
      return this.problem(
        file,
        rel,
        'not a DICOM Part 10 file: no preamble with "DICM" (files without a file meta header are not imported)',
        batch,
        c,
        !req.keepSources,
      );
    }
    const metaLength = datasetOffset(head);
    const ts = metaTransferSyntax(head);
    if (!ts) {
      return this.problem(file, rel, 'no Transfer Syntax UID in the file meta header', batch, c, !req.keepSources);
    }
    const tmp = path.join(
      this.dataDir,
      DATA_DIRS.incoming,
      `import-${batch.id.slice(0, 8)}-${process.pid}-${++tmpCounter}.part`,
    );
    try {
      await spoolCopy(file, tmp, !req.keepSources);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      c.errors++;
      await this.recordProblem(batch.id, rel, `cannot copy into the spool: ${(err as Error).message}`);
      return;
    }
    let result: Awaited<ReturnType<Ingest['commit']>>;
    try {
      result = await this.ingest.commit(
        { tmpPath: tmp, metaLength, datasetLength: st.size - metaLength, head, tail },
        { transferSyntaxUid: ts, source: 'import' },
      );
    } catch (err) {
      // The spool copy may stay behind: it is a .part file, removed by the next start-up recovery.
      await fs.promises.rm(tmp, { force: true });
      c.errors++;
      await this.recordProblem(batch.id, rel, `not stored: ${(err as Error).message} (left in place)`);
      return;
    }
    if (result.status === DicomStatus.Success && result.instance) {
      c.filesRead++;
      c.bytes += st.size;
      if (result.instance.duplicate) c.duplicates++;
      else work.stored++;
      work.studies.add(result.instance.studyInstanceUid);
      if (!req.keepSources) work.sources.push(file);
      return;
    }
    await fs.promises.rm(tmp, { force: true });
    const reason = `${hex(result.status)} ${result.comment ?? 'not stored'}`;
    if (UNREADABLE.has(result.status)) return this.problem(file, rel, reason, batch, c, !req.keepSources);
    // Out of space, database down: the file is fine, it stays where it is for the next try.
    c.errors++;
    await this.recordProblem(batch.id, rel, `${reason} (left in place)`);
  }

  /** Archives the studies touched, then removes the consumed sources (only ever after their archive is durable). */
  private async flush(taken: { studies: string[]; sources: string[]; stored: number }, c: ImportCounts) {
    for (const study of taken.studies) await this.archiver.archiveStudy(study);
    c.archived += taken.stored;
    for (const f of taken.sources) await fs.promises.rm(f, { force: true });
  }

  /** problem/<rel> with <name>.reason.txt beside it (reason first, so a crash never leaves a file without one). */
  private async problem(
    file: string,
    rel: string,
    reason: string,
    batch: ImportBatchRow,
    c: ImportCounts,
    move: boolean,
  ): Promise<void> {
    c.problems++;
    let stored = rel;
    if (reason !== 'a symbolic link: not followed') {
      const problemDir = path.join(this.dataDir, DATA_DIRS.problem);
      let dest = path.join(problemDir, safeRelative(rel));
      for (let n = 1; fs.existsSync(dest) || fs.existsSync(`${dest}.reason.txt`); n++) {
        dest = path.join(problemDir, `${safeRelative(rel)}.${n}`);
      }
      stored = path.relative(problemDir, dest);
      await fs.promises.mkdir(path.dirname(dest), { recursive: true });
      await fs.promises.writeFile(
        `${dest}.reason.txt`,
        `${reason}\nsource: ${file}\nbatch: ${batch.name} (${batch.id})\nat: ${new Date().toISOString()}\n`,
      );
      if (move) await moveFile(file, dest);
      else await fs.promises.copyFile(file, dest);
    }
    this.log.warn('import: file not importable', { batch: batch.id, file: rel, reason });
    await this.recordProblem(batch.id, stored, reason);
  }

  private async recordProblem(batchId: string, rel: string, reason: string): Promise<void> {
    const row: ImportProblemRow = { batchId, path: rel.slice(0, 1024), reason: reason.slice(0, 1024) };
    await this.problemRows.insert(row);
  }
}

/** What a batch has stored since its last flush. */
class BatchWork {
  studies = new Set<string>();
  sources: string[] = [];
  stored = 0;

  take(): { studies: string[]; sources: string[]; stored: number } {
    const t = { studies: [...this.studies], sources: this.sources, stored: this.stored };
    this.studies = new Set();
    this.sources = [];
    this.stored = 0;
    return t;
  }
}

/** Every regular file (and symlink) under `root`, depth first, one directory handle open per level. */
export async function* walk(root: string): AsyncGenerator<string> {
  const st = await fs.promises.lstat(root);
  if (!st.isDirectory()) {
    yield root;
    return;
  }
  const dir = await fs.promises.opendir(root);
  for await (const e of dir) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile() || e.isSymbolicLink()) yield p;
  }
}

async function* fromList(files: string[]): AsyncGenerator<string> {
  for (const f of files) yield f;
}

async function readEnds(file: string, size: number): Promise<{ head: Buffer; tail: Buffer }> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const head = Buffer.allocUnsafe(Math.min(HEAD_BYTES, size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const tail = Buffer.allocUnsafe(Math.min(16, size));
    await fh.read(tail, 0, tail.length, size - tail.length);
    return { head: head.subarray(0, bytesRead), tail };
  } finally {
    await fh.close();
  }
}

/** The Transfer Syntax UID (0002,0010) of a Part 10 file's meta header, or undefined. */
export function metaTransferSyntax(buf: Buffer): string | undefined {
  let p = 132;
  while (p + 8 <= buf.length && buf.readUInt16LE(p) === 0x0002) {
    const elem = buf.readUInt16LE(p + 2);
    const vr = buf.toString('latin1', p + 4, p + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
    const len = long ? buf.readUInt32LE(p + 8) : buf.readUInt16LE(p + 6);
    const start = p + (long ? 12 : 8);
    if (elem === 0x0010) {
      const v = buf.toString('latin1', start, Math.min(start + len, buf.length)).replace(/[\0 ]+$/, '');
      return v.length ? v : undefined;
    }
    p = start + len;
  }
  return undefined;
}

/** Hard link when the source is consumed (no copy; falls back across file systems), else copy; then fsync. */
async function spoolCopy(from: string, to: string, consume: boolean): Promise<void> {
  let linked = false;
  if (consume) {
    try {
      await fs.promises.link(from, to);
      linked = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    }
  }
  if (!linked) await fs.promises.copyFile(from, to, fs.constants.COPYFILE_EXCL);
  const fh = await fs.promises.open(to, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await fs.promises.rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await fs.promises.copyFile(from, to);
    await fs.promises.rm(from);
  }
}

/** A relative path that stays inside problem/ (no `..`, no root). */
function safeRelative(rel: string): string {
  const parts = rel.split(/[\\/]+/).filter((s) => s && s !== '.' && s !== '..');
  return parts.length ? path.join(...parts) : 'unnamed';
}

/** Removes the empty folders of an imported tree, bottom up; `root` itself only when asked. */
function removeEmptyDirs(root: string, includeRoot: boolean): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(root);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  const visit = (dir: string, isRoot: boolean) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) visit(path.join(dir, e.name), false);
    }
    if (isRoot && !includeRoot) return;
    try {
      fs.rmdirSync(dir);
    } catch {
      // not empty: something was left (a symlink, a file that could not be stored)
    }
  };
  visit(root, true);
}
