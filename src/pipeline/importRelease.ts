/**
 * Owns the end of a source's way: proving that its bytes are in the archive (the stored copy that was checked against
 * it, or the same data set) and only then removing it, through the very folder it was read from, while its name still
 * holds the inode that was read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { instancePlacesOf } from '../db/instanceStore.js';
import type { Database } from '../db/dataSource.js';
import type { Logger } from '../logging/logger.js';
import { insideDataDir } from '../domain/paths.js';
import { classifyImportError, type ImportFailure } from '../domain/importRules.js';
import type { Tally } from '../db/importBatches.js';
import { sameData, type BatchContext, type Taken } from './importFile.js';
import { sameIdent, type ImportTree } from './safeTree.js';
import { openRegular, unlinkIfSame } from './treeEntries.js';

export interface ReleaseTarget extends BatchContext {
  tally: Tally;
  tree?: ImportTree;
  failure?: ImportFailure;
  /** Removing sources failed once (permissions): the others are left too, the batch says why. */
  removeBroken: boolean;
}

type ArchivedRow = { sopInstanceUid: string; state: string; path: string };

/** Settles the files of a flush once their studies were archived: counted archived, and their sources removed. */
export async function settleTaken(
  db: Database,
  dataDir: string,
  a: ReleaseTarget,
  taken: Taken[],
  log: Logger,
): Promise<void> {
  let rows: Map<string, ArchivedRow>;
  try {
    rows = await instancePlacesOf(
      db,
      taken.map((t) => t.sop),
    );
  } catch (err) {
    // Cannot tell what is archived: nothing is counted as such, no source is removed; a retry sorts it out.
    a.failure ??= classifyImportError(err, 'database', 'the index');
    for (const t of taken) await t.dir.release();
    return;
  }
  for (const t of taken) {
    try {
      await settle(dataDir, a, t, rows.get(t.sop), log);
    } catch (err) {
      a.failure ??= classifyImportError(err, 'database', 'the index');
    } finally {
      await t.dir.release();
    }
  }
}

async function settle(dataDir: string, a: ReleaseTarget, t: Taken, row: ArchivedRow | undefined, log: Logger) {
  const notArchived = async (why: string) => {
    a.tally.unread(t.size, t.duplicate);
    await a.addProblem(t.text, `${why}: the source stays (left in place)`, 'error');
    log.warn('import: stored but not archived', { batch: a.id, file: t.text, why });
  };
  if (!row || row.state !== 'archived') return notArchived('stored in the spool but not archived');
  const file = insideDataDir(dataDir, row.path);
  const st = await fs.promises.lstat(file, { bigint: true }).catch(() => undefined);
  if (!st?.isFile()) return notArchived('indexed as archived, but the archived file is missing');
  if (!sameIdent(st, t.storedId) && !(await sameAsSource(t, file))) {
    return notArchived('the archive holds a different file under the same SOP Instance UID');
  }
  let gone = false;
  if (!a.keepSources && !a.removeBroken) gone = await removeSource(a, t, file, st, log);
  a.tally.archived(t.size, t.duplicate, gone);
}

/** Whether the source still holds the data set now in the archive (the archive kept a copy it already had). */
async function sameAsSource(t: Taken, archived: string): Promise<boolean> {
  const src = await openRegular(t.dir, t.name);
  if (src === 'vanished' || 'kind' in src) return false;
  try {
    return sameIdent(src.st, t.id) && (await sameData(src.fh, archived));
  } finally {
    await src.fh.close();
  }
}

/**
 * Removes the source once its bytes are archived and durable under another name: never the archive entry itself
 * (an import of the archive onto itself, through any alias), never a folder moved out of the import since it was
 * read, and only while the name still holds the inode that was read.
 */
async function removeSource(
  a: ReleaseTarget,
  t: Taken,
  archived: string,
  st: fs.BigIntStats,
  log: Logger,
): Promise<boolean> {
  if (sameIdent(st, t.id)) {
    // The same inode (linked in by this import, or a hard link into the archive): fine when it is another entry.
    const archiveDir = await fs.promises.lstat(path.dirname(archived), { bigint: true });
    if (sameIdent(archiveDir, t.dir.id) && Buffer.from(path.basename(archived)).equals(t.name)) {
      log.error('import: a source is the archived file itself; never removed', { batch: a.id, file: t.text });
      return false;
    }
  }
  if (!(await a.tree?.holds(t.dir))) {
    log.warn('import: source folder moved out of the import since it was read; left where it is', {
      batch: a.id,
      file: t.text,
    });
    return false;
  }
  try {
    const r = await unlinkIfSame(t.dir, t.name, t.id);
    if (r === 'replaced')
      log.warn('import: another file took a source name; left alone', { batch: a.id, file: t.text });
    return true;
  } catch (err) {
    a.removeBroken = true;
    a.failure ??= classifyImportError(err, 'remove', t.dir.text || a.name);
    return false;
  }
}
