import path from 'node:path';
import { requireUid } from './uid.js';

/** Folders of the data directory (SPEC section 4), relative to dataDir. */
export const DATA_DIRS = {
  incoming: 'incoming',
  conflicts: 'incoming/conflicts',
  /** Empty spool files made ahead (storage/spoolPool.ts); a C-STORE writes into one. */
  pool: 'incoming/.pool',
  /** Spool files recovery found unsealed or not matching their seal: never indexed, kept for an operator. */
  torn: 'incoming/torn',
  scanner: 'scanner',
  activeScans: 'active-scans',
  finishedScans: 'finished-scans',
  failedScans: 'failed-scans',
  site: 'site/raw',
  inbox: 'inbox',
  problem: 'problem',
} as const;

/** Spool file of one instance, relative to dataDir. The UID is validated here, so no caller can escape dataDir. */
export function spoolPath(sopInstanceUid: string): string {
  return path.posix.join(DATA_DIRS.incoming, `${requireUid('SOPInstanceUID', sopInstanceUid)}.dcm`);
}

/** Archive file of one instance, relative to dataDir: site/raw/<Study>/<Series>/<SOP>.dcm */
export function archivePath(studyUid: string, seriesUid: string, sopInstanceUid: string): string {
  return path.posix.join(
    DATA_DIRS.site,
    requireUid('StudyInstanceUID', studyUid),
    requireUid('SeriesInstanceUID', seriesUid),
    `${requireUid('SOPInstanceUID', sopInstanceUid)}.dcm`,
  );
}

/** Resolves a dataDir-relative path and proves it stays inside dataDir. */
export function insideDataDir(dataDir: string, relative: string): string {
  const root = path.resolve(dataDir);
  const abs = path.resolve(root, relative);
  if (abs !== root && !abs.startsWith(root + path.sep)) throw new Error(`path ${relative} leaves the data directory`);
  return abs;
}
