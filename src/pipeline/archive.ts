import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import { archivePath, insideDataDir } from '../domain/paths.js';
import { DirSync } from '../storage/spoolWriter.js';
import { sameDataset } from '../storage/files.js';

export interface ArchiveResult {
  archived: number;
  alreadyArchived: number;
  /** Instances whose file is missing from both places (logged, row left as is). */
  missing: string[];
}

/**
 * Moves a study's spooled instances to `site/raw/<Study>/<Series>/<SOP>.dcm` and marks their rows archived.
 * Crash-safe and re-runnable: each file is linked into the archive (never overwriting), the archive folder fsynced,
 * the row updated, and only then the spool name removed; a run that stopped anywhere in between finishes the job.
 */
export class Archiver {
  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  async archiveStudy(studyInstanceUid: string): Promise<ArchiveResult> {
    const repo = this.db.source.getRepository(this.db.entities.Instance);
    const rows = await repo.find({
      where: { studyInstanceUid, state: 'spooled' },
      select: { sopInstanceUid: true, seriesInstanceUid: true, studyInstanceUid: true, path: true },
    });
    const result: ArchiveResult = { archived: 0, alreadyArchived: 0, missing: [] };
    const dirSyncs = new Map<string, DirSync>();
    const moved: Array<{ sop: string; target: string; relative: string; spool: string }> = [];
    for (const row of rows) {
      const relative = archivePath(row.studyInstanceUid, row.seriesInstanceUid, row.sopInstanceUid);
      const target = insideDataDir(this.dataDir, relative);
      const spool = insideDataDir(this.dataDir, row.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      const spoolExists = fs.existsSync(spool);
      const targetExists = fs.existsSync(target);
      if (!spoolExists && !targetExists) {
        result.missing.push(row.sopInstanceUid);
        continue;
      }
      if (spoolExists && targetExists && spool !== target && !sameDataset(spool, target)) {
        this.log.error('archive holds a different file under the same SOP Instance UID; spool copy kept', {
          sop: row.sopInstanceUid,
        });
        result.missing.push(row.sopInstanceUid);
        continue;
      }
      if (!targetExists) fs.linkSync(spool, target);
      const dir = path.dirname(target);
      if (!dirSyncs.has(dir)) dirSyncs.set(dir, new DirSync(dir));
      moved.push({ sop: row.sopInstanceUid, target, relative, spool });
    }
    await Promise.all([...dirSyncs.values()].map((d) => d.sync()));
    const now = new Date();
    for (const m of moved) {
      await repo.update({ sopInstanceUid: m.sop }, { path: m.relative, state: 'archived', archivedAt: now });
      if (m.spool !== m.target) fs.rmSync(m.spool, { force: true });
      result.archived++;
    }
    result.alreadyArchived = await repo.countBy({ studyInstanceUid, state: 'archived' });
    result.alreadyArchived -= result.archived;
    if (result.archived > 0 || result.missing.length > 0) {
      this.log.info('study archived', {
        study: studyInstanceUid,
        archived: result.archived,
        missing: result.missing.length,
      });
    }
    return result;
  }
}
