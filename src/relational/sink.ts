import type { Batch, BatchContext } from '../core/batch.js';
import { InvalidOptionError } from '../core/errors.js';
import type { SinkContext, TransactionalSink } from '../core/sink.js';
import type { ConnectionDialect, ResolvedPool } from './dialect.js';
import type { SqlOffsetStore } from './offset-store.js';

/** PostgreSQL binds, and a MySQL prepared statement has, at most 65535 parameters per statement. */
const MAX_PARAMETERS = 65535;
const DEFAULT_ROWS_PER_STATEMENT = 1000;

/** The sink's statements of one database. */
export interface SinkDialect<Pool, Conn> extends ConnectionDialect<Pool, Conn> {
  /** What follows the VALUES of an INSERT to make it an upsert on `key` (both lists quoted). */
  upsertClause(key: readonly string[], others: readonly string[]): string;
  /** The placeholders of `rows` rows of `width` values: `(…), (…)`. */
  valuesPlaceholders(rows: number, width: number): string;
  /** Runs an INSERT of many rows with its values, flat. */
  insert(conn: Conn, sql: string, values: unknown[]): Promise<void>;
  /** Runs `SELECT <columns> FROM <table> LIMIT 0`. */
  probe(pool: Pool, sql: string): Promise<void>;
  /** In upsert mode, after the probe: checks `key` against the table, where the database needs it. */
  checkUpsertKey?(pool: Pool, table: string, key: readonly string[]): Promise<void>;
  /**
   * True when a statement cannot update one row twice: of a batch's records with the same key only
   * the last is written. False when the rows of a statement are applied in order (so it wins anyway).
   */
  readonly oneRowPerKey: boolean;
}

export interface SqlSinkOptions<T, Store> {
  /**
   * The offset store whose transactions the sink joins (and whose pool it writes with). Default:
   * a store on the sink's own pool, table `sluice_offsets`. Give either `store` or `pool`/`connection`.
   */
  readonly store?: Store;
  /** `name` or a qualified name of an existing table. */
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
 * Writes each batch to a SQL table with multi-row INSERTs of `rowsPerStatement` rows (upsert: the
 * dialect's {@link SinkDialect.upsertClause}); `write` in a transaction of its own, `writeInTransaction`
 * in the store's. See `PostgresSink` and `MySqlSink`.
 */
export abstract class SqlSink<
  T,
  Pool,
  Conn,
  Store extends SqlOffsetStore<Pool, Conn>,
> implements TransactionalSink<T, Conn> {
  abstract readonly kind: string;
  readonly idempotent: boolean;
  readonly store: Store;
  readonly pool: Pool;
  readonly table: string;
  readonly columns: readonly string[];
  readonly mode: 'insert' | 'upsert';
  readonly key: readonly string[] | undefined;
  readonly rowsPerStatement: number;
  readonly #db: SinkDialect<Pool, Conn>;
  readonly #toRow: (record: T) => readonly unknown[];
  readonly #keyIndexes: readonly number[];
  readonly #insert: string;
  readonly #upsert: string;
  readonly #probe: string;
  readonly #ownedPool: boolean;
  #closed = false;

  /** `resolvePool` and `newStore` (a store on the sink's pool) run only without `options.store`. */
  protected constructor(
    db: SinkDialect<Pool, Conn>,
    options: SqlSinkOptions<T, Store> & { readonly pool?: Pool; readonly connection?: unknown },
    resolvePool: () => ResolvedPool<Pool>,
    newStore: (pool: Pool) => Store,
  ) {
    this.#db = db;
    this.table = options.table;
    const table = db.quoteIdentifier('table', options.table, true);
    const columns = options.columns;
    if (!Array.isArray(columns) || columns.length === 0) {
      throw new InvalidOptionError('columns', 'a non-empty array of column names', columns);
    }
    const quoted = columns.map((c) => db.quoteIdentifier('columns', c));
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
      const keyQuoted = this.key.map((k) => db.quoteIdentifier('key', k));
      const others = quoted.filter((_, i) => !this.#keyIndexes.includes(i));
      this.#upsert = db.upsertClause(keyQuoted, others);
    } else {
      this.#upsert = '';
    }

    if (options.store && (options.pool || options.connection !== undefined)) {
      throw new InvalidOptionError('store', 'either store or pool/connection, not both', '(both given)');
    }
    if (options.store) {
      this.store = options.store;
      this.pool = options.store.pool;
      this.#ownedPool = false;
    } else {
      const { pool, owned } = resolvePool();
      this.pool = pool;
      this.#ownedPool = owned;
      this.store = newStore(pool);
    }
  }

  describe(): Record<string, unknown> {
    return {
      ...this.#db.describePool(this.pool),
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
    await this.#db.probe(this.pool, this.#probe);
    if (this.key && this.#db.checkUpsertKey) await this.#db.checkUpsertKey(this.pool, this.table, this.key);
  }

  /** Writes the batch in a transaction of its own: all of its rows or none. */
  async write(batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    const rows = this.#rows(batch);
    if (rows.length === 0) return;
    await this.#db.withTransaction(this.pool, (conn) => this.#writeRows(conn, rows));
  }

  async writeInTransaction(tx: Conn, batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    const rows = this.#rows(batch);
    if (rows.length > 0) await this.#writeRows(tx, rows);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownedPool) await this.#db.endPool(this.pool);
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
        // mysql2 refuses undefined; pg stores it as NULL too.
        rows.push(row.map((v: unknown) => (v === undefined ? null : v)));
      }
    }
    if (!this.key || !this.#db.oneRowPerKey) return rows;
    // The last record of a key wins.
    const byKey = new Map<string, unknown[]>();
    for (const row of rows) byKey.set(keyString(this.#keyIndexes.map((i) => row[i])), row);
    return [...byKey.values()];
  }

  async #writeRows(conn: Conn, rows: readonly unknown[][]): Promise<void> {
    const width = this.columns.length;
    for (let start = 0; start < rows.length; start += this.rowsPerStatement) {
      const chunk = rows.slice(start, start + this.rowsPerStatement);
      const sql = this.#insert + this.#db.valuesPlaceholders(chunk.length, width) + this.#upsert;
      await this.#db.insert(conn, sql, chunk.flat());
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
