import { randomBytes } from 'node:crypto';
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

let counter = 0;
/** A table name no other test, process or run uses, e.g. `sink_m3k2x1_4f2a_1`. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}_${++counter}`;
}

/**
 * The parts of a server's fixture made from its plain pools (by `createPool` on the shared server's
 * URL), independent of the code under test: for setting up and reading back, and for dropping
 * tables with a pool of its own.
 */
export function plainPools<Pool>(
  url: () => Promise<string>,
  createPool: (url: string) => Pool,
  endPool: (pool: Pool) => Promise<void>,
  dropTable: (pool: Pool, table: string) => Promise<void>,
): Pick<SqlFixture<Pool, unknown>, 'uniqueTable' | 'plainPool' | 'endPool' | 'dropTables'> {
  const plainPool = async () => createPool(await url());
  return {
    uniqueTable,
    plainPool,
    endPool,
    async dropTables(...tables) {
      const pool = await plainPool();
      try {
        for (const t of tables) await dropTable(pool, t);
      } finally {
        await endPool(pool);
      }
    },
  };
}
