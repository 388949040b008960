/**
 * Owns reading the stored header of a Part 10 file: the attributes kept per instance, up to Pixel Data. The bytes are
 * scanned first (storage/headerScan: 64 KiB windows, bulk values stepped over, nesting bounded) and dcmjs reads only
 * the small elements that scan kept; PN values are stored as text.
 */
import dcmjs from 'dcmjs';
import { DicomStatus, DimseError } from '../domain/status.js';
import { TransferSyntax } from '../domain/transferSyntax.js';
import { scanBuffer, scanFile } from './headerScan.js';
import type { IndexAttributes } from '../db/instanceIndex.js';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

/** The header attributes kept per instance (naturalized dcmjs JSON, pixel data and bulk values left out). */
export type Header = Record<string, unknown>;

export const HEAD_BYTES = 64 * 1024;

/**
 * Parses the header of a Part 10 file from its first bytes: the data set up to (not including) Pixel Data.
 * `complete` says whether `buf` is the whole file; when it is not and the header runs past its end (a long value not
 * yet received, say), the answer is 'need-more' and the caller reads the file (`parseHeaderFromFile`).
 * Errors map to DIMSE statuses: truncated (C001) or not DICOM / malformed / nested too deep (C000).
 */
export function parseHeader(buf: Buffer, complete: boolean): Header | 'need-more' {
  const scanned = scanBuffer(buf, complete);
  return scanned === 'need-more' ? scanned : readCompact(scanned.compact);
}

/** Reads the header of a stored file through a 64 KiB window; `first`, the head already in memory, is a shortcut. */
export function parseHeaderFromFile(file: string, first?: Buffer): Header {
  if (first) {
    const parsed = parseHeader(first, false);
    if (parsed !== 'need-more') return parsed;
  }
  return readCompact(scanFile(file));
}

/** dcmjs reads the compact data set the scan kept (no bulk value, no Pixel Data, bounded size). */
function readCompact(compact: Buffer): Header {
  let dict: Record<string, unknown>;
  try {
    dict = readDict(compact, false);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (!/character set/i.test(msg)) return failedParse(err);
    // dcmjs refuses multi-valued / ISO 2022 Specific Character Sets outright. The bytes are stored as received
    // whatever the text encoding, so decode the header with the first character set only; the UID checks that
    // follow (and the Pixel Data check) still refuse a data set that did not parse.
    try {
      dict = readDict(compact, true);
    } catch (again) {
      return failedParse(again);
    }
  }
  const header = DicomMetaDictionary.naturalizeDataset(dict) as Header;
  for (const key of Object.keys(header)) {
    const v = header[key];
    if (v instanceof ArrayBuffer || ArrayBuffer.isView(v) || (Array.isArray(v) && v[0] instanceof ArrayBuffer)) {
      delete header[key];
    }
  }
  delete header._vrMap;
  return personNamesAsText(header) as Header;
}

function readDict(compact: Buffer, ignoreErrors: boolean): Record<string, unknown> {
  // Never ignoreErrors in general: it silently returns a partial header.
  const ab = compact.buffer.slice(compact.byteOffset, compact.byteOffset + compact.byteLength) as ArrayBuffer;
  // noCopy: `ab` is already a copy of its own
  return (DicomMessage.readFile(ab, { ignoreErrors, noCopy: true }) as { dict: Record<string, unknown> }).dict;
}

function failedParse(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  if (/offset|outside|out of range|beyond|bounds|end of|more than currently allocated/i.test(msg)) {
    throw new DimseError(DicomStatus.Truncated, `data set is truncated: ${msg}`);
  }
  throw new DimseError(DicomStatus.CannotUnderstand, `not a readable DICOM data set: ${msg}`);
}

const PN_KEYS = new Set(['Alphabetic', 'Ideographic', 'Phonetic']);

function isPersonName(v: unknown): v is { Alphabetic?: string; Ideographic?: string; Phonetic?: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
    return false;
  }
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => PN_KEYS.has(k));
}

/**
 * dcmjs gives PN values as {Alphabetic, Ideographic, Phonetic} (and JSON-encodes them so); the stored header keeps the
 * DICOM text `A=I=P`, a single value as a plain string like the other text VRs.
 */
function personNamesAsText(v: unknown): unknown {
  if (isPersonName(v)) {
    return [v.Alphabetic ?? '', v.Ideographic ?? '', v.Phonetic ?? ''].join('=').replace(/=+$/, '');
  }
  // New plain arrays and objects: dcmjs's naturalized data sets turn a PN string assigned to them back into objects.
  if (Array.isArray(v)) {
    const values = v as unknown[];
    if (values.length === 1 && isPersonName(values[0])) return personNamesAsText(values[0]);
    return Array.from(values, personNamesAsText);
  }
  if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(v)) out[key] = personNamesAsText(value);
    return out;
  }
  return v;
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

/** The header as the instance index reads it (db/instanceIndex.ts IndexAttributes). */
export function indexAttributes(header: Header): IndexAttributes {
  return { text: (k) => str(header, k), int: (k) => int(header, k), json: JSON.stringify(header) };
}

export function int(header: Header, key: string): number | undefined {
  const s = str(header, key);
  if (s === undefined) return undefined;
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : undefined;
}
