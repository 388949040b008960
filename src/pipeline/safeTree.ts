/**
 * Owns walking an import tree without following symbolic links at any depth: folders held by descriptor and reached
 * through /proc/self/fd, only regular files opened, and an entry removed or moved only while it still names what was
 * read (dev/ino).
 *
 * Why /proc/self/fd: Node has no openat/unlinkat/renameat. The kernel resolves "/proc/self/fd/<fd>/<name>" from the
 * open folder itself (a magic link), whatever happened since to the path that led there: a parent renamed, or swapped
 * for a symbolic link, changes nothing. With O_NOFOLLOW that is openat(fd, name, O_NOFOLLOW); unlink and rename through
 * it act on that folder's entry. The residual race is the window between checking an entry (lstat: the dev/ino that
 * was read) and unlinking it: someone who can write into that very folder can put another entry under the same name
 * in between. The worst that does is remove their own new entry from an import folder: never a file outside it, and
 * never data that has another name (unlink removes a name). Moving sources to a staging name first would leave the
 * same window (rename, then check) and strand files on a crash, so we do not.
 */
import fs from 'node:fs';
import { nameBytes, nameText } from '../domain/fileNames.js';

const C = fs.constants;
const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;
/** Deeper folders are reported, not entered: each level walked holds two descriptors. */
export const MAX_DEPTH = 64;

export interface Ident {
  dev: bigint;
  ino: bigint;
}

export function identKey(id: Ident): string {
  return `${id.dev}:${id.ino}`;
}

export function sameIdent(a: Ident, b: Ident): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** Imports read trees through /proc/self/fd: a Linux kernel with /proc mounted. */
export function treeSupport(): string | undefined {
  if (process.platform !== 'linux') return `imports need Linux (this is ${process.platform})`;
  if (!fs.existsSync('/proc/self/fd')) return 'imports need /proc mounted (/proc/self/fd is missing)';
  return undefined;
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'device' | 'socket' | 'other';

export function kindOf(st: fs.Stats | fs.BigIntStats | fs.Dirent): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device';
  if (st.isSocket()) return 'socket';
  return 'other';
}

/** A folder of the tree pinned by its descriptor. Reference-counted: closed when its last holder releases it. */
export class DirRef {
  private refs = 1;

  private constructor(
    private readonly fh: fs.promises.FileHandle,
    readonly id: Ident,
    /** Its path as text (see nameText), relative to the import's base. */
    readonly text: string,
    readonly depth: number,
  ) {}

  /** `viaProc`: `p` is a /proc/self/fd magic link, which must be followed (to exactly the folder it names). */
  static async open(p: string | Buffer, text: string, depth: number, viaProc = false): Promise<DirRef> {
    const fh = await fs.promises.open(p, viaProc ? C.O_RDONLY | C.O_DIRECTORY : DIR_FLAGS);
    try {
      const st = await fh.stat({ bigint: true });
      return new DirRef(fh, { dev: st.dev, ino: st.ino }, text, depth);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** The folder itself, as a path the kernel resolves through the descriptor. */
  get proc(): string {
    return `/proc/self/fd/${this.fh.fd}`;
  }

  /** An entry of this very folder. */
  entry(name: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${this.proc}/`), name]);
  }

  childText(name: Buffer): string {
    return this.text ? `${this.text}/${nameText(name)}` : nameText(name);
  }

  /** Opens a sub-folder (ELOOP when it is a symbolic link, ENOTDIR when it is not a folder). */
  child(name: Buffer): Promise<DirRef> {
    return DirRef.open(this.entry(name), this.childText(name), this.depth + 1);
  }

  hold(): this {
    this.refs++;
    return this;
  }

  async release(): Promise<void> {
    if (--this.refs === 0) await this.fh.close();
  }

  /** Where this folder is now (what the kernel names the descriptor). */
  async where(): Promise<Buffer> {
    return fs.promises.readlink(this.proc, { encoding: 'buffer' });
  }
}

/**
 * One entry of the tree, with its folder held for the consumer (who releases it). Folders are not entries: they are
 * walked, unless they cannot be (`unreadable`, `too-deep`) or are the data directory's own (`data-dir`).
 */
export interface TreeEntry {
  dir: DirRef;
  name: Buffer;
  text: string;
  kind: Exclude<EntryKind, 'dir'> | 'unreadable' | 'too-deep' | 'data-dir';
  reason?: string;
}

export async function lstatKind(p: Buffer): Promise<EntryKind | undefined> {
  try {
    return kindOf(await fs.promises.lstat(p));
  } catch {
    return undefined;
  }
}

export interface TreeOptions {
  /** Folders never walked (dev:ino keys): the data directory's own. */
  exclude?: Set<string>;
  /** Only these names at the top (loose inbox files); no folder is entered. */
  only?: Buffer[];
}

/**
 * A file or folder tree opened for an import: every component of its path opened with O_NOFOLLOW from `/`, so a
 * symbolic link anywhere on the way (swapped in after the path was checked) stops it with ELOOP.
 */
export class ImportTree {
  private constructor(
    /** The folder holding the root. */
    readonly parent: DirRef,
    readonly name: Buffer,
    /** The root when it is a folder; undefined when the import is one file. */
    readonly root: DirRef | undefined,
    /** The real path of the root, as bytes (for "still inside the tree" checks). */
    readonly rootPath: Buffer,
    private readonly opts: TreeOptions,
  ) {}

  /** `absText`: the absolute path as text (nameText); `rootText`: how the root is named in problem paths. */
  static async open(absText: string, rootText: string, opts: TreeOptions = {}): Promise<ImportTree> {
    const bytes = nameBytes(absText);
    const parts = splitPath(bytes);
    const last = parts.pop();
    if (!last) throw Object.assign(new Error('the root folder cannot be imported'), { code: 'EINVAL' });
    let dir = await DirRef.open('/', '', 0);
    try {
      for (const p of parts) {
        const next = await dir.child(p).catch(async (err: NodeJS.ErrnoException) => {
          // O_DIRECTORY|O_NOFOLLOW on a link fails ENOTDIR: say what it is.
          if (err.code === 'ENOTDIR' && (await lstatKind(dir.entry(p))) === 'symlink') err.code = 'ELOOP';
          throw err;
        });
        await dir.release();
        dir = next;
      }
      // The parent is named (in problem paths) relative to the import's base, not by its absolute path.
      const next = await DirRef.open(dir.proc, rootText.split('/').slice(0, -1).join('/'), 0, true);
      await dir.release();
      dir = next;
      const kind = await lstatKind(dir.entry(last));
      if (kind === undefined) throw Object.assign(new Error(`${absText}: no such file or folder`), { code: 'ENOENT' });
      const root = kind === 'dir' ? await DirRef.open(dir.entry(last), rootText, 0) : undefined;
      return new ImportTree(dir, last, root, bytes, opts);
    } catch (err) {
      await dir.release();
      throw err;
    }
  }

  /** Every entry, depth first, lazily (one folder listing open per level, never a whole listing in memory). */
  async *entries(): AsyncGenerator<TreeEntry> {
    if (!this.root) {
      const kind = (await lstatKind(this.parent.entry(this.name))) ?? 'other';
      if (kind !== 'dir')
        yield { dir: this.parent.hold(), name: this.name, text: this.parent.childText(this.name), kind };
      return;
    }
    if (this.opts.only) {
      for (const name of this.opts.only) {
        const kind = await lstatKind(this.root.entry(name));
        if (kind === undefined || kind === 'dir') continue;
        yield { dir: this.root.hold(), name, text: this.root.childText(name), kind };
      }
      return;
    }
    yield* walk(this.root, this.opts.exclude);
  }

  /** How many entries there are (a first, cheap pass: directory listings only). */
  async count(): Promise<number> {
    let n = 0;
    for await (const e of this.entries()) {
      n++;
      await e.dir.release();
    }
    return n;
  }

  /** Whether a folder of this tree still lies inside it (it may have been moved away since it was read). */
  async holds(dir: DirRef): Promise<boolean> {
    const where = await dir.where().catch(() => undefined);
    if (!where) return false;
    const root = this.root ? this.rootPath : this.rootPath.subarray(0, this.rootPath.lastIndexOf(0x2f));
    if (where.equals(root)) return true;
    return where.length > root.length && where.subarray(0, root.length).equals(root) && where[root.length] === 0x2f;
  }

  /** Removes the emptied folders of the tree, bottom up (the root too when asked), each only while it is the same. */
  async pruneEmpty(includeRoot: boolean): Promise<void> {
    if (!this.root || this.opts.only) return;
    await prune(this.root);
    if (includeRoot) await rmdirIfSame(this.parent, this.name, this.root.id);
  }

  async close(): Promise<void> {
    await this.root?.release();
    await this.parent.release();
  }
}

function splitPath(bytes: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x2f) {
      if (i > start) parts.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

async function* walk(root: DirRef, exclude: Set<string> | undefined): AsyncGenerator<TreeEntry> {
  const stack: Array<{ dir: DirRef; list: fs.Dir }> = [];
  const enter = async (dir: DirRef) => {
    const list = await fs.promises.opendir(dir.proc, { encoding: 'buffer' as BufferEncoding, bufferSize: 64 });
    stack.push({ dir, list });
  };
  await enter(root.hold());
  try {
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const e = await top.list.read();
      if (!e) {
        stack.pop();
        await top.list.close();
        await top.dir.release();
        continue;
      }
      const name = e.name as unknown as Buffer;
      const dir = top.dir;
      const text = dir.childText(name);
      let kind: EntryKind | undefined = kindOf(e);
      if (kind === 'other') kind = await lstatKind(dir.entry(name));
      if (kind === undefined) continue; // gone since the listing
      if (kind !== 'dir') {
        yield { dir: dir.hold(), name, text, kind };
        continue;
      }
      if (dir.depth + 1 > MAX_DEPTH) {
        yield { dir: dir.hold(), name, text, kind: 'too-deep', reason: `a folder deeper than ${MAX_DEPTH} levels` };
        continue;
      }
      let child: DirRef;
      try {
        child = await dir.child(name);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        const now = code === 'ELOOP' || code === 'ENOTDIR' ? await lstatKind(dir.entry(name)) : undefined;
        if (now && now !== 'dir') yield { dir: dir.hold(), name, text, kind: now };
        else if (!now)
          yield { dir: dir.hold(), name, text, kind: 'unreadable', reason: `cannot open the folder (${code})` };
        continue;
      }
      if (exclude?.has(identKey(child.id))) {
        await child.release();
        yield {
          dir: dir.hold(),
          name,
          text,
          kind: 'data-dir',
          reason: "the data directory's own folder: never imported",
        };
        continue;
      }
      try {
        await enter(child);
      } catch (err) {
        await child.release();
        const code = (err as NodeJS.ErrnoException).code;
        yield { dir: dir.hold(), name, text, kind: 'unreadable', reason: `cannot list the folder (${code})` };
      }
    }
  } finally {
    for (const s of stack) {
      await s.list.close().catch(() => undefined);
      await s.dir.release();
    }
  }
}

async function prune(dir: DirRef): Promise<void> {
  if (dir.depth >= MAX_DEPTH) return;
  const list = await fs.promises.opendir(dir.proc, { encoding: 'buffer' as BufferEncoding }).catch(() => undefined);
  if (!list) return;
  const subdirs: Buffer[] = [];
  try {
    for (let e = await list.read(); e; e = await list.read()) if (e.isDirectory()) subdirs.push(Buffer.from(e.name));
  } finally {
    await list.close().catch(() => undefined);
  }
  for (const name of subdirs) {
    const child = await dir.child(name).catch(() => undefined);
    if (!child) continue;
    try {
      await prune(child);
      await rmdirIfSame(dir, name, child.id);
    } finally {
      await child.release();
    }
  }
}

async function rmdirIfSame(dir: DirRef, name: Buffer, id: Ident): Promise<void> {
  const st = await fs.promises.lstat(dir.entry(name), { bigint: true }).catch(() => undefined);
  if (!st || !sameIdent(st, id)) return;
  // Not empty (something stayed: a file kept for a retry, a problem left in place): it stays too.
  await fs.promises.rmdir(dir.entry(name)).catch(() => undefined);
}
