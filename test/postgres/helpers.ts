import pg from 'pg';
import {
  createStateTables,
  dropTable,
  PostgresOffsetStore,
  PostgresSink,
  type PostgresOffsetStoreOptions,
  type PostgresSinkOptions,
} from '../../src/postgres/index.js';
import { postgresUrl } from '../helpers/services.js';
import { plainPools, type SqlFixture } from '../relational/fixture.js';

const createPool = (connectionString: string) => new pg.Pool({ connectionString, max: 2 });
const pools = plainPools(postgresUrl, createPool, (pool) => pool.end(), dropTable);
export const { uniqueTable, plainPool } = pools;

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
    ...pools,
    createStateTables,
    countingPool() {
      const statements: string[] = [];
      const pool = createPool(url);
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
