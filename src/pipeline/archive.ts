/** The archiver: spool -> site/raw/<Study>/<Series>/<SOP>.dcm, durable before any spool copy goes; one study at a time. */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import { archivePath, DATA_DIRS, insideDataDir } from '../domain/paths.js';
import { compareDatasets, fsyncDir, linkOrCopy, mkdirDurable } from '../storage/files.js';
import { countInstances, instancePlaces, markArchived } from '../db/instanceStore.js';
import { KeyedMutex } from '../scheduler/keyedMutex.js';

export interface ArchiveResult {
  archived: number;
  alreadyArchived: number;
  /** Of `archived`, how many were copied (the archive is on another file system) rather than linked. */
  copied: number;
  /** Instances whose file is missing from both places (logged, row left as is). */
  missing: string[];
}

/** Archiving a study stopped (disk full, permissions): what was placed before is archived, the rest stays spooled. */
export class ArchiveError extends Error {
  constructor(
    readonly study: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

const NO_SPACE = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

async function exists(p: string): Promise<boolean> {
  try {
    await fs.promises.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Moves a study's spooled instances to `site/raw/<Study>/<Series>/<SOP>.dcm` and marks their rows archived.
 * Crash-safe and re-runnable: each file is linked into the archive (or, when site/raw is another file system, copied,
 * fsynced and verified), never overwriting; new Study / Series folders are fsynced into their parents, the Series
 * folders fsynced, the rows committed durably (SQLite: that commit with synchronous=FULL), and only then the spool
 * names removed. A run that stopped anywhere in between is finished by the next run or by the start-up recovery.
 */
export class Archiver {
  private readonly locks = new KeyedMutex();
  /** What went wrong last (logged once per change), undefined while archiving works. */
  private problem: string | undefined;

  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  /** Runs fn while no other archiving or re-indexing of the same study runs in this process. */
  withStudy<T>(study: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(study, fn);
  }

  archiveStudy(studyInstanceUid: string): Promise<ArchiveResult> {
    return this.withStudy(studyInstanceUid, () => this.archive(studyInstanceUid));
  }

  private async archive(study: string): Promise<ArchiveResult> {
    const rows = await instancePlaces(this.db, { study, state: 'spooled' });
    const result: ArchiveResult = { archived: 0, alreadyArchived: 0, copied: 0, missing: [] };
    const placed: Array<{ sop: string; target: string; spool: string }> = [];
    let failure: unknown;
    if (rows.length) {
      try {
        await this.place(rows, placed, result);
      } catch (err) {
        failure = err;
      }
    }
    // What was placed before a failure is archived all the same: its bytes are durable in site/raw.
    if (placed.length) {
      await markArchived(
        this.db,
        placed.map((p) => p.sop),
        new Date(),
      );
      for (const p of placed) if (p.spool !== p.target) await fs.promises.rm(p.spool, { force: true });
      result.archived = placed.length;
    }
    if (failure !== undefined) throw this.failed(study, failure, result);
    if (this.problem !== undefined) {
      this.log.info('archiving works again', { study, was: this.problem });
      this.problem = undefined;
    }
    result.alreadyArchived = (await countInstances(this.db, { study, state: 'archived' })) - result.archived;
    if (result.archived > 0 || result.missing.length > 0) {
      this.log.info('study archived', {
        study,
        archived: result.archived,
        ...(result.copied ? { copied: result.copied } : {}),
        missing: result.missing.length,
      });
    }
    return result;
  }

  /** Links or copies each spooled file into the archive; the folders fsynced. Fills `placed` as it goes. */
  private async place(
    rows: Array<{ sopInstanceUid: string; seriesInstanceUid: string; studyInstanceUid: string; path: string }>,
    placed: Array<{ sop: string; target: string; spool: string }>,
    result: ArchiveResult,
  ): Promise<void> {
    const site = path.join(this.dataDir, DATA_DIRS.site);
    await mkdirDurable(this.dataDir, DATA_DIRS.site);
    const made = new Set<string>();
    const dirs = new Set<string>();
    try {
      for (const row of rows) {
        const target = insideDataDir(
          this.dataDir,
          archivePath(row.studyInstanceUid, row.seriesInstanceUid, row.sopInstanceUid),
        );
        const spool = insideDataDir(this.dataDir, row.path);
        const dir = path.dirname(target);
        if (!made.has(dir)) {
          await mkdirDurable(site, path.relative(site, dir));
          made.add(dir);
        }
        const [spoolExists, targetExists] = [await exists(spool), await exists(target)];
        if (!spoolExists && !targetExists) {
          result.missing.push(row.sopInstanceUid);
          continue;
        }
        if (spoolExists && spool !== target) {
          const how = targetExists ? 'exists' : await linkOrCopy(spool, target);
          if (how === 'copied') result.copied++;
          if (how === 'exists' && !(await compareDatasets(spool, target))) {
            this.log.error('archive holds a different file under the same SOP Instance UID; spool copy kept', {
              sop: row.sopInstanceUid,
            });
            result.missing.push(row.sopInstanceUid);
            continue;
          }
        }
        dirs.add(dir);
        placed.push({ sop: row.sopInstanceUid, target, spool });
      }
    } finally {
      // Every name placed so far is made durable, also when a later file failed (its row is then marked too).
      await Promise.all([...dirs].map((d) => fsyncDir(d)));
    }
  }

  private failed(study: string, err: unknown, result: ArchiveResult): ArchiveError {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = NO_SPACE.has(code ?? '')
      ? `out of disk space in ${DATA_DIRS.site} (${code}); ${result.archived} archived, the rest stays in the spool`
      : `cannot write to ${DATA_DIRS.site}: ${code ?? (err instanceof Error ? err.message : String(err))}`;
    if (this.problem !== reason.replace(/\d+ archived/, 'n archived')) {
      this.problem = reason.replace(/\d+ archived/, 'n archived');
      this.log.error('archiving failed; scans stay active and are archived once it works', { study, reason });
    }
    return new ArchiveError(study, code, `archiving failed: ${reason}`);
  }
}
