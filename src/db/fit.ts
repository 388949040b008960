/** Owns fitting a row to its table: every varchar value is cut to the length its entity schema declares (the only place widths are stated). */
import type { EntitySchema } from 'typeorm';

/**
 * A copy of `row` with each string value of a column declared `varchar` with a `length` cut to that length. Nothing
 * else changes. The widths are read off the entity schema, so a column's width is written once, in its entity.
 */
export function fitRow<T extends object, R extends Partial<T>>(schema: EntitySchema<T>, row: R): R {
  const columns = schema.options.columns as Record<string, { type?: unknown; length?: string | number } | undefined>;
  const out: Record<string, unknown> = { ...row };
  for (const [key, value] of Object.entries(out)) {
    const length = columns[key]?.length;
    if (typeof value === 'string' && length !== undefined && value.length > Number(length)) {
      out[key] = value.slice(0, Number(length));
    }
  }
  return out as R;
}

/** The declared width of one column, for values cut before they become a row (a where clause, a message). */
export function widthOf<T extends object>(schema: EntitySchema<T>, column: keyof T & string): number {
  const length = (schema.options.columns as Record<string, { length?: string | number } | undefined>)[column]?.length;
  if (length === undefined) throw new Error(`${schema.options.name}.${column} has no declared width`);
  return Number(length);
}
