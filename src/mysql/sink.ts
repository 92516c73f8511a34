import type mysql from 'mysql2/promise';
import type { Batch } from '../core/batch.js';
import { InvalidOptionError } from '../core/errors.js';
import type { BatchContext } from '../core/graph.js';
import type { SinkContext, TransactionalSink } from '../core/sink.js';
import {
  describePool,
  quoteIdentifier,
  resolvePool,
  withTransaction,
  type MySqlConnectionOptions,
} from './connection.js';
import { MySqlOffsetStore } from './offset-store.js';

/** A prepared statement has at most 65535 placeholders. */
const MAX_PARAMETERS = 65535;
const DEFAULT_ROWS_PER_STATEMENT = 1000;

export interface MySqlSinkOptions<T> extends MySqlConnectionOptions {
  /**
   * The offset store whose transactions the sink joins (and whose pool it writes with). Default:
   * a store on the sink's own pool, table `sluice_offsets`. Give either `store` or `pool`/`connection`.
   */
  readonly store?: MySqlOffsetStore;
  /** `name` or `database.name` of an existing InnoDB table. */
  readonly table: string;
  /** The columns written, in the order of `toRow`'s values. */
  readonly columns: readonly string[];
  /** One value per column; `undefined` is stored as NULL. */
  readonly toRow: (record: T) => readonly unknown[];
  /** `insert` appends (a replayed batch is written twice); `upsert` overwrites rows with the same `key`. */
  readonly mode: 'insert' | 'upsert';
  /** Upsert only, required: the columns of the table's primary key or of a unique index (checked by `open`). */
  readonly key?: readonly string[];
  /** Rows per INSERT statement. Default 1000, at most 65535 / columns.length. */
  readonly rowsPerStatement?: number;
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
export class MySqlSink<T> implements TransactionalSink<T, mysql.PoolConnection> {
  readonly kind = 'mysql';
  readonly idempotent: boolean;
  readonly store: MySqlOffsetStore;
  readonly pool: mysql.Pool;
  readonly table: string;
  readonly columns: readonly string[];
  readonly mode: 'insert' | 'upsert';
  readonly key: readonly string[] | undefined;
  readonly rowsPerStatement: number;
  readonly #toRow: (record: T) => readonly unknown[];
  readonly #insert: string;
  readonly #onDuplicate: string;
  readonly #probe: string;
  readonly #ownedPool: boolean;
  #closed = false;

  constructor(options: MySqlSinkOptions<T>) {
    this.table = options.table;
    const table = quoteIdentifier('table', options.table, true);
    const columns = options.columns;
    if (!Array.isArray(columns) || columns.length === 0) {
      throw new InvalidOptionError('columns', 'a non-empty array of column names', columns);
    }
    const quoted = columns.map((c) => quoteIdentifier('columns', c));
    if (new Set(columns).size !== columns.length)
      throw new InvalidOptionError('columns', 'distinct names', columns);
    this.columns = [...columns];
    if (typeof options.toRow !== 'function') {
      throw new InvalidOptionError(
        'toRow',
        'a function from a record to one value per column',
        options.toRow,
      );
    }
    this.#toRow = options.toRow;
    if (options.mode !== 'insert' && options.mode !== 'upsert') {
      throw new InvalidOptionError('mode', "'insert' or 'upsert'", options.mode);
    }
    this.mode = options.mode;
    this.idempotent = options.mode === 'upsert';
    this.key = checkKey(options.mode, options.key, columns);

    const max = Math.floor(MAX_PARAMETERS / columns.length);
    const rows = options.rowsPerStatement ?? Math.min(DEFAULT_ROWS_PER_STATEMENT, max);
    if (!Number.isInteger(rows) || rows < 1 || rows > max) {
      throw new InvalidOptionError(
        'rowsPerStatement',
        `an integer from 1 to ${max} (65535 parameters / ${columns.length} columns)`,
        rows,
      );
    }
    this.rowsPerStatement = rows;

    this.#insert = `INSERT INTO ${table} (${quoted.join(', ')}) VALUES `;
    this.#probe = `SELECT ${quoted.join(', ')} FROM ${table} LIMIT 0`;
    if (this.key) {
      const others = quoted.filter((_, i) => !this.key!.includes(columns[i]!));
      // With only key columns there is nothing to update: assign a key column to itself (a no-op).
      const updates = others.length ? others : [quoteIdentifier('key', this.key[0])];
      this.#onDuplicate = ` ON DUPLICATE KEY UPDATE ${updates.map((c) => `${c} = VALUES(${c})`).join(', ')}`;
    } else {
      this.#onDuplicate = '';
    }

    if (options.store && (options.pool || options.connection !== undefined)) {
      throw new InvalidOptionError('store', 'either store or pool/connection, not both', '(both given)');
    }
    if (options.store) {
      this.store = options.store;
      this.pool = options.store.pool;
      this.#ownedPool = false;
    } else {
      const { pool, owned } = resolvePool(options);
      this.pool = pool;
      this.#ownedPool = owned;
      this.store = new MySqlOffsetStore({ pool });
    }
  }

  describe(): Record<string, unknown> {
    return {
      ...describePool(this.pool),
      table: this.table,
      columns: this.columns,
      mode: this.mode,
      ...(this.key ? { key: this.key } : {}),
      rowsPerStatement: this.rowsPerStatement,
      offsetsTable: this.store.table,
    };
  }

  /**
   * Checks that the table and columns exist and, in upsert mode, that `key` is the primary key or a
   * unique index: without one MySQL's upsert silently appends.
   */
  async open(_ctx: SinkContext): Promise<void> {
    await this.pool.query(this.#probe);
    if (!this.key) return;
    const [schema, name] = this.table.includes('.') ? this.table.split('.') : [null, this.table];
    const [indexes] = await this.pool.execute<mysql.RowDataPacket[]>(
      `SELECT INDEX_NAME AS name, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS cols
       FROM information_schema.STATISTICS
       WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0
       GROUP BY INDEX_NAME`,
      [schema, name],
    );
    const wanted = [...this.key].sort().join(',');
    if (!indexes.some((i) => String(i.cols).split(',').sort().join(',') === wanted)) {
      throw new InvalidOptionError(
        'key',
        `the columns of the primary key or of a unique index of ${this.table} (it has: ${indexes.map((i) => `(${i.cols})`).join(', ') || 'none'})`,
        this.key,
      );
    }
  }

  /** Writes the batch in a transaction of its own: all of its rows or none. */
  async write(batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    const rows = this.#rows(batch);
    if (rows.length === 0) return;
    await withTransaction(this.pool, (conn) => this.#writeRows(conn, rows));
  }

  async writeInTransaction(tx: mysql.PoolConnection, batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    const rows = this.#rows(batch);
    if (rows.length > 0) await this.#writeRows(tx, rows);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownedPool) await this.pool.end();
  }

  #rows(batch: Batch<T>): unknown[][] {
    const rows: unknown[][] = [];
    for (const part of batch.partitions) {
      for (const record of part) {
        const row = this.#toRow(record);
        if (!Array.isArray(row) || row.length !== this.columns.length) {
          throw new InvalidOptionError(
            'toRow',
            `an array of ${this.columns.length} values (${this.columns.join(', ')})`,
            row,
          );
        }
        rows.push(row.map((v) => (v === undefined ? null : v)));
      }
    }
    return rows;
  }

  /** Rows of one upsert statement are applied in order, so the last record of a key wins. */
  async #writeRows(conn: mysql.PoolConnection, rows: readonly unknown[][]): Promise<void> {
    const tuple = `(${this.columns.map(() => '?').join(', ')})`;
    for (let start = 0; start < rows.length; start += this.rowsPerStatement) {
      const chunk = rows.slice(start, start + this.rowsPerStatement);
      const sql = this.#insert + chunk.map(() => tuple).join(', ') + this.#onDuplicate;
      await conn.execute(sql, chunk.flat() as mysql.ExecuteValues);
    }
  }
}

function checkKey(
  mode: 'insert' | 'upsert',
  key: readonly string[] | undefined,
  columns: readonly string[],
): readonly string[] | undefined {
  if (mode === 'insert') {
    if (key !== undefined)
      throw new InvalidOptionError('key', "no key in mode 'insert' (it is for 'upsert')", key);
    return undefined;
  }
  if (!Array.isArray(key) || key.length === 0 || !key.every((k) => columns.includes(k))) {
    throw new InvalidOptionError(
      'key',
      `in mode 'upsert', a non-empty array of the columns (${columns.join(', ')}) of a unique key`,
      key,
    );
  }
  return [...key];
}
