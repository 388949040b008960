import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import { sqliteConnection } from './dataSource.js';

/**
 * Statements run once per received image, with their SQL built once. TypeORM's query builders rebuild and re-escape
 * the SQL on every call, which cost 0.3-0.6 ms of main-thread time per statement; here the SQL comes from the entity
 * metadata and every value still goes through TypeORM's own conversions (transformers, dates, booleans per driver).
 */
export function preparedStatements(source: DataSource, entity: EntityTarget<ObjectLiteral>) {
  const { driver } = source;
  const meta = source.getMetadata(entity);
  const table = meta.tablePath
    .split('.')
    .map((part) => driver.escape(part))
    .join('.');
  const column = (property: string) => {
    const c = meta.findColumnWithPropertyName(property);
    if (!c) throw new Error(`${meta.name} has no column ${property}`);
    return c;
  };
  const columns = meta.columns;
  const head = `INSERT INTO ${table} (${columns.map((c) => driver.escape(c.databaseName)).join(', ')}) VALUES `;
  /** The placeholders of row `r` of a statement. */
  const tuple = (r: number) =>
    `(${columns.map((c, i) => driver.createParameter(c.propertyName, r * columns.length + i)).join(', ')})`;
  const insertSql = head + tuple(0);
  /** `INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING` for n rows, built once per n. */
  const ignoreSql = new Map<number, string>();
  const insertIgnoreSql = (n: number) => {
    const sql =
      ignoreSql.get(n) ?? `${head}${Array.from({ length: n }, (_, r) => tuple(r)).join(', ')} ON CONFLICT DO NOTHING`;
    ignoreSql.set(n, sql);
    return sql;
  };
  const values = (row: ObjectLiteral) =>
    columns.map((c) => driver.preparePersistentValue(c.getEntityValue(row, true), c) as unknown);
  return {
    /** Inserts one row (a duplicate key rejects with the driver's unique-violation error, as `insert` does). */
    async insert(row: ObjectLiteral): Promise<void> {
      await source.query(insertSql, values(row));
    },
    /** Inserts the rows whose key is not there yet, in one statement (one round trip), through `query`. */
    async insertIgnore(
      rows: readonly ObjectLiteral[],
      query: (sql: string, values: unknown[]) => Promise<unknown>,
    ): Promise<void> {
      if (rows.length) await query(insertIgnoreSql(rows.length), rows.flatMap(values));
    },
    /**
     * `SELECT <properties> FROM table WHERE <key> = ?`: the first row's raw values, by property name, or null. On
     * SQLite the statement is prepared once on the driver's connection (public: better-sqlite3's Database) and run
     * synchronously: through `query` each call cost a query runner, a fresh prepare and ~0.1-0.2 ms of main thread.
     */
    selectOneBy<K extends string>(key: string, properties: readonly K[]) {
      const sql =
        `SELECT ${properties.map((p) => `${driver.escape(column(p).databaseName)} AS ${driver.escape(p)}`).join(', ')} ` +
        `FROM ${table} WHERE ${driver.escape(column(key).databaseName)} = ${driver.createParameter(key, 0)}`;
      const sqlite = sqliteConnection(source);
      if (sqlite) {
        let statement: ReturnType<typeof sqlite.prepare> | undefined;
        return (value: unknown): Promise<Record<K, unknown> | null> => {
          try {
            statement ??= sqlite.prepare(sql);
            return Promise.resolve((statement.get(value) as Record<K, unknown> | undefined) ?? null);
          } catch (err) {
            return Promise.reject(err as Error);
          }
        };
      }
      return async (value: unknown): Promise<Record<K, unknown> | null> =>
        (await source.query<Array<Record<K, unknown>>>(sql, [value]))[0] ?? null;
    },
  };
}
