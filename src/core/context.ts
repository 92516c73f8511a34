import { runAccessChecks, type CheckAccess } from './access.js';
import { Batch } from './batch.js';
import { validateBadRecords } from './bad-records.js';
import { BatchProtocol, type BatchInfo } from './batch-protocol.js';
import { Checkpointer } from './checkpointer.js';
import { SystemClock, type Clock } from './clock.js';
import {
  chooseOffsetStore,
  decideCommitPlan,
  offsetGroupOf,
  type CommitPlan,
  type CommitPlanInputs,
} from './commit-plan.js';
import { DStream, registerBadRecords, type Named } from './dstream.js';
import { ContextStateError, InvalidOptionError, PipelineDefinitionError } from './errors.js';
import { Graph, describePlan, type OutputRegistration, type PipelinePlan } from './graph.js';
import { createLogger, type Logger } from './logger.js';
import { rangeSize, type OffsetStore } from './offsets.js';
import { hostname } from 'node:os';
import type { Membership, OffsetResetEvent, RebalanceEvent, Source } from './source.js';
import { isStateStore, type StateStore } from './state.js';

export interface StreamingContextOptions {
  /** Milliseconds between batches (Spark's batch duration). Required, > 0. */
  readonly batchInterval: number;
  /** Identifies the pipeline: the default Kafka group id, and the key of its offsets and checkpoints. */
  readonly pipelineId?: string;
  /** Time source (default: the system clock). Tests pass a `ManualClock`. */
  readonly clock?: Clock;
  /** Default: JSON lines on stderr at `SLUICE_LOG_LEVEL` (info). */
  readonly logger?: Logger;
  /**
   * How the instances (processes) of this job share its inputs. `'single'` (the default): this
   * process reads every partition. `'group'`: every instance that runs the pipeline with the same
   * pipeline id, on this machine or others, joins its inputs' consumer group and Kafka assigns the
   * partitions among the live ones (`sluice run --instances N` starts N here). Default: env
   * `SLUICE_MEMBERSHIP`, else `'single'`.
   */
  readonly membership?: Membership;
  /**
   * This instance's id, stable across its restarts (in group membership, e.g. its transactional
   * id, so that a restart fences the crashed incarnation at once). Default: env
   * `SLUICE_INSTANCE_ID`, else `<host>-<pid>` (not stable: give one when instances restart).
   */
  readonly instanceId?: string;
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

export type ContextState = 'initialized' | 'active' | 'stopping' | 'stopped';

/** Receives the context's events (Spark's `StreamingListener`). Exceptions thrown here are logged and ignored. */
export interface StreamingListener {
  onBatchStarted?(batchTime: number): void;
  onBatchCompleted?(info: BatchInfo): void;
  onBatchFailed?(info: BatchInfo): void;
  onContextStopped?(error?: Error): void;
  /** A stored offset was out of the partition's valid range and was reset by the source's policy. */
  onOffsetReset?(event: OffsetResetEvent): void;
  /** Group membership: this instance gained or lost partitions. */
  onRebalance?(event: RebalanceEvent): void;
  /**
   * Group membership: a batch was abandoned uncommitted because this instance lost partitions of
   * it; the job goes on from the stored offsets (not a failure).
   */
  onBatchAbandoned?(info: BatchInfo): void;
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
 * The context is the lifecycle only: it decides the commit plan and restores the checkpoint at
 * start, opens and closes sources and sinks, schedules batches and tells listeners. How one
 * batch is read, written and committed is the batch protocol (`batch-protocol.ts`).
 *
 * @example
 * ```ts
 * import { StreamingContext, socketTextStream } from 'sluice';
 * const ctx = new StreamingContext({ batchInterval: 1000, stopGracefullyOnSignals: true });
 * socketTextStream(ctx, '127.0.0.1', 9999)
 *   .flatMap((l) => l.split(' '))
 *   .countByValue()
 *   .print();
 * await ctx.start();
 * await ctx.awaitTermination();
 * ```
 */
export class StreamingContext {
  /** Milliseconds between batches. */
  readonly batchInterval: number;
  readonly pipelineId: string;
  /** How the job's instances share its inputs (see {@link StreamingContextOptions.membership}). */
  readonly membership: Membership;
  readonly instanceId: string;
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
  #commitPlan: CommitPlan | undefined;
  #protocol: BatchProtocol | undefined;
  #nextBatchTime: number | undefined;

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
    const membership =
      options.membership ?? (process.env.SLUICE_MEMBERSHIP as Membership | undefined) ?? 'single';
    if (membership !== 'single' && membership !== 'group') {
      throw new InvalidOptionError(
        options.membership !== undefined ? 'membership' : 'SLUICE_MEMBERSHIP',
        "'single' (this process reads every partition) or 'group' (instances share them)",
        membership,
      );
    }
    const instanceId = options.instanceId ?? process.env.SLUICE_INSTANCE_ID ?? `${hostname()}-${process.pid}`;
    if (typeof instanceId !== 'string' || !/^[A-Za-z0-9_.\-]{1,100}$/.test(instanceId)) {
      throw new InvalidOptionError('instanceId', '1-100 characters among letters, digits, _ . -', instanceId);
    }
    this.membership = membership;
    this.instanceId = instanceId;
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

  /**
   * A stream fed by any {@link Source}: the one way inputs enter a pipeline. Each source module
   * also has a function that calls this, e.g. `createDirectStream(ctx, ...)` (sluice/kafka),
   * `socketTextStream(ctx, ...)`, `textFileStream(ctx, ...)`, `queueStream(ctx, ...)`.
   */
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

  /** The union of several streams of the same type. */
  union<T>(streams: DStream<T>[], opts?: Named): DStream<T> {
    const [first, ...rest] = streams;
    if (!first) throw new PipelineDefinitionError('union of no streams', 'Pass at least one stream');
    return first.union(rest, opts);
  }

  /** The pipeline's plan: every operator with its name, kind, parents and options. */
  plan(): PipelinePlan {
    return this.#graph.plan(this.pipelineId, this.membership);
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

  /** How each batch will be committed: which output gives which guarantee, where offsets go. */
  commitPlan(): CommitPlan {
    return this.#commitPlan ?? decideCommitPlan(this.#commitPlanInputs());
  }

  /**
   * Decides the commit plan (refusing impossible guarantees), restores the checkpoint, runs every
   * input's and output's access check (one error lists every permission the pipeline lacks), opens
   * every source and sink and starts the batch loop. Resolves once running; rejects (and opens
   * nothing further) if the pipeline is invalid, lacks permissions or a source cannot be opened.
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
    const planInputs = this.#commitPlanInputs();
    const offsetStore = chooseOffsetStore(planInputs);
    const commitPlan = decideCommitPlan(planInputs, offsetStore);
    this.#commitPlan = commitPlan;
    const checkpointer = new Checkpointer({
      pipelineId: this.pipelineId,
      handles: this.#graph.stateful.map((s) => s.handle),
      fullEvery: this.#options.checkpointFullEvery ?? 10,
      fingerprint: () => this.plan().fingerprint,
    });
    if (this.#options.checkpoint) await checkpointer.restore(this.#options.checkpoint, this.logger);
    const protocol = new BatchProtocol({
      pipelineId: this.pipelineId,
      membership: this.membership,
      clock: this.clock,
      inputs: this.#graph.inputs,
      outputs: this.#graph.outputs,
      stateful: this.#graph.stateful,
      offsetStore,
      commitPlan,
      checkpointer,
      groupOf: (source) => offsetGroupOf(source, this.pipelineId),
    });
    this.#protocol = protocol;
    this.#state = 'active';
    try {
      await this.#checkAccess();
      await this.#openSources(offsetStore, protocol);
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
    const restored = checkpointer.lastCommittedBatch;
    const firstBatchTime =
      restored !== undefined
        ? restored + this.batchInterval
        : (Math.floor(now / this.batchInterval) + 1) * this.batchInterval;
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

  /** The time of the next batch to run (a multiple of the interval). */
  get nextBatchTime(): number | undefined {
    return this.#nextBatchTime;
  }

  #commitPlanInputs(): CommitPlanInputs {
    return {
      pipelineId: this.pipelineId,
      inputs: this.#graph.inputs,
      outputs: this.#graph.outputs,
      statefulOperators: this.#graph.stateful.map((s) => s.handle.name),
      offsetStore: this.#options.offsetStore,
      checkpoint: this.#options.checkpoint,
      membership: this.membership,
    };
  }

  /**
   * Every input's and output's access check (see `Source.checkAccess`), before anything opens: ONE
   * error lists every permission the pipeline lacks, across its inputs, outputs and dead-letter
   * outputs, rather than the job failing on the first, then on the next once that one is fixed.
   */
  async #checkAccess(): Promise<void> {
    const checks: { name: string; check: CheckAccess }[] = [];
    for (const input of this.#graph.inputs) {
      const source = input.source;
      if (source.checkAccess) checks.push({ name: input.name, check: (ctx) => source.checkAccess!(ctx) });
    }
    for (const output of this.#graph.outputs) {
      if (output.checkAccess) checks.push({ name: output.name, check: output.checkAccess });
    }
    if (checks.length === 0) return;
    await runAccessChecks(checks, {
      pipelineId: this.pipelineId,
      logger: this.logger,
      signal: this.#stopSources.signal,
    });
  }

  async #openSources(offsetStore: OffsetStore | undefined, protocol: BatchProtocol): Promise<void> {
    for (const input of this.#graph.inputs) {
      const group = offsetGroupOf(input.source, this.pipelineId);
      await input.source.open({
        pipelineId: this.pipelineId,
        membership: this.membership,
        instanceId: this.instanceId,
        name: input.name,
        clock: this.clock,
        batchInterval: this.batchInterval,
        logger: this.logger.child({ input: input.name }),
        signal: this.#stopSources.signal,
        storedOffsets: async (topics) => (offsetStore ? offsetStore.read(group, topics) : []),
        reportOffsetReset: (event) => {
          const full = { ...event, input: input.name };
          this.logger.warn(full, 'stored offset out of range: reset by policy');
          protocol.positionMoved(group, {
            topic: event.topic,
            partition: event.partition,
            offset: event.resetTo,
          });
          this.#emit((l) => l.onOffsetReset?.(full));
        },
        reportBadRecord: (letter, error) =>
          protocol.badRecord(input.name, input.source.badRecords?.policy ?? 'fail', letter, error),
        reportRebalance: (event) => {
          const full = { ...event, input: input.name, instanceId: this.instanceId };
          this.logger.info(
            {
              instanceId: this.instanceId,
              input: input.name,
              gained: event.gained.map((p) => `${p.topic}-${p.partition}`),
              lost: event.lost.map((p) => `${p.topic}-${p.partition}`),
              owned: event.owned.map((p) => `${p.topic}-${p.partition}`),
            },
            'rebalance',
          );
          this.#emit((l) => l.onRebalance?.(full));
        },
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
  }

  async #runLoop(firstBatchTime: number): Promise<void> {
    const protocol = this.#protocol!;
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
        this.#emit((l) => l.onBatchStarted?.(time));
        const { info, error, abandoned } = await protocol.run(time);
        this.#record(info);
        if (error && !abandoned) throw error;
        time += this.batchInterval;
      }
    } catch (e) {
      this.#failure = e as Error;
      this.logger.error({ err: e }, 'batch failed; stopping the context');
    }
    if (!this.#failure) {
      try {
        await protocol.finalCheckpoint();
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

  /** Keeps the batch's record, feeds rate control and tells the listeners. */
  #record(info: BatchInfo): void {
    const error = info.status === 'failed';
    const abandoned = info.status === 'abandoned';
    this.#batches.push(info);
    // Before listeners hear of this batch, so one that waits for the next knows its time.
    this.#nextBatchTime = info.batchTime + this.batchInterval;
    if (this.#batches.length > (this.#options.retainedBatches ?? 1000)) this.#batches.shift();
    this.logger.debug(
      {
        batchTime: info.batchTime,
        records: info.numRecords,
        schedulingDelay: info.schedulingDelay,
        processingTime: info.processingTime,
        offsetRanges: info.inputs.flatMap((i) =>
          i.offsetRanges.map(
            (r) => `${r.topic}-${r.partition}:${r.fromOffset}-${r.untilOffset}(${rangeSize(r)})`,
          ),
        ),
      },
      error ? 'batch failed' : abandoned ? 'batch abandoned' : 'batch completed',
    );
    if (abandoned) {
      this.logger.warn(
        { batchTime: info.batchTime, err: info.error },
        'batch abandoned: this instance lost partitions of it; going on from the stored offsets',
      );
      this.#emit((l) => l.onBatchAbandoned?.(info));
      return;
    }
    if (!error) {
      for (const input of this.#graph.inputs) {
        input.source.onBatchCompleted?.({
          batchTime: info.batchTime,
          numRecords: info.inputs.find((i) => i.name === input.name)?.numRecords ?? 0,
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
