/**
 * Atomic file replacement for small state files (request files, finished-scan summaries, MPPS copies): readers see
 * the old content or the new, never a mix, and the rename survives a power loss.
 */
import fs from 'node:fs';
import path from 'node:path';
import writeFileAtomicLib from 'write-file-atomic';

/**
 * write-file-atomic writes a temp file, fsyncs it and renames it over `file`; it does not fsync the directory, so the
 * rename itself could be lost to a power loss: that last step is ours.
 */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  writeFileAtomicLib.sync(file, data, { fsync: true, mode: 0o644 });
  const dfd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
