/**
 * PostgreSQL adapters: offsets in a table ({@link PostgresOffsetStore}) and a batched, optionally
 * idempotent table sink ({@link PostgresSink}) that can commit a batch's rows and offsets in one
 * transaction. Driver: `pg`.
 */
import type pg from 'pg';
import { quoteIdentifier } from './connection.js';

export { PostgresOffsetStore, createOffsetsTable, createStateTables, type PostgresOffsetStoreOptions } from './offset-store.js';
export { PostgresSink, type PostgresSinkOptions } from './sink.js';
export type { PostgresConnectionOptions } from './connection.js';

/** `DROP TABLE IF EXISTS` a table (`name` or `schema.name`, validated), e.g. to reset an example. */
export async function dropTable(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${quoteIdentifier('table', table, true)}`);
}
