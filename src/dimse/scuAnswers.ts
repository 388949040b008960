/**
 * Reading a Query/Retrieve peer's answers: a response's parts (counts, error comment, UID lists, a match's data set
 * cleaned of padding). What their statuses mean is in domain/statusTable.ts.
 */

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
