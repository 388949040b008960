/**
 * The archive side of recovery: the files under site/raw are the truth and the index is rebuilt from them. `quick`
 * (every start, scales with the spool) heals rows still pointing to the spool while the archive holds the file and
 * removes spool copies of archived instances; `walk` (after an unclean stop, or `scannode reindex`) indexes every
 * archive file without a row. The spool's own recovery (Ingest.recover) runs first and owns spooled rows and files.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import { anyInstance, instancePage, instancePlace, instancePlaces, markArchived } from '../db/instanceStore.js';
import { indexFoundFile } from '../db/instanceIndex.js';
import { archivePath, DATA_DIRS, insideDataDir } from '../domain/paths.js';
import { isValidUid } from '../domain/uid.js';
import { indexAttributes, parseHeaderFromFile, str } from '../storage/header.js';
import { compareDatasets } from '../storage/files.js';
import type { Archiver } from './archive.js';
import { metaTransferSyntax } from './importer.js';

export interface WalkCounts {
  studies: number;
  files: number;
  /** Archive files that had no row and got one. */
  indexed: number;
  /** Rows that pointed to the spool while the archive holds the file: marked archived. */
  healed: number;
  /** Files that are not an instance of the folder they are in (unreadable, other UIDs): logged, left alone. */
  skipped: number;
}

export interface QuickCounts {
  healed: number;
  spoolCopiesRemoved: number;
}

/** The one place recovery reads a header (the spool engineer may give header.ts a faster scanner). */
function readHeader(file: string) {
  const h = parseHeaderFromFile(file);
  const fd = fs.openSync(file, 'r');
  let ts: string | undefined;
  try {
    const head = Buffer.alloc(16 * 1024);
    ts = metaTransferSyntax(head.subarray(0, fs.readSync(fd, head, 0, head.length, 0)));
  } finally {
    fs.closeSync(fd);
  }
  return { h, ts };
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function isFile(p: string): Promise<fs.Stats | undefined> {
  try {
    const st = await fs.promises.lstat(p);
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}

async function dirNames(dir: string): Promise<string[]> {
  try {
    return (await fs.promises.readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export class ArchiveRecovery {
  private stopping = false;

  constructor(
    private readonly db: Database,
    private readonly dataDir: string,
    private readonly log: Logger,
    private readonly archiver: Archiver,
    /** This node's spool folder (relative to dataDir): its copies of archived instances are removed. */
    private readonly incomingDir: string = DATA_DIRS.incoming,
  ) {}

  /** The walk of site/raw after start, in the background: logged, never thrown (`scannode reindex` is the fallback). */
  async walkInBackground(why: string, changed: () => void): Promise<WalkCounts | undefined> {
    const started = Date.now();
    this.log.info('indexing the archive in the background', { why });
    try {
      const counts = await this.walk();
      this.log.info('archive indexed', { ...counts, ms: Date.now() - started });
      if (counts.indexed || counts.healed) changed();
      return counts;
    } catch (err) {
      this.log.error('indexing the archive failed; run `scannode reindex`', { err: String(err) });
      return undefined;
    }
  }

  /** Asks a running walk to stop after the study it is on (shutdown). */
  stop(): void {
    this.stopping = true;
  }

  /**
   * Start-up, after the spool's recovery: (1) a 'spooled' row whose spool file is gone while its archive file exists
   * (the index rolled back after the archiver removed the spool copy) is marked archived; (2) a spool file whose row
   * is archived and whose archive file holds the same data (a stop between the row and the unlink) is removed.
   */
  async quick(): Promise<QuickCounts> {
    const counts: QuickCounts = { healed: 0, spoolCopiesRemoved: 0 };
    const spooled = await instancePlaces(this.db, { state: 'spooled' });
    const heal: string[] = [];
    for (const r of spooled) {
      if (await isFile(insideDataDir(this.dataDir, r.path))) continue;
      const target = insideDataDir(
        this.dataDir,
        archivePath(r.studyInstanceUid, r.seriesInstanceUid, r.sopInstanceUid),
      );
      if (await isFile(target)) heal.push(r.sopInstanceUid);
    }
    if (heal.length) await markArchived(this.db, heal, new Date());
    counts.healed = heal.length;
    const incoming = path.join(this.dataDir, this.incomingDir);
    let names: string[] = [];
    try {
      names = await fs.promises.readdir(incoming);
    } catch {
      names = [];
    }
    for (const name of names) {
      if (!name.endsWith('.dcm') || !isValidUid(name.slice(0, -4))) continue;
      const row = await instancePlace(this.db, name.slice(0, -4));
      if (row?.state !== 'archived') continue;
      const spool = path.join(incoming, name);
      const archived = insideDataDir(this.dataDir, row.path);
      const [a, b] = [await isFile(spool), await isFile(archived)];
      if (!a || !b) continue;
      if ((a.dev === b.dev && a.ino === b.ino) || (await compareDatasets(spool, archived))) {
        await fs.promises.rm(spool, { force: true });
        counts.spoolCopiesRemoved++;
      } else {
        this.log.error('spool file differs from the archived instance of the same SOP Instance UID; left in place', {
          file: path.join(this.incomingDir, name),
        });
      }
    }
    if (counts.healed || counts.spoolCopiesRemoved) this.log.info('archive recovered (quick)', { ...counts });
    return counts;
  }

  /**
   * Every file under site/raw/<Study>/<Series>/<SOP>.dcm: one without a row gets one (state archived, source
   * 'recovered'); a row still 'spooled' whose spool file is gone is marked archived. One study at a time, under the
   * archiver's lock for that study, yielding to the event loop between files, so a running node stays responsive.
   */
  async walk(onStudy?: (c: WalkCounts) => void): Promise<WalkCounts> {
    const c: WalkCounts = { studies: 0, files: 0, indexed: 0, healed: 0, skipped: 0 };
    const site = path.join(this.dataDir, DATA_DIRS.site);
    for (const study of await dirNames(site)) {
      if (this.stopping) break;
      if (!isValidUid(study)) continue;
      await this.archiver.withStudy(study, () => this.walkStudy(site, study, c));
      c.studies++;
      onStudy?.(c);
    }
    return c;
  }

  private async walkStudy(site: string, study: string, c: WalkCounts): Promise<void> {
    const rows = await instancePlaces(this.db, { study });
    const known = new Map(rows.map((r) => [r.sopInstanceUid, r]));
    const heal: string[] = [];
    for (const series of await dirNames(path.join(site, study))) {
      if (!isValidUid(series)) continue;
      const dir = path.join(site, study, series);
      for (const name of await fs.promises.readdir(dir)) {
        const sop = name.endsWith('.dcm') ? name.slice(0, -4) : '';
        if (!isValidUid(sop)) continue;
        c.files++;
        const row = known.get(sop);
        if (row) {
          if (row.state === 'spooled' && !(await isFile(insideDataDir(this.dataDir, row.path)))) heal.push(sop);
          continue;
        }
        const file = path.join(dir, name);
        const st = await isFile(file);
        if (!st) continue;
        const done = await this.indexOne(file, st.size, { study, series, sop });
        if (done === 'indexed') c.indexed++;
        else if (done === 'skipped') c.skipped++;
        if (c.files % 64 === 0) await yieldToLoop();
      }
    }
    if (heal.length) await markArchived(this.db, heal, new Date());
    c.healed += heal.length;
  }

  private async indexOne(
    file: string,
    size: number,
    where: { study: string; series: string; sop: string },
  ): Promise<'indexed' | 'skipped' | 'exists'> {
    const relative = archivePath(where.study, where.series, where.sop);
    let h: ReturnType<typeof readHeader>;
    try {
      h = readHeader(file);
    } catch (err) {
      this.log.warn('archive file cannot be read; not indexed', { file: relative, err: String(err) });
      return 'skipped';
    }
    const uids = {
      sop: str(h.h, 'SOPInstanceUID'),
      study: str(h.h, 'StudyInstanceUID'),
      series: str(h.h, 'SeriesInstanceUID'),
      sopClass: str(h.h, 'SOPClassUID'),
    };
    if (uids.sop !== where.sop || uids.study !== where.study || uids.series !== where.series || !uids.sopClass) {
      this.log.warn('archive file is not the instance its path names; not indexed', { file: relative });
      return 'skipped';
    }
    const inserted = await indexFoundFile(this.db, indexAttributes(h.h), {
      sop: where.sop,
      sopClass: uids.sopClass,
      transferSyntaxUid: h.ts ?? '',
      study: where.study,
      series: where.series,
      path: relative,
      size,
      state: 'archived',
      source: 'recovered',
      callingAe: null,
    });
    return inserted ? 'indexed' : 'exists';
  }

  /** Rows whose file is in neither place (for `scannode reindex`'s report; nothing is dropped). */
  async rowsWithoutFile(): Promise<number> {
    let n = 0;
    const page = 1000;
    for (let skip = 0; ; skip += page) {
      const rows = await instancePage(this.db, skip, page);
      for (const r of rows) if (!(await isFile(insideDataDir(this.dataDir, r.path)))) n++;
      if (rows.length < page) return n;
    }
  }
}

/**
 * Why site/raw is walked in the background after start (undefined: it is not). Only when an inconsistency is possible
 * (the last run did not stop cleanly: SQLite may have rolled back commits the files outlived; or the index is empty
 * while site/raw is not), so a big archive does not cost every start a full walk.
 */
export async function archiveWalkNeeded(
  db: Database,
  dataDir: string,
  mode: 'auto' | 'always' | 'never',
  uncleanBefore: boolean,
): Promise<string | undefined> {
  if (mode === 'never') return undefined;
  if (mode === 'always') return 'archive.reindexOnStart is always';
  if (uncleanBefore) return 'the last run did not stop cleanly';
  const site = path.join(dataDir, DATA_DIRS.site);
  const archiveHasFiles = fs.existsSync(site) && fs.readdirSync(site).length > 0;
  if (archiveHasFiles && !(await anyInstance(db))) return 'the index is empty while site/raw is not';
  return undefined;
}
