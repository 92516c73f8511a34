import { Batch } from './batch.js';
import { SystemClock, type Clock } from './clock.js';
import { DStream, type Named } from './dstream.js';
import { ContextStateError, InvalidOptionError, PipelineDefinitionError, SluiceError } from './errors.js';
import { Graph, describePlan, type BatchRun, type PipelinePlan } from './graph.js';
import { createLogger, type Logger } from './logger.js';
import { QueueSource, type QueueSourceOptions } from './queue-source.js';
import { rangeSize, type InputPlan, type OffsetRange, type Source } from './source.js';
import { DirectorySource, type DirectorySourceOptions } from '../sources/directory.js';
import { SocketTextSource, type SocketTextSourceOptions } from '../sources/socket.js';

export interface StreamingContextOptions {
  /** Milliseconds between batches (Spark's batch duration). Required, > 0. */
  readonly batchInterval: number;
  /** Identifies the pipeline: the default Kafka group id, and the key of its offsets and checkpoints. */
  readonly pipelineId?: string;
  /** Time source (default: the system clock). Tests pass a `ManualClock`. */
  readonly clock?: Clock;
  /** Default: JSON lines on stderr at `SLUICE_LOG_LEVEL` (info). */
  readonly logger?: Logger;
  /** Stop gracefully on SIGINT and SIGTERM (default false; `sluice run` turns it on). */
  readonly stopGracefullyOnSignals?: boolean;
  /** How many finished batches `ctx.batches` keeps (default 1000). */
  readonly retainedBatches?: number;
}

export type ContextState = 'initialized' | 'active' | 'stopping' | 'stopped';

/** What each input contributed to a batch. */
export interface InputInfo {
  readonly name: string;
  readonly kind: string;
  readonly numRecords: number;
  readonly offsetRanges: readonly OffsetRange[];
}

/** The record of one batch, as Spark's `BatchInfo`. Times in ms since the epoch, durations in ms. */
export interface BatchInfo {
  readonly batchTime: number;
  readonly processingStartTime: number;
  readonly processingEndTime: number;
  /** Time the batch waited for the previous one: processing start minus batch time. */
  readonly schedulingDelay: number;
  readonly processingTime: number;
  /** schedulingDelay + processingTime. */
  readonly totalDelay: number;
  readonly numRecords: number;
  readonly inputs: readonly InputInfo[];
  readonly status: 'completed' | 'failed';
  readonly error?: SluiceError | Error;
}

/** Receives the context's events (Spark's `StreamingListener`). Exceptions thrown here are logged and ignored. */
export interface StreamingListener {
  onBatchStarted?(batchTime: number): void;
  onBatchCompleted?(info: BatchInfo): void;
  onBatchFailed?(info: BatchInfo): void;
  onContextStopped?(error?: Error): void;
}

export interface StopOptions {
  /** Finish the running batch first (default true). Otherwise abort its input reads; it is not committed. */
  readonly graceful?: boolean;
}

/**
 * The entry point: define inputs and operators on a context, then `start` it. Every
 * `batchInterval` ms it builds one batch from each input and runs the pipeline on it; batches
 * never overlap, and one that runs long delays the next (its scheduling delay grows).
 *
 * @example
 * ```ts
 * import { StreamingContext } from 'sluice';
 * const ctx = new StreamingContext({ batchInterval: 1000, stopGracefullyOnSignals: true });
 * ctx.socketTextStream('127.0.0.1', 9999)
 *   .flatMap((l) => l.split(' '))
 *   .countByValue()
 *   .print();
 * await ctx.start();
 * await ctx.awaitTermination();
 * ```
 */
export class StreamingContext {
  readonly batchInterval: number;
  readonly pipelineId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly #graph = new Graph();
  readonly #options: StreamingContextOptions;
  readonly #listeners: StreamingListener[] = [];
  readonly #batches: BatchInfo[] = [];
  #state: ContextState = 'initialized';
  #stopScheduling = new AbortController();
  #stopSources = new AbortController();
  #loop: Promise<void> | undefined;
  #failure: Error | undefined;
  #termination: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void };
  #signalHandler: (() => void) | undefined;
  #openedSources: Source<unknown>[] = [];

  constructor(options: StreamingContextOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError('options', 'an object such as { batchInterval: 1000 }', options);
    }
    const { batchInterval, pipelineId = 'sluice', retainedBatches = 1000 } = options;
    if (typeof batchInterval !== 'number' || !Number.isInteger(batchInterval) || batchInterval <= 0) {
      throw new InvalidOptionError('batchInterval', 'a whole number of milliseconds > 0, e.g. 1000', batchInterval);
    }
    if (typeof pipelineId !== 'string' || !/^[A-Za-z0-9_.\-]{1,200}$/.test(pipelineId)) {
      throw new InvalidOptionError('pipelineId', '1-200 characters among letters, digits, _ . -', pipelineId);
    }
    if (!Number.isInteger(retainedBatches) || retainedBatches < 1) {
      throw new InvalidOptionError('retainedBatches', 'an integer >= 1', retainedBatches);
    }
    this.#options = options;
    this.batchInterval = batchInterval;
    this.pipelineId = pipelineId;
    this.clock = options.clock ?? new SystemClock();
    this.logger = (options.logger ?? createLogger()).child({ pipeline: pipelineId });
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // awaitTermination may never be called; an unobserved failure must not crash the process.
    promise.catch(() => {});
    this.#termination = { promise, resolve, reject };
  }

  get state(): ContextState {
    return this.#state;
  }

  /** Finished batches, oldest first (at most `retainedBatches`). */
  get batches(): readonly BatchInfo[] {
    return this.#batches;
  }

  /** A stream fed by any {@link Source}. Adapters (Kafka, ...) build their streams with this. */
  stream<T>(source: Source<T>, opts?: Named): DStream<T> {
    const stream = new DStream<T>(this.#graph, {
      kind: source.kind,
      name: opts?.name,
      parents: [],
      options: source.describe(),
      input: true,
      compute: () => Batch.empty<T>(), // unused: the engine supplies input batches
    });
    this.#graph.inputs.push({ name: stream.name, source: source as Source<unknown> });
    return stream;
  }

  /** A stream of the batches pushed into `queue` (Spark's `queueStream`). */
  queueStream<T>(queue: QueueSource<T> | QueueSourceOptions<T> = {}, opts?: Named): DStream<T> {
    return this.stream(queue instanceof QueueSource ? queue : new QueueSource<T>(queue), opts);
  }

  /** Lines of text from a TCP server, e.g. `nc -lk 9999` (Spark's `socketTextStream`). At-most-once. */
  socketTextStream(
    host: string,
    port: number,
    options: Omit<SocketTextSourceOptions, 'host' | 'port'> & Named = {},
  ): DStream<string> {
    const { name, ...rest } = options;
    return this.stream(new SocketTextSource({ host, port, ...rest }), { name });
  }

  /** Lines of the files moved into `directory`, each file read once (Spark's `textFileStream`). */
  textFileStream(directory: string, options: Omit<DirectorySourceOptions, 'directory'> & Named = {}): DStream<string> {
    const { name, ...rest } = options;
    return this.stream(new DirectorySource({ directory, ...rest }), { name });
  }

  /** The union of several streams of the same type. */
  union<T>(streams: DStream<T>[], opts?: Named): DStream<T> {
    const [first, ...rest] = streams;
    if (!first) throw new PipelineDefinitionError('union of no streams', 'Pass at least one stream');
    return first.union(rest, opts);
  }

  /** The pipeline's plan: every operator with its name, kind, parents and options. */
  plan(): PipelinePlan {
    return this.#graph.plan(this.pipelineId, this.batchInterval);
  }

  /** The plan as text (default) or as JSON text. */
  describe(format: 'text' | 'json' = 'text'): string {
    const plan = this.plan();
    return format === 'json' ? JSON.stringify(plan, null, 2) : describePlan(plan);
  }

  addListener(listener: StreamingListener): void {
    this.#listeners.push(listener);
  }

  removeListener(listener: StreamingListener): void {
    const i = this.#listeners.indexOf(listener);
    if (i >= 0) this.#listeners.splice(i, 1);
  }

  /**
   * Opens every source and starts the batch loop. Resolves once running; rejects (and opens
   * nothing further) if the pipeline is invalid or a source cannot be opened.
   */
  async start(): Promise<void> {
    if (this.#state !== 'initialized') {
      throw new ContextStateError(
        `Cannot start a context that is ${this.#state}`,
        'A context runs once: build a new one to run again',
        this.#state,
      );
    }
    if (this.#graph.outputs.length === 0) {
      throw new PipelineDefinitionError(
        'The pipeline has no output operation',
        'Add foreachBatch, print or a sink to some stream; nothing would be computed otherwise',
      );
    }
    this.#graph.freeze(() => {
      throw new ContextStateError(
        'Cannot add operators after the context started',
        'Define the whole pipeline before start()',
        this.#state,
      );
    });
    this.#state = 'active';
    try {
      for (const input of this.#graph.inputs) {
        await input.source.open({
          pipelineId: this.pipelineId,
          name: input.name,
          clock: this.clock,
          batchInterval: this.batchInterval,
          logger: this.logger.child({ input: input.name }),
          signal: this.#stopSources.signal,
        });
        this.#openedSources.push(input.source);
      }
    } catch (e) {
      await this.#closeSources();
      this.#state = 'stopped';
      this.#termination.reject(e as Error);
      throw e;
    }
    if (this.#options.stopGracefullyOnSignals) this.#installSignalHandlers();
    const now = this.clock.now();
    // As Spark's RecurringTimer: the first batch time is the next multiple of the interval.
    const firstBatchTime = (Math.floor(now / this.batchInterval) + 1) * this.batchInterval;
    this.logger.info({ batchInterval: this.batchInterval, firstBatchTime }, 'streaming context started');
    this.#loop = this.#runLoop(firstBatchTime);
  }

  /** Resolves when the context has stopped; rejects with the error that stopped it, if any. */
  awaitTermination(): Promise<void> {
    return this.#termination.promise;
  }

  /** Stops the context; by default waits for the running batch to finish. Idempotent. */
  async stop(options: StopOptions = {}): Promise<void> {
    const graceful = options.graceful ?? true;
    if (this.#state === 'initialized') {
      this.#state = 'stopped';
      this.#termination.resolve();
      return;
    }
    if (this.#state === 'active') {
      this.#state = 'stopping';
      this.logger.info({ graceful }, 'stopping');
      this.#stopScheduling.abort(new Error('stopped'));
      if (!graceful) this.#stopSources.abort(new Error('stopped'));
    }
    await this.#loop?.catch(() => {});
    await this.#termination.promise.catch(() => {});
  }

  async #runLoop(firstBatchTime: number): Promise<void> {
    let time = firstBatchTime;
    try {
      while (this.#state === 'active') {
        try {
          await this.clock.sleepUntil(time, this.#stopScheduling.signal);
        } catch {
          break; // stop() aborted the wait
        }
        if (this.#state !== 'active') break;
        await this.#runBatch(time);
        time += this.batchInterval;
      }
    } catch (e) {
      this.#failure = e as Error;
      this.logger.error({ err: e }, 'batch failed; stopping the context');
    }
    this.#uninstallSignalHandlers();
    this.#stopSources.abort(new Error('stopped'));
    await this.#closeSources();
    this.#state = 'stopped';
    this.#emit((l) => l.onContextStopped?.(this.#failure));
    this.logger.info({ failed: Boolean(this.#failure) }, 'streaming context stopped');
    if (this.#failure) this.#termination.reject(this.#failure);
    else this.#termination.resolve();
  }

  /**
   * One batch, start to finish. THE COMMIT PROTOCOL, in order; a failure at any step stops the
   * job before the later steps, so nothing of a failed batch is committed:
   *   1. Fix each input's content (its offset ranges) before reading any record.
   *   2. Fetch exactly that content.
   *   3. Run the graph: each stream's batch is computed once, on demand of the outputs.
   *   4. Write the outputs, in the order they were defined.
   *   5. Tell each source the batch is committed (it may forget what the batch covered).
   *   6. Record the batch as done.
   */
  async #runBatch(time: number): Promise<void> {
    const start = this.clock.now();
    this.#emit((l) => l.onBatchStarted?.(time));
    const inputs: InputInfo[] = [];
    const plans: { source: Source<unknown>; plan: InputPlan }[] = [];
    try {
      // 1. Fix the content.
      for (const input of this.#graph.inputs) {
        plans.push({ source: input.source, plan: await input.source.plan(time) });
      }
      // 2. Fetch it.
      const run: BatchRun = { time, inputs: new Map(), computed: new Map() };
      for (const [i, input] of this.#graph.inputs.entries()) {
        const { plan } = plans[i]!;
        const batch = new Batch(await input.source.fetch(plan));
        (run.inputs as Map<string, unknown>).set(input.name, { batch, offsetRanges: plan.offsetRanges });
        inputs.push({
          name: input.name,
          kind: input.source.kind,
          numRecords: batch.size,
          offsetRanges: plan.offsetRanges,
        });
      }
      // 3 + 4. Run the graph through the outputs, one output after the other.
      for (const output of this.#graph.outputs) await output.run(run);
      // 5. Commit.
      for (const { source, plan } of plans) await source.commit?.(plan);
    } catch (e) {
      this.#record(time, start, inputs, e as Error);
      throw e;
    }
    // 6. Done.
    this.#record(time, start, inputs);
  }

  #record(time: number, start: number, inputs: InputInfo[], error?: Error): void {
    const end = this.clock.now();
    const info: BatchInfo = {
      batchTime: time,
      processingStartTime: start,
      processingEndTime: end,
      schedulingDelay: start - time,
      processingTime: end - start,
      totalDelay: end - time,
      numRecords: inputs.reduce((n, i) => n + i.numRecords, 0),
      inputs,
      status: error ? 'failed' : 'completed',
      ...(error ? { error } : {}),
    };
    this.#batches.push(info);
    if (this.#batches.length > (this.#options.retainedBatches ?? 1000)) this.#batches.shift();
    this.logger.debug(
      {
        batchTime: time,
        records: info.numRecords,
        schedulingDelay: info.schedulingDelay,
        processingTime: info.processingTime,
        offsetRanges: inputs.flatMap((i) => i.offsetRanges.map((r) => `${r.topic}-${r.partition}:${r.fromOffset}-${r.untilOffset}(${rangeSize(r)})`)),
      },
      error ? 'batch failed' : 'batch completed',
    );
    this.#emit((l) => (error ? l.onBatchFailed?.(info) : l.onBatchCompleted?.(info)));
  }

  #emit(call: (l: StreamingListener) => void): void {
    for (const l of this.#listeners) {
      try {
        call(l);
      } catch (e) {
        this.logger.warn({ err: e }, 'a streaming listener threw; ignored');
      }
    }
  }

  async #closeSources(): Promise<void> {
    for (const source of this.#openedSources.splice(0)) {
      try {
        await source.close();
      } catch (e) {
        this.logger.warn({ err: e, source: source.kind }, 'closing a source failed');
      }
    }
  }

  #installSignalHandlers(): void {
    const handler = () => {
      this.logger.info({}, 'signal received: stopping gracefully after the running batch');
      void this.stop({ graceful: true });
    };
    this.#signalHandler = handler;
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
  }

  #uninstallSignalHandlers(): void {
    if (!this.#signalHandler) return;
    process.removeListener('SIGINT', this.#signalHandler);
    process.removeListener('SIGTERM', this.#signalHandler);
    this.#signalHandler = undefined;
  }
}
