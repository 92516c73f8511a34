import type { Batch, BatchContext } from '../batch.js';
import { InMemoryCheckpointStore } from '../state.js';
import { ManualClock } from '../clock.js';
import type { BatchInfo } from '../batch-protocol.js';
import { StreamingContext, type StreamingContextOptions } from '../context.js';
import type { DStream, Named } from '../dstream.js';
import { ContextStateError } from '../errors.js';
import { silentLogger } from '../logger.js';
import { QueueSource, queueStream, type QueueSourceOptions } from '../queue-source.js';

/** An input of the test driver: push the records of the next batch, read the stream. */
export interface TestInput<T> {
  readonly stream: DStream<T>;
  /** The records of one future batch (batches are taken in push order, one per interval). */
  push(records: Iterable<T>): void;
}

/** One batch captured by {@link TestDriver.collect}. */
export interface CollectedBatch<T> {
  readonly time: number;
  readonly records: T[];
  /** The records by partition, as the pipeline produced them. */
  readonly partitions: T[][];
  readonly offsetRanges: BatchContext['offsetRanges'];
}

/** The batches an output produced, in order. */
export class CollectedOutput<T> {
  readonly batches: CollectedBatch<T>[] = [];

  /** Records of the last batch (empty before the first). */
  last(): T[] {
    return this.batches.at(-1)?.records ?? [];
  }

  /** Records of every batch so far, in order. */
  all(): T[][] {
    return this.batches.map((b) => b.records);
  }
}

export interface TestDriverOptions extends Partial<Omit<StreamingContextOptions, 'clock'>> {
  /** Start time of the manual clock (default 0). */
  readonly startTime?: number;
}

/**
 * Runs a pipeline batch by batch without Kafka or timers: a manual clock and queue inputs
 * (Kafka Streams' `TopologyTestDriver` for DStreams). Build the pipeline on `driver.context`,
 * `start()`, then `push` input and `advance()` one interval at a time.
 *
 * @example
 * ```ts
 * import { TestDriver } from 'sluice/testing';
 * const driver = new TestDriver({ batchInterval: 1000 });
 * const lines = driver.input<string>({ name: 'lines' });
 * const counts = driver.collect(lines.stream.flatMap((l) => l.split(' ')).countByValue());
 * await driver.start();
 * lines.push(['a b a']);
 * await driver.advance();
 * counts.last(); // [['a', 2], ['b', 1]]
 * await driver.stop();
 * ```
 */
export class TestDriver {
  readonly clock: ManualClock;
  readonly context: StreamingContext;
  readonly #waiters = new Map<number, { resolve: (i: BatchInfo) => void; reject: (e: Error) => void }>();
  readonly #done = new Map<number, BatchInfo>();

  constructor(options: TestDriverOptions = {}) {
    const { startTime = 0, ...rest } = options;
    this.clock = new ManualClock(startTime);
    // Stateful operators need a checkpoint: an in-memory one unless the test brings its own store.
    const checkpoint = rest.checkpoint ?? (rest.offsetStore ? undefined : new InMemoryCheckpointStore());
    this.context = new StreamingContext({
      batchInterval: 1000,
      logger: silentLogger,
      ...rest,
      ...(checkpoint ? { checkpoint } : {}),
      clock: this.clock,
    });
    this.context.addListener({
      onBatchCompleted: (info) => this.#settle(info),
      onBatchFailed: (info) => this.#settle(info),
    });
  }

  /** A queue input: each `push` becomes one batch. */
  input<T>(options: QueueSourceOptions<T> & Named = {}): TestInput<T> {
    const { name, ...rest } = options;
    const queue = new QueueSource<T>(rest);
    return { stream: queueStream(this.context, queue, { name }), push: (records) => queue.push(records) };
  }

  /** Registers an output that records every batch of `stream`. */
  collect<T>(stream: DStream<T>, opts?: Named): CollectedOutput<T> {
    const out = new CollectedOutput<T>();
    stream.foreachBatch(
      (batch: Batch<T>, ctx) => {
        out.batches.push({
          time: ctx.time,
          records: batch.collect(),
          partitions: batch.partitions.map((p) => [...p]),
          offsetRanges: ctx.offsetRanges,
        });
      },
      { name: opts?.name },
    );
    return out;
  }

  start(): Promise<void> {
    return this.context.start();
  }

  /**
   * Moves the clock to the next batch time, runs that batch and resolves with its info; rejects
   * with the batch's error if it failed. `advance(n)` runs n batches and returns the last info.
   */
  async advance(batches = 1): Promise<BatchInfo> {
    if (this.context.state !== 'active') {
      throw new ContextStateError(
        'advance() needs a started driver',
        'Call start() first',
        this.context.state,
      );
    }
    let info: BatchInfo | undefined;
    for (let i = 0; i < batches; i++) {
      const interval = this.context.batchInterval;
      // A pipeline restored from a checkpoint continues after the checkpoint's batch.
      const next = this.context.nextBatchTime ?? (Math.floor(this.clock.now() / interval) + 1) * interval;
      const finished = this.#waitFor(next);
      if (next > this.clock.now()) this.clock.setTime(next);
      info = await finished;
      if (info.status === 'failed') throw info.error;
    }
    return info!;
  }

  stop(): Promise<void> {
    return this.context.stop({ graceful: true });
  }

  #waitFor(time: number): Promise<BatchInfo> {
    const done = this.#done.get(time);
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => this.#waiters.set(time, { resolve, reject }));
  }

  #settle(info: BatchInfo): void {
    const waiter = this.#waiters.get(info.batchTime);
    if (waiter) {
      this.#waiters.delete(info.batchTime);
      waiter.resolve(info);
    } else {
      this.#done.set(info.batchTime, info);
    }
  }
}
