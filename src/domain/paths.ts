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

/** A node's spool, relative to dataDir: where its C-STOREs and imports land before they are archived. */
export interface SpoolDirs {
  /** Final spool files <SOP>.dcm, and imports' .part copies. */
  incoming: string;
  /** Empty files made ahead; a C-STORE writes into one (storage/spoolPool.ts). */
  pool: string;
  /** Pool files recovery found unsealed or not matching their seal. */
  torn: string;
}

/** Node ids are config values: one that is a path step of its own would leave incoming/nodes/. */
const NODE_ID = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$/;

/**
 * The spool of this node: incoming/ itself (one node per data directory, the default), or incoming/nodes/<node>/
 * when several nodes share the data directory (cluster.sharedDataDir): files in flight stay apart per node, and a
 * dead node's are recovered by another one.
 */
export function spoolDirs(node?: string): SpoolDirs {
  if (node === undefined) return { incoming: DATA_DIRS.incoming, pool: DATA_DIRS.pool, torn: DATA_DIRS.torn };
  if (!NODE_ID.test(node)) throw new Error(`node id "${node}" cannot name a spool folder`);
  const incoming = path.posix.join(DATA_DIRS.incoming, 'nodes', node);
  return { incoming, pool: path.posix.join(incoming, '.pool'), torn: path.posix.join(incoming, 'torn') };
}

/** The folder holding every node's spool when nodes share the data directory. */
export const NODE_SPOOLS = path.posix.join(DATA_DIRS.incoming, 'nodes');

/** Spool file of one instance, relative to dataDir. The UID is validated here, so no caller can escape dataDir. */
export function spoolPath(sopInstanceUid: string, dirs: SpoolDirs = spoolDirs()): string {
  return path.posix.join(dirs.incoming, `${requireUid('SOPInstanceUID', sopInstanceUid)}.dcm`);
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
