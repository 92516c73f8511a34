import type { StreamingContext } from './context.js';
import type { DStream, Named } from './dstream.js';
import { InvalidOptionError } from './errors.js';
import type { InputPlan, Source } from './source.js';

export interface QueueSourceOptions<T> {
  /** Take one pushed batch per interval (default, as Spark's `oneAtATime`) or everything queued. */
  readonly oneAtATime?: boolean;
  /** Records of a batch when nothing was pushed for it (default: none). */
  readonly defaultBatch?: readonly T[];
  /** Partitions each batch is spread over (default 1). */
  readonly numPartitions?: number;
  /**
   * Whether pipelines may treat this input as replayable, to test their guarantees with the
   * test driver (default true). A queue lives in memory: nothing survives a real crash.
   */
  readonly replayable?: boolean;
}

/**
 * An in-memory source fed by {@link QueueSource.push}: the test driver's input, and Spark's
 * `queueStream`. Each `push` is the content of one future batch.
 *
 * @example
 * ```ts
 * const queue = new QueueSource<string>();
 * const lines = queueStream(ctx, queue);
 * queue.push(['a b', 'c']); // the next batch holds these two lines
 * ```
 */
export class QueueSource<T> implements Source<T> {
  readonly kind = 'queue';
  readonly replayable: boolean;
  readonly #queue: (readonly T[])[] = [];
  readonly #oneAtATime: boolean;
  readonly #defaultBatch: readonly T[];
  readonly #numPartitions: number;

  constructor(options: QueueSourceOptions<T> = {}) {
    const n = options.numPartitions ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new InvalidOptionError('numPartitions', 'an integer >= 1', n);
    this.#oneAtATime = options.oneAtATime ?? true;
    this.#defaultBatch = options.defaultBatch ?? [];
    this.#numPartitions = n;
    this.replayable = options.replayable ?? true;
  }

  /** Queues the records of one batch. */
  push(records: Iterable<T>): void {
    this.#queue.push(Array.from(records));
  }

  /** Batches pushed and not yet taken. */
  get pending(): number {
    return this.#queue.length;
  }

  describe(): Record<string, unknown> {
    return { oneAtATime: this.#oneAtATime, numPartitions: this.#numPartitions };
  }

  async open(): Promise<void> {}

  async plan(): Promise<InputPlan> {
    let records: readonly T[];
    if (this.#queue.length === 0) records = this.#defaultBatch;
    else if (this.#oneAtATime) records = this.#queue.shift()!;
    else records = this.#queue.splice(0).flat() as T[];
    return { offsetRanges: [], detail: records };
  }

  async fetch(plan: InputPlan): Promise<T[][]> {
    const records = plan.detail as readonly T[];
    const parts: T[][] = Array.from({ length: this.#numPartitions }, () => []);
    records.forEach((r, i) => parts[i % this.#numPartitions]!.push(r));
    return parts;
  }

  async close(): Promise<void> {}
}

/**
 * A stream of the batches pushed into `queue` (Spark's `queueStream`); options make a new queue.
 *
 * @example
 * ```ts
 * import { QueueSource, StreamingContext, queueStream } from 'sluice';
 * const ctx = new StreamingContext({ batchInterval: 1000 });
 * const queue = new QueueSource<number>();
 * queueStream(ctx, queue, { name: 'numbers' }).count().print();
 * ```
 */
export function queueStream<T>(
  ctx: StreamingContext,
  queue: QueueSource<T> | QueueSourceOptions<T> = {},
  opts?: Named,
): DStream<T> {
  return ctx.stream(queue instanceof QueueSource ? queue : new QueueSource<T>(queue), opts);
}
