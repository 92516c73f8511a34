import mysql from 'mysql2/promise';
import {
  createStateTables,
  dropTable,
  MySqlOffsetStore,
  MySqlSink,
  type MySqlOffsetStoreOptions,
  type MySqlSinkOptions,
} from '../../src/mysql/index.js';
import { mysqlUrl } from '../helpers/services.js';
import { plainPools, type SqlFixture } from '../relational/fixture.js';

const createPool = (uri: string) => mysql.createPool({ uri, connectionLimit: 2 });
const pools = plainPools(mysqlUrl, createPool, (pool) => pool.end(), dropTable);
export const { uniqueTable, plainPool } = pools;

type Rows = mysql.RowDataPacket[];

/** The shared SQL store and sink tests' fixture on the shared server. */
export async function mysqlFixture(): Promise<SqlFixture<mysql.Pool, mysql.PoolConnection>> {
  const url = await mysqlUrl();
  return {
    storeName: 'MySqlOffsetStore',
    sinkName: 'MySqlSink',
    database: 'MySQL/MariaDB',
    url,
    scheme: 'mysql',
    defaultPort: 3306,
    qualifier: 'prod',
    quote: '`',
    newStore: (options) => new MySqlOffsetStore(options as MySqlOffsetStoreOptions),
    newSink: <T>(options: object) => new MySqlSink<T>(options as MySqlSinkOptions<T>),
    ...pools,
    createStateTables,
    countingPool() {
      const statements: string[] = [];
      const pool = createPool(url);
      // 'connection' hands over each new callback-style connection, which the promise API calls into.
      pool.on('connection', (conn) => {
        const c = conn as unknown as Record<'query' | 'execute', (...args: unknown[]) => unknown>;
        for (const method of ['query', 'execute'] as const) {
          const original = c[method].bind(c);
          c[method] = (...args: unknown[]) => {
            const q = args[0];
            statements.push(typeof q === 'string' ? q : (q as { sql: string }).sql);
            return original(...args);
          };
        }
      });
      return { pool, statements };
    },
    transactionStatements: ['SET TRANSACTION ISOLATION LEVEL READ COMMITTED', 'START TRANSACTION', 'COMMIT'],
    param: () => '?',
    query: async (pool, sql, params) => {
      const [rows] = await pool.query(sql, params);
      return Array.isArray(rows) ? (rows as Rows) : [];
    },
    queryArrays: async (pool, sql, params) =>
      (await pool.query<mysql.RowDataPacket[][]>({ sql, values: params, rowsAsArray: true }))[0],
    execute: (tx, sql) => tx.execute(sql),
    queryIn: async (tx, sql) => (await tx.query<Rows>(sql))[0],
    tableExists: async (pool, table) =>
      (await pool.query<Rows>('SHOW TABLES LIKE ?', [table]))[0].length === 1,
    // LONGTEXT: the JSON's text.
    readJson: (value) => JSON.parse(value as string) as unknown,
    ddl: {
      scratch: (t) => `CREATE TABLE ${t} (v text) ENGINE=InnoDB`,
      sink: (t, primaryKey) =>
        `CREATE TABLE ${t} (id VARCHAR(64) NOT NULL ${primaryKey ? 'PRIMARY KEY' : ''}, name TEXT, n INT)
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
      counts: (t) =>
        `CREATE TABLE ${t} (word VARCHAR(64) COLLATE utf8mb4_bin PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB`,
      history: (t) =>
        `CREATE TABLE ${t} (batch_time BIGINT NOT NULL, word VARCHAR(64) NOT NULL, n INT NOT NULL) ENGINE=InnoDB`,
      windows: (t) =>
        `CREATE TABLE ${t} (pipeline VARCHAR(64) NOT NULL, batch_time BIGINT NOT NULL, kind VARCHAR(16) NOT NULL, word VARCHAR(64) NOT NULL, n INT NOT NULL) ENGINE=InnoDB`,
    },
    errors: {
      missingTable: /doesn't exist/,
      missingColumn: /Unknown column 'nope'/,
      notNull: /cannot be null/,
    },
  };
}
