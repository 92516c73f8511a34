/**
 * MySQL/MariaDB adapters: offsets in an InnoDB table ({@link MySqlOffsetStore}) and a batched,
 * optionally idempotent table sink ({@link MySqlSink}) that can commit a batch's rows and offsets
 * in one transaction. Driver: `mysql2/promise`.
 */
import type mysql from 'mysql2/promise';
import { quoteIdentifier } from './connection.js';

export { MySqlOffsetStore, createOffsetsTable, createStateTables, type MySqlOffsetStoreOptions } from './offset-store.js';
export { MySqlSink, type MySqlSinkOptions } from './sink.js';
export type { MySqlConnectionOptions } from './connection.js';

/** `DROP TABLE IF EXISTS` a table (`name` or `database.name`, validated), e.g. to reset an example. */
export async function dropTable(pool: mysql.Pool, table: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${quoteIdentifier('table', table, true)}`);
}
