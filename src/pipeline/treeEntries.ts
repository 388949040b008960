/**
 * Owns what is done to one entry of an import tree: open it (a regular file only, through the inode that was
 * checked), and unlink or move it only while its name still holds the inode that was read. Why this is safe through
 * /proc/self/fd, and the one window left: see safeTree.ts.
 */
import fs from 'node:fs';
import { ImportTree, kindOf, sameIdent, type DirRef, type EntryKind, type Ident } from './safeTree.js';

const C = fs.constants;
/** Linux's O_PATH (not in fs.constants): a descriptor that names an inode without opening it. */
const O_PATH = 0o10000000;

/** A regular file opened through the very inode that was checked; FIFOs and device nodes are never opened. */
export async function openRegular(
  dir: DirRef,
  name: Buffer,
): Promise<{ fh: fs.promises.FileHandle; st: fs.BigIntStats } | { kind: EntryKind } | 'vanished'> {
  let ref: fs.promises.FileHandle;
  try {
    ref = await fs.promises.open(dir.entry(name), O_PATH | C.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'vanished';
    throw err;
  }
  try {
    const st = await ref.stat({ bigint: true });
    if (!st.isFile()) return { kind: kindOf(st) };
    // Reopening the O_PATH descriptor's magic link opens exactly that inode, now known to be a regular file.
    const fh = await fs.promises.open(`/proc/self/fd/${ref.fd}`, C.O_RDONLY);
    return { fh, st };
  } finally {
    await ref.close();
  }
}

/** The dev/ino an entry names now, or undefined when it is gone. */
export async function entryIdent(dir: DirRef, name: Buffer): Promise<(Ident & { kind: EntryKind }) | undefined> {
  const st = await fs.promises.lstat(dir.entry(name), { bigint: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  return st && { dev: st.dev, ino: st.ino, kind: kindOf(st) };
}

/**
 * Unlinks an entry of `dir` only while it names `id` (the inode that was read). 'replaced': another file took the
 * name meanwhile and was left alone.
 */
export async function unlinkIfSame(dir: DirRef, name: Buffer, id: Ident): Promise<'removed' | 'gone' | 'replaced'> {
  const now = await entryIdent(dir, name);
  if (!now) return 'gone';
  if (!sameIdent(now, id)) return 'replaced';
  try {
    await fs.promises.unlink(dir.entry(name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  return 'removed';
}

/**
 * Moves an entry (file, symbolic link, FIFO, device node: never opened) to `dest`, a fresh name, while it names `id`.
 * Across filesystems a regular file is copied from its open descriptor and fsynced, and a link is re-created; other
 * kinds then throw EXDEV.
 */
export async function moveIfSame(
  dir: DirRef,
  name: Buffer,
  id: Ident,
  dest: string,
  fh?: fs.promises.FileHandle,
): Promise<'moved' | 'gone' | 'replaced'> {
  const now = await entryIdent(dir, name);
  if (!now) return 'gone';
  if (!sameIdent(now, id)) return 'replaced';
  try {
    await fs.promises.rename(dir.entry(name), dest);
    return 'moved';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
  }
  if (now.kind === 'file' && fh) {
    await fs.promises.copyFile(`/proc/self/fd/${fh.fd}`, dest, C.COPYFILE_EXCL);
    const out = await fs.promises.open(dest, 'r');
    await out.sync().finally(() => out.close());
  } else if (now.kind === 'symlink') {
    await fs.promises.symlink(await fs.promises.readlink(dir.entry(name), { encoding: 'buffer' }), dest);
  } else {
    throw Object.assign(new Error(`cannot move a ${now.kind} across filesystems`), { code: 'EXDEV' });
  }
  const r = await unlinkIfSame(dir, name, id);
  return r === 'removed' ? 'moved' : r;
}

/** What a folder tree holds, without opening a file: entries, bytes, newest mtime and ctime (folders included). */
export async function treeSignature(
  absText: string,
): Promise<{ sig: string; newestMtime: number; newestCtime: number } | undefined> {
  let tree: ImportTree;
  try {
    tree = await ImportTree.open(absText, '');
  } catch {
    return undefined;
  }
  try {
    const rootSt = await (tree.root
      ? fs.promises.stat(tree.root.proc)
      : fs.promises.lstat(tree.parent.entry(tree.name)));
    let entries = 0;
    let bytes = 0;
    let newestMtime = rootSt.mtimeMs;
    let newestCtime = rootSt.ctimeMs;
    for await (const e of tree.entries()) {
      try {
        const st = await fs.promises.lstat(e.dir.entry(e.name)).catch(() => undefined);
        if (!st) continue;
        entries++;
        bytes += st.size;
        newestMtime = Math.max(newestMtime, st.mtimeMs);
        newestCtime = Math.max(newestCtime, st.ctimeMs);
      } finally {
        await e.dir.release();
      }
    }
    return entries ? { sig: `${entries}:${bytes}:${newestMtime}`, newestMtime, newestCtime } : undefined;
  } catch {
    return undefined;
  } finally {
    await tree.close();
  }
}
