import type mysql from 'mysql2/promise';
import { toOffset } from '../relational/dialect.js';
import {
  SqlOffsetStore,
  type OffsetDialect,
  type OffsetRow,
  type SqlOffsetStoreOptions,
} from '../relational/offset-store.js';
import {
  mysqlConnection,
  placeholders,
  quoteIdentifier,
  resolvePool,
  type MySqlConnectionOptions,
} from './connection.js';
import { mysqlState } from './state.js';

export interface MySqlOffsetStoreOptions extends MySqlConnectionOptions, SqlOffsetStoreOptions {
  /** Default `sluice_offsets`; `name` or `database.name`. */
  readonly table?: string;
  /**
   * Default true: `CREATE TABLE IF NOT EXISTS` (see {@link createOffsetsTable}) before first use,
   * and of the checkpoint tables (see {@link createStateTables}) before the first checkpoint.
   */
  readonly createTable?: boolean;
}

type Row = mysql.RowDataPacket;

/**
 * Offsets in a MySQL/MariaDB (InnoDB) table, one row per (group, topic, partition). Compare-and-set
 * writes and {@link transaction} lock the rows they change (`SELECT ... FOR UPDATE`), so of two
 * instances committing the same batch exactly one wins and the other gets an
 * {@link OffsetConflictError}.
 *
 * It is also a state store: as a context's `checkpoint`, it keeps the operators' state in
 * `<table>_checkpoints` (the meta of each pipeline's last committed batch) and `<table>_state` (per
 * operator a full snapshot and the deltas since), committed with the offsets in one transaction;
 * with a transactional {@link MySqlSink} on this store, in the sink's transaction too. A snapshot
 * is one row, so it must fit the server's `max_allowed_packet` as JSON.
 *
 * @example
 * ```ts
 * const store = new MySqlOffsetStore({ connection: 'mysql://app@db/app' });
 * await store.transaction('orders-job', ranges, (tx) => tx.execute('INSERT INTO ...', [...]));
 * // Rows, offsets and running counts in one transaction:
 * const ssc = new StreamingContext({ batchInterval: 1000, checkpoint: store });
 * ```
 */
export class MySqlOffsetStore extends SqlOffsetStore<mysql.Pool, mysql.PoolConnection> {
  readonly kind = 'mysql';

  constructor(options: MySqlOffsetStoreOptions = {}) {
    super(mysqlDialect, options, () => resolvePool(options));
  }
}

export { createStateTables } from './state.js';

/**
 * Creates the offsets table if it does not exist (what the store does unless `createTable: false`).
 * Binary collation: Kafka topic and group names are case-sensitive.
 */
export async function createOffsetsTable(pool: mysql.Pool, table = 'sluice_offsets'): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS ${quoteIdentifier('table', table, true)} (
    group_id VARCHAR(255) NOT NULL,
    topic VARCHAR(255) NOT NULL,
    \`partition\` INT NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (group_id, topic, \`partition\`)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
}

/** The MySQL/MariaDB dialect of the shared offset store. */
const mysqlDialect: OffsetDialect<mysql.Pool, mysql.PoolConnection> = {
  ...mysqlConnection,
  createOffsetsTable,
  state: mysqlState,

  async selectOffsets(pool, t, group, topics) {
    const [rows] = await pool.execute<Row[]>(
      `SELECT topic, \`partition\`, next_offset FROM ${t}
       WHERE group_id = ? AND topic IN (${placeholders(topics.length)}) ORDER BY topic, \`partition\``,
      [group, ...topics],
    );
    return rows as OffsetRow[];
  },

  async upsertOffsets(pool, t, group, offsets) {
    // One statement, so all or none; a partition given twice ends at the last value.
    await pool.execute(
      `INSERT INTO ${t} (group_id, topic, \`partition\`, next_offset, updated_at)
       VALUES ${offsets.map(() => '(?, ?, ?, ?, NOW(6))').join(', ')}
       ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), updated_at = VALUES(updated_at)`,
      offsets.flatMap((o) => [group, o.topic, o.partition, o.offset]),
    );
  },

  async deleteOffsets(pool, t, group, topics) {
    await pool.execute(`DELETE FROM ${t} WHERE group_id = ? AND topic IN (${placeholders(topics.length)})`, [
      group,
      ...topics,
    ]);
  },

  /**
   * `FOR UPDATE` locks an existing row, so a concurrent writer of the same partition waits and then
   * reads the new value; two writers creating the row meet on its primary key and the second gets
   * a duplicate-key error.
   */
  async compareAndSetOffset(conn, t, group, r) {
    const where = `WHERE group_id = ? AND topic = ? AND \`partition\` = ?`;
    const key = [group, r.topic, r.partition];
    const [locked] = await conn.execute<Row[]>(`SELECT next_offset FROM ${t} ${where} FOR UPDATE`, key);
    if (locked[0]) {
      const stored = toOffset(locked[0].next_offset);
      if (stored !== r.fromOffset) return { stored };
      await conn.execute(`UPDATE ${t} SET next_offset = ?, updated_at = NOW(6) ${where}`, [
        r.untilOffset,
        ...key,
      ]);
      return undefined;
    }
    try {
      await conn.execute(
        `INSERT INTO ${t} (group_id, topic, \`partition\`, next_offset, updated_at) VALUES (?, ?, ?, ?, NOW(6))`,
        [...key, r.untilOffset],
      );
      return undefined;
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ER_DUP_ENTRY') throw e;
      // Only the statement failed; the transaction goes on to be rolled back by the caller.
      const [rows] = await conn.execute<Row[]>(`SELECT next_offset FROM ${t} ${where}`, key);
      return { stored: rows[0] ? toOffset(rows[0].next_offset) : undefined };
    }
  },
};
