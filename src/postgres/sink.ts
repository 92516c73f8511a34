import type pg from 'pg';
import { SqlSink, type SinkDialect, type SqlSinkOptions } from '../relational/sink.js';
import { postgresConnection, resolvePool, type PostgresConnectionOptions } from './connection.js';
import { PostgresOffsetStore } from './offset-store.js';

export interface PostgresSinkOptions<T>
  extends PostgresConnectionOptions, SqlSinkOptions<T, PostgresOffsetStore> {
  /** `name` or `schema.name` of an existing table. */
  readonly table: string;
}

/**
 * Writes each batch with multi-row INSERTs of `rowsPerStatement` rows (upsert: `ON CONFLICT (key)
 * DO UPDATE`). `write` puts a whole batch in one transaction, so a failed batch leaves no rows;
 * `writeInTransaction` runs the same statements in the store's transaction, with the offsets.
 *
 * In upsert mode, records of one batch with the same key are reduced to the last one (partition
 * after partition), as applying them one by one would leave it.
 *
 * @example
 * ```ts
 * const sink = new PostgresSink<Order>({
 *   table: 'orders', columns: ['name', 'orderid'], toRow: (o) => [o.name, o.orderid],
 *   mode: 'upsert', key: ['orderid'],
 * });
 * ```
 */
export class PostgresSink<T> extends SqlSink<T, pg.Pool, pg.PoolClient, PostgresOffsetStore> {
  readonly kind = 'postgres';

  constructor(options: PostgresSinkOptions<T>) {
    super(
      postgresDialect,
      options,
      () => resolvePool(options),
      (pool) => new PostgresOffsetStore({ pool }),
    );
  }
}

/** The PostgreSQL dialect of the shared sink. */
const postgresDialect: SinkDialect<pg.Pool, pg.PoolClient> = {
  ...postgresConnection,

  upsertClause(key, others) {
    const action = others.length
      ? `DO UPDATE SET ${others.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
      : 'DO NOTHING';
    return ` ON CONFLICT (${key.join(', ')}) ${action}`;
  },

  valuesPlaceholders(rows, width) {
    return Array.from(
      { length: rows },
      (_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`,
    ).join(', ');
  },

  async insert(client, sql, values) {
    await client.query(sql, values);
  },

  async probe(pool, sql) {
    await pool.query(sql);
  },

  // ON CONFLICT cannot update one row twice in a statement; the last record of a key wins.
  oneRowPerKey: true,
};
