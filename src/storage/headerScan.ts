/**
 * Owns the header scanner: walks a stored Part 10 file (or the head of one in memory) through 64 KiB windows with
 * domain/dicomWalk, stops at Pixel Data, steps over bulk values without reading them and re-encodes only the small
 * elements into a compact Part 10 buffer for dcmjs. Memory stays flat whatever the size of the object; a deflated data
 * set is inflated up to a cap. Failures are DIMSE statuses: truncated → C001, not DICOM / malformed / too deep → C000.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import {
  DicomWalkError,
  PIXEL_DATA,
  UNDEFINED_LENGTH,
  bufferSource,
  walkDataset,
  type ByteSource,
  type StructureEvent,
  type WalkedElement,
} from '../domain/dicomWalk.js';
import { DicomStatus, DimseError } from '../domain/status.js';
import { TransferSyntax } from '../domain/transferSyntax.js';

/** Deeper than any real data set (RT plans and structured reports stay well under 20). */
export const MAX_HEADER_DEPTH = 64;
/** The window the scanner reads a file through. */
export const WINDOW_BYTES = 64 * 1024;
/** Binary (OB/OW/OF/OD/OL/OV/UN) and private values longer than this are stepped over, never read. */
export const MAX_BINARY_VALUE = 64 * 1024;
/** Any value longer than this is stepped over. */
export const MAX_VALUE = 16 * 1024 * 1024;
/** The kept elements together stay under this; a value that would pass it is stepped over. */
export const MAX_KEPT = 32 * 1024 * 1024;
/** A deflated data set is inflated up to here (before Pixel Data); more is a deflate bomb, refused with C000. */
export const MAX_INFLATED = 128 * 1024 * 1024;

const META_START = 132;
const TRANSFER_SYNTAX_TAG = 0x00020010;
const BINARY_VRS = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN']);
const ITEM_TAG = 0xfffee000;
const ITEM_END_TAG = 0xfffee00d;
const SEQUENCE_END_TAG = 0xfffee0dd;

/** A source the scanner can also copy kept values from. */
interface ScanSource extends ByteSource {
  copy(at: number, n: number): Buffer;
}

function memorySource(buf: Buffer): ScanSource {
  return { ...bufferSource(buf), copy: (at, n) => buf.subarray(at, at + n) };
}

/** A file read through one reused 64 KiB window; kept values are read on their own. */
class FileSource implements ScanSource {
  private readonly window = Buffer.allocUnsafe(WINDOW_BYTES);
  private windowAt = 0;
  private windowLength = 0;

  constructor(
    private readonly fd: number,
    readonly length: number,
  ) {}

  view(at: number, n: number): Buffer {
    if (at < this.windowAt || at + n > this.windowAt + this.windowLength) {
      this.windowAt = at;
      this.windowLength = this.readInto(this.window, at, Math.min(WINDOW_BYTES, this.length - at));
    }
    return this.window.subarray(at - this.windowAt, at - this.windowAt + n);
  }

  copy(at: number, n: number): Buffer {
    if (at >= this.windowAt && at + n <= this.windowAt + this.windowLength) {
      return Buffer.from(this.window.subarray(at - this.windowAt, at - this.windowAt + n));
    }
    const out = Buffer.allocUnsafe(n);
    const got = this.readInto(out, at, n);
    return out.subarray(0, got);
  }

  private readInto(into: Buffer, at: number, n: number): number {
    let done = 0;
    while (done < n) {
      const got = fs.readSync(this.fd, into, done, n - done, at + done);
      if (got === 0) break;
      done += got;
    }
    return done;
  }
}

/** The scanned header: the kept elements as a small Part 10 buffer in a transfer syntax dcmjs reads directly. */
export type ScanResult = { compact: Buffer } | 'need-more';

/** Scans Part 10 bytes in memory; `complete` says whether `buf` is the whole file (else 'need-more' may come back). */
export function scanBuffer(buf: Buffer, complete: boolean): ScanResult {
  return scan(memorySource(buf), complete, (from, upTo) => buf.subarray(from, upTo));
}

/** Scans a Part 10 file without holding more than a window of it (plus the kept elements). */
export function scanFile(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const src = new FileSource(fd, fs.fstatSync(fd).size);
    const result = scan(src, true, (from, upTo) => src.copy(from, upTo - from));
    if (result === 'need-more') throw new Error('unreachable: a whole file never needs more');
    return result.compact;
  } finally {
    fs.closeSync(fd);
  }
}

/** `compressed(from, upTo)`: the raw bytes in that range (for a deflated data set). */
function scan(src: ScanSource, complete: boolean, compressed: (from: number, upTo: number) => Buffer): ScanResult {
  if (src.length < META_START) {
    if (!complete) return 'need-more';
    throw new DimseError(DicomStatus.CannotUnderstand, 'not a DICOM Part 10 file: shorter than its preamble');
  }
  if (src.view(128, 4).toString('latin1') !== 'DICM') {
    throw new DimseError(DicomStatus.CannotUnderstand, 'not a DICOM Part 10 file: no DICM prefix');
  }
  const meta = readMeta(src, complete);
  if (meta === 'need-more') return meta;
  const ts = meta.transferSyntax;
  if (ts !== TransferSyntax.DeflatedExplicitVRLittleEndian) {
    const body = keptElements(src, meta.end, ts, complete);
    return body === 'need-more' ? body : { compact: part10(ts, body) };
  }
  // Deflated: inflate a growing prefix of the compressed bytes, each time at most MAX_INFLATED.
  let want = 16 * 1024;
  for (;;) {
    const upTo = Math.min(src.length, meta.end + want);
    const whole = upTo >= src.length && complete;
    const inflated = inflateCapped(compressed(meta.end, upTo));
    const body = keptElements(memorySource(inflated), 0, TransferSyntax.ExplicitVRLittleEndian, whole);
    if (body !== 'need-more') return { compact: part10(TransferSyntax.ExplicitVRLittleEndian, body) };
    if (upTo >= src.length) return 'need-more';
    want *= 4;
  }
}

function inflateCapped(data: Buffer): Buffer {
  try {
    return zlib.inflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: MAX_INFLATED });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DimseError(
        DicomStatus.CannotUnderstand,
        `data set refused: the deflated data set inflates beyond ${MAX_INFLATED / 1024 / 1024} MiB before Pixel Data`,
      );
    }
    const msg = err instanceof Error ? err.message : String(err);
    throw new DimseError(DicomStatus.CannotUnderstand, `not a readable deflated data set: ${msg}`);
  }
}

/**
 * The File Meta Information group (always Explicit VR Little Endian): where it ends and the transfer syntax. Its
 * group length bounds the walk when present (the bytes after it may be deflated).
 */
function readMeta(src: ScanSource, complete: boolean): { end: number; transferSyntax: string } | 'need-more' {
  let transferSyntax: string | undefined;
  let end = src.length;
  let within: ScanSource = src;
  let walkComplete = complete;
  if (src.length >= META_START + 12) {
    const first = src.view(META_START, 12);
    if (first.readUInt32LE(0) === 0x00000002 && first.toString('latin1', 4, 6) === 'UL') {
      end = META_START + 12 + first.readUInt32LE(8);
      if (end > src.length && !complete) return 'need-more';
      within = { length: Math.min(end, src.length), view: src.view.bind(src), copy: src.copy.bind(src) };
      walkComplete = true;
    }
  }
  const walked = walkOrStatus(() =>
    walkDataset(
      within,
      { explicitVr: true, littleEndian: true, offset: META_START, maxDepth: 0, complete: walkComplete },
      (el) => {
        if (el.tag >>> 16 !== 0x0002) {
          end = el.offset;
          return 'stop';
        }
        if (el.tag === TRANSFER_SYNTAX_TAG && el.valueOffset + el.length <= within.length) {
          transferSyntax = src
            .copy(el.valueOffset, el.length)
            .toString('latin1')
            .replace(/[\0 ]+$/, '');
        }
        return undefined;
      },
    ),
  );
  if (walked.status === 'need-more') return 'need-more';
  if (transferSyntax === undefined) {
    throw new DimseError(DicomStatus.CannotUnderstand, 'not a readable DICOM file: no Transfer Syntax UID');
  }
  return { end, transferSyntax };
}

/** Walks the data set and returns its small elements re-encoded (sequences and items with undefined lengths). */
function keptElements(src: ScanSource, offset: number, ts: string, complete: boolean): Buffer | 'need-more' {
  const le = ts !== TransferSyntax.ExplicitVRBigEndian;
  const out: Buffer[] = [];
  let kept = 0;
  const marker = (tag: number, length: number) => {
    const b = Buffer.alloc(8);
    if (le) {
      b.writeUInt16LE(tag >>> 16, 0);
      b.writeUInt16LE(tag & 0xffff, 2);
      b.writeUInt32LE(length, 4);
    } else {
      b.writeUInt32BE(tag, 0);
      b.writeUInt32BE(length, 4);
    }
    out.push(b);
  };
  const visit = (el: WalkedElement) => {
    if (el.tag === PIXEL_DATA && el.depth === 0) return 'stop';
    const undefinedLength = el.length === UNDEFINED_LENGTH;
    if (el.vr === 'SQ' || (undefinedLength && el.vr === 'UN')) {
      // The sequence's header as encoded, its length made undefined: the contents are re-encoded as they come.
      const head = Buffer.from(src.copy(el.offset, el.valueOffset - el.offset));
      if (le) head.writeUInt32LE(UNDEFINED_LENGTH, head.length - 4);
      else head.writeUInt32BE(UNDEFINED_LENGTH, head.length - 4);
      out.push(head);
      return undefined;
    }
    if (undefinedLength || isBulk(el) || kept + el.length > MAX_KEPT) return undefined;
    const end = el.valueOffset + el.length;
    if (end > src.length) return undefined; // the walk reports the cut
    out.push(src.copy(el.offset, end - el.offset));
    kept += end - el.offset;
    return undefined;
  };
  const structure = (ev: StructureEvent) => {
    if (ev.kind === 'item') marker(ITEM_TAG, UNDEFINED_LENGTH);
    else if (ev.kind === 'item-end') marker(ITEM_END_TAG, 0);
    else marker(SEQUENCE_END_TAG, 0);
  };
  const opts = {
    explicitVr: ts !== TransferSyntax.ImplicitVRLittleEndian,
    littleEndian: le,
    offset,
    maxDepth: MAX_HEADER_DEPTH,
    complete,
  };
  const walked = walkOrStatus(() => walkDataset(src, opts, visit, structure));
  return walked.status === 'need-more' ? 'need-more' : Buffer.concat(out);
}

function isBulk(el: WalkedElement): boolean {
  if (el.length > MAX_VALUE) return true;
  const isPrivate = ((el.tag >>> 16) & 1) === 1;
  return (BINARY_VRS.has(el.vr) || isPrivate) && el.length > MAX_BINARY_VALUE;
}

function walkOrStatus<T>(walk: () => T): T {
  try {
    return walk();
  } catch (err) {
    if (!(err instanceof DicomWalkError)) throw err;
    if (err.kind === 'truncated') throw new DimseError(DicomStatus.Truncated, `data set is truncated: ${err.message}`);
    if (err.kind === 'too-deep') throw new DimseError(DicomStatus.CannotUnderstand, `data set refused: ${err.message}`);
    throw new DimseError(DicomStatus.CannotUnderstand, `not a readable DICOM data set: ${err.message}`);
  }
}

/** A minimal Part 10 buffer: preamble, DICM, group length and Transfer Syntax UID, then the data set. */
function part10(ts: string, body: Buffer): Buffer {
  const uid = Buffer.from(ts.length % 2 ? `${ts}\0` : ts, 'latin1');
  const tsElement = Buffer.alloc(8 + uid.length);
  tsElement.writeUInt16LE(0x0002, 0);
  tsElement.writeUInt16LE(0x0010, 2);
  tsElement.write('UI', 4, 'latin1');
  tsElement.writeUInt16LE(uid.length, 6);
  uid.copy(tsElement, 8);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(tsElement.length, 8);
  const preamble = Buffer.alloc(META_START);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, tsElement, body]);
}
