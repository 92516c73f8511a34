import type mysql from 'mysql2/promise';
import type { CheckpointMeta, OperatorState, StateStore, StateUpdate } from '../core/checkpoint.js';
import { InvalidOptionError, OffsetConflictError } from '../core/errors.js';
import type { PartitionOffset } from '../core/offsets.js';
import type { TransactionalOffsetStore } from '../core/sink.js';
import type { OffsetRange } from '../core/source.js';
import {
  describePool,
  quoteIdentifier,
  resolvePool,
  toOffset,
  withTransaction,
  type MySqlConnectionOptions,
} from './connection.js';
import {
  createStateTables,
  readCheckpoint,
  stateTableNames,
  writeCheckpoint,
  type StateTables,
} from './state.js';

export interface MySqlOffsetStoreOptions extends MySqlConnectionOptions {
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
export class MySqlOffsetStore implements TransactionalOffsetStore<mysql.PoolConnection>, StateStore {
  readonly kind = 'mysql';
  readonly transactional = true;
  readonly stateful = true;
  readonly capabilities = { compareAndSet: true };
  readonly pool: mysql.Pool;
  readonly table: string;
  readonly #t: string;
  readonly #owned: boolean;
  readonly #createTable: boolean;
  #ready: Promise<void> | undefined;
  #stateReady: Promise<StateTables> | undefined;
  #closed = false;

  constructor(options: MySqlOffsetStoreOptions = {}) {
    this.table = options.table ?? 'sluice_offsets';
    this.#t = quoteIdentifier('table', this.table, true);
    if (options.createTable !== undefined && typeof options.createTable !== 'boolean') {
      throw new InvalidOptionError('createTable', 'true or false', options.createTable);
    }
    this.#createTable = options.createTable ?? true;
    const { pool, owned } = resolvePool(options);
    this.pool = pool;
    this.#owned = owned;
  }

  describe(): Record<string, unknown> {
    return { ...describePool(this.pool), table: this.table };
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    if (topics.length === 0) return [];
    await this.#ensureTable();
    const [rows] = await this.pool.execute<Row[]>(
      `SELECT topic, \`partition\`, next_offset FROM ${this.#t}
       WHERE group_id = ? AND topic IN (${placeholders(topics.length)}) ORDER BY topic, \`partition\``,
      [group, ...topics],
    );
    return rows.map((r) => ({
      topic: r.topic as string,
      partition: r.partition as number,
      offset: toOffset(r.next_offset),
    }));
  }

  async write(
    group: string,
    ranges: readonly OffsetRange[],
    options: { compareAndSet?: boolean } = {},
  ): Promise<void> {
    if (!options.compareAndSet) {
      return this.set(
        group,
        ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.untilOffset })),
      );
    }
    if (ranges.length === 0) return;
    await this.#ensureTable();
    await withTransaction(this.pool, (conn) => this.#compareAndSet(conn, group, ranges));
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.#ensureTable();
    // One statement, so all or none; a partition given twice ends at the last value.
    await this.pool.execute(
      `INSERT INTO ${this.#t} (group_id, topic, \`partition\`, next_offset, updated_at)
       VALUES ${offsets.map(() => '(?, ?, ?, ?, NOW(6))').join(', ')}
       ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), updated_at = VALUES(updated_at)`,
      offsets.flatMap((o) => [group, o.topic, o.partition, o.offset]),
    );
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.#ensureTable();
    await this.pool.execute(
      `DELETE FROM ${this.#t} WHERE group_id = ? AND topic IN (${placeholders(topics.length)})`,
      [group, ...topics],
    );
  }

  /**
   * Runs `fn` in a transaction, then the offsets' compare-and-set and, given `checkpoint`, the
   * operators' state, and commits them all together; rolls everything back if any of it throws.
   */
  async transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: mysql.PoolConnection) => Promise<R>,
    checkpoint?: { readonly meta: CheckpointMeta; readonly update: StateUpdate },
  ): Promise<R> {
    await this.#ensureTable();
    const tables = checkpoint ? await this.#ensureStateTables() : undefined;
    return withTransaction(this.pool, async (conn) => {
      const result = await fn(conn);
      await this.#compareAndSet(conn, group, ranges);
      if (checkpoint) await writeCheckpoint(conn, tables!, checkpoint.meta, checkpoint.update);
      return result;
    });
  }

  async loadCheckpoint(
    pipelineId: string,
  ): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined> {
    return readCheckpoint(this.pool, await this.#ensureStateTables(), pipelineId);
  }

  /** The offsets (compare-and-set) and the checkpoint of `meta.batchTime` in one transaction. */
  async commitBatch(
    group: string,
    ranges: readonly OffsetRange[],
    meta: CheckpointMeta,
    update: StateUpdate,
  ): Promise<void> {
    await this.#ensureTable();
    const tables = await this.#ensureStateTables();
    await withTransaction(this.pool, async (conn) => {
      await this.#compareAndSet(conn, group, ranges);
      await writeCheckpoint(conn, tables, meta, update);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) await this.pool.end();
  }

  /**
   * In the caller's transaction: each range moves its row from fromOffset to untilOffset, or
   * creates it when absent. `FOR UPDATE` locks an existing row, so a concurrent writer of the same
   * partition waits and then reads the new value; two writers creating the row meet on its primary
   * key and the second gets a duplicate-key error. Ranges go in (topic, partition) order so two
   * writers lock rows in the same order and cannot deadlock.
   */
  async #compareAndSet(
    conn: mysql.PoolConnection,
    group: string,
    ranges: readonly OffsetRange[],
  ): Promise<void> {
    const where = `WHERE group_id = ? AND topic = ? AND \`partition\` = ?`;
    const sorted = [...ranges].sort((a, b) =>
      a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition,
    );
    for (const r of sorted) {
      const key = [group, r.topic, r.partition];
      const [locked] = await conn.execute<Row[]>(
        `SELECT next_offset FROM ${this.#t} ${where} FOR UPDATE`,
        key,
      );
      if (locked[0]) {
        const stored = toOffset(locked[0].next_offset);
        if (stored !== r.fromOffset)
          throw new OffsetConflictError(group, r.topic, r.partition, r.fromOffset, stored);
        await conn.execute(`UPDATE ${this.#t} SET next_offset = ?, updated_at = NOW(6) ${where}`, [
          r.untilOffset,
          ...key,
        ]);
        continue;
      }
      try {
        await conn.execute(
          `INSERT INTO ${this.#t} (group_id, topic, \`partition\`, next_offset, updated_at) VALUES (?, ?, ?, ?, NOW(6))`,
          [...key, r.untilOffset],
        );
      } catch (e) {
        if ((e as { code?: unknown }).code !== 'ER_DUP_ENTRY') throw e;
        // Only the statement failed; the transaction goes on to be rolled back by the caller.
        const [rows] = await conn.execute<Row[]>(`SELECT next_offset FROM ${this.#t} ${where}`, key);
        const stored = rows[0] ? toOffset(rows[0].next_offset) : undefined;
        throw new OffsetConflictError(group, r.topic, r.partition, r.fromOffset, stored);
      }
    }
  }

  #ensureTable(): Promise<void> {
    if (!this.#createTable) return Promise.resolve();
    this.#ready ??= createOffsetsTable(this.pool, this.table).catch((e: unknown) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }

  /** The checkpoint tables' names (refused if too long), created on first use unless `createTable: false`. */
  #ensureStateTables(): Promise<StateTables> {
    this.#stateReady ??= (async () => {
      const tables = stateTableNames(this.table);
      if (this.#createTable) await createStateTables(this.pool, this.table);
      return tables;
    })().catch((e: unknown) => {
      this.#stateReady = undefined;
      throw e;
    });
    return this.#stateReady;
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

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}
