import type { Batch } from './batch.js';
import type { BatchContext } from './graph.js';
import type { Sink } from './sink.js';

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
    for (const p of batch.partitions) {
      for (const r of p) {
        if (this.#key) this.#rows.set(JSON.stringify(this.#key(r)), r);
        else this.#appended.push(r);
      }
    }
  }

  async close(): Promise<void> {}
}
