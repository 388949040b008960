/**
 * Owns one source file's way in: opened through the inode that was checked (never a FIFO or device), read as Part 10,
 * linked or copied into the spool, committed through Ingest like a C-STORE, and the stored copy identified; or, when
 * it is not importable DICOM, moved (or copied) to problem/ with its reason.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Database } from '../db/dataSource.js';
import { instancePlace } from '../db/instanceStore.js';
import type { Logger } from '../logging/logger.js';
import type { Ingest } from './ingest.js';
import { DATA_DIRS, insideDataDir } from '../domain/paths.js';
import { DicomStatus, hex } from '../domain/status.js';
import { classifyImportError, storeFailure, TransientImportError } from '../domain/importRules.js';
import { HEAD_BYTES } from '../storage/header.js';
import { datasetOffset } from '../storage/files.js';
import { metaString, readMeta } from '../storage/part10.js';
import { sameIdent, type DirRef, type EntryKind, type Ident, type TreeEntry } from './safeTree.js';
import { entryIdent, moveIfSame, openRegular } from './treeEntries.js';

/** Statuses that mean "this file is not importable DICOM": it goes to problem/ with its reason. */
const UNREADABLE = new Set<number>([
  DicomStatus.CannotUnderstand,
  DicomStatus.Truncated,
  DicomStatus.InvalidUid,
  DicomStatus.ConflictingDuplicate,
  DicomStatus.DataSetDoesNotMatchSopClass,
]);

const NOT_A_FILE: Record<Exclude<EntryKind, 'file' | 'dir'>, string> = {
  symlink: 'a symbolic link: not followed (nothing outside the import is read)',
  fifo: 'a FIFO (named pipe), not a file: never opened',
  device: 'a device node, not a file: never opened',
  socket: 'a socket, not a file: never opened',
  other: 'not a regular file: never opened',
};

/** A file read and stored, waiting for its study to be archived before its source may go. */
export interface Taken {
  dir: DirRef;
  name: Buffer;
  text: string;
  /** The source's inode, as read. */
  id: Ident;
  size: number;
  sop: string;
  study: string;
  duplicate: boolean;
  /** The stored copy's inode when it was checked to hold these very bytes. */
  storedId: Ident;
}

/** What became of an entry. `failure` ends the attempt; the file is left in place. */
export type FileOutcome =
  | { kind: 'vanished' }
  | { kind: 'problem'; moved: boolean }
  | { kind: 'taken'; taken: Taken }
  /** Left in place, the attempt goes on (its bytes are safe nowhere else yet). */
  | { kind: 'kept' }
  | { kind: 'error'; failure: Error };

export interface BatchContext {
  id: string;
  name: string;
  keepSources: boolean;
  /** Stores by an earlier attempt of this batch are not duplicates: instances stored since this time. */
  firstStartedAt: Date;
  resumed: boolean;
  addProblem(text: string, reason: string, kind: 'moved' | 'listed' | 'error'): Promise<void>;
}

let tmpCounter = 0;
const uid = process.getuid?.() ?? -1;

export class FileImporter {
  constructor(
    private readonly db: Database,
    private readonly ingest: Ingest,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  /** Takes one entry; never throws (a failure is an outcome). The entry's folder is released unless taken. */
  async take(e: TreeEntry, b: BatchContext): Promise<FileOutcome> {
    let fh: fs.promises.FileHandle | undefined;
    let kept = false;
    try {
      if (e.kind !== 'file') {
        const reason = e.reason ?? NOT_A_FILE[e.kind as keyof typeof NOT_A_FILE] ?? 'not a regular file';
        // Folders that cannot be walked stay where they are; the data directory's own are never moved.
        const movable = !['unreadable', 'too-deep', 'data-dir'].includes(e.kind);
        return await this.problem(e, reason, b, movable);
      }
      let opened: Awaited<ReturnType<typeof openRegular>>;
      try {
        opened = await openRegular(e.dir, e.name);
      } catch (err) {
        const f = classifyImportError(err, 'read', e.text);
        if (!f.permanent) return await this.error(e, b, f);
        return await this.problem(e, `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, b, true);
      }
      if (opened === 'vanished') return { kind: 'vanished' };
      if ('kind' in opened) return await this.problem(e, NOT_A_FILE[opened.kind as keyof typeof NOT_A_FILE], b, true);
      fh = opened.fh;
      const st = opened.st;
      const id = { dev: st.dev, ino: st.ino };
      const size = Number(st.size);
      if (size === 0) return await this.problem(e, 'zero bytes', b, true, fh, id);
      const { head, tail } = await readEnds(fh, size);
      if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') {
        const reason =
          'not a DICOM Part 10 file: no preamble with "DICM" (files without a file meta header are not imported)';
        return await this.problem(e, reason, b, true, fh, id);
      }
      const ts = metaTransferSyntax(head);
      if (!ts) return await this.problem(e, 'no Transfer Syntax UID in the file meta header', b, true, fh, id);
      const metaLength = datasetOffset(head);
      const incoming = path.join(this.dataDir, this.ingest.spool.incoming);
      const tmp = path.join(incoming, `import-${b.id.slice(0, 8)}-${process.pid}-${++tmpCounter}.part`);
      let tmpId: Ident;
      try {
        tmpId = await spoolCopy(e, fh, st, tmp, !b.keepSources);
      } catch (err) {
        await fs.promises.rm(tmp, { force: true });
        return await this.error(e, b, classifyImportError(err, 'spool', `${this.ingest.spool.incoming}/`));
      }
      let result: Awaited<ReturnType<Ingest['commit']>>;
      try {
        result = await this.ingest.commit(
          { tmpPath: tmp, metaLength, datasetLength: size - metaLength, head, tail },
          { transferSyntaxUid: ts, source: 'import' },
        );
      } catch (err) {
        await fs.promises.rm(tmp, { force: true });
        return await this.error(e, b, classifyImportError(err, 'store', 'the spool'));
      }
      if (result.status === DicomStatus.Success && result.instance) {
        const inst = result.instance;
        const stored = await this.storedCopy(inst.sopInstanceUid);
        if (!stored) {
          // The index has this instance but its file is gone: storing it again is Ingest's job; until it does, the
          // source is the only copy and stays.
          const reason = 'indexed, but the stored file is missing: not stored again, so the source stays';
          await b.addProblem(e.text, reason, 'error');
          this.log.warn('import: file left in place', { batch: b.id, file: e.text, reason });
          return { kind: 'kept' };
        }
        const own = !inst.duplicate && sameIdent(stored.id, tmpId);
        if (!own && !(await sameData(fh, stored.file))) {
          // Quarantined (dicom.onConflict) or refused: the same SOP Instance UID with other content.
          const reason = `${hex(DicomStatus.ConflictingDuplicate)} SOP Instance UID already stored with different content`;
          return await this.problem(e, reason, b, true, fh, id);
        }
        const earlier = b.resumed && stored.source === 'import' && stored.receivedAt >= b.firstStartedAt;
        kept = true;
        const taken: Taken = {
          dir: e.dir,
          name: e.name,
          text: e.text,
          id,
          size,
          sop: inst.sopInstanceUid,
          study: inst.studyInstanceUid,
          duplicate: inst.duplicate && !earlier,
          storedId: stored.id,
        };
        return { kind: 'taken', taken };
      }
      const reason = `${hex(result.status)} ${result.comment ?? 'not stored'}`;
      if (UNREADABLE.has(result.status)) return await this.problem(e, reason, b, true, fh, id);
      // Out of space, database down: the file is fine; it stays where it is for the next attempt.
      return await this.error(e, b, storeFailure(result.status, result.comment));
    } catch (err) {
      return { kind: 'error', failure: classifyImportError(err, 'read', e.text) };
    } finally {
      await fh?.close().catch(() => undefined);
      if (!kept) await e.dir.release();
    }
  }

  /** The stored copy of an instance (spool or archive): its inode, its row's source and time; null when missing. */
  private async storedCopy(sop: string): Promise<{ file: string; id: Ident; source: string; receivedAt: Date } | null> {
    // The archiver may move it from the spool to the archive meanwhile: look again once.
    for (let i = 0; i < 2; i++) {
      const row = await instancePlace(this.db, sop);
      if (!row) return null;
      const file = insideDataDir(this.dataDir, row.path);
      const st = await fs.promises.lstat(file, { bigint: true }).catch(() => undefined);
      if (st?.isFile())
        return { file, id: { dev: st.dev, ino: st.ino }, source: row.source, receivedAt: row.receivedAt };
    }
    return null;
  }

  private async error(e: TreeEntry, b: BatchContext, failure: Error): Promise<FileOutcome> {
    await b.addProblem(e.text, `${failure.message} (left in place)`, 'error');
    return { kind: 'error', failure };
  }

  /**
   * problem/<relative path> with <name>.reason.txt beside it (reason first, so a crash never leaves a file without
   * one). Moved when sources are consumed; copied when they are kept (a regular file), else only listed.
   */
  private async problem(
    e: TreeEntry,
    reason: string,
    b: BatchContext,
    movable: boolean,
    fh?: fs.promises.FileHandle,
    known?: Ident,
  ): Promise<FileOutcome> {
    const move = movable && !b.keepSources;
    const copy = b.keepSources && fh !== undefined;
    let listed = e.text;
    if (move || copy) {
      const id = known ?? (await entryIdent(e.dir, e.name));
      if (!id) return { kind: 'vanished' };
      const problemDir = path.join(this.dataDir, DATA_DIRS.problem);
      const dest = await freshName(problemDir, e.text);
      try {
        await fs.promises.mkdir(path.dirname(dest), { recursive: true });
        const note = `${reason}\nsource: ${e.text}\nbatch: ${b.name} (${b.id})\nat: ${new Date().toISOString()}\n`;
        await fs.promises.writeFile(`${dest}.reason.txt`, note, { flag: 'wx' });
        if (!move) await fs.promises.copyFile(`/proc/self/fd/${fh!.fd}`, dest, fs.constants.COPYFILE_EXCL);
        else if ((await moveIfSame(e.dir, e.name, id, dest, fh)) !== 'moved') {
          // Gone, or another file took its name meanwhile: that one is met by a later pass.
          await fs.promises.rm(`${dest}.reason.txt`, { force: true });
          return { kind: 'vanished' };
        }
      } catch (err) {
        return this.error(e, b, classifyImportError(err, 'problem', problemDir));
      }
      listed = path.relative(problemDir, dest);
    }
    this.log.warn('import: not importable', { batch: b.id, file: e.text, reason });
    await b.addProblem(listed, reason, move ? 'moved' : 'listed');
    return { kind: 'problem', moved: move };
  }
}

/** A fresh name under problem/ for `text` (no `..`, no root), never one already taken. */
async function freshName(problemDir: string, text: string): Promise<string> {
  const parts = text.split('/').filter((s) => s && s !== '.' && s !== '..');
  const rel = parts.length ? path.join(...parts) : 'unnamed';
  let dest = path.join(problemDir, rel);
  for (let n = 1; (await exists(dest)) || (await exists(`${dest}.reason.txt`)); n++) {
    dest = path.join(problemDir, `${rel}.${n}`);
  }
  return dest;
}

async function exists(p: string): Promise<boolean> {
  return fs.promises.lstat(p).then(
    () => true,
    () => false,
  );
}

async function readEnds(fh: fs.promises.FileHandle, size: number): Promise<{ head: Buffer; tail: Buffer }> {
  const head = Buffer.allocUnsafe(Math.min(HEAD_BYTES, size));
  const { bytesRead } = await fh.read(head, 0, head.length, 0);
  const tail = Buffer.allocUnsafe(Math.min(16, size));
  await fh.read(tail, 0, tail.length, size - tail.length);
  return { head: head.subarray(0, bytesRead), tail };
}

/** The Transfer Syntax UID (0002,0010) of a Part 10 file's meta header, or undefined. */
export function metaTransferSyntax(buf: Buffer): string | undefined {
  return metaString(readMeta(buf), 0x0010);
}

/**
 * Puts the source's bytes at `tmp` (fsynced) and returns the copy's inode. A consumed source that is ours alone (one
 * link, our user) is hard-linked, and the link checked to be the inode that was read; any other is copied from the
 * open descriptor, so the archive never shares an inode with a file someone else can still write.
 */
async function spoolCopy(
  e: TreeEntry,
  fh: fs.promises.FileHandle,
  st: fs.BigIntStats,
  tmp: string,
  consume: boolean,
): Promise<Ident> {
  let linked = false;
  if (consume && st.nlink === 1n && Number(st.uid) === uid) {
    try {
      await fs.promises.link(e.dir.entry(e.name), tmp);
      const t = await fs.promises.lstat(tmp, { bigint: true });
      linked = sameIdent(t, st);
      if (!linked) await fs.promises.rm(tmp, { force: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another filesystem, protected_hardlinks, too many links, the name gone: the open descriptor still reads it.
      if (!['EXDEV', 'EPERM', 'EMLINK', 'ENOENT'].includes(code ?? '')) throw err;
    }
  }
  if (!linked) await fs.promises.copyFile(`/proc/self/fd/${fh.fd}`, tmp, fs.constants.COPYFILE_EXCL);
  const out = await fs.promises.open(tmp, 'r');
  try {
    await out.sync();
    const t = await out.stat({ bigint: true });
    if (t.size !== st.size)
      throw new TransientImportError(`${e.text} changed while it was read (still being written?)`);
    return { dev: t.dev, ino: t.ino };
  } finally {
    await out.close();
  }
}

/** Whether a source (its open descriptor) and a stored file hold the same data set, compared 1 MiB at a time. */
export async function sameData(fh: fs.promises.FileHandle, file: string): Promise<boolean> {
  const other = await fs.promises.open(file, 'r');
  try {
    const step = 1 << 20;
    const a = Buffer.allocUnsafe(step);
    const b = Buffer.allocUnsafe(step);
    const ra = await fh.read(a, 0, 4096, 0);
    const rb = await other.read(b, 0, 4096, 0);
    const oa = datasetOffset(a.subarray(0, ra.bytesRead));
    const ob = datasetOffset(b.subarray(0, rb.bytesRead));
    const [sa, sb] = await Promise.all([fh.stat(), other.stat()]);
    if (sa.size - oa !== sb.size - ob) return false;
    for (let i = 0; ; i += step) {
      const [x, y] = await Promise.all([fh.read(a, 0, step, oa + i), other.read(b, 0, step, ob + i)]);
      if (x.bytesRead !== y.bytesRead || !a.subarray(0, x.bytesRead).equals(b.subarray(0, y.bytesRead))) return false;
      if (x.bytesRead < step) return true;
    }
  } finally {
    await other.close();
  }
}
