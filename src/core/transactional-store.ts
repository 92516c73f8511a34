import type { OffsetRange, OffsetStore } from './offsets.js';
import type { CheckpointMeta, StateUpdate } from './state.js';

/**
 * An offset store that can save a batch's offsets inside a transaction together with other
 * writes: a database whose offsets live in a table, or Kafka with a transactional producer.
 */
export interface TransactionalOffsetStore<Tx> extends OffsetStore {
  readonly transactional: true;
  /**
   * Begins a transaction, runs `fn` in it, stores the ranges' untilOffsets in it (compare-and-set
   * from fromOffset where the store can), and commits: all of it or none of it. If `fn` throws or
   * the offsets conflict (`OffsetConflictError`), it rolls back and rethrows. A store that is also a
   * state store (`stateful: true`) commits `checkpoint` (the operators' state) in the same
   * transaction; the engine passes one only to such a store.
   */
  transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: Tx) => Promise<R>,
    checkpoint?: { readonly meta: CheckpointMeta; readonly update: StateUpdate },
  ): Promise<R>;
}

export function isTransactionalStore(
  store: OffsetStore | undefined,
): store is TransactionalOffsetStore<unknown> {
  return Boolean(store && (store as Partial<TransactionalOffsetStore<unknown>>).transactional === true);
}
