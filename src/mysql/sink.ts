import type mysql from 'mysql2/promise';
import { InvalidOptionError } from '../core/errors.js';
import { SqlSink, type SinkDialect, type SqlSinkOptions } from '../relational/sink.js';
import { mysqlConnection, resolvePool, type MySqlConnectionOptions } from './connection.js';
import { MySqlOffsetStore } from './offset-store.js';

export interface MySqlSinkOptions<T> extends MySqlConnectionOptions, SqlSinkOptions<T, MySqlOffsetStore> {
  /** `name` or `database.name` of an existing InnoDB table. */
  readonly table: string;
  /** Upsert only, required: the columns of the table's primary key or of a unique index (checked by `open`). */
  readonly key?: readonly string[];
}

/**
 * Writes each batch with multi-row prepared INSERTs of `rowsPerStatement` rows (upsert: `ON
 * DUPLICATE KEY UPDATE col = VALUES(col)`). `write` puts a whole batch in one transaction, so a
 * failed batch leaves no rows; `writeInTransaction` runs the same statements in the store's
 * transaction, with the offsets. In upsert mode the last record of a key in a batch wins.
 *
 * MySQL applies ON DUPLICATE KEY UPDATE on a clash with ANY unique index of the table, so give the
 * table no unique index but `key`'s.
 *
 * @example
 * ```ts
 * const sink = new MySqlSink<Order>({
 *   table: 'orders', columns: ['name', 'orderid'], toRow: (o) => [o.name, o.orderid],
 *   mode: 'upsert', key: ['orderid'],
 * });
 * ```
 */
export class MySqlSink<T> extends SqlSink<T, mysql.Pool, mysql.PoolConnection, MySqlOffsetStore> {
  readonly kind = 'mysql';

  constructor(options: MySqlSinkOptions<T>) {
    super(
      mysqlDialect,
      options,
      () => resolvePool(options),
      (pool) => new MySqlOffsetStore({ pool }),
    );
  }
}

/** The MySQL/MariaDB dialect of the shared sink. */
const mysqlDialect: SinkDialect<mysql.Pool, mysql.PoolConnection> = {
  ...mysqlConnection,

  upsertClause(key, others) {
    // With only key columns there is nothing to update: assign a key column to itself (a no-op).
    const updates = others.length ? others : [key[0]!];
    return ` ON DUPLICATE KEY UPDATE ${updates.map((c) => `${c} = VALUES(${c})`).join(', ')}`;
  },

  valuesPlaceholders(rows, width) {
    const tuple = `(${Array.from({ length: width }, () => '?').join(', ')})`;
    return Array.from({ length: rows }, () => tuple).join(', ');
  },

  async insert(conn, sql, values) {
    await conn.execute(sql, values as mysql.ExecuteValues);
  },

  async probe(pool, sql) {
    await pool.query(sql);
  },

  /**
   * Checks, in upsert mode, that `key` is the primary key or a unique index: without one MySQL's
   * upsert silently appends.
   */
  async checkUpsertKey(pool, table, key) {
    const [schema, name] = table.includes('.') ? table.split('.') : [null, table];
    const [indexes] = await pool.execute<mysql.RowDataPacket[]>(
      `SELECT INDEX_NAME AS name, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS cols
       FROM information_schema.STATISTICS
       WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0
       GROUP BY INDEX_NAME`,
      [schema, name],
    );
    const wanted = [...key].sort().join(',');
    if (!indexes.some((i) => String(i.cols).split(',').sort().join(',') === wanted)) {
      throw new InvalidOptionError(
        'key',
        `the columns of the primary key or of a unique index of ${table} (it has: ${indexes.map((i) => `(${i.cols})`).join(', ') || 'none'})`,
        key,
      );
    }
  },

  // Rows of one upsert statement are applied in order, so the last record of a key wins.
  oneRowPerKey: false,
};
