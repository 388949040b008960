import fs from 'node:fs';
import path from 'node:path';
import { datasetOffset } from '../../src/storage/files.js';

/** The data set bytes of a Part 10 file (what went over the wire), without preamble and meta. */
export function datasetBytes(file: string): Buffer {
  const buf = fs.readFileSync(file);
  return buf.subarray(datasetOffset(buf));
}

/** Every file below a folder, recursively. */
export function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .filter((f) => !isEmptyPoolFile(f));
}

/** The spool pool's empty files made ahead (incoming/.pool) hold no image: not spool content for a test. */
function isEmptyPoolFile(f: string): boolean {
  return path.basename(path.dirname(f)) === '.pool' && fs.statSync(f, { throwIfNoEntry: false })?.size === 0;
}
