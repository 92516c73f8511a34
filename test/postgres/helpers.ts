import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dropTable } from '../../src/postgres/index.js';
import { ensurePostgres } from '../../src/services/databases.js';

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
