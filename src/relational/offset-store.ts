import type { CheckpointMeta, OperatorState, StateStore, StateUpdate } from '../core/state.js';
import { InvalidOptionError, OffsetConflictError } from '../core/errors.js';
import type { PartitionOffset, OffsetRange } from '../core/offsets.js';
import { toOffset, type ConnectionDialect, type ResolvedPool } from './dialect.js';
import {
  readCheckpoint,
  stateTableNames,
  writeCheckpoint,
  type StateDialect,
  type StateTables,
} from './state.js';
import type { TransactionalOffsetStore } from '../core/transactional-store.js';

/** A row of the offsets table as read. */
export interface OffsetRow {
  readonly topic: string;
  readonly partition: number;
  /** BIGINT, as the driver returns it. */
  readonly next_offset: unknown;
}

/** The offsets table's statements of one database; `t` is the quoted table. */
export interface OffsetDialect<Pool, Conn> extends ConnectionDialect<Pool, Conn> {
  /** Creates the offsets table if it does not exist. */
  createOffsetsTable(pool: Pool, table: string): Promise<void>;
  /** The group's rows of `topics` (not empty), ordered by topic and partition. */
  selectOffsets(
    pool: Pool,
    t: string,
    group: string,
    topics: readonly string[],
  ): Promise<readonly OffsetRow[]>;
  /** Upserts the offsets (not empty) in one statement, so all or none; the last of a partition wins. */
  upsertOffsets(pool: Pool, t: string, group: string, offsets: readonly PartitionOffset[]): Promise<void>;
  /** Deletes the group's rows of `topics` (not empty). */
  deleteOffsets(pool: Pool, t: string, group: string, topics: readonly string[]): Promise<void>;
  /**
   * In the caller's transaction: moves the range's row from fromOffset to untilOffset, or creates
   * it when absent, locking it until the transaction ends. Resolves to undefined when it did, else
   * to the offset found stored (undefined: none) for an `OffsetConflictError`.
   */
  compareAndSetOffset(
    conn: Conn,
    t: string,
    group: string,
    range: OffsetRange,
  ): Promise<{ readonly stored: number | undefined } | undefined>;
  readonly state: StateDialect<Pool, Conn>;
}

export interface SqlOffsetStoreOptions {
  /** Default `sluice_offsets`; `name` or a qualified name. */
  readonly table?: string;
  /**
   * Default true: `CREATE TABLE IF NOT EXISTS` (see `createOffsetsTable`) before first use,
   * and of the checkpoint tables (see `createStateTables`) before the first checkpoint.
   */
  readonly createTable?: boolean;
}

/**
 * Offsets in a SQL table, one row per (group, topic, partition), and operators' state in two
 * tables beside it; what the database does its own way is in its {@link OffsetDialect}. See
 * `PostgresOffsetStore` and `MySqlOffsetStore`.
 */
export abstract class SqlOffsetStore<Pool, Conn> implements TransactionalOffsetStore<Conn>, StateStore {
  abstract readonly kind: string;
  readonly transactional = true;
  readonly stateful = true;
  readonly capabilities = { compareAndSet: true, shared: true };
  readonly pool: Pool;
  readonly table: string;
  readonly #db: OffsetDialect<Pool, Conn>;
  readonly #t: string;
  readonly #owned: boolean;
  readonly #createTable: boolean;
  #ready: Promise<void> | undefined;
  #stateReady: Promise<StateTables> | undefined;
  #closed = false;

  /** `resolvePool` runs after the options are checked. */
  protected constructor(
    db: OffsetDialect<Pool, Conn>,
    options: SqlOffsetStoreOptions,
    resolvePool: () => ResolvedPool<Pool>,
  ) {
    this.#db = db;
    this.table = options.table ?? 'sluice_offsets';
    this.#t = db.quoteIdentifier('table', this.table, true);
    if (options.createTable !== undefined && typeof options.createTable !== 'boolean') {
      throw new InvalidOptionError('createTable', 'true or false', options.createTable);
    }
    this.#createTable = options.createTable ?? true;
    const { pool, owned } = resolvePool();
    this.pool = pool;
    this.#owned = owned;
  }

  describe(): Record<string, unknown> {
    return { ...this.#db.describePool(this.pool), table: this.table };
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    if (topics.length === 0) return [];
    await this.#ensureTable();
    const rows = await this.#db.selectOffsets(this.pool, this.#t, group, topics);
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
    await this.#db.withTransaction(this.pool, (conn) => this.#compareAndSet(conn, group, ranges));
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.#ensureTable();
    await this.#db.upsertOffsets(this.pool, this.#t, group, offsets);
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.#ensureTable();
    await this.#db.deleteOffsets(this.pool, this.#t, group, topics);
  }

  /**
   * Runs `fn` in a transaction, then the offsets' compare-and-set and, given `checkpoint`, the
   * operators' state, and commits them all together; rolls everything back if any of it throws.
   */
  async transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: Conn) => Promise<R>,
    checkpoint?: { readonly meta: CheckpointMeta; readonly update: StateUpdate },
  ): Promise<R> {
    await this.#ensureTable();
    const tables = checkpoint ? await this.#ensureStateTables() : undefined;
    return this.#db.withTransaction(this.pool, async (conn) => {
      const result = await fn(conn);
      await this.#compareAndSet(conn, group, ranges);
      if (checkpoint)
        await writeCheckpoint(this.#db.state, conn, tables!, checkpoint.meta, checkpoint.update);
      return result;
    });
  }

  async loadCheckpoint(
    pipelineId: string,
  ): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined> {
    return readCheckpoint(this.#db.state, this.pool, await this.#ensureStateTables(), pipelineId);
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
    await this.#db.withTransaction(this.pool, async (conn) => {
      await this.#compareAndSet(conn, group, ranges);
      await writeCheckpoint(this.#db.state, conn, tables, meta, update);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) await this.#db.endPool(this.pool);
  }

  /**
   * In the caller's transaction: each range moves its row from fromOffset to untilOffset, or
   * creates it when absent (how each database locks the row: its `compareAndSetOffset`). Ranges go
   * in (topic, partition) order so two writers lock rows in the same order and cannot deadlock.
   */
  async #compareAndSet(conn: Conn, group: string, ranges: readonly OffsetRange[]): Promise<void> {
    const sorted = [...ranges].sort((a, b) =>
      a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition,
    );
    for (const r of sorted) {
      const conflict = await this.#db.compareAndSetOffset(conn, this.#t, group, r);
      if (conflict) throw new OffsetConflictError(group, r.topic, r.partition, r.fromOffset, conflict.stored);
    }
  }

  #ensureTable(): Promise<void> {
    if (!this.#createTable) return Promise.resolve();
    this.#ready ??= this.#db.createOffsetsTable(this.pool, this.table).catch((e: unknown) => {
      this.#ready = undefined;
      throw e;
    });
    return this.#ready;
  }

  /** The checkpoint tables' names (refused if too long), created on first use unless `createTable: false`. */
  #ensureStateTables(): Promise<StateTables> {
    this.#stateReady ??= (async () => {
      const tables = stateTableNames(this.#db, this.table);
      if (this.#createTable) await this.#db.state.createStateTables(this.pool, this.table);
      return tables;
    })().catch((e: unknown) => {
      this.#stateReady = undefined;
      throw e;
    });
    return this.#stateReady;
  }
}
