import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { dropTable } from '../../src/mysql/index.js';
import { ensureMariaDb } from '../../src/services/databases.js';

let url: Promise<string> | undefined;
/** The shared server's URL (SLUICE_MYSQL_URL or the local default, started if down). */
export function mysqlUrl(): Promise<string> {
  url ??= ensureMariaDb().then((h) => h.url);
  return url;
}

let counter = 0;
/** A table name no other test, process or run uses, e.g. `sink_m3k2x1_4f2a_1`. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}_${++counter}`;
}

/** A plain pool, independent of the code under test, for setting up and reading back. */
export async function plainPool(): Promise<mysql.Pool> {
  return mysql.createPool({ uri: await mysqlUrl(), connectionLimit: 2 });
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
