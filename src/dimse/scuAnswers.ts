/**
 * What a Query/Retrieve peer's answers mean: the statuses of C-FIND and C-MOVE responses (PS3.4 C.4), and reading a
 * response's parts (counts, error comment, UID lists, a match's data set cleaned of padding).
 */

// --- statuses -----------------------------------------------------------------------------------------------------

export const QR_STATUS = {
  Success: 0x0000,
  Pending: 0xff00,
  PendingWarning: 0xff01,
  Cancel: 0xfe00,
  /** C-MOVE: Refused, move destination unknown. */
  MoveDestinationUnknown: 0xa801,
  /** C-MOVE: Warning, sub-operations complete, one or more failures or warnings. */
  SubOperationsWarning: 0xb000,
} as const;

export function isPending(status: number): boolean {
  return status === QR_STATUS.Pending || status === QR_STATUS.PendingWarning;
}

/** PS3.4 C.4: 0xB000-0xBFFF and 0x0001 are warnings; 0x0000 success; the rest (A..., C..., FE00 cancel) fail. */
export function isFailure(status: number): boolean {
  if (status === QR_STATUS.Success || isPending(status)) return false;
  if (status === 0x0001 || (status >= 0xb000 && status <= 0xbfff)) return false;
  return true;
}

export function isWarning(status: number): boolean {
  return status === 0x0001 || (status >= 0xb000 && status <= 0xbfff);
}

// --- reading responses --------------------------------------------------------------------------------------------

export interface ResponseLike {
  getStatus(): number;
  getDataset(): { getElements(): Record<string, unknown> } | undefined;
  getErrorComment(): string | undefined;
}

export interface MoveResponseLike extends ResponseLike {
  getCompleted(): number | undefined;
  getFailures(): number | undefined;
  getWarnings(): number | undefined;
  getRemaining(): number | undefined;
}

export function count(n: number | undefined): number {
  return typeof n === 'number' && Number.isFinite(n) ? n : 0;
}

export function errorComment(rsp: ResponseLike): string | undefined {
  const c = rsp.getErrorComment();
  return typeof c === 'string' && c.trim() ? c.trim() : undefined;
}

export function toStringList(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  const list = Array.isArray(v) ? v : String(v).split('\\');
  return list.map((s) => String(s).trim()).filter(Boolean);
}

/** Trims padding from every string (also inside PN objects and arrays) and drops empty values and dcmjs internals. */
export function cleanDataset(ds: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ds)) {
    if (k.startsWith('_')) continue;
    const c = cleanValue(v);
    if (c !== undefined) out[k] = c;
  }
  return out;
}

function cleanValue(v: unknown): unknown {
  if (typeof v === 'string') {
    const s = v.replace(/[\s\0]+$/, '').replace(/^ +/, '');
    return s === '' ? undefined : s;
  }
  if (Array.isArray(v)) {
    const items = v.map(cleanValue).filter((x) => x !== undefined);
    if (items.length === 0) return undefined;
    return items.length === 1 && typeof items[0] !== 'object' ? items[0] : items;
  }
  if (v && typeof v === 'object' && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)) {
    const o = cleanDataset(v as Record<string, unknown>);
    return Object.keys(o).length ? o : undefined;
  }
  return v ?? undefined;
}
