import type { SqlOffsetStore } from '../../src/relational/offset-store.js';
import type { SqlSink, SqlSinkOptions } from '../../src/relational/sink.js';

export type Store<Pool, Conn> = SqlOffsetStore<Pool, Conn>;
export type Sink<T, Pool, Conn> = SqlSink<T, Pool, Conn, Store<Pool, Conn>>;

/** Where connection options may be a URL, a driver config, or a pool. */
export interface Where<Pool> {
  readonly connection?: string | Record<string, unknown>;
  readonly pool?: Pool;
}

/**
 * One real server for the shared SQL store and sink tests (test/relational/*.ts): the adapter's
 * classes, a plain pool independent of them, and what differs in the SQL a test sends or the
 * messages the server gives.
 */
export interface SqlFixture<Pool, Conn> {
  /** `PostgresOffsetStore`, `MySqlOffsetStore`. */
  readonly storeName: string;
  /** `PostgresSink`, `MySqlSink`. */
  readonly sinkName: string;
  /** `PostgreSQL`, `MySQL/MariaDB`. */
  readonly database: string;
  /** The shared server's URL. */
  readonly url: string;
  /** The URL scheme and default port, for describe(). */
  readonly scheme: string;
  readonly defaultPort: number;
  /** A schema (PostgreSQL) or database (MySQL) a table name may be qualified with. */
  readonly qualifier: string;
  /** The quote character of identifiers. */
  readonly quote: string;

  newStore(options: Where<Pool> & { table?: string; createTable?: boolean }): Store<Pool, Conn>;
  newSink<T>(options: Where<Pool> & SqlSinkOptions<T, Store<Pool, Conn>>): Sink<T, Pool, Conn>;

  /** The adapter's `createStateTables`. */
  createStateTables(pool: Pool, offsetsTable: string): Promise<void>;

  uniqueTable(prefix: string): string;
  dropTables(...tables: string[]): Promise<void>;
  /** A plain pool, independent of the code under test, for setting up and reading back. */
  plainPool(): Promise<Pool>;
  endPool(pool: Pool): Promise<void>;
  /** A pool that records the text of every statement its connections send. */
  countingPool(): { pool: Pool; statements: string[] };
  /** The statements of a transaction around its work, in order. */
  readonly transactionStatements: readonly string[];

  /** The `i`-th (from 1) parameter placeholder. */
  param(i: number): string;
  /** Runs `sql` on a plain pool; the rows of a SELECT, else none. */
  query(pool: Pool, sql: string, params?: unknown[]): Promise<Record<string, any>[]>;
  /** Runs `sql` on a plain pool; the rows of a SELECT as arrays of column values. */
  queryArrays(pool: Pool, sql: string, params?: unknown[]): Promise<unknown[][]>;
  /** Runs `sql` in a store's transaction. */
  execute(tx: Conn, sql: string): Promise<unknown>;
  /** Runs a SELECT in a store's transaction; its rows. */
  queryIn(tx: Conn, sql: string): Promise<Record<string, any>[]>;
  tableExists(pool: Pool, table: string): Promise<boolean>;
  /** A JSON column of a state table as read back. */
  readJson(value: unknown): unknown;

  /** CREATE TABLE statements of the tables the tests write to. */
  readonly ddl: {
    /** `(v text)`. */
    scratch(table: string): string;
    /** `(id text NOT NULL [PRIMARY KEY], name text, n int)`, ids compared byte for byte. */
    sink(table: string, primaryKey: boolean): string;
    /** `(word PRIMARY KEY, n)`. */
    counts(table: string): string;
    /** `(batch_time, word, n)`. */
    history(table: string): string;
    /** `(pipeline, batch_time, kind, word, n)`. */
    windows(table: string): string;
  };
  /** The server's messages. */
  readonly errors: {
    readonly missingTable: RegExp;
    readonly missingColumn: RegExp;
    readonly notNull: RegExp;
  };
}
