import type pg from 'pg';
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
  type PostgresConnectionOptions,
} from './connection.js';
import {
  createStateTables,
  readCheckpoint,
  stateTableNames,
  writeCheckpoint,
  type StateTables,
} from './state.js';

export interface PostgresOffsetStoreOptions extends PostgresConnectionOptions {
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
export class PostgresOffsetStore implements TransactionalOffsetStore<pg.PoolClient>, StateStore {
  readonly kind = 'postgres';
  readonly transactional = true;
  readonly stateful = true;
  readonly capabilities = { compareAndSet: true };
  readonly pool: pg.Pool;
  readonly table: string;
  readonly #t: string;
  readonly #owned: boolean;
  readonly #createTable: boolean;
  #ready: Promise<void> | undefined;
  #stateReady: Promise<StateTables> | undefined;
  #closed = false;

  constructor(options: PostgresOffsetStoreOptions = {}) {
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
    const { rows } = await this.pool.query<{ topic: string; partition: number; next_offset: string }>(
      `SELECT topic, partition, next_offset FROM ${this.#t}
       WHERE group_id = $1 AND topic = ANY($2::text[]) ORDER BY topic, partition`,
      [group, [...topics]],
    );
    return rows.map((r) => ({ topic: r.topic, partition: r.partition, offset: toOffset(r.next_offset) }));
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
    await withTransaction(this.pool, (client) => this.#compareAndSet(client, group, ranges));
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.#ensureTable();
    // One statement, so all or none; one row per partition (the last given), as ON CONFLICT
    // cannot update a row twice in a statement.
    const last = new Map(offsets.map((o) => [JSON.stringify([o.topic, o.partition]), o]));
    const rows = [...last.values()];
    await this.pool.query(
      `INSERT INTO ${this.#t} (group_id, topic, partition, next_offset, updated_at)
       SELECT $1, u.topic, u.partition, u.next_offset, now()
       FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, next_offset)
       ON CONFLICT (group_id, topic, partition)
       DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at`,
      [group, rows.map((o) => o.topic), rows.map((o) => o.partition), rows.map((o) => o.offset)],
    );
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.#ensureTable();
    await this.pool.query(`DELETE FROM ${this.#t} WHERE group_id = $1 AND topic = ANY($2::text[])`, [
      group,
      [...topics],
    ]);
  }

  /**
   * Runs `fn` in a transaction, then the offsets' compare-and-set and, given `checkpoint`, the
   * operators' state, and commits them all together; rolls everything back if any of it throws.
   */
  async transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: pg.PoolClient) => Promise<R>,
    checkpoint?: { readonly meta: CheckpointMeta; readonly update: StateUpdate },
  ): Promise<R> {
    await this.#ensureTable();
    const tables = checkpoint ? await this.#ensureStateTables() : undefined;
    return withTransaction(this.pool, async (client) => {
      const result = await fn(client);
      await this.#compareAndSet(client, group, ranges);
      if (checkpoint) await writeCheckpoint(client, tables!, checkpoint.meta, checkpoint.update);
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
    await withTransaction(this.pool, async (client) => {
      await this.#compareAndSet(client, group, ranges);
      await writeCheckpoint(client, tables, meta, update);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) await this.pool.end();
  }

  /**
   * In the caller's transaction: each range moves its row from fromOffset to untilOffset, or
   * creates it when absent. The UPDATE locks the row, so a concurrent writer of the same partition
   * waits, then finds the new value and matches nothing. Ranges go in (topic, partition) order so
   * two writers lock rows in the same order and cannot deadlock.
   */
  async #compareAndSet(client: pg.PoolClient, group: string, ranges: readonly OffsetRange[]): Promise<void> {
    const sorted = [...ranges].sort((a, b) =>
      a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition,
    );
    for (const r of sorted) {
      const key = [group, r.topic, r.partition];
      const updated = await client.query(
        `UPDATE ${this.#t} SET next_offset = $4, updated_at = now()
         WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $5`,
        [...key, r.untilOffset, r.fromOffset],
      );
      if (updated.rowCount) continue;
      const inserted = await client.query(
        `INSERT INTO ${this.#t} (group_id, topic, partition, next_offset, updated_at)
         VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING`,
        [...key, r.untilOffset],
      );
      if (inserted.rowCount) continue;
      const { rows } = await client.query<{ next_offset: string }>(
        `SELECT next_offset FROM ${this.#t} WHERE group_id = $1 AND topic = $2 AND partition = $3`,
        key,
      );
      const stored = rows[0] ? toOffset(rows[0].next_offset) : undefined;
      throw new OffsetConflictError(group, r.topic, r.partition, r.fromOffset, stored);
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
