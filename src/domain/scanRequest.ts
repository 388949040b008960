/**
 * Scan requests as files in `active-scans/` (SPEC section 4), the part without I/O: what a file may say, what it
 * is called, and what scannode writes into it. A request names a StudyInstanceUID, or an accession number, or a
 * patient (optionally with a study date), or the MPPS instance whose study is not known yet.
 */
import { cleanUid, isValidUid } from './uid.js';

export interface ScanRequestSpec {
  studyInstanceUid: string | null;
  accessionNumber: string | null;
  patientId: string | null;
  studyDate: string | null;
  mppsSopInstanceUid: string | null;
  /**
   * The remote to query and retrieve from, by name (absent or null: the scanner). Whether it exists and may be
   * retrieved from is checked against the configuration (pipeline/remoteDirectory.ts), not here.
   */
  remote?: string | null;
}

export type ParseResult = { ok: true; spec: ScanRequestSpec } | { ok: false; reason: string };

/** File names scannode reads or writes in active-scans/: no path separators, no hidden files. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;
/** Largest request file read; a bigger one goes to problem/ unread. */
export const REQUEST_FILE_LIMIT = 64 * 1024;
const JSON_LIMIT = REQUEST_FILE_LIMIT;

export function isRequestFileName(name: string): boolean {
  return SAFE_NAME.test(name) && !name.endsWith('.tmp') && !name.endsWith('.reason.txt');
}

function baseName(name: string): string {
  return name.endsWith('.json') ? name.slice(0, -5) : name;
}

// eslint-disable-next-line no-control-regex -- control characters and the VR delimiter are what is refused
const BAD_TEXT = /[\\\x00-\x1f]/;

function textField(
  obj: Record<string, unknown>,
  keys: string[],
  label: string,
  max: number,
): string | null | { error: string } {
  for (const k of keys) {
    if (!(k in obj)) continue;
    const v = obj[k];
    if (v === null || v === undefined || v === '') return null;
    if (typeof v !== 'string' && typeof v !== 'number') return { error: `${label} must be a string` };
    const s = String(v).trim();
    if (!s) return null;
    if (s.length > max) return { error: `${label} is longer than ${max} characters` };
    if (BAD_TEXT.test(s)) return { error: `${label} contains a backslash or a control character` };
    return s;
  }
  return null;
}

/** Builds a request from its parts and checks it; used for files, the CLI and the API alike. */
export function makeRequest(parts: Partial<Record<keyof ScanRequestSpec, unknown>>): ParseResult {
  const obj = parts as Record<string, unknown>;
  const fields = {
    studyInstanceUid: textField(obj, ['studyInstanceUid'], 'studyInstanceUID', 64),
    accessionNumber: textField(obj, ['accessionNumber'], 'accessionNumber', 16),
    patientId: textField(obj, ['patientId'], 'patientId', 64),
    studyDate: textField(obj, ['studyDate'], 'studyDate', 32),
    mppsSopInstanceUid: textField(obj, ['mppsSopInstanceUid'], 'mppsSopInstanceUID', 64),
    remote: textField(obj, ['remote'], 'remote', 64),
  };
  for (const v of Object.values(fields)) if (v && typeof v === 'object') return { ok: false, reason: v.error };
  const spec = fields as ScanRequestSpec;
  if (spec.remote === null) delete spec.remote;
  else if (!/^[A-Za-z0-9_.-]{1,64}$/.test(spec.remote!)) {
    return { ok: false, reason: `remote "${spec.remote}" is not a remote name (letters, digits, _ . -)` };
  }
  if (spec.studyInstanceUid !== null) {
    const uid = cleanUid(spec.studyInstanceUid);
    if (!isValidUid(uid))
      return { ok: false, reason: `studyInstanceUID "${spec.studyInstanceUid}" is not a valid UID` };
    spec.studyInstanceUid = uid;
  }
  if (spec.mppsSopInstanceUid !== null && !isValidUid(spec.mppsSopInstanceUid)) {
    return { ok: false, reason: `mppsSopInstanceUID "${spec.mppsSopInstanceUid}" is not a valid UID` };
  }
  if (spec.studyDate !== null && !/^\d{8}$/.test(spec.studyDate)) {
    return { ok: false, reason: `studyDate "${spec.studyDate}" is not YYYYMMDD` };
  }
  if (!spec.studyInstanceUid && !spec.accessionNumber && !spec.patientId && !spec.mppsSopInstanceUid) {
    return { ok: false, reason: 'names none of studyInstanceUID, accessionNumber, patientId' };
  }
  return { ok: true, spec };
}

/** Accepts the spellings people write: studyInstanceUID, studyInstanceUid, StudyInstanceUID, ... */
function pick(obj: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  const key = Object.keys(obj).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : obj[key];
}

/**
 * Parses one file of active-scans/. An empty file must be named by a StudyInstanceUID (`<uid>` or `<uid>.json`, as
 * FIONA did); otherwise it is a JSON object. A file named `<uid>.json` that names another study is refused.
 */
export function parseRequestFile(name: string, content: Buffer | string): ParseResult {
  if (!isRequestFileName(name)) return { ok: false, reason: `file name "${name}" is not accepted` };
  const base = baseName(name);
  const nameUid = isValidUid(base) ? base : undefined;
  const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  if (buf.length > JSON_LIMIT) return { ok: false, reason: `larger than ${JSON_LIMIT} bytes` };
  const text = buf.toString('utf8').replace(/^\uFEFF/, '');
  if (!text.trim()) {
    if (!nameUid) return { ok: false, reason: 'empty file whose name is not a StudyInstanceUID' };
    return makeRequest({ studyInstanceUid: nameUid });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `not valid JSON: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, reason: 'JSON is not an object' };
  }
  const obj = parsed as Record<string, unknown>;
  const result = makeRequest({
    studyInstanceUid: pick(obj, 'studyInstanceUid') ?? nameUid,
    accessionNumber: pick(obj, 'accessionNumber'),
    patientId: pick(obj, 'patientId'),
    studyDate: pick(obj, 'studyDate'),
    mppsSopInstanceUid: pick(obj, 'mppsSopInstanceUid'),
    remote: pick(obj, 'remote'),
  });
  if (result.ok && nameUid && result.spec.studyInstanceUid !== nameUid) {
    return {
      ok: false,
      reason: `file is named ${nameUid} but names studyInstanceUID ${result.spec.studyInstanceUid ?? '(none)'}`,
    };
  }
  return result;
}

function safePart(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]/g, '_');
}

/** The file a request lives in: `<StudyInstanceUID>.json` once the study is known. */
export function requestFileName(spec: ScanRequestSpec): string {
  if (spec.studyInstanceUid) return `${spec.studyInstanceUid}.json`;
  if (spec.accessionNumber) return `accession-${safePart(spec.accessionNumber)}.json`;
  if (spec.patientId) return `patient-${safePart(spec.patientId)}${spec.studyDate ? `-${spec.studyDate}` : ''}.json`;
  return `mpps-${spec.mppsSopInstanceUid ?? 'unknown'}.json`;
}

export interface RequestFileView extends ScanRequestSpec {
  state: string;
  source: string;
  requestedAt: Date;
  mppsStatus: string | null;
}

/** What scannode writes into a request file: the admin's view of the request (re-readable by parseRequestFile). */
export function requestFileContent(v: RequestFileView): string {
  return `${JSON.stringify(
    {
      studyInstanceUID: v.studyInstanceUid,
      accessionNumber: v.accessionNumber,
      patientId: v.patientId,
      studyDate: v.studyDate,
      mppsSopInstanceUID: v.mppsSopInstanceUid,
      ...(v.remote ? { remote: v.remote } : {}),
      state: v.state,
      source: v.source,
      requestedAt: v.requestedAt.toISOString(),
      mppsStatus: v.mppsStatus,
    },
    null,
    2,
  )}\n`;
}
