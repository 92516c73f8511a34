import {
  BIGINT,
  BLOB,
  BOOLEAN,
  DOUBLE,
  DuckDBDataChunk,
  DuckDBInstance,
  HUGEINT,
  INTEGER,
  JSDuckDBValueConverter,
  JSToDuckDBValueConverter,
  LIST,
  SQLNULL,
  TIMESTAMP,
  VARCHAR,
  jsToDuckDBValue,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
  type DuckDBValueConverter,
} from '@duckdb/node-api';
import { Batch } from '../core/batch.js';
import type { StreamingContext } from '../core/context.js';
import { InvalidOptionError } from '../core/errors.js';
import { SqlEngineClosedError, SqlError, SqlSchemaError, locate, parseDuckDBError } from './errors.js';
import {
  columnsOfSchema,
  describeColumns,
  fieldOf,
  inferColumns,
  columnConverter,
  type SqlColumns,
  type SqlSchema,
} from './schema.js';

/**
 * A value in a result row. Integers (BIGINT, HUGEINT, ...) are numbers when within
 * ±(2^53 - 1), else bigints; DECIMAL and floats are numbers; DATE, TIMESTAMP and TIMESTAMPTZ are
 * Dates (UTC); TIME is microseconds since midnight (a number); JSON values are parsed; BLOBs are
 * bytes; LISTs arrays; STRUCTs objects; MAPs arrays of `{ key, value }`; INTERVALs
 * `{ months, days, micros }` (micros a bigint); UUIDs and ENUMs strings.
 */
export type SqlValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Date
  | Uint8Array
  | readonly SqlValue[]
  | { readonly [key: string]: SqlValue };

/** A result row: column name to value. Columns with the same name get `name:1`, `name:2`... */
export type SqlRow = Record<string, SqlValue>;

/** What a table can be made of: a batch or an array of records. */
export type SqlTableRows = Batch<unknown> | readonly unknown[];

/**
 * A table with explicit columns: needed for a table that may be empty, and to fix types. The
 * schema is an object of types by column, or an array of `{ name, type }` (for an order that
 * object keys cannot keep, e.g. integer-like names).
 */
export interface SqlTable {
  readonly rows: SqlTableRows;
  readonly schema: SqlSchema | SqlColumns;
}

/** The tables of one query, by name (the name the query uses: letters, digits and `_`). */
export type SqlTables = Readonly<Record<string, SqlTableRows | SqlTable>>;

/**
 * A bound parameter value: booleans, numbers (INTEGER, BIGINT or DOUBLE), bigints (BIGINT or
 * HUGEINT), strings (VARCHAR), Dates (TIMESTAMP), bytes (BLOB), null/undefined (NULL), and arrays of
 * those (a LIST, e.g. for `ip = any($1)`).
 */
export type SqlParam =
  null | undefined | boolean | number | bigint | string | Date | Uint8Array | readonly SqlParam[];

/**
 * Bound parameters: an array for positional ones (`$1`, `$2` or `?`), an object for named ones
 * (`$name`). Values are never spliced into the query text.
 */
export type SqlParams = readonly SqlParam[] | Readonly<Record<string, SqlParam>>;

/** Options of {@link SqlEngine}. */
export interface SqlEngineOptions {
  /** DuckDB worker threads (default: DuckDB's own, one per core). */
  readonly threads?: number;
  /** DuckDB's memory limit, e.g. `'512MB'` (default: DuckDB's, 80% of RAM). */
  readonly memoryLimit?: string;
  /** Close the engine when this context stops (after its last batch). */
  readonly closeWith?: StreamingContext;
  /** Other DuckDB configuration options, passed as they are (`errors_as_json` is always on). */
  readonly config?: Readonly<Record<string, string>>;
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const CHUNK_ROWS = 2048; // DuckDB's vector size: the most rows a data chunk holds
/** Connections kept for later queries (one per concurrent query is opened; more are closed after use). */
const MAX_IDLE_CONNECTIONS = 8;

const DDL_TYPES: Record<string, string> = { TIMESTAMPTZ: 'TIMESTAMP WITH TIME ZONE' };

/** A table ready to load: its columns and their values, converted for DuckDB. */
interface LoadableTable {
  readonly name: string;
  readonly columns: SqlColumns;
  readonly values: unknown[][];
  readonly rowCount: number;
}

/**
 * SQL over batches, with DuckDB running in this process. Each query gets its tables (batches or
 * arrays of records, loaded through DuckDB's appender, never as SQL text) and its bound
 * parameters, and returns row objects. Window functions, joins, CTEs and everything else of
 * DuckDB's SQL work. The tables live only for the query; queries may run concurrently.
 *
 * Column types are inferred from the records, or given with
 * `{ rows, schema }`. An empty table has no columns to infer: it needs a schema, or the query fails
 * with {@link SqlSchemaError} (`problem: 'no-columns'`).
 *
 * The engine opens DuckDB at the first query (or at {@link SqlEngine.create}); close it with
 * {@link SqlEngine.close} or tie it to a context with `closeWith`.
 *
 * @example
 * ```ts
 * import { SqlEngine } from 'sluice/sql';
 * const sql = await SqlEngine.create();
 * const rows = await sql.query<{ category: string; brand: string; rn: number }>(
 *   { sales: [{ category: 'phone', brand: 'A', n: 3 }, { category: 'phone', brand: 'B', n: 5 }] },
 *   `select category, brand, row_number() over (partition by category order by n desc) as rn
 *      from sales where n >= $1 order by category, rn`,
 *   [2],
 * );
 * // [{ category: 'phone', brand: 'B', rn: 1 }, { category: 'phone', brand: 'A', rn: 2 }]
 * await sql.close();
 * ```
 */
export class SqlEngine {
  readonly #options: SqlEngineOptions;
  #instance: Promise<DuckDBInstance> | undefined;
  readonly #idle: DuckDBConnection[] = [];
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  /** An engine that opens DuckDB at its first query. */
  constructor(options: SqlEngineOptions = {}) {
    if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1)) {
      throw new InvalidOptionError('threads', 'an integer >= 1', options.threads);
    }
    if (options.memoryLimit !== undefined && typeof options.memoryLimit !== 'string') {
      throw new InvalidOptionError('memoryLimit', "a size such as '512MB'", options.memoryLimit);
    }
    this.#options = options;
    options.closeWith?.addListener({ onContextStopped: () => void this.close() });
  }

  /**
   * An engine with DuckDB open now, so a broken installation fails here rather than at the first batch.
   *
   * @example
   * ```ts
   * const sql = await SqlEngine.create({ closeWith: ctx, threads: 2 });
   * ```
   */
  static async create(options: SqlEngineOptions = {}): Promise<SqlEngine> {
    const engine = new SqlEngine(options);
    await engine.#open();
    return engine;
  }

  /** True once {@link close} was called: queries are refused. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs `text` over `tables` with bound `params` and returns the result rows. `Row` is the row
   * type the caller expects (not checked: write the query to produce it).
   *
   * @throws SqlError when DuckDB rejects or fails the query: `kind`, `position` (line, column) and `excerpt` say what and where.
   * @throws SqlSchemaError when a table cannot be loaded (bad name, empty without a schema, a value that does not fit its column).
   * @throws SqlEngineClosedError after {@link close}.
   *
   * @example
   * ```ts
   * const banned = await sql.query<{ ip: string }>(
   *   { logs: batch, blacklist: { rows: ips.map((ip) => ({ ip })), schema: { ip: 'VARCHAR' } } },
   *   'select distinct l.ip from logs l join blacklist b on l.ip = b.ip where l.status = $status',
   *   { status: 404 },
   * );
   * ```
   */
  query<Row extends object = SqlRow>(tables: SqlTables, text: string, params?: SqlParams): Promise<Row[]> {
    if (this.#closed) return Promise.reject(new SqlEngineClosedError());
    let pending: Promise<Row[]>;
    try {
      if (typeof text !== 'string' || text.trim() === '') {
        throw new InvalidOptionError('text', 'a SQL query', text);
      }
      const loadable = this.#prepareTables(tables);
      const bound = bindParams(params);
      pending = this.#run<Row>(loadable, text, bound);
    } catch (e) {
      return Promise.reject(e);
    }
    const tracked = pending.finally(() => this.#inflight.delete(tracked));
    this.#inflight.add(tracked);
    return tracked;
  }

  /**
   * Closes DuckDB after the queries already running have finished; later queries are refused with
   * {@link SqlEngineClosedError}. Idempotent.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inflight]);
      const instance = await this.#instance?.catch(() => undefined);
      for (const c of this.#idle.splice(0)) c.closeSync();
      instance?.closeSync();
    })();
    return this.#closing;
  }

  #open(): Promise<DuckDBInstance> {
    this.#instance ??= DuckDBInstance.create(':memory:', {
      ...(this.#options.threads !== undefined ? { threads: String(this.#options.threads) } : {}),
      ...(this.#options.memoryLimit !== undefined ? { memory_limit: this.#options.memoryLimit } : {}),
      ...this.#options.config,
      // Errors with the position in the query, which SqlError turns into line and column.
      errors_as_json: 'true',
    }).catch((e: unknown) => {
      this.#instance = undefined; // let a later query try again
      throw e;
    });
    return this.#instance;
  }

  async #connection(): Promise<DuckDBConnection> {
    const idle = this.#idle.pop();
    if (idle) return idle;
    return (await this.#open()).connect();
  }

  #prepareTables(tables: SqlTables): LoadableTable[] {
    if (typeof tables !== 'object' || tables === null || Array.isArray(tables) || tables instanceof Batch) {
      throw new InvalidOptionError('tables', 'an object of tables by name, e.g. { batch }', tables);
    }
    return Object.entries(tables).map(([name, table]) => {
      if (!TABLE_NAME.test(name)) {
        throw new SqlSchemaError(
          name,
          'invalid-table-name',
          'the name is not a plain SQL identifier',
          'Name tables with 1-63 letters, digits and _, starting with a letter or _',
        );
      }
      const { rows, schema } = splitTable(name, table);
      const records = rows instanceof Batch ? rows.collect() : rows;
      const columns = schema !== undefined ? columnsOfSchema(name, schema) : inferColumns(name, records);
      if (columns.length === 0) {
        throw new SqlSchemaError(
          name,
          'no-columns',
          records.length === 0
            ? 'the table is empty and its columns are unknown'
            : 'no record has a field, so the table has no columns',
          `Pass the table as { rows, schema: { column: 'VARCHAR', ... } } so it has columns when empty`,
        );
      }
      const n = records.length;
      const values = columns.map(() => new Array<unknown>(n));
      const converters = columns.map((c) => columnConverter(name, c.name, c.type));
      for (let i = 0; i < n; i++) {
        const r = records[i];
        for (let j = 0; j < columns.length; j++)
          values[j]![i] = converters[j]!(fieldOf(r, columns[j]!.name), i);
      }
      return { name, columns, values, rowCount: records.length };
    });
  }

  async #run<Row>(tables: LoadableTable[], text: string, params: BoundParams | undefined): Promise<Row[]> {
    const connection = await this.#connection();
    let reusable = true;
    try {
      for (const t of tables) await loadTable(connection, t);
      let reader;
      try {
        reader = params
          ? await connection.runAndReadAll(text, params.values as DuckDBValue[], params.types as DuckDBType[])
          : await connection.runAndReadAll(text);
      } catch (e) {
        throw queryError(e, text, tables);
      }
      const rows = reader.convertRowObjects(resultConverter);
      // JSON columns: the alias is on the result's column types, not on the values' types.
      const names = reader.deduplicatedColumnNames();
      const json = reader.columnTypes().flatMap((type, i) => (type.alias === 'JSON' ? [names[i]!] : []));
      for (const name of json) for (const row of rows) row[name] = parseJson(row[name]);
      return rows as Row[];
    } finally {
      try {
        for (const t of tables) await connection.run(`drop table if exists temp.main.${quoteIdent(t.name)}`);
      } catch {
        reusable = false;
      }
      if (reusable && !this.#closed && this.#idle.length < MAX_IDLE_CONNECTIONS) this.#idle.push(connection);
      else connection.closeSync();
    }
  }
}

function splitTable(
  name: string,
  table: SqlTableRows | SqlTable,
): { rows: readonly unknown[] | Batch<unknown>; schema?: SqlSchema | SqlColumns } {
  if (table instanceof Batch || Array.isArray(table)) return { rows: table };
  if (typeof table === 'object' && table !== null && 'rows' in table) {
    const { rows, schema } = table as SqlTable;
    if (!(rows instanceof Batch || Array.isArray(rows))) {
      throw new SqlSchemaError(
        name,
        'invalid-schema',
        '`rows` is neither a Batch nor an array',
        'Pass { rows: batch or array, schema }',
      );
    }
    return { rows, schema };
  }
  throw new SqlSchemaError(
    name,
    'invalid-schema',
    'a table is a Batch, an array of records, or { rows, schema }',
    'Pass e.g. { batch } or { totals: { rows, schema } }',
  );
}

/** A DuckDB identifier in double quotes (names are data too: never spliced raw). */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function loadTable(connection: DuckDBConnection, t: LoadableTable): Promise<void> {
  const ddl = `create temp table ${quoteIdent(t.name)} (${t.columns
    .map((c) => `${quoteIdent(c.name)} ${DDL_TYPES[c.type] ?? c.type}`)
    .join(', ')})`;
  try {
    await connection.run(ddl);
  } catch (e) {
    const p = parseDuckDBError((e as Error).message);
    throw new SqlSchemaError(
      t.name,
      'invalid-schema',
      `DuckDB refused the table: ${p.detail}`,
      'Check the table and column names',
      { cause: e },
    );
  }
  if (t.rowCount === 0) return;
  const appender = await connection.createAppender(t.name, 'main', 'temp');
  try {
    const types: DuckDBType[] = [];
    for (let i = 0; i < appender.columnCount; i++) types.push(appender.columnType(i));
    for (let start = 0; start < t.rowCount; start += CHUNK_ROWS) {
      const end = Math.min(start + CHUNK_ROWS, t.rowCount);
      const chunk = DuckDBDataChunk.create(types, end - start);
      chunk.setColumnsConverted(
        t.values.map((column) => column.slice(start, end)),
        JSToDuckDBValueConverter as never,
      );
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } catch (e) {
    const p = parseDuckDBError((e as Error).message);
    throw new SqlSchemaError(
      t.name,
      'value-does-not-fit',
      `loading the rows failed: ${p.detail}`,
      'Check the values against the columns',
      { cause: e },
    );
  } finally {
    appender.closeSync();
  }
}

function queryError(e: unknown, text: string, tables: LoadableTable[]): SqlError {
  const parsed = parseDuckDBError(e instanceof Error ? e.message : String(e));
  return new SqlError({
    kind: parsed.kind,
    detail: parsed.detail,
    query: text,
    position: locate(text, parsed),
    tables: tables.map((t) => `${t.name}(${describeColumns(t.columns)})`).join('; '),
    cause: e,
  });
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** DuckDB's JS conversion, with safe integers as numbers (nested values too). */
const resultConverter: DuckDBValueConverter<unknown> = (value, type, converter) => {
  const js: unknown = JSDuckDBValueConverter(value, type, converter as never);
  if (typeof js === 'bigint') return js >= MIN_SAFE && js <= MAX_SAFE ? Number(js) : js;
  return js;
};

function parseJson(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}

interface BoundParams {
  readonly values: DuckDBValue[] | Record<string, DuckDBValue>;
  readonly types: DuckDBType[] | Record<string, DuckDBType>;
}

function bindParams(params: SqlParams | undefined): BoundParams | undefined {
  if (params === undefined) return undefined;
  if (Array.isArray(params)) {
    const list = params as readonly SqlParam[];
    const types = list.map((v, i) => paramType(v, `params[${i}]`));
    return { values: list.map((v, i) => jsToDuckDBValue((v ?? null) as never, types[i]!)), types };
  }
  if (typeof params !== 'object' || params === null) {
    throw new InvalidOptionError('params', 'an array (for $1 or ?) or an object (for $name)', params);
  }
  const values: Record<string, DuckDBValue> = {};
  const types: Record<string, DuckDBType> = {};
  for (const [k, v] of Object.entries(params as Readonly<Record<string, SqlParam>>)) {
    types[k] = paramType(v, `params.${k}`);
    values[k] = jsToDuckDBValue((v ?? null) as never, types[k]);
  }
  return { values, types };
}

function paramType(v: SqlParam, where: string): DuckDBType {
  if (v === null || v === undefined) return SQLNULL;
  switch (typeof v) {
    case 'boolean':
      return BOOLEAN;
    case 'number':
      if (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) return INTEGER;
      return Number.isSafeInteger(v) ? BIGINT : DOUBLE;
    case 'bigint':
      return v >= -(2n ** 63n) && v < 2n ** 63n ? BIGINT : HUGEINT;
    case 'string':
      return VARCHAR;
    case 'object':
      if (v instanceof Date) return TIMESTAMP;
      if (v instanceof Uint8Array) return BLOB;
      if (Array.isArray(v)) return LIST(listItemType(v as readonly SqlParam[], where));
      break;
  }
  throw new InvalidOptionError(
    where,
    'a boolean, number, bigint, string, Date, bytes, null, or an array of those',
    v,
  );
}

/** The item type of a list parameter: the widest of its items (all integers: BIGINT; numbers: DOUBLE). */
function listItemType(items: readonly SqlParam[], where: string): DuckDBType {
  const types = items
    .filter((v) => v !== null && v !== undefined)
    .map((v, i) => paramType(v, `${where}[${i}]`));
  if (types.length === 0) return VARCHAR;
  const ids = new Set(types.map((t) => t.typeId));
  if (ids.size === 1) return types[0]!.typeId === INTEGER.typeId ? BIGINT : types[0]!;
  const numeric: number[] = [INTEGER, BIGINT, HUGEINT, DOUBLE].map((t) => t.typeId);
  if ([...ids].every((id) => numeric.includes(id))) {
    return ids.has(DOUBLE.typeId) ? DOUBLE : ids.has(HUGEINT.typeId) ? HUGEINT : BIGINT;
  }
  throw new InvalidOptionError(where, 'an array whose items have one type', items);
}
