import { OffsetConflictError } from './errors.js';

/**
 * The records of one topic-partition that one batch reads: offsets `fromOffset` (inclusive) to
 * `untilOffset` (exclusive), as in Spark's `OffsetRange`. A batch with nothing new for a partition
 * has `fromOffset === untilOffset`. Offsets after the batch is committed: the next batch starts at
 * `untilOffset`.
 */
export interface OffsetRange {
  readonly topic: string;
  readonly partition: number;
  readonly fromOffset: number;
  readonly untilOffset: number;
}

/** Number of offsets a range spans (an upper bound on its records: compaction and transaction markers leave gaps). */
export function rangeSize(r: OffsetRange): number {
  return r.untilOffset - r.fromOffset;
}

/**
 * A stored read position: `offset` is the NEXT offset to read (a batch that covered
 * `[fromOffset, untilOffset)` stores `untilOffset`), as Kafka's committed offsets are.
 */
export interface PartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/** What a store can promise. */
export interface OffsetStoreCapabilities {
  /** `write(..., { compareAndSet: true })` is supported and atomic across the ranges. */
  readonly compareAndSet: boolean;
  /**
   * Processes on several machines can commit to it and a stale one cannot overwrite a newer
   * commit (compare-and-set, or a server that fences old group members): required for group
   * membership (`membership: 'group'`). False for stores on one machine's disk or in one process.
   */
  readonly shared?: boolean;
}

/**
 * The offset store contract: where a pipeline keeps its read positions, keyed by group (the
 * Kafka group id or pipeline id), topic and partition. Every implementation passes the
 * conformance suite in `test/conformance/offset-store.ts` against its real server.
 */
export interface OffsetStore {
  /** e.g. `memory`, `postgres`, `redis`. */
  readonly kind: string;
  readonly capabilities: OffsetStoreCapabilities;
  /** Options worth showing in a plan or the CLI. Never secrets. */
  describe(): Record<string, unknown>;
  /** The stored positions of `group` for `topics`; partitions never stored are absent. */
  read(group: string, topics: readonly string[]): Promise<PartitionOffset[]>;
  /**
   * Stores each range's `untilOffset` as the next position, all or none. With `compareAndSet`
   * the position stored for each partition must be the range's `fromOffset` (or nothing at all);
   * otherwise it throws {@link OffsetConflictError} and stores nothing: a replayed batch or a
   * second instance cannot apply the same batch twice.
   */
  write(group: string, ranges: readonly OffsetRange[], options?: { compareAndSet?: boolean }): Promise<void>;
  /** Sets positions unconditionally (an operator repairing a job: `sluice offsets set`). */
  set(group: string, offsets: readonly PartitionOffset[]): Promise<void>;
  /** Forgets the positions of `group` for `topics` (`sluice offsets reset`). */
  delete(group: string, topics: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** Throws {@link OffsetConflictError} for the first range whose partition holds another position. */
export function checkCompareAndSet(
  group: string,
  ranges: readonly OffsetRange[],
  stored: (topic: string, partition: number) => number | undefined,
): void {
  for (const r of ranges) {
    const current = stored(r.topic, r.partition);
    if (current !== undefined && current !== r.fromOffset) {
      throw new OffsetConflictError(group, r.topic, r.partition, r.fromOffset, current);
    }
  }
}

/** Offsets in process memory: the reference implementation, and the store for tests. */
export class InMemoryOffsetStore implements OffsetStore {
  readonly kind: string = 'memory';
  readonly capabilities = { compareAndSet: true };
  readonly #data = new Map<string, number>();

  describe(): Record<string, unknown> {
    return {};
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    const out: PartitionOffset[] = [];
    for (const [key, offset] of this.#data) {
      const [g, topic, partition] = JSON.parse(key) as [string, string, number];
      if (g === group && topics.includes(topic)) out.push({ topic, partition, offset });
    }
    return out.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  }

  async write(
    group: string,
    ranges: readonly OffsetRange[],
    options: { compareAndSet?: boolean } = {},
  ): Promise<void> {
    if (options.compareAndSet) {
      checkCompareAndSet(group, ranges, (t, p) => this.#data.get(key(group, t, p)));
    }
    for (const r of ranges) this.#data.set(key(group, r.topic, r.partition), r.untilOffset);
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    for (const o of offsets) this.#data.set(key(group, o.topic, o.partition), o.offset);
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    for (const k of [...this.#data.keys()]) {
      const [g, topic] = JSON.parse(k) as [string, string];
      if (g === group && topics.includes(topic)) this.#data.delete(k);
    }
  }

  async close(): Promise<void> {}
}

function key(group: string, topic: string, partition: number): string {
  return JSON.stringify([group, topic, partition]);
}
