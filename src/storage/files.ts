/** File moves that never overwrite and never lose a source: link or copy + fsync + verify, durable directories. */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { readMeta } from './part10.js';

/** Where the data set starts in a Part 10 file: after the preamble, 'DICM' and every group 0002 element (0: not Part 10). */
export function datasetOffset(buf: Buffer): number {
  return readMeta(buf)?.end ?? 0;
}

const CHUNK = 1 << 20;

async function readChunk(fh: fs.promises.FileHandle, buf: Buffer, position: number): Promise<Buffer> {
  let n = 0;
  while (n < buf.length) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, position + n);
    if (bytesRead === 0) break;
    n += bytesRead;
  }
  return buf.subarray(0, n);
}

/** Byte comparison of two open files from the given offsets, 1 MiB at a time in the thread pool. */
async function sameBytes(
  fa: fs.promises.FileHandle,
  oa: number,
  fb: fs.promises.FileHandle,
  ob: number,
): Promise<boolean> {
  const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
  if (sa.size - oa !== sb.size - ob) return false;
  const ba = Buffer.allocUnsafe(CHUNK);
  const bb = Buffer.allocUnsafe(CHUNK);
  for (let i = 0; ; i += CHUNK) {
    const [ca, cb] = await Promise.all([readChunk(fa, ba, oa + i), readChunk(fb, bb, ob + i)]);
    if (!ca.equals(cb)) return false;
    if (ca.length < CHUNK) return true;
  }
}

/**
 * Whether two Part 10 files hold the same data set (meta headers aside), read 1 MiB at a time off the main thread:
 * a re-sent 1 GiB instance must not stall every other association while it is compared.
 */
export async function compareDatasets(a: string, b: string): Promise<boolean> {
  const fa = await fs.promises.open(a, 'r');
  try {
    const fb = await fs.promises.open(b, 'r');
    try {
      const head = Buffer.allocUnsafe(4096);
      const oa = datasetOffset(await readChunk(fa, head, 0));
      const ob = datasetOffset(await readChunk(fb, head, 0));
      return await sameBytes(fa, oa, fb, ob);
    } finally {
      await fb.close();
    }
  } finally {
    await fa.close();
  }
}

/** Moves a file to a path that must not exist yet; never overwrites (link + unlink, since rename replaces). */
export function moveNoReplace(from: string, to: string): 'moved' | 'exists' {
  try {
    fs.linkSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
    throw err;
  }
  fs.unlinkSync(from);
  return 'moved';
}

/** fsyncs a directory, so that the names created, renamed or removed in it survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `root/relative` folder by folder; each folder made is followed by an fsync of its parent, so a later step
 * that depends on the folder (a spool copy removed once its archive file exists) cannot lose it to a power loss.
 * `root` must exist. Returns the folders it created.
 */
export async function mkdirDurable(root: string, relative: string): Promise<string[]> {
  const made: string[] = [];
  let dir = root;
  for (const part of relative.split(/[\\/]+/).filter(Boolean)) {
    const next = path.join(dir, part);
    try {
      await fs.promises.mkdir(next);
      made.push(next);
      await fsyncDir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    dir = next;
  }
  return made;
}

/**
 * Copies `from` to a new file `to` (never overwriting): a temporary name beside `to`, the bytes fsynced, read back and
 * compared with the source, then linked to `to` and the temporary removed. The caller fsyncs `to`'s folder. Nothing
 * partial is ever left under `to`'s name: on any error (ENOSPC) the temporary is removed and the error rethrown.
 */
export async function copyVerified(from: string, to: string): Promise<'copied' | 'exists'> {
  const tmp = path.join(path.dirname(to), `.${path.basename(to)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  try {
    await fs.promises.copyFile(from, tmp, fs.constants.COPYFILE_EXCL);
    const [src, dst] = [await fs.promises.open(from, 'r'), await fs.promises.open(tmp, 'r+')];
    try {
      await dst.sync();
      if (!(await sameBytes(src, 0, dst, 0))) throw new Error(`copy of ${path.basename(from)} differs from its source`);
    } finally {
      await Promise.all([src.close(), dst.close()]);
    }
    try {
      await fs.promises.link(tmp, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
      throw err;
    }
    return 'copied';
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}

/**
 * Places `from` under the new name `to` without touching `from`: a hard link, or, across file systems (EXDEV, a
 * separate mount for the archive), a verified copy. Never overwrites. The caller fsyncs `to`'s folder.
 */
export async function linkOrCopy(from: string, to: string): Promise<'linked' | 'copied' | 'exists'> {
  try {
    await fs.promises.link(from, to);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return 'exists';
    if (code !== 'EXDEV') throw err;
  }
  return copyVerified(from, to);
}

/**
 * Moves a file to a new name that must not exist, also across file systems: link (or verified, fsynced copy), the
 * destination folder fsynced, and only then the source removed (and its folder fsynced). A source is never removed
 * before its bytes are durable under the other name.
 */
export async function moveDurable(from: string, to: string): Promise<'moved' | 'exists'> {
  if ((await linkOrCopy(from, to)) === 'exists') return 'exists';
  await fsyncDir(path.dirname(to));
  await fs.promises.unlink(from);
  await fsyncDir(path.dirname(from));
  return 'moved';
}
