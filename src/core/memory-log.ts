import { InvalidOptionError } from './errors.js';
import type { PartitionOffset, OffsetRange } from './offsets.js';
import type { InputPlan, Source, SourceContext } from './source.js';

/** A record of an {@link InMemoryLog}, with its position. */
export interface LogRecord<T> {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly value: T;
}

/**
 * A partitioned, append-only log in memory: Kafka's shape without Kafka, for the test driver and
 * the conformance suites. Offsets start at 0 per partition.
 */
export class InMemoryLog<T> {
  readonly #topics = new Map<string, T[][]>();

  createTopic(topic: string, partitions: number): void {
    if (!this.#topics.has(topic))
      this.#topics.set(
        topic,
        Array.from({ length: partitions }, () => []),
      );
  }

  /** Appends `values` to `partition` of `topic`; returns the offset of the first. */
  append(topic: string, partition: number, values: Iterable<T>): number {
    const p = this.#partition(topic, partition);
    const first = p.length;
    p.push(...values);
    return first;
  }

  /** Partition count of `topic` (0 if it does not exist). */
  partitions(topic: string): number {
    return this.#topics.get(topic)?.length ?? 0;
  }

  /** Next offset to be written in the partition. */
  endOffset(topic: string, partition: number): number {
    return this.#partition(topic, partition).length;
  }

  read(topic: string, partition: number, from: number, until: number): LogRecord<T>[] {
    return this.#partition(topic, partition)
      .slice(from, until)
      .map((value, i) => ({ topic, partition, offset: from + i, value }));
  }

  #partition(topic: string, partition: number): T[] {
    const p = this.#topics.get(topic)?.[partition];
    if (!p) throw new RangeError(`no partition ${topic}-${partition} in the in-memory log`);
    return p;
  }
}

export interface InMemoryLogSourceOptions {
  readonly topics: readonly string[];
  /** Group its offsets are stored under (default: the pipeline id). */
  readonly groupId?: string;
  /** Where to start partitions that have no stored offset (default `earliest`). */
  readonly startingOffsets?: 'earliest' | 'latest';
  /** Cap on records per partition per batch (default: none). */
  readonly maxRecordsPerPartition?: number;
}

/**
 * A direct-stream source over an {@link InMemoryLog}: the in-memory counterpart of the Kafka
 * direct stream. Replayable, resumes from the stored offsets, one batch partition per log partition.
 */
export class InMemoryLogSource<T> implements Source<LogRecord<T>> {
  readonly kind = 'memory-log';
  readonly replayable = true;
  readonly #log: InMemoryLog<T>;
  readonly #options: InMemoryLogSourceOptions;
  readonly #positions = new Map<string, number>();

  constructor(log: InMemoryLog<T>, options: InMemoryLogSourceOptions) {
    if (!Array.isArray(options.topics) || options.topics.length === 0) {
      throw new InvalidOptionError('topics', 'a non-empty array of topic names', options.topics);
    }
    this.#log = log;
    this.#options = options;
  }

  describe(): Record<string, unknown> {
    return { topics: this.#options.topics };
  }

  offsetGroup(pipelineId: string): string {
    return this.#options.groupId ?? pipelineId;
  }

  /** The next offset each partition will be read from. */
  positions(): PartitionOffset[] {
    return [...this.#positions].map(([k, offset]) => {
      const [topic, partition] = JSON.parse(k) as [string, number];
      return { topic, partition, offset };
    });
  }

  async open(ctx: SourceContext): Promise<void> {
    const stored = await ctx.storedOffsets(this.#options.topics);
    for (const topic of this.#options.topics) {
      for (let p = 0; p < this.#log.partitions(topic); p++) {
        const s = stored.find((o) => o.topic === topic && o.partition === p);
        const start =
          s?.offset ?? (this.#options.startingOffsets === 'latest' ? this.#log.endOffset(topic, p) : 0);
        this.#positions.set(JSON.stringify([topic, p]), start);
      }
    }
  }

  async plan(): Promise<InputPlan> {
    const cap = this.#options.maxRecordsPerPartition ?? Number.POSITIVE_INFINITY;
    const offsetRanges: OffsetRange[] = [];
    for (const [k, from] of this.#positions) {
      const [topic, partition] = JSON.parse(k) as [string, number];
      const until = Math.min(this.#log.endOffset(topic, partition), from + cap);
      offsetRanges.push({ topic, partition, fromOffset: from, untilOffset: until });
      // The next batch starts where this one ends, committed or not: a failed batch stops the job.
      this.#positions.set(k, until);
    }
    return { offsetRanges };
  }

  async fetch(plan: InputPlan): Promise<LogRecord<T>[][]> {
    return plan.offsetRanges.map((r) => this.#log.read(r.topic, r.partition, r.fromOffset, r.untilOffset));
  }

  async close(): Promise<void> {}
}
