import type pg from 'pg';
import { toOffset } from '../relational/dialect.js';
import {
  SqlOffsetStore,
  type OffsetDialect,
  type OffsetRow,
  type SqlOffsetStoreOptions,
} from '../relational/offset-store.js';
import {
  postgresConnection,
  quoteIdentifier,
  resolvePool,
  type PostgresConnectionOptions,
} from './connection.js';
import { postgresState } from './state.js';

export interface PostgresOffsetStoreOptions extends PostgresConnectionOptions, SqlOffsetStoreOptions {
  /** Default `sluice_offsets`; `name` or `schema.name`. */
  readonly table?: string;
  /**
   * Default true: `CREATE TABLE IF NOT EXISTS` (see {@link createOffsetsTable}) before first use,
   * and of the checkpoint tables (see {@link createStateTables}) before the first checkpoint.
   */
  readonly createTable?: boolean;
}

/**
 * Offsets in a PostgreSQL table, one row per (group, topic, partition). Compare-and-set writes and
 * {@link transaction} lock the rows they change, so of two instances committing the same batch
 * exactly one wins and the other gets an {@link OffsetConflictError}.
 *
 * It is also a state store: as a context's `checkpoint`, it keeps the operators' state in
 * `<table>_checkpoints` (the meta of each pipeline's last committed batch) and `<table>_state` (per
 * operator a full snapshot and the deltas since), committed with the offsets in one transaction;
 * with a transactional {@link PostgresSink} on this store, in the sink's transaction too.
 *
 * @example
 * ```ts
 * const store = new PostgresOffsetStore({ connection: 'postgres://app@db/app' });
 * await store.transaction('orders-job', ranges, (tx) => tx.query('INSERT INTO ...', [...]));
 * // Rows, offsets and running counts in one transaction:
 * const ssc = new StreamingContext({ batchInterval: 1000, checkpoint: store });
 * ```
 */
export class PostgresOffsetStore extends SqlOffsetStore<pg.Pool, pg.PoolClient> {
  readonly kind = 'postgres';

  constructor(options: PostgresOffsetStoreOptions = {}) {
    super(postgresDialect, options, () => resolvePool(options));
  }
}

export { createStateTables } from './state.js';

/** Creates the offsets table if it does not exist (what the store does unless `createTable: false`). */
export async function createOffsetsTable(pool: pg.Pool, table = 'sluice_offsets'): Promise<void> {
  const t = quoteIdentifier('table', table, true);
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${t} (
      group_id text NOT NULL,
      topic text NOT NULL,
      partition int NOT NULL,
      next_offset bigint NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (group_id, topic, partition)
    )`);
  } catch (e) {
    // Two sessions creating the same table at once: the loser fails on the catalog's unique
    // index (23505) or finds the table (42P07). Either way the table now exists.
    const code = (e as { code?: unknown }).code;
    if (code !== '23505' && code !== '42P07') throw e;
  }
}

/** The PostgreSQL dialect of the shared offset store. */
const postgresDialect: OffsetDialect<pg.Pool, pg.PoolClient> = {
  ...postgresConnection,
  createOffsetsTable,
  state: postgresState,

  async selectOffsets(pool, t, group, topics) {
    // next_offset comes back as a string: pg returns int8 so.
    const { rows } = await pool.query<OffsetRow>(
      `SELECT topic, partition, next_offset FROM ${t}
       WHERE group_id = $1 AND topic = ANY($2::text[]) ORDER BY topic, partition`,
      [group, [...topics]],
    );
    return rows;
  },

  async upsertOffsets(pool, t, group, offsets) {
    // One statement, so all or none; one row per partition (the last given), as ON CONFLICT
    // cannot update a row twice in a statement.
    const last = new Map(offsets.map((o) => [JSON.stringify([o.topic, o.partition]), o]));
    const rows = [...last.values()];
    await pool.query(
      `INSERT INTO ${t} (group_id, topic, partition, next_offset, updated_at)
       SELECT $1, u.topic, u.partition, u.next_offset, now()
       FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, next_offset)
       ON CONFLICT (group_id, topic, partition)
       DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at`,
      [group, rows.map((o) => o.topic), rows.map((o) => o.partition), rows.map((o) => o.offset)],
    );
  },

  async deleteOffsets(pool, t, group, topics) {
    await pool.query(`DELETE FROM ${t} WHERE group_id = $1 AND topic = ANY($2::text[])`, [
      group,
      [...topics],
    ]);
  },

  /**
   * The UPDATE locks the row, so a concurrent writer of the same partition waits, then finds the
   * new value and matches nothing.
   */
  async compareAndSetOffset(client, t, group, r) {
    const key = [group, r.topic, r.partition];
    const updated = await client.query(
      `UPDATE ${t} SET next_offset = $4, updated_at = now()
       WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $5`,
      [...key, r.untilOffset, r.fromOffset],
    );
    if (updated.rowCount) return undefined;
    const inserted = await client.query(
      `INSERT INTO ${t} (group_id, topic, partition, next_offset, updated_at)
       VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING`,
      [...key, r.untilOffset],
    );
    if (inserted.rowCount) return undefined;
    const { rows } = await client.query<{ next_offset: string }>(
      `SELECT next_offset FROM ${t} WHERE group_id = $1 AND topic = $2 AND partition = $3`,
      key,
    );
    return { stored: rows[0] ? toOffset(rows[0].next_offset) : undefined };
  },
};
