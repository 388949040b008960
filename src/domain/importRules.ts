/**
 * Owns the rules of an import batch, without I/O: its counters, the failures that end an attempt (which a retry can
 * cure, which need an operator), the retry delays, and which paths may be imported at all.
 */
import path from 'node:path';
import { DicomStatus, hex } from './status.js';

/**
 * A batch's counters. For a batch that ran to its end: filesFound = filesRead + problems + errors, and when it
 * finished, archived = filesRead. duplicates and archived are parts of filesRead.
 */
export interface ImportCounts {
  /** Entries found (files, links, FIFOs...; not folders), including those an earlier attempt took out. */
  filesFound: number;
  /** Files read and stored (or found already stored, identical). */
  filesRead: number;
  /** Of filesRead: files whose bytes are in the archive (site/raw). Only these sources are ever removed. */
  archived: number;
  /** Of filesRead: files already stored before this batch read them (by the scanner or another import). */
  duplicates: number;
  /** Entries that are not importable DICOM: moved (or, when sources are kept, copied) to problem/ with a reason. */
  problems: number;
  /** Files that are fine but could not be stored or archived this time: left in place for a retry. */
  errors: number;
  /** Bytes of filesRead. */
  bytes: number;
}

export const COUNT_KEYS = ['filesFound', 'filesRead', 'archived', 'duplicates', 'problems', 'errors', 'bytes'] as const;

export function zeroCounts(): ImportCounts {
  return { filesFound: 0, filesRead: 0, archived: 0, duplicates: 0, problems: 0, errors: 0, bytes: 0 };
}

/** Counters kept from a stored JSON text (what earlier attempts took out of the folder); zero when absent or bad. */
export function parseCounts(json: string | null | undefined): ImportCounts {
  const c = zeroCounts();
  if (!json) return c;
  try {
    const v = JSON.parse(json) as Record<string, unknown>;
    for (const k of COUNT_KEYS) {
      const n = v[k];
      if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) c[k] = n;
    }
  } catch {
    // unreadable: start from zero, the next attempt counts what it finds
  }
  return c;
}

/**
 * A failure that ends an import attempt. A permanent one (BullMQ's "unrecoverable") cannot be cured by retrying: the
 * batch is `failed` until an operator retries it. A transient one is retried by the node with backoff.
 */
export class ImportFailure extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = permanent ? 'UnrecoverableImportError' : 'TransientImportError';
  }
}

/** Retrying cannot help: an operator must act (permissions, a missing folder, a path that may not be imported). */
export class UnrecoverableImportError extends ImportFailure {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, true, options);
  }
}

/** Retrying may help (disk full, database unreachable, the file changing while read). */
export class TransientImportError extends ImportFailure {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, false, options);
  }
}

/** Where in a file's way an error happened; it decides what the operator is told. */
export type ImportStep = 'read' | 'spool' | 'store' | 'archive' | 'remove' | 'problem' | 'database';

const NO_SPACE = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const NO_ACCESS = new Set(['EACCES', 'EPERM', 'EROFS']);
const NOT_A_FOLDER = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'EISDIR', 'ENAMETOOLONG', 'EINVAL', 'EEXIST']);

/** An errno code (EACCES...) of an error or of its cause. */
export function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

/** What an operator does about a permanent failure (the batch's message adds how to retry). */
const ACTION: Record<ImportStep, string> = {
  read: "give the node's user read access to it",
  spool: "give the node's user write access to it",
  store: "give the node's user write access to the spool",
  archive: "give the node's user write access to it",
  remove: "the files are archived; give the node's user write access to the folder",
  problem: "give the node's user write access to problem/ and to the import folder",
  database: 'check the database',
};

const WHAT: Record<ImportStep, string> = {
  read: 'cannot read',
  spool: 'cannot write the spool',
  store: 'the store failed at',
  archive: 'cannot write the archive',
  remove: 'cannot remove imported files from',
  problem: 'cannot move a file to',
  database: 'database error at',
};

/** What an error at a step means for the batch, with what an operator can do about it. */
export function classifyImportError(err: unknown, step: ImportStep, where: string): ImportFailure {
  if (err instanceof ImportFailure) return err;
  const code = errnoOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code && NO_SPACE.has(code)) {
    return new TransientImportError(`out of disk space at ${where} (${code})`, { cause: err });
  }
  if (code && NO_ACCESS.has(code)) {
    return new UnrecoverableImportError(`${WHAT[step]} ${where} (${code}): ${ACTION[step]}`, { cause: err });
  }
  if (code === 'EXDEV') {
    return new UnrecoverableImportError(
      `${where} is on another filesystem and cannot be linked (EXDEV): put it on the data directory's filesystem`,
      { cause: err },
    );
  }
  // Reading a source and storing it (Ingest) fail per file: only a spool the node may not write is for an operator.
  if (code && NOT_A_FOLDER.has(code) && step !== 'read' && step !== 'store') {
    return new UnrecoverableImportError(`${WHAT[step]} ${where} (${code}): make it a folder the node can write`, {
      cause: err,
    });
  }
  if (!code) return new TransientImportError(`${WHAT.database} ${where}: ${message}`, { cause: err });
  return new TransientImportError(`${WHAT[step]} ${where} (${code})`, { cause: err });
}

/** What a failed store (Ingest's DICOM status) means for the batch: the file is fine, the node is not, for now. */
export function storeFailure(status: number, comment: string | undefined): ImportFailure {
  const what = status === DicomStatus.OutOfResources ? 'out of resources' : 'processing failure';
  return new TransientImportError(`the store refused a file: ${hex(status)} ${comment ?? what}`);
}

/** Delay before attempt `attempts + 1`, doubling from `baseMs` up to `maxMs`. */
export function retryDelayMs(attempts: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(Math.max(attempts - 1, 0), 40);
  return Math.min(maxMs, baseMs * 2 ** exp);
}

function within(parent: string, p: string): boolean {
  return p === parent || p.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

/**
 * Why a path may not be imported, or undefined. All three are real absolute paths. The data directory holds the
 * node's own files (spool, archive): importing them onto themselves would count each file as its own duplicate and,
 * with --move, delete it. Only its inbox/ is a place to import from.
 */
export function importPathRefusal(target: string, dataDir: string, inbox: string): string | undefined {
  if (within(inbox, target)) return undefined;
  if (within(dataDir, target)) {
    return (
      `${target} is inside the data directory ${dataDir}, which holds the node's own spool and archive: ` +
      `only its inbox/ (${inbox}) can be imported. To rebuild the index from the archive, use scannode reindex.`
    );
  }
  if (within(target, dataDir)) {
    return `${target} holds the data directory ${dataDir}: import a folder beside it, or drop the files into ${inbox}.`;
  }
  return undefined;
}
