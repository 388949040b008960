/**
 * The seal of a spool file: the data set's length and a SHA-256 over it, kept in the file's own Part 10 meta as
 * (0002,0100) Private Information Creator UID + (0002,0102) Private Information, and flushed with the data. Recovery
 * takes a file whose seal matches its bytes as complete; a missing seal or a mismatch is a torn write.
 *
 * The digest is computed in the thread pool (WebCrypto), one fixed-size segment of the data set at a time, so the
 * main thread only copies: seal = SHA-256(length as u64 LE || SHA-256(segment 1) || SHA-256(segment 2) || ...), segments of 64 KiB.
 * (zlib.crc32 needs Node >= 22.2 and no CRC library is kept; SHA-256 is in Node itself.)
 */
import fs from 'node:fs';
import { createHash, webcrypto } from 'node:crypto';
import { datasetOffset } from './files.js';

/** Names the seal's format in (0002,0100); a new format gets a new UID. */
export const SEAL_CREATOR_UID = '1.2.826.0.1.3680043.10.1561.1.1';
/** Data set length (u64 LE) + SHA-256. */
export const SEAL_BYTES = 8 + 32;
/**
 * Bytes of the data set hashed per segment: small, so that when the last byte arrives only a short segment is still
 * to hash (a 0.5 MB image in one segment cost ~0.4 ms between its last byte and its flush).
 */
export const SEGMENT_BYTES = 64 * 1024;

export interface Seal {
  datasetLength: number;
  digest: Buffer;
}

function combine(datasetLength: number, segmentDigests: Buffer[]): Buffer {
  const h = createHash('sha256');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(datasetLength));
  h.update(len);
  for (const d of segmentDigests) h.update(d);
  return h.digest();
}

export function encodeSeal(seal: Seal): Buffer {
  const out = Buffer.alloc(SEAL_BYTES);
  out.writeBigUInt64LE(BigInt(seal.datasetLength), 0);
  seal.digest.copy(out, 8);
  return out;
}

/**
 * Hashes a data set as it is written: `update` with each chunk in order, `finish` once it is all there. Segments go
 * to the thread pool as soon as they are full, so only the last one is still hashing when the data set ends.
 */
export class SealHasher {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private length = 0;
  private readonly digests: Array<Promise<Buffer>> = [];

  update(chunk: Buffer): void {
    this.length += chunk.length;
    while (chunk.length > 0) {
      const take = Math.min(chunk.length, SEGMENT_BYTES - this.partBytes);
      this.parts.push(chunk.subarray(0, take));
      this.partBytes += take;
      chunk = chunk.subarray(take);
      if (this.partBytes === SEGMENT_BYTES) this.cut();
    }
  }

  private cut(): void {
    const segment = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    const digest = webcrypto.subtle.digest('SHA-256', segment).then((d) => Buffer.from(d));
    // Awaited by finish; a failure there (never expected) becomes a failed store, not an unhandled rejection.
    digest.catch(() => undefined);
    this.digests.push(digest);
  }

  async finish(): Promise<Seal> {
    if (this.partBytes > 0) this.cut();
    return { datasetLength: this.length, digest: combine(this.length, await Promise.all(this.digests)) };
  }
}

/** The seal recorded in a Part 10 meta (the file's first bytes), or undefined when it has none of ours. */
export function readSeal(head: Buffer): Seal | undefined {
  if (head.length < 132 || head.toString('latin1', 128, 132) !== 'DICM') return undefined;
  let p = 132;
  let creator: string | undefined;
  while (p + 8 <= head.length && head.readUInt16LE(p) === 0x0002) {
    const elem = head.readUInt16LE(p + 2);
    const vr = head.toString('latin1', p + 4, p + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
    const len = long ? head.readUInt32LE(p + 8) : head.readUInt16LE(p + 6);
    const start = p + (long ? 12 : 8);
    if (start + len > head.length) return undefined;
    if (elem === 0x0100) creator = head.toString('latin1', start, start + len).replace(/\0+$/, '');
    if (elem === 0x0102 && creator === SEAL_CREATOR_UID && len === SEAL_BYTES) {
      const digest = Buffer.from(head.subarray(start + 8, start + len));
      if (digest.every((b) => b === 0)) return undefined;
      return { datasetLength: Number(head.readBigUInt64LE(start)), digest };
    }
    p = start + len;
  }
  return undefined;
}

export type SealCheck = { ok: true; seal: Seal; metaLength: number } | { ok: false; reason: string };

/**
 * Reads a spool file back and checks its seal: the file's length is meta + sealed length, and the digest of the data
 * set matches. Synchronous: start-up recovery, one file at a time.
 */
export function checkSealedFile(file: string): SealCheck {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(size, 64 * 1024));
    fs.readSync(fd, head, 0, head.length, 0);
    const seal = readSeal(head);
    if (!seal) return { ok: false, reason: 'no seal' };
    const metaLength = datasetOffset(head);
    if (size !== metaLength + seal.datasetLength) {
      return { ok: false, reason: `length ${size - metaLength}, sealed ${seal.datasetLength}` };
    }
    const digests: Buffer[] = [];
    const buf = Buffer.allocUnsafe(SEGMENT_BYTES);
    for (let done = 0; done < seal.datasetLength;) {
      const want = Math.min(SEGMENT_BYTES, seal.datasetLength - done);
      let got = 0;
      while (got < want) {
        const n = fs.readSync(fd, buf, got, want - got, metaLength + done + got);
        if (n === 0) return { ok: false, reason: 'shorter than its seal' };
        got += n;
      }
      digests.push(createHash('sha256').update(buf.subarray(0, want)).digest());
      done += want;
    }
    if (!combine(seal.datasetLength, digests).equals(seal.digest)) return { ok: false, reason: 'checksum mismatch' };
    return { ok: true, seal, metaLength };
  } finally {
    fs.closeSync(fd);
  }
}
