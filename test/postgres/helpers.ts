import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  createStateTables,
  dropTable,
  PostgresOffsetStore,
  PostgresSink,
  type PostgresOffsetStoreOptions,
  type PostgresSinkOptions,
} from '../../src/postgres/index.js';
import { ensurePostgres } from '../../src/services/databases.js';
import type { SqlFixture } from '../relational/fixture.js';

let url: Promise<string> | undefined;
/** The shared server's URL (SLUICE_POSTGRES_URL or the local default, started if down). */
export function postgresUrl(): Promise<string> {
  url ??= ensurePostgres().then((h) => h.url);
  return url;
}

let counter = 0;
/** A table name no other test, process or run uses, e.g. `sink_m3k2x1_4f2a_1`. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}_${++counter}`;
}

/** A plain pool, independent of the code under test, for setting up and reading back. */
export async function plainPool(): Promise<pg.Pool> {
  return new pg.Pool({ connectionString: await postgresUrl(), max: 2 });
}

/** Drops the tables with a pool of its own and ends it. */
export async function dropTables(...tables: string[]): Promise<void> {
  const pool = await plainPool();
  try {
    for (const t of tables) await dropTable(pool, t);
  } finally {
    await pool.end();
  }
}

/** The shared SQL store and sink tests' fixture on the shared server. */
export async function postgresFixture(): Promise<SqlFixture<pg.Pool, pg.PoolClient>> {
  const url = await postgresUrl();
  return {
    storeName: 'PostgresOffsetStore',
    sinkName: 'PostgresSink',
    database: 'PostgreSQL',
    url,
    scheme: 'postgres',
    defaultPort: 5432,
    qualifier: 'public',
    quote: '"',
    newStore: (options) => new PostgresOffsetStore(options as PostgresOffsetStoreOptions),
    newSink: <T>(options: object) => new PostgresSink<T>(options as PostgresSinkOptions<T>),
    createStateTables,
    uniqueTable,
    dropTables,
    plainPool,
    endPool: (pool) => pool.end(),
    countingPool() {
      const statements: string[] = [];
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      pool.on('connect', (client) => {
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        client.query = ((...args: unknown[]) => {
          const q = args[0];
          statements.push(typeof q === 'string' ? q : (q as { text: string }).text);
          return query(...args);
        }) as typeof client.query;
      });
      return { pool, statements };
    },
    transactionStatements: ['BEGIN ISOLATION LEVEL READ COMMITTED', 'COMMIT'],
    param: (i) => `$${i}`,
    query: async (pool, sql, params) => (await pool.query(sql, params)).rows,
    queryArrays: async (pool, sql, params) =>
      (await pool.query({ text: sql, values: params, rowMode: 'array' })).rows as unknown[][],
    execute: (tx, sql) => tx.query(sql),
    queryIn: async (tx, sql) => (await tx.query(sql)).rows,
    tableExists: async (pool, table) =>
      (await pool.query('SELECT to_regclass($1) AS t', [`"${table}"`])).rows[0].t !== null,
    readJson: (value) => value,
    ddl: {
      scratch: (t) => `CREATE TABLE ${t} (v text)`,
      sink: (t, primaryKey) =>
        `CREATE TABLE ${t} (id text NOT NULL ${primaryKey ? 'PRIMARY KEY' : ''}, name text, n int)`,
      counts: (t) => `CREATE TABLE ${t} (word text PRIMARY KEY, n int NOT NULL)`,
      history: (t) => `CREATE TABLE ${t} (batch_time bigint NOT NULL, word text NOT NULL, n int NOT NULL)`,
      windows: (t) =>
        `CREATE TABLE ${t} (pipeline text NOT NULL, batch_time bigint NOT NULL, kind text NOT NULL, word text NOT NULL, n int NOT NULL)`,
    },
    errors: {
      missingTable: /does not exist/,
      missingColumn: /column "nope" does not exist/,
      notNull: /null value/,
    },
  };
}
