import fs from 'node:fs';

/** Where the data set starts in a Part 10 file: after the preamble, 'DICM' and every group 0002 element. */
export function datasetOffset(buf: Buffer): number {
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') return 0;
  let p = 132;
  while (p + 8 <= buf.length && buf.readUInt16LE(p) === 0x0002) {
    const vr = buf.toString('latin1', p + 4, p + 6);
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)) p += 12 + buf.readUInt32LE(p + 8);
    else p += 8 + buf.readUInt16LE(p + 6);
  }
  return p;
}

function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  const n = fs.readSync(fd, buf, 0, length, position);
  return buf.subarray(0, n);
}

/** Compares the data sets (not the meta headers, which name the sender) of two Part 10 files, 1 MiB at a time. */
export function sameDataset(a: string, b: string): boolean {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const oa = datasetOffset(readAt(fa, 4096, 0));
    const ob = datasetOffset(readAt(fb, 4096, 0));
    if (fs.fstatSync(fa).size - oa !== fs.fstatSync(fb).size - ob) return false;
    const step = 1 << 20;
    for (let i = 0; ; i += step) {
      const ba = readAt(fa, step, oa + i);
      const bb = readAt(fb, step, ob + i);
      if (!ba.equals(bb)) return false;
      if (ba.length < step) return true;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
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
