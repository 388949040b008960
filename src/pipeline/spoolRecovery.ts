/**
 * Start-up recovery of the spool, before the listener opens. What a C-STORE left after its Success (final name, index
 * row) is redone from the files:
 * - pool files (incoming/.pool, not another live process's): empty ones are removed; a sealed one whose bytes match
 *   its seal is moved to incoming/<SOP>.dcm; any other (no seal, wrong length, wrong checksum: a transfer cut short
 *   or a torn write) goes to incoming/torn/ and is never indexed;
 * - `.part` files (imports in flight) are removed: never acknowledged;
 * - every incoming/<SOP>.dcm without its row gets it; a 'spooled' row whose file is gone is dropped, unless many are
 *   (dataDir looks unmounted or emptied): then none is, and the log says so.
 * When nodes share the data directory each node has its own spool (paths.ts spoolDirs) and recovers only that one at
 * its start; a dead node's is recovered by another node (`ownerDead`: its files are debris whatever their pid says,
 * and its rows are left alone, since the live nodes may be archiving them).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import { indexRows, insertInstanceBatch } from '../db/instanceIndex.js';
import { dropInstanceRow, instanceExists, instancePlaces } from '../db/instanceStore.js';
import type { Logger } from '../logging/logger.js';
import { DATA_DIRS, insideDataDir, spoolDirs, spoolPath, type SpoolDirs } from '../domain/paths.js';
import { isValidUid, requireUid } from '../domain/uid.js';
import { indexAttributes, parseHeaderFromFile, str } from '../storage/header.js';
import { checkSealedFile } from '../storage/seal.js';
import { compareDatasets, fsyncDir, moveNoReplace } from '../storage/files.js';
import { ownedByAnotherLiveProcess } from '../storage/spoolPool.js';

export interface SpoolRecoveryCounts {
  /** Spool files that got their index row. */
  indexed: number;
  /** Unfinished import copies and empty pool files removed. */
  removed: number;
  /** Pool files moved to incoming/torn. */
  torn: number;
}

const GROUP = 200;
/** Spooled rows without their file that a crash can explain; more (and most of them) is a missing volume. */
const MASS_DROP = 10;

export interface SpoolRecoveryOptions {
  /** The spool to recover (default: incoming/ itself). */
  spool?: SpoolDirs;
  /** It is a dead node's: no pool file is another process's, and no row is dropped. */
  ownerDead?: boolean;
}

export async function recoverSpool(
  db: Database,
  dataDir: string,
  log: Logger,
  opts: SpoolRecoveryOptions = {},
): Promise<SpoolRecoveryCounts> {
  const dirs = opts.spool ?? spoolDirs();
  const incoming = path.join(dataDir, dirs.incoming);
  const counts: SpoolRecoveryCounts = { indexed: 0, removed: 0, torn: 0 };
  const pool = path.join(dataDir, dirs.pool);
  const tornDir = path.join(dataDir, dirs.torn);
  const inUse = (name: string) => !opts.ownerDead && ownedByAnotherLiveProcess(name);
  let tornDirMade = false;
  for (const name of fs.existsSync(pool) ? fs.readdirSync(pool) : []) {
    if (inUse(name)) continue;
    const file = path.join(pool, name);
    if (fs.statSync(file).size === 0) {
      fs.rmSync(file, { force: true });
      counts.removed++;
      continue;
    }
    const check = checkSealedFile(file);
    if (!check.ok) {
      if (!tornDirMade) fs.mkdirSync(tornDir, { recursive: true });
      tornDirMade = true;
      const dest = path.join(tornDir, `${name}.${Date.now()}`);
      fs.renameSync(file, dest);
      counts.torn++;
      log.warn('torn spool file set aside, not indexed', { file: path.relative(dataDir, dest), reason: check.reason });
      continue;
    }
    try {
      const sop = requireUid('SOPInstanceUID', parseHeaderFromFile(file).SOPInstanceUID);
      const target = insideDataDir(dataDir, spoolPath(sop, dirs));
      if (moveNoReplace(file, target) === 'exists') {
        if (await compareDatasets(file, target)) fs.rmSync(file, { force: true });
        else {
          const dest = path.join(dataDir, DATA_DIRS.conflicts, `${sop}.${Date.now()}.dcm`);
          fs.renameSync(file, dest);
          log.warn('recovered spool file differs from the stored one with its UID: quarantined', {
            sop,
            file: path.relative(dataDir, dest),
          });
        }
      }
    } catch (err) {
      log.error('sealed spool file cannot be read, left in the pool', { file: name, err: String(err) });
    }
  }
  await Promise.all([
    fs.existsSync(incoming) ? fsyncDir(incoming) : undefined,
    fs.existsSync(pool) ? fsyncDir(pool) : undefined,
  ]);
  if (tornDirMade) await fsyncDir(tornDir);

  let rows: ReturnType<typeof indexRows>[] = [];
  const flush = async () => {
    if (!rows.length) return;
    await insertInstanceBatch(
      db,
      rows.map((r) => r.groups),
      rows.map((r) => r.row),
    );
    counts.indexed += rows.length;
    rows = [];
  };
  for (const name of fs.existsSync(incoming) ? fs.readdirSync(incoming) : []) {
    const file = path.join(incoming, name);
    if (name.endsWith('.part') && !inUse(name)) {
      fs.rmSync(file, { force: true });
      counts.removed++;
      continue;
    }
    if (!name.endsWith('.dcm')) continue;
    const sop = name.slice(0, -4);
    if (!isValidUid(sop) || (await instanceExists(db, sop))) continue;
    try {
      const header = parseHeaderFromFile(file);
      const uids = {
        sop: requireUid('SOPInstanceUID', header.SOPInstanceUID),
        study: requireUid('StudyInstanceUID', header.StudyInstanceUID),
        series: requireUid('SeriesInstanceUID', header.SeriesInstanceUID),
        sopClass: requireUid('SOPClassUID', header.SOPClassUID),
      };
      const where = { path: spoolPath(uids.sop, dirs), size: fs.statSync(file).size };
      const transferSyntaxUid = str(header, 'TransferSyntaxUID') ?? '';
      rows.push(
        indexRows(indexAttributes(header), {
          ...uids,
          ...where,
          transferSyntaxUid,
          state: 'spooled',
          source: 'recovered',
          callingAe: null,
        }),
      );
      if (rows.length >= GROUP) await flush();
    } catch (err) {
      log.error('spool file cannot be indexed, left in place', { file: name, err: String(err) });
    }
  }
  await flush();
  if (opts.ownerDead) {
    if (counts.indexed || counts.removed || counts.torn) log.info('spool of a dead node recovered', { ...counts });
    return counts;
  }

  // Rows are written only after their file's final name is durable: a 'spooled' row without its file does not come
  // from a crash of the receive path. As before, the row goes (an archived copy is the archive recovery's).
  // Only this spool's rows: with nodes sharing the data directory, the others' are theirs.
  const mine = `${dirs.incoming}/`;
  const spooled = (await instancePlaces(db, { state: 'spooled' })).filter(
    (r) => r.path.startsWith(mine) && !r.path.slice(mine.length).includes('/'),
  );
  const missing = spooled.filter((row) => !fs.existsSync(insideDataDir(dataDir, row.path)));
  let orphans = 0;
  if (looksUnmounted(missing.length, spooled.length)) {
    // A crash leaves a few such rows at most. Many, or all of them: the data volume is not mounted yet, or incoming/
    // was emptied by hand. The rows stay (a re-send of such an instance is stored again) and the operator is told.
    log.error('many spooled rows have no file: dataDir looks unmounted or emptied; none is dropped', {
      rowsWithoutFile: missing.length,
      spooledRows: spooled.length,
      dataDir,
    });
  } else {
    for (const row of missing) {
      await dropInstanceRow(db, row.sopInstanceUid);
      orphans++;
    }
  }
  if (counts.indexed || counts.removed || counts.torn || orphans) {
    log.info('spool recovered', { ...counts, rowsWithoutFile: orphans });
  }
  return counts;
}

/** More than a crash can leave: over MASS_DROP rows without their file, and most of the spooled rows. */
function looksUnmounted(missing: number, spooled: number): boolean {
  return missing > MASS_DROP && missing * 2 > spooled;
}
