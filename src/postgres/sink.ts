import type pg from 'pg';
import type { Batch } from '../core/batch.js';
import { InvalidOptionError } from '../core/errors.js';
import type { BatchContext } from '../core/graph.js';
import type { SinkContext, TransactionalSink } from '../core/sink.js';
import {
  describePool,
  quoteIdentifier,
  resolvePool,
  withTransaction,
  type PostgresConnectionOptions,
} from './connection.js';
import { PostgresOffsetStore } from './offset-store.js';

/** PostgreSQL binds at most 65535 parameters per statement. */
const MAX_PARAMETERS = 65535;
const DEFAULT_ROWS_PER_STATEMENT = 1000;

export interface PostgresSinkOptions<T> extends PostgresConnectionOptions {
  /**
   * The offset store whose transactions the sink joins (and whose pool it writes with). Default:
   * a store on the sink's own pool, table `sluice_offsets`. Give either `store` or `pool`/`connection`.
   */
  readonly store?: PostgresOffsetStore;
  /** `name` or `schema.name` of an existing table. */
  readonly table: string;
  /** The columns written, in the order of `toRow`'s values. */
  readonly columns: readonly string[];
  /** One value per column; `undefined` is stored as NULL. */
  readonly toRow: (record: T) => readonly unknown[];
  /** `insert` appends (a replayed batch is written twice); `upsert` overwrites rows with the same `key`. */
  readonly mode: 'insert' | 'upsert';
  /** Upsert only, required: the columns of a primary key or unique constraint of the table. */
  readonly key?: readonly string[];
  /** Rows per INSERT statement. Default 1000, at most 65535 / columns.length. */
  readonly rowsPerStatement?: number;
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
export class PostgresSink<T> implements TransactionalSink<T, pg.PoolClient> {
  readonly kind = 'postgres';
  readonly idempotent: boolean;
  readonly store: PostgresOffsetStore;
  readonly pool: pg.Pool;
  readonly table: string;
  readonly columns: readonly string[];
  readonly mode: 'insert' | 'upsert';
  readonly key: readonly string[] | undefined;
  readonly rowsPerStatement: number;
  readonly #toRow: (record: T) => readonly unknown[];
  readonly #keyIndexes: readonly number[];
  readonly #insert: string;
  readonly #onConflict: string;
  readonly #probe: string;
  readonly #ownedPool: boolean;
  #closed = false;

  constructor(options: PostgresSinkOptions<T>) {
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
    this.#keyIndexes = (this.key ?? []).map((k) => columns.indexOf(k));

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
      const keyQuoted = this.key.map((k) => quoteIdentifier('key', k));
      const others = quoted.filter((_, i) => !this.#keyIndexes.includes(i));
      const action = others.length
        ? `DO UPDATE SET ${others.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
        : 'DO NOTHING';
      this.#onConflict = ` ON CONFLICT (${keyQuoted.join(', ')}) ${action}`;
    } else {
      this.#onConflict = '';
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
      this.store = new PostgresOffsetStore({ pool });
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

  /** Checks that the table and columns exist, so a typo fails at start rather than at the first batch. */
  async open(_ctx: SinkContext): Promise<void> {
    await this.pool.query(this.#probe);
  }

  /** Writes the batch in a transaction of its own: all of its rows or none. */
  async write(batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    const rows = this.#rows(batch);
    if (rows.length === 0) return;
    await withTransaction(this.pool, (client) => this.#writeRows(client, rows));
  }

  async writeInTransaction(tx: pg.PoolClient, batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    const rows = this.#rows(batch);
    if (rows.length > 0) await this.#writeRows(tx, rows);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownedPool) await this.pool.end();
  }

  #rows(batch: Batch<T>): (readonly unknown[])[] {
    const rows: (readonly unknown[])[] = [];
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
        rows.push(row);
      }
    }
    if (!this.key) return rows;
    // ON CONFLICT cannot update one row twice in a statement; the last record of a key wins.
    const byKey = new Map<string, readonly unknown[]>();
    for (const row of rows) byKey.set(keyString(this.#keyIndexes.map((i) => row[i])), row);
    return [...byKey.values()];
  }

  async #writeRows(client: pg.PoolClient, rows: readonly (readonly unknown[])[]): Promise<void> {
    const width = this.columns.length;
    for (let start = 0; start < rows.length; start += this.rowsPerStatement) {
      const chunk = rows.slice(start, start + this.rowsPerStatement);
      const tuples = chunk.map(
        (_, r) => `(${Array.from({ length: width }, (_, c) => `$${r * width + c + 1}`).join(', ')})`,
      );
      await client.query(this.#insert + tuples.join(', ') + this.#onConflict, chunk.flat());
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

/** Equal key values give equal strings: 1 and '1' alike (as the column sees them), Dates and bytes by content. */
function keyString(values: readonly unknown[]): string {
  return JSON.stringify(
    values.map((v) => {
      if (v === null || v === undefined) return null;
      if (v instanceof Date) return v.toISOString();
      if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
      if (typeof v === 'object') return JSON.stringify(v);
      return String(v);
    }),
  );
}
