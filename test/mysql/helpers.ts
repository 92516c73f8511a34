import mysql from 'mysql2/promise';
import { dropTable } from '../../src/mysql/index.js';
import { mysqlUrl, uniqueName } from '../helpers/services.js';

export { mysqlUrl };

/** A table name no other test or run uses, e.g. `sink_m3k2x1_4f2a_1`. */
export function uniqueTable(prefix: string): string {
  return uniqueName(prefix).replace(/-/g, '_');
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
