import type { Batch, BatchContext } from './batch.js';
import { InMemoryCheckpointStore, type CheckpointMeta, type StateUpdate } from './state.js';
import type { Sink, TransactionalSink } from './sink.js';
import type { TransactionalOffsetStore } from './transactional-store.js';
import type { OffsetRange } from './offsets.js';

/**
 * A sink that keeps what it is given in memory: the reference implementation of the sink contract.
 * With `key`, it upserts (idempotent); without, it appends (a replay duplicates).
 */
export class InMemorySink<T> implements Sink<T> {
  readonly kind = 'memory';
  readonly idempotent: boolean;
  readonly #key: ((record: T) => unknown) | undefined;
  readonly #rows = new Map<unknown, T>();
  readonly #appended: T[] = [];

  constructor(options: { key?: (record: T) => unknown } = {}) {
    this.#key = options.key;
    this.idempotent = Boolean(options.key);
  }

  /** Everything written, in write order (upserted records once, at their last value). */
  get records(): T[] {
    return this.#key ? [...this.#rows.values()] : [...this.#appended];
  }

  describe(): Record<string, unknown> {
    return { idempotent: this.idempotent };
  }

  async open(): Promise<void> {}

  async write(batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    this.apply(batch);
  }

  /** Adds the batch's records (upserting with a key). */
  protected apply(batch: Batch<T>): void {
    for (const p of batch.partitions) {
      for (const r of p) {
        if (this.#key) this.#rows.set(JSON.stringify(this.#key(r)), r);
        else this.#appended.push(r);
      }
    }
  }

  async close(): Promise<void> {}
}

/** Effects staged in an in-memory transaction, applied only when it commits. */
export class InMemoryTransaction {
  readonly #effects: (() => void)[] = [];

  stage(effect: () => void): void {
    this.#effects.push(effect);
  }

  /** @internal */
  commit(): void {
    for (const e of this.#effects.splice(0)) e();
  }
}

/**
 * The in-memory transactional offset store, which also keeps checkpoints: the reference for
 * database and Kafka transactions (and for state committed in the output's transaction).
 */
export class InMemoryTransactionalStore
  extends InMemoryCheckpointStore
  implements TransactionalOffsetStore<InMemoryTransaction>
{
  readonly transactional = true;
  override readonly kind: string = 'memory-transactional';

  async transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: InMemoryTransaction) => Promise<R>,
    checkpoint?: { readonly meta: CheckpointMeta; readonly update: StateUpdate },
  ): Promise<R> {
    const tx = new InMemoryTransaction();
    const result = await fn(tx);
    // The compare-and-set throws before anything is applied; after it nothing can fail.
    if (checkpoint) await this.commitBatch(group, ranges, checkpoint.meta, checkpoint.update);
    else await this.write(group, ranges, { compareAndSet: true });
    tx.commit();
    return result;
  }
}

/** An {@link InMemorySink} that can also write inside an {@link InMemoryTransactionalStore}'s transaction. */
export class InMemoryTransactionalSink<T>
  extends InMemorySink<T>
  implements TransactionalSink<T, InMemoryTransaction>
{
  readonly store: InMemoryTransactionalStore;

  constructor(store: InMemoryTransactionalStore, options: { key?: (record: T) => unknown } = {}) {
    super(options);
    this.store = store;
  }

  async writeInTransaction(tx: InMemoryTransaction, batch: Batch<T>): Promise<void> {
    tx.stage(() => this.apply(batch));
  }
}
