import { Batch } from './batch.js';
import { SystemClock, type Clock } from './clock.js';
import { BadRecordLedger, validateBadRecords, type BadRecordCounts } from './bad-records.js';
import { DStream, registerBadRecords, type Named } from './dstream.js';
import { ContextStateError, InvalidOptionError, PipelineDefinitionError, SluiceError } from './errors.js';
import { Graph, describePlan, type BatchRun, type OutputRegistration, type PipelinePlan } from './graph.js';
import { createLogger, type Logger } from './logger.js';
import { QueueSource, type QueueSourceOptions } from './queue-source.js';
import {
  collectState,
  compareOperators,
  isStateStore,
  restoreState,
  type CheckpointMeta,
  type StateStore,
} from './checkpoint.js';
import { CheckpointIncompatibleError } from './errors.js';
import type { OffsetStore } from './offsets.js';
import { isTransactionalStore, type Guarantee } from './sink.js';
import {
  rangeSize,
  type InputMetrics,
  type InputPlan,
  type OffsetRange,
  type OffsetResetEvent,
  type Source,
} from './source.js';
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
  /**
   * Where the read positions of replayable inputs (Kafka) are kept. Default: the input's own
   * (Kafka's consumer-group commits). A transactional output must use its store here.
   */
  readonly offsetStore?: OffsetStore;
  /**
   * Where the state of stateful operators (windows, updateStateByKey, mapWithState) is kept, with
   * the offsets: required when the pipeline has state. For a stateful pipeline its offsets are the
   * pipeline's offsets, so a crash never leaves state and offsets apart (a stateless pipeline keeps
   * using its input's own store, e.g. Kafka's). E.g. `new CheckpointDirectory({ dir })`.
   */
  readonly checkpoint?: StateStore;
  /** Write every operator's full state every N batches, and only the changed keys in between (default 10). */
  readonly checkpointFullEvery?: number;
}

/** How the engine commits each batch, decided at start from the outputs and the offset store. */
export interface CommitPlan {
  readonly offsetStore: string | undefined;
  /** `before-outputs` for at-most-once, `in-transaction` when an output commits them, else `after-outputs`. */
  readonly offsets: 'none' | 'before-outputs' | 'after-outputs' | 'in-transaction';
  readonly outputs: readonly { readonly name: string; readonly guarantee: Guarantee; readonly how: string }[];
  /** The outputs that write inside the offset store's transaction (step 5 of the protocol). */
  readonly transactionalOutputs: readonly string[];
}

export type ContextState = 'initialized' | 'active' | 'stopping' | 'stopped';

/** What each input contributed to a batch. */
export interface InputInfo {
  readonly name: string;
  readonly kind: string;
  readonly numRecords: number;
  readonly offsetRanges: readonly OffsetRange[];
  /** Rate limit in force, lag per partition and records lost to offset resets, where the source reports them. */
  readonly metrics?: InputMetrics;
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
  /** Records skipped or dead-lettered in this batch, per policy owner (input or tryMap). */
  readonly badRecords: readonly BadRecordCounts[];
  /** Per output: its name and how long it took, in definition order. */
  readonly outputs: readonly { readonly name: string; readonly durationMs: number }[];
  readonly status: 'completed' | 'failed';
  readonly error?: SluiceError | Error;
}

/** Receives the context's events (Spark's `StreamingListener`). Exceptions thrown here are logged and ignored. */
export interface StreamingListener {
  onBatchStarted?(batchTime: number): void;
  onBatchCompleted?(info: BatchInfo): void;
  onBatchFailed?(info: BatchInfo): void;
  onContextStopped?(error?: Error): void;
  /** A stored offset was out of the partition's valid range and was reset by the source's policy. */
  onOffsetReset?(event: OffsetResetEvent): void;
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
  readonly #graph: Graph;
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
  #openedOutputs: OutputRegistration[] = [];
  #offsetStore: OffsetStore | undefined;
  #commitPlan: CommitPlan | undefined;
  #ledger = new BadRecordLedger();
  #lastCommittedBatch: number | undefined;
  /** Positions moved by offset resets, written to the store before the next offsets. */
  #pendingResets: { group: string; topic: string; partition: number; offset: number }[] = [];
  #nextBatchTime: number | undefined;
  #commitsSinceStart = 0;
  #batchTime = 0;

  constructor(options: StreamingContextOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidOptionError('options', 'an object such as { batchInterval: 1000 }', options);
    }
    const { batchInterval, pipelineId = 'sluice', retainedBatches = 1000 } = options;
    if (typeof batchInterval !== 'number' || !Number.isInteger(batchInterval) || batchInterval <= 0) {
      throw new InvalidOptionError(
        'batchInterval',
        'a whole number of milliseconds > 0, e.g. 1000',
        batchInterval,
      );
    }
    if (typeof pipelineId !== 'string' || !/^[A-Za-z0-9_.\-]{1,200}$/.test(pipelineId)) {
      throw new InvalidOptionError('pipelineId', '1-200 characters among letters, digits, _ . -', pipelineId);
    }
    if (
      options.checkpointFullEvery !== undefined &&
      !(Number.isInteger(options.checkpointFullEvery) && options.checkpointFullEvery >= 1)
    ) {
      throw new InvalidOptionError('checkpointFullEvery', 'an integer >= 1', options.checkpointFullEvery);
    }
    if (options.checkpoint !== undefined && !isStateStore(options.checkpoint)) {
      throw new InvalidOptionError(
        'checkpoint',
        'a state store, e.g. new CheckpointDirectory({ dir }) from sluice/checkpoint',
        options.checkpoint,
      );
    }
    if (!Number.isInteger(retainedBatches) || retainedBatches < 1) {
      throw new InvalidOptionError('retainedBatches', 'an integer >= 1', retainedBatches);
    }
    this.#options = options;
    this.batchInterval = batchInterval;
    this.#graph = new Graph(batchInterval);
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
    if (source.badRecords) {
      validateBadRecords(source.badRecords);
      registerBadRecords(this.#graph, stream.name, source.badRecords);
    }
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
  textFileStream(
    directory: string,
    options: Omit<DirectorySourceOptions, 'directory'> & Named = {},
  ): DStream<string> {
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
    this.#offsetStore = this.#chooseOffsetStore();
    this.#commitPlan = this.#resolveCommitPlan();
    await this.#restoreCheckpoint();
    this.#state = 'active';
    try {
      for (const input of this.#graph.inputs) {
        const group = this.#groupOf(input.source);
        await input.source.open({
          pipelineId: this.pipelineId,
          name: input.name,
          clock: this.clock,
          batchInterval: this.batchInterval,
          logger: this.logger.child({ input: input.name }),
          signal: this.#stopSources.signal,
          storedOffsets: async (topics) => (this.#offsetStore ? this.#offsetStore.read(group, topics) : []),
          reportOffsetReset: (event) => {
            const full = { ...event, input: input.name };
            this.logger.warn(full, 'stored offset out of range: reset by policy');
            // The next batch starts at resetTo; the store must hold it too, or its compare-and-set
            // would refuse the batch.
            this.#pendingResets.push({
              group,
              topic: event.topic,
              partition: event.partition,
              offset: event.resetTo,
            });
            this.#emit((l) => l.onOffsetReset?.(full));
          },
          reportBadRecord: (letter, error) =>
            this.#ledger.handle(
              input.source.badRecords?.policy ?? 'fail',
              { ...letter, input: input.name, batchTime: this.#batchTime },
              error,
            ),
        });
        this.#openedSources.push(input.source);
      }
      for (const output of this.#graph.outputs) {
        await output.open?.({
          pipelineId: this.pipelineId,
          name: output.name,
          logger: this.logger.child({ output: output.name }),
          signal: this.#stopSources.signal,
        });
        this.#openedOutputs.push(output);
      }
    } catch (e) {
      await this.#closeSources();
      this.#state = 'stopped';
      this.#emit((l) => l.onContextStopped?.(e as Error));
      this.#termination.reject(e as Error);
      throw e;
    }
    if (this.#options.stopGracefullyOnSignals) this.#installSignalHandlers();
    const now = this.clock.now();
    // As Spark's RecurringTimer: the first batch time is the next multiple of the interval.
    // A restored stateful pipeline continues at the batch after its checkpoint and catches up batch
    // by batch (as Spark reschedules the batches it missed), so windows and state see every batch.
    const firstBatchTime =
      this.#lastCommittedBatch !== undefined
        ? this.#lastCommittedBatch + this.batchInterval
        : (Math.floor(now / this.batchInterval) + 1) * this.batchInterval;
    // Slides count from the epoch, so window boundaries stay put across restarts.
    this.#graph.zeroTime = 0;
    this.logger.info({ batchInterval: this.batchInterval, firstBatchTime }, 'streaming context started');
    this.#loop = this.#runLoop(firstBatchTime);
  }

  /** How each batch will be committed: which output gives which guarantee, where offsets go. */
  commitPlan(): CommitPlan {
    return this.#commitPlan ?? this.#resolveCommitPlan();
  }

  /**
   * Decides, before anything starts, how each output's guarantee is met; refuses a combination
   * that cannot give what was asked, saying why and what would work.
   */
  /**
   * The offset store: the one given; else, for a stateful pipeline, the checkpoint (state and
   * offsets commit together); else the input's own (Kafka's group commits), else the checkpoint.
   */
  #chooseOffsetStore(): OffsetStore | undefined {
    if (this.#options.offsetStore) return this.#options.offsetStore;
    if (this.#graph.stateful.length && this.#options.checkpoint) return this.#options.checkpoint;
    return (
      this.#graph.inputs.map((i) => i.source.defaultOffsetStore?.()).find((s) => s !== undefined) ??
      this.#options.checkpoint
    );
  }

  /** Loads the last checkpoint into the stateful operators; refuses one this pipeline cannot take. */
  async #restoreCheckpoint(): Promise<void> {
    const checkpoint = this.#options.checkpoint;
    if (!checkpoint) return;
    const cp = await checkpoint.loadCheckpoint(this.pipelineId);
    if (!cp) {
      this.logger.info({ checkpoint: checkpoint.describe() }, 'no checkpoint yet: starting fresh');
      return;
    }
    const handles = this.#graph.stateful.map((s) => s.handle);
    const diffs = compareOperators(cp.meta.operators, handles);
    if (diffs.length) {
      const where = checkpoint.describe();
      throw new CheckpointIncompatibleError(String(where.dir ?? where.location ?? checkpoint.kind), diffs);
    }
    for (const h of handles) {
      const stored = cp.state.get(h.name);
      if (stored) restoreState(h, stored);
    }
    this.#lastCommittedBatch = cp.meta.batchTime;
    this.logger.info(
      {
        batchTime: cp.meta.batchTime,
        fingerprint: cp.meta.fingerprint,
        sameShape: cp.meta.fingerprint === this.plan().fingerprint,
      },
      'resumed from checkpoint',
    );
  }

  #resolveCommitPlan(): CommitPlan {
    const store = this.#offsetStore ?? this.#chooseOffsetStore();
    const hasOffsets = this.#graph.inputs.some((i) => i.source.offsetGroup !== undefined);
    const notReplayable = this.#graph.inputs.filter((i) => !i.source.replayable).map((i) => i.name);
    const storeName = store ? store.kind : undefined;
    const outputs: { name: string; guarantee: Guarantee; how: string }[] = [];
    const transactionalOutputs: string[] = [];
    const stateful = this.#graph.stateful.length > 0;
    for (const out of this.#graph.outputs) {
      const inStoreTransaction = Boolean(out.transactional && store && out.transactional.store === store);
      const canExactlyOnce = out.idempotent || inStoreTransaction;
      const ceiling: Guarantee = notReplayable.length
        ? 'at-most-once'
        : canExactlyOnce
          ? 'exactly-once'
          : 'at-least-once';
      const wanted = out.guarantee ?? ceiling;
      if (rank(wanted) > rank(ceiling)) {
        throw new PipelineDefinitionError(
          `Output '${out.name}' (${out.kind}) cannot be ${wanted}: ${whyNot(out, wanted, notReplayable, store)}`,
          howTo(out, wanted, notReplayable, store),
        );
      }
      let how: string;
      if (wanted === 'exactly-once' && !out.idempotent) {
        // Every such output writes in the same transaction, which then commits the offsets once.
        transactionalOutputs.push(out.name);
        how = `writes and offsets in one ${storeName} transaction`;
      } else if (wanted === 'exactly-once') {
        how = hasOffsets || stateful ? 'idempotent writes, then offsets' : 'idempotent writes';
      } else if (wanted === 'at-least-once') {
        how = hasOffsets || stateful ? 'write, then offsets' : 'write (no offsets to save)';
      } else {
        how = hasOffsets || stateful ? 'offsets, then write' : 'write (input not replayable)';
      }
      outputs.push({ name: out.name, guarantee: wanted, how });
    }
    const atMostOnce = outputs.filter(
      (o) => o.guarantee === 'at-most-once' && hasOffsets && !notReplayable.length,
    );
    if (atMostOnce.length && atMostOnce.length !== outputs.length) {
      throw new PipelineDefinitionError(
        `Output '${atMostOnce[0]!.name}' is at-most-once but '${outputs.find((o) => o.guarantee !== 'at-most-once')!.name}' is not`,
        'At-most-once saves offsets before writing and the others after: run them as separate pipelines, or give them one guarantee',
      );
    }
    if (hasOffsets && !store) {
      throw new PipelineDefinitionError(
        'The pipeline reads offsets but has no offset store',
        'Pass offsetStore to the StreamingContext',
      );
    }
    if (stateful && !this.#options.checkpoint) {
      throw new PipelineDefinitionError(
        `Operators ${this.#graph.stateful.map((s) => `'${s.handle.name}'`).join(', ')} keep state across batches but the context has no checkpoint`,
        "Pass checkpoint: new CheckpointDirectory({ dir }) (from 'sluice/checkpoint') to the StreamingContext",
      );
    }
    if (stateful && hasOffsets && store !== this.#options.checkpoint) {
      throw new PipelineDefinitionError(
        `State is kept in the checkpoint (${this.#options.checkpoint!.kind}) but offsets in ${store?.kind}`,
        'State and offsets must commit together: leave offsetStore unset (the checkpoint keeps them) or pass the checkpoint as offsetStore',
      );
    }
    if (stateful && transactionalOutputs.length && store !== this.#options.checkpoint) {
      throw new PipelineDefinitionError(
        `Output(s) ${transactionalOutputs.map((o) => `'${o}'`).join(', ')} commit in a ${storeName} transaction, but the operators' state is kept in ${this.#options.checkpoint!.kind}`,
        'Use one store that keeps state in the transaction as both checkpoint and offset store (e.g. the PostgreSQL store), or make the output idempotent',
      );
    }
    const groups = new Set(
      this.#graph.inputs.filter((i) => i.source.offsetGroup).map((i) => this.#groupOf(i.source)),
    );
    if (stateful && groups.size > 1) {
      throw new PipelineDefinitionError(
        `Inputs use several offset groups (${[...groups].join(', ')}) but state commits with one`,
        'Give every input the same group id',
      );
    }
    if (transactionalOutputs.length && groups.size > 1) {
      throw new PipelineDefinitionError(
        `Inputs use several offset groups (${[...groups].join(', ')}) but one output commits offsets in its transaction`,
        'Give every input the same group id',
      );
    }
    const offsets: CommitPlan['offsets'] =
      !hasOffsets && !stateful
        ? 'none'
        : transactionalOutputs.length
          ? 'in-transaction'
          : atMostOnce.length
            ? 'before-outputs'
            : 'after-outputs';
    return { offsetStore: storeName, offsets, outputs, transactionalOutputs };
  }

  #groupOf(source: Source<unknown>): string {
    return source.offsetGroup?.(this.pipelineId) ?? this.pipelineId;
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

  /** The time of the next batch to run (a multiple of the interval). */
  get nextBatchTime(): number | undefined {
    return this.#nextBatchTime;
  }

  async #runLoop(firstBatchTime: number): Promise<void> {
    let time = firstBatchTime;
    try {
      this.#nextBatchTime = time;
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
    if (!this.#failure && this.#graph.stateful.length && this.#lastCommittedBatch !== undefined) {
      // A graceful stop leaves a full checkpoint, so the next start restores without deltas.
      try {
        this.#commitsSinceStart = 0;
        await this.#commitState(
          this.#offsetStore as StateStore,
          this.pipelineId,
          [],
          this.#lastCommittedBatch,
        );
      } catch (e) {
        this.logger.warn({ err: e }, 'the final checkpoint failed; the last batch checkpoint stands');
      }
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
   * job before the later steps, so a failed batch is never recorded as read: a restart reads it
   * again from the stored offsets (and a transaction in progress rolls back).
   *   1. Fix each input's content (its offset ranges) before reading any record.
   *   2. Fetch exactly that content (records that cannot be read go to the bad-record policy).
   *   3. Run the graph: compute every output's batch, each stream once; dead letters last.
   *   4. At-most-once only: save the offsets now, before any output (a crash then loses the batch).
   *   5. Write the outputs that commit on their own, in definition order (idempotent and
   *      at-least-once outputs, dead-letter sinks).
   *   6. Exactly-once transactional outputs: their writes AND the batch's offsets in ONE transaction
   *      of the offset store; the offsets are a compare-and-set from each range's fromOffset, so a
   *      replayed batch or a second instance rolls back with OffsetConflictError. Otherwise save the
   *      offsets now, after the outputs (at-least-once; exactly-once with idempotent outputs),
   *      compare-and-set where the store can.
   *   7. Tell each source the batch is committed, and record the batch as done.
   */
  async #runBatch(time: number): Promise<void> {
    const start = this.clock.now();
    this.#emit((l) => l.onBatchStarted?.(time));
    const inputs: InputInfo[] = [];
    const outputs: { name: string; durationMs: number }[] = [];
    const plans: { source: Source<unknown>; plan: InputPlan }[] = [];
    const commit = this.#commitPlan!;
    const store = this.#offsetStore;
    const run: BatchRun = { time, inputs: new Map(), computed: new Map(), badRecords: new BadRecordLedger() };
    this.#ledger = run.badRecords;
    this.#batchTime = time;
    const timed = async (name: string, work: () => Promise<void>) => {
      const t0 = this.clock.now();
      await work();
      outputs.push({ name, durationMs: this.clock.now() - t0 });
    };
    try {
      // 1. Fix the content.
      for (const input of this.#graph.inputs) {
        plans.push({ source: input.source, plan: await input.source.plan(time) });
      }
      // 2. Fetch it.
      for (const [i, input] of this.#graph.inputs.entries()) {
        const { plan } = plans[i]!;
        const batch = new Batch(await input.source.fetch(plan));
        (run.inputs as Map<string, unknown>).set(input.name, { batch, offsetRanges: plan.offsetRanges });
        inputs.push({
          name: input.name,
          kind: input.source.kind,
          numRecords: batch.size,
          offsetRanges: plan.offsetRanges,
          ...(plan.metrics ? { metrics: plan.metrics } : {}),
        });
      }
      const offsetsByGroup = this.#offsetsByGroup(plans);
      if (this.#pendingResets.length && store) await this.#applyResets(store);
      // 3. Compute. Stateful operators run every batch, whatever their outputs' slides.
      for (const s of this.#graph.stateful) await s.force(run);
      for (const output of this.#graph.outputs) if (!output.late) await output.prepare(run);
      for (const output of this.#graph.outputs) if (output.late) await output.prepare(run);
      // 4. At-most-once: offsets first.
      if (commit.offsets === 'before-outputs') await this.#saveOffsets(store!, offsetsByGroup, time);
      // 5. Outputs that commit on their own.
      const inTransaction = new Set(commit.transactionalOutputs);
      for (const output of this.#graph.outputs) {
        if (!inTransaction.has(output.name)) await timed(output.name, () => output.run(run));
      }
      // 6. The transactional outputs with the offsets, or the offsets alone.
      if (inTransaction.size) {
        const [group, ranges] = [...offsetsByGroup][0] ?? [this.pipelineId, []];
        const txStore = this.#graph.outputs.find((o) => inTransaction.has(o.name))!.transactional!.store;
        // A stateful pipeline's state commits in the same transaction (the store is its checkpoint).
        const checkpoint = this.#graph.stateful.length ? this.#stateCheckpoint(time) : undefined;
        await txStore.transaction(
          group,
          ranges,
          async (tx) => {
            for (const output of this.#graph.outputs) {
              if (inTransaction.has(output.name))
                await timed(output.name, () => output.transactional!.run(run, tx));
            }
          },
          checkpoint,
        );
        if (checkpoint) this.#stateCommitted(time);
      } else if (commit.offsets === 'after-outputs') {
        await this.#saveOffsets(store!, offsetsByGroup, time);
      }
      // 7. Commit the sources' own bookkeeping.
      for (const { source, plan } of plans) await source.commit?.(plan);
    } catch (e) {
      this.#record(time, start, inputs, outputs, run.badRecords, e as Error);
      throw e;
    }
    this.#record(time, start, inputs, outputs, run.badRecords);
  }

  async #applyResets(store: OffsetStore): Promise<void> {
    const byGroup = new Map<string, { topic: string; partition: number; offset: number }[]>();
    for (const r of this.#pendingResets) byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), r]);
    for (const [group, offsets] of byGroup) await store.set(group, offsets);
    this.#pendingResets = [];
  }

  #offsetsByGroup(plans: { source: Source<unknown>; plan: InputPlan }[]): Map<string, OffsetRange[]> {
    const byGroup = new Map<string, OffsetRange[]>();
    for (const { source, plan } of plans) {
      if (!source.offsetGroup || plan.offsetRanges.length === 0) continue;
      const group = this.#groupOf(source);
      byGroup.set(group, [...(byGroup.get(group) ?? []), ...plan.offsetRanges]);
    }
    return byGroup;
  }

  /** Saves the batch's offsets and, for a stateful pipeline, its state with them in one commit. */
  async #saveOffsets(store: OffsetStore, byGroup: Map<string, OffsetRange[]>, time: number): Promise<void> {
    if (this.#graph.stateful.length) {
      const [group, ranges] = [...byGroup][0] ?? [this.pipelineId, []];
      await this.#commitState(store as StateStore, group, ranges, time);
      return;
    }
    for (const [group, ranges] of byGroup) {
      await store.write(group, ranges, { compareAndSet: store.capabilities.compareAndSet });
    }
  }

  async #commitState(
    store: StateStore,
    group: string,
    ranges: readonly OffsetRange[],
    time: number,
  ): Promise<void> {
    const { meta, update } = this.#stateCheckpoint(time);
    await store.commitBatch(group, ranges, meta, update);
    this.#stateCommitted(time);
  }

  /** The operators' state for the checkpoint of `time`: full every N commits, changed keys between. */
  #stateCheckpoint(time: number) {
    const handles = this.#graph.stateful.map((s) => s.handle);
    const every = this.#options.checkpointFullEvery ?? 10;
    // The first commit after a start is full, so deltas never pile up across restarts.
    const full = this.#commitsSinceStart % every === 0;
    const meta: CheckpointMeta = {
      pipelineId: this.pipelineId,
      fingerprint: this.plan().fingerprint,
      operators: handles.map((h) => ({ name: h.name, kind: h.kind })),
      batchTime: time,
    };
    return { meta, update: collectState(handles, full) };
  }

  #stateCommitted(time: number): void {
    this.#commitsSinceStart++;
    this.#lastCommittedBatch = time;
  }

  #record(
    time: number,
    start: number,
    inputs: InputInfo[],
    outputs: { name: string; durationMs: number }[],
    ledger: BadRecordLedger,
    error?: Error,
  ): void {
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
      outputs,
      badRecords: ledger.counts(),
      status: error ? 'failed' : 'completed',
      ...(error ? { error } : {}),
    };
    this.#batches.push(info);
    // Before listeners hear of this batch, so one that waits for the next knows its time.
    this.#nextBatchTime = time + this.batchInterval;
    if (this.#batches.length > (this.#options.retainedBatches ?? 1000)) this.#batches.shift();
    this.logger.debug(
      {
        batchTime: time,
        records: info.numRecords,
        schedulingDelay: info.schedulingDelay,
        processingTime: info.processingTime,
        offsetRanges: inputs.flatMap((i) =>
          i.offsetRanges.map(
            (r) => `${r.topic}-${r.partition}:${r.fromOffset}-${r.untilOffset}(${rangeSize(r)})`,
          ),
        ),
      },
      error ? 'batch failed' : 'batch completed',
    );
    if (!error) {
      for (const input of this.#graph.inputs) {
        input.source.onBatchCompleted?.({
          batchTime: time,
          numRecords: inputs.find((i) => i.name === input.name)?.numRecords ?? 0,
          processingTime: info.processingTime,
          schedulingDelay: info.schedulingDelay,
        });
      }
    }
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
    for (const output of this.#openedOutputs.splice(0)) {
      try {
        await output.close?.();
      } catch (e) {
        this.logger.warn({ err: e, output: output.name }, 'closing an output failed');
      }
    }
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

const RANK: Record<Guarantee, number> = { 'at-most-once': 0, 'at-least-once': 1, 'exactly-once': 2 };
function rank(g: Guarantee): number {
  return RANK[g];
}

function whyNot(
  out: OutputRegistration,
  wanted: Guarantee,
  notReplayable: string[],
  store: OffsetStore | undefined,
): string {
  if (notReplayable.length)
    return `input ${notReplayable.map((n) => `'${n}'`).join(', ')} cannot be read again after a crash`;
  if (wanted === 'exactly-once' && out.transactional && store && out.transactional.store !== store) {
    return `it commits in a ${out.transactional.store.kind} transaction but the offsets are kept in ${store.kind}`;
  }
  return `it is neither idempotent nor able to write in the offset store's transaction${store ? ` (offsets in ${store.kind})` : ''}`;
}

function howTo(
  out: OutputRegistration,
  wanted: Guarantee,
  notReplayable: string[],
  store: OffsetStore | undefined,
): string {
  if (notReplayable.length)
    return 'Read from a replayable input (Kafka, a directory), or ask for at-most-once';
  const options = ['make the output idempotent (upsert on a key the records carry)'];
  if (out.transactional && store && out.transactional.store !== store) {
    options.unshift(
      `keep the offsets in the output's store (offsetStore: the ${out.transactional.store.kind} store)`,
    );
  } else if (isTransactionalStore(store)) {
    options.push(
      `write inside the ${store.kind} offset store's transaction (foreachBatch with { transaction })`,
    );
  } else {
    options.push('use a transactional output together with its store as the offset store');
  }
  return `To get ${wanted}: ${options.join('; or ')}; or ask for at-least-once`;
}
