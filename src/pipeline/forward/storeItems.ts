/**
 * Owns turning stored Part 10 files into what the C-STORE SCU sends: the UIDs and transfer syntax from the file's
 * meta group, and the data set read from its offset piece by piece (never read whole into memory).
 */
import fs from 'node:fs';
import type { StoreItem } from '../../dimse/scuStore.js';
import { metaString, readMeta } from '../../storage/part10.js';

/** Enough bytes for any meta group scannode or a sender writes. */
const META_PROBE = 64 * 1024;
/** Enough for the usual meta group (its length, (0002,0000), says when it is not). */
const META_FIRST = 4096;

/** The instance of a Part 10 file; throws, saying why, when the file cannot be sent. */
export function fileStoreItem(file: string): StoreItem {
  const fd = fs.openSync(file, 'r');
  let head: Buffer;
  let size: number;
  try {
    size = fs.fstatSync(fd).size;
    const readHead = (n: number) => {
      const b = Buffer.alloc(Math.min(n, size));
      fs.readSync(fd, b, 0, b.length, 0);
      return b;
    };
    head = readHead(META_FIRST);
    // (0002,0000) UL right after "DICM": the meta ends 144 + its value bytes in.
    const groupLength =
      head.length >= 144 && head.readUInt32LE(132) === 0x00000002 ? head.readUInt32LE(140) : undefined;
    if (groupLength === undefined || 144 + groupLength > head.length) head = readHead(META_PROBE);
  } finally {
    fs.closeSync(fd);
  }
  const meta = readMeta(head);
  const sopClassUid = metaString(meta, 0x0002);
  const sopInstanceUid = metaString(meta, 0x0003);
  const transferSyntaxUid = metaString(meta, 0x0010);
  if (!meta || !sopClassUid || !sopInstanceUid || !transferSyntaxUid) {
    throw new Error(`${file}: not a Part 10 file with SOP class, instance and transfer syntax in its meta`);
  }
  const start = meta.end;
  return {
    sopClassUid,
    sopInstanceUid,
    transferSyntaxUid,
    datasetLength: size - start,
    open: async () => {
      const fh = await fs.promises.open(file, 'r');
      return {
        readv: async (into, position) => (await fh.readv(into, start + position)).bytesRead,
        close: () => fh.close(),
      };
    },
  };
}
