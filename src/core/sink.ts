import type { AccessCheck, AccessCheckContext } from './access.js';
import type { Batch, BatchContext } from './batch.js';
import type { Logger } from './logger.js';
import { isTransactionalStore, type TransactionalOffsetStore } from './transactional-store.js';

/**
 * What an output promises about each input record across crashes and restarts:
 * - `at-most-once`: offsets are saved before the output is written; a crash loses, never duplicates.
 * - `at-least-once`: the output is written, then offsets are saved; a crash duplicates, never loses.
 * - `exactly-once`: neither. Either the output is idempotent (a replayed batch overwrites itself),
 *   or the output and the offsets commit in one transaction.
 */
export type Guarantee = 'at-most-once' | 'at-least-once' | 'exactly-once';

export const GUARANTEES: readonly Guarantee[] = ['at-most-once', 'at-least-once', 'exactly-once'];

/** What the engine gives a sink when the context starts. */
export interface SinkContext {
  readonly pipelineId: string;
  /** The stable name of the output. */
  readonly name: string;
  readonly logger: Logger;
  /** Aborted when the context stops. */
  readonly signal: AbortSignal;
}

/**
 * The sink contract: an output that writes whole batches. Every implementation has an in-memory
 * counterpart and passes the sink conformance suite against its real server.
 */
export interface Sink<T> {
  /** e.g. `postgres`, `kafka`, `memory`. */
  readonly kind: string;
  /**
   * True when writing a batch again (after a crash, with the same records) leaves the destination
   * as the first write did: e.g. an upsert on a key carried by the records.
   */
  readonly idempotent: boolean;
  /** Options worth showing in a plan. Never secrets. */
  describe(): Record<string, unknown>;
  open(ctx: SinkContext): Promise<void>;
  /** Writes the batch; resolves when it is durable. */
  write(batch: Batch<T>, ctx: BatchContext): Promise<void>;
  close(): Promise<void>;
  /**
   * Which permissions the sink needs and its principal lacks (e.g. a Kafka ACL to write its
   * topic), found without opening it. The context runs every input's and output's check at start,
   * before opening anything, and fails with one error listing all that are missing. The contract
   * is {@link AccessCheck}'s.
   */
  checkAccess?(ctx: AccessCheckContext): Promise<AccessCheck | undefined>;
}

/** A sink that can also write a batch inside a {@link TransactionalOffsetStore}'s transaction. */
export interface TransactionalSink<T, Tx> extends Sink<T> {
  /** The store whose transactions this sink joins. */
  readonly store: TransactionalOffsetStore<Tx>;
  writeInTransaction(tx: Tx, batch: Batch<T>, ctx: BatchContext): Promise<void>;
}

export function isTransactionalSink<T>(sink: Sink<T>): sink is TransactionalSink<T, unknown> {
  const s = sink as Partial<TransactionalSink<T, unknown>>;
  return typeof s.writeInTransaction === 'function' && isTransactionalStore(s.store);
}
