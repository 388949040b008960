/** Owns reading the stored header of a Part 10 file: the attributes kept per instance, up to Pixel Data. */
import fs from 'node:fs';
import dcmjs from 'dcmjs';
import { DicomStatus, DimseError } from '../domain/status.js';
import { TransferSyntax } from '../domain/transferSyntax.js';
import { assertHeaderDepth } from './headerGuard.js';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

/** The header attributes kept per instance (naturalized dcmjs JSON, pixel data and bulk values left out). */
export type Header = Record<string, unknown>;

export const HEAD_BYTES = 64 * 1024;

/**
 * Parses the header of a Part 10 file from its first bytes: the data set up to (not including) Pixel Data.
 * `complete` says whether `buf` is the whole file; when it is not and the parser runs past its end, the caller
 * retries with more bytes (`parseHeaderFromFile`). Errors map to DIMSE statuses: truncated or not DICOM.
 */
export function parseHeader(buf: Buffer, complete: boolean): Header | 'need-more' {
  // dcmjs reads a value that runs past the end of the buffer as far as it goes, without an error, so a head cut inside
  // a long element would give a silently shortened header. A head that is not the whole file is only trusted when it
  // reaches the Pixel Data element, where the parse stops anyway.
  // dcmjs reads nested sequences recursively without a bound: the nesting is checked first (C000 when too deep).
  assertHeaderDepth(buf, complete);
  if (!complete && !reachesPixelData(buf)) return 'need-more';
  let dict: { dict: Record<string, unknown>; meta: Record<string, unknown> };
  try {
    dict = readUntilPixelData(buf, false);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/character set/i.test(msg)) {
      // dcmjs refuses multi-valued / ISO 2022 Specific Character Sets outright. The bytes are stored as received
      // whatever the text encoding, so decode the header with the first character set only; the UID checks that
      // follow (and the Pixel Data check) still refuse a data set that did not parse.
      try {
        dict = readUntilPixelData(buf, true);
      } catch (again) {
        return failedParse(again, complete);
      }
    } else {
      return failedParse(err, complete);
    }
  }
  const header = DicomMetaDictionary.naturalizeDataset(dict.dict) as Header;
  for (const key of Object.keys(header)) {
    const v = header[key];
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v) || (Array.isArray(v) && v[0] instanceof ArrayBuffer)) {
      delete header[key];
    }
  }
  delete header._vrMap;
  return header;
}

const PIXEL_DATA_TAGS = [Buffer.from([0xe0, 0x7f, 0x10, 0x00]), Buffer.from([0x7f, 0xe0, 0x00, 0x10])];

function reachesPixelData(buf: Buffer): boolean {
  return PIXEL_DATA_TAGS.some((tag) => buf.includes(tag));
}

function readUntilPixelData(
  buf: Buffer,
  ignoreErrors: boolean,
): { dict: Record<string, unknown>; meta: Record<string, unknown> } {
  // Never ignoreErrors in general: it silently returns a partial header.
  return DicomMessage.readFile(bufferToArrayBuffer(buf), {
    untilTag: '7FE00010',
    includeUntilTagValue: false,
    ignoreErrors,
  }) as { dict: Record<string, unknown>; meta: Record<string, unknown> };
}

function failedParse(err: unknown, complete: boolean): 'need-more' {
  if (!complete) return 'need-more';
  const msg = err instanceof Error ? err.message : String(err);
  if (/offset|outside|out of range|beyond|bounds|end of|more than currently allocated/i.test(msg)) {
    throw new DimseError(DicomStatus.Truncated, `data set is truncated: ${msg}`);
  }
  throw new DimseError(DicomStatus.CannotUnderstand, `not a readable DICOM data set: ${msg}`);
}

/** Reads as much of the file as the header needs: 64 KiB first, then more, at most the whole file. */
export function parseHeaderFromFile(file: string, first?: Buffer): Header {
  const size = fs.statSync(file).size;
  let want = first ? Math.max(first.length * 4, HEAD_BYTES) : HEAD_BYTES;
  let buf = first && first.length >= size ? first : undefined;
  if (!buf && first) {
    const parsed = parseHeader(first, first.length >= size);
    if (parsed !== 'need-more') return parsed;
  }
  for (;;) {
    if (!buf || buf.length < Math.min(want, size)) buf = readPrefix(file, Math.min(want, size));
    const parsed = parseHeader(buf, buf.length >= size);
    if (parsed !== 'need-more') return parsed;
    want *= 8;
  }
}

function readPrefix(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(n);
    const read = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}

function bufferToArrayBuffer(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

export function isDeflated(ts: string): boolean {
  return ts === TransferSyntax.DeflatedExplicitVRLittleEndian;
}

export function str(header: Header, key: string): string | undefined {
  const v = header[key];
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.length ? String(v[0] as unknown) : undefined;
  if (typeof v === 'object') {
    const alpha = (v as { Alphabetic?: string }).Alphabetic;
    return alpha === undefined ? undefined : String(alpha);
  }
  const s = String(v as string | number).trim();
  return s.length ? s : undefined;
}

export function int(header: Header, key: string): number | undefined {
  const s = str(header, key);
  if (s === undefined) return undefined;
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : undefined;
}
