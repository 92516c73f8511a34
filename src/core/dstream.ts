/**
 * `DStream`: the operator API. Over 600 lines on purpose: every operator is a method of the one
 * class (Spark's API shape, and what lets TypeScript type pair operators on `DStream<[K, V]>`), and
 * each is a few lines over the `Batch` operator of the same name or a stateful operator from
 * `stateful.ts`. Splitting the class would split its API across files.
 */
import { originOf, validateBadRecords, type BadRecordsOptions, type DeadLetter } from './bad-records.js';
import { Batch, type PairInput, type BatchContext } from './batch.js';
import { OperatorError, PipelineDefinitionError } from './errors.js';
import { COMPUTE, type BatchRun, type Graph } from './graph.js';
import { escapeControlChars } from './logger.js';
import type { SinkContext } from './sink.js';
import type { CheckAccess } from './access.js';
import type { Pair } from './keys.js';
import {
  invertibleWindowState,
  mapWithStateOf,
  updateState,
  windowState,
  type MapWithStateSpec,
} from './stateful.js';
import type { StateHandle } from './state.js';
import { GUARANTEES, isTransactionalSink, type Guarantee, type Sink } from './sink.js';
import { type TransactionalOffsetStore } from './transactional-store.js';
import type { OffsetRange } from './offsets.js';

/** The internal form of `writeTo`; not part of the public API. */
const WRITE_TO = Symbol('sluice.writeTo');

/** Every operator takes an optional name; without one it is named `<kind>-<n>`. */
export interface Named {
  readonly name?: string;
}

/** Options of operators that regroup records by key. */
export interface ShuffleOptions extends Named {
  /** Partitions of the result (default: those of the input). */
  readonly numPartitions?: number;
}

/** Options of outputs. */
export interface OutputOptions extends Named {
  /**
   * What the output must promise (see {@link Guarantee}). Default: exactly-once where the output
   * and the offset store allow it, else at-least-once. Asking for more than they allow fails at start.
   */
  readonly guarantee?: Guarantee;
}

/** Options of `foreachBatch`. */
export interface ForeachBatchOptions<Tx = unknown> extends OutputOptions {
  /** The function's writes are idempotent: running a batch again changes nothing. */
  readonly idempotent?: boolean;
  /**
   * Run the function inside this store's transaction, which also commits the batch's offsets:
   * `ctx.transaction` is the handle. The store must be the context's offset store.
   */
  readonly transaction?: TransactionalOffsetStore<Tx>;
}

/** Options of `print`. */
export interface PrintOptions extends Named {
  /** Where lines go (default: `console.log`). */
  readonly write?: (line: string) => void;
}

type Compute<T> = (
  parents: Batch<any>[],
  ctx: BatchContext,
  run: BatchRun,
  valid: boolean,
) => Batch<T> | undefined | Promise<Batch<T> | undefined>;

/** Window length and slide, in ms: multiples of the parent's slide (the batch interval by default). */
export interface WindowOptions extends ShuffleOptions {
  /** Default: the parent's slide (every batch). */
  readonly slideMs?: number;
}

/** Options of `tryMap`. */
export interface TryMapOptions extends Named {
  /** Policy for records `fn` throws on; default: the policy of the input the stream comes from. */
  readonly badRecords?: BadRecordsOptions;
}

/**
 * A discretized stream: one {@link Batch} per batch interval. Operators build new streams;
 * nothing runs until the context starts. Key/value operators exist on streams of pairs
 * (`DStream<[K, V]>`); calling them on other streams is a type error.
 *
 * @example
 * ```ts
 * const counts = lines
 *   .flatMap((line) => line.split(' '))
 *   .mapToPair((word) => [word, 1])
 *   .reduceByKey((a, b) => a + b);
 * counts.print();
 * ```
 */
export class DStream<T> {
  readonly name: string;
  readonly kind: string;
  readonly parents: readonly DStream<unknown>[];
  /** @internal */
  readonly graph: Graph;
  /** The input streams this stream is derived from. */
  readonly inputNames: ReadonlySet<string>;
  /** This stream produces a batch every `slideMs` (the batch interval, or a window's slide). */
  readonly slideMs: number;
  readonly #compute: Compute<T>;
  readonly #input: boolean;
  readonly #isStateful: boolean;

  /** @internal Streams are made by `ctx.stream(source)` and by operators. */
  constructor(
    graph: Graph,
    init: {
      kind: string;
      name?: string;
      parents: readonly DStream<any>[];
      options?: Record<string, unknown>;
      compute: Compute<T>;
      input?: boolean;
      /** Runs every batch with its parents' batches (possibly none) and `valid` = on its slide. */
      stateful?: boolean;
      slideMs?: number;
    },
  ) {
    for (const p of init.parents) {
      if (p.graph !== graph) {
        throw new PipelineDefinitionError(
          `Stream '${p.name}' belongs to another StreamingContext`,
          'Build every stream of a pipeline from the same context',
        );
      }
    }
    this.graph = graph;
    this.kind = init.kind;
    this.name = graph.name(init.kind, init.name);
    this.parents = init.parents;
    this.#compute = init.compute;
    this.#input = init.input ?? false;
    this.#isStateful = init.stateful ?? false;
    const slides = new Set(init.parents.map((p) => p.slideMs));
    if (slides.size > 1) {
      throw new PipelineDefinitionError(
        `${init.kind} combines streams with different slides (${[...slides].join(' ms, ')} ms)`,
        'Window the streams to the same slide before combining them',
      );
    }
    this.slideMs = init.slideMs ?? init.parents[0]?.slideMs ?? graph.batchInterval;
    this.inputNames = init.input
      ? new Set([this.name])
      : new Set(init.parents.flatMap((p) => [...p.inputNames]));
    graph.add({
      name: this.name,
      kind: init.kind,
      parents: init.parents.map((p) => p.name),
      options: init.options ?? {},
      output: false,
    });
  }

  /** @internal Computes this stream's batch for `run` once; a user function's error names this operator. */
  [COMPUTE](run: BatchRun): Promise<Batch<T> | undefined> {
    let pending = run.computed.get(this) as Promise<Batch<T> | undefined> | undefined;
    if (!pending) {
      pending = this.#run(run);
      run.computed.set(this, pending);
    }
    return pending;
  }

  async #run(run: BatchRun): Promise<Batch<T> | undefined> {
    if (this.#input) return run.inputs.get(this.name)!.batch as Batch<T>;
    const valid = this.graph.isValidTime(run.time, this.slideMs);
    if (!valid && !this.#isStateful) return undefined;
    const parents = await Promise.all(this.parents.map((p) => p[COMPUTE](run)));
    if (!this.#isStateful && parents.some((p) => p === undefined)) return undefined;
    try {
      return await this.#compute(parents as Batch<any>[], batchContext(run, this.inputNames), run, valid);
    } catch (e) {
      throw e instanceof OperatorError ? e : new OperatorError(this.name, run.time, e);
    }
  }

  #derive<U>(
    kind: string,
    opts: Named | undefined,
    options: Record<string, unknown>,
    compute: Compute<U>,
    others: DStream<any>[] = [],
  ): DStream<U> {
    return new DStream<U>(this.graph, {
      kind,
      name: opts?.name,
      parents: [this, ...others],
      options,
      compute,
    });
  }

  map<U>(fn: (record: T) => U, opts?: Named): DStream<U> {
    return this.#derive('map', opts, {}, ([b]) => b!.map(fn));
  }

  /**
   * `map` for functions that may reject a record by throwing: the record goes to the bad-record
   * policy (fail | skip | dead-letter with the error as reason) instead of failing the batch.
   * The policy is the input's (e.g. the Kafka stream's `badRecords`) unless given here.
   *
   * @example
   * ```ts
   * const parsed = records.tryMap((r) => parseAccessLog(r.value), { name: 'parse' });
   * ```
   */
  tryMap<U>(fn: (record: T) => U, opts?: TryMapOptions): DStream<U> {
    validateBadRecords(opts?.badRecords, 'tryMap.badRecords');
    const inputs = [...this.inputNames];
    const own = opts?.badRecords;
    const policyOf = (): { owner: string; options: BadRecordsOptions } => {
      if (own) return { owner: name, options: own };
      const withPolicy = inputs
        .map((i) => ({ owner: i, options: this.graph.badRecords.get(i) }))
        .filter((x) => x.options);
      return (
        (withPolicy[0] as { owner: string; options: BadRecordsOptions } | undefined) ?? {
          owner: name,
          options: { policy: 'fail' },
        }
      );
    };
    let name = '';
    const stream: DStream<U> = this.#derive(
      'tryMap',
      opts,
      own ? { badRecords: own.policy } : {},
      ([b], ctx, run) => {
        const { owner, options } = policyOf();
        return b!.flatMap((r) => {
          try {
            return [fn(r)];
          } catch (e) {
            const reason = e instanceof Error ? e.message : String(e);
            run.badRecords.handle(
              options.policy,
              { input: owner, operator: name, reason, batchTime: ctx.time, ...originOf(r) },
              e,
            );
            return [];
          }
        });
      },
    );
    name = stream.name;
    if (own) registerBadRecords(this.graph, name, own);
    return stream;
  }

  /** `map` to key/value pairs, with the tuple type inferred: `.mapToPair((w) => [w, 1])`. */
  mapToPair<K, V>(fn: (record: T) => readonly [K, V], opts?: Named): DStream<[K, V]> {
    return this.#derive('mapToPair', opts, {}, ([b]) => b!.mapToPair(fn));
  }

  flatMap<U>(fn: (record: T) => Iterable<U>, opts?: Named): DStream<U> {
    return this.#derive('flatMap', opts, {}, ([b]) => b!.flatMap(fn));
  }

  filter<S extends T>(fn: (record: T) => record is S, opts?: Named): DStream<S>;
  filter(fn: (record: T) => boolean, opts?: Named): DStream<T>;
  filter(fn: (record: T) => boolean, opts?: Named): DStream<T> {
    return this.#derive('filter', opts, {}, ([b]) => b!.filter(fn));
  }

  /** Applies `fn` to each partition as a whole (e.g. to open one connection per partition). */
  mapPartitions<U>(fn: (records: readonly T[], index: number) => Iterable<U>, opts?: Named): DStream<U> {
    return this.#derive('mapPartitions', opts, {}, ([b]) => b!.mapPartitions(fn));
  }

  /** The records of this stream and of the others, batch by batch. */
  union(others: DStream<T> | DStream<T>[], opts?: Named): DStream<T> {
    const list = Array.isArray(others) ? others : [others];
    return this.#derive('union', opts, {}, ([b, ...rest]) => b!.union(...(rest as Batch<T>[])), list);
  }

  /** Spreads each batch's records round-robin over `numPartitions` partitions. */
  repartition(numPartitions: number, opts?: Named): DStream<T> {
    checkPartitions(numPartitions);
    return this.#derive('repartition', opts, { numPartitions }, ([b]) => b!.repartition(numPartitions));
  }

  /** One record per batch: its number of records (0 when empty). */
  count(opts?: Named): DStream<number> {
    return this.#derive('count', opts, {}, ([b]) => b!.count());
  }

  /** `[value, count]` per distinct value in each batch. */
  countByValue(opts?: ShuffleOptions): DStream<[T, number]> {
    return this.#derive('countByValue', opts, shuffleOptions(opts), ([b]) =>
      b!.countByValue(opts?.numPartitions),
    );
  }

  /** One record per non-empty batch: all its records combined with `fn`. */
  reduce(fn: (a: T, b: T) => T, opts?: Named): DStream<T> {
    return this.#derive('reduce', opts, {}, ([b]) => b!.reduce(fn));
  }

  reduceByKey<K, V>(
    this: DStream<Pair<K, V>>,
    fn: (a: V, b: V) => V,
    opts?: ShuffleOptions,
  ): DStream<[K, V]> {
    return this.#derive('reduceByKey', opts, shuffleOptions(opts), ([b]) =>
      (b as Batch<Pair<K, V>>).reduceByKey(fn, opts?.numPartitions),
    );
  }

  groupByKey<K, V>(this: DStream<Pair<K, V>>, opts?: ShuffleOptions): DStream<[K, V[]]> {
    return this.#derive('groupByKey', opts, shuffleOptions(opts), ([b]) =>
      (b as Batch<Pair<K, V>>).groupByKey(opts?.numPartitions),
    );
  }

  mapValues<K, V, W>(this: DStream<Pair<K, V>>, fn: (value: V) => W, opts?: Named): DStream<[K, W]> {
    return this.#derive('mapValues', opts, {}, ([b]) => (b as Batch<Pair<K, V>>).mapValues(fn));
  }

  flatMapValues<K, V, W>(
    this: DStream<Pair<K, V>>,
    fn: (value: V) => Iterable<W>,
    opts?: Named,
  ): DStream<[K, W]> {
    return this.#derive('flatMapValues', opts, {}, ([b]) => (b as Batch<Pair<K, V>>).flatMapValues(fn));
  }

  join<K, V, W>(
    this: DStream<Pair<K, V>>,
    other: DStream<Pair<K, W>>,
    opts?: ShuffleOptions,
  ): DStream<[K, [V, W]]> {
    return this.#binary('join', other, opts, (a, b) => a.join(b, opts?.numPartitions));
  }

  leftOuterJoin<K, V, W>(
    this: DStream<Pair<K, V>>,
    other: DStream<Pair<K, W>>,
    opts?: ShuffleOptions,
  ): DStream<[K, [V, W | undefined]]> {
    return this.#binary('leftOuterJoin', other, opts, (a, b) => a.leftOuterJoin(b, opts?.numPartitions));
  }

  rightOuterJoin<K, V, W>(
    this: DStream<Pair<K, V>>,
    other: DStream<Pair<K, W>>,
    opts?: ShuffleOptions,
  ): DStream<[K, [V | undefined, W]]> {
    return this.#binary('rightOuterJoin', other, opts, (a, b) => a.rightOuterJoin(b, opts?.numPartitions));
  }

  fullOuterJoin<K, V, W>(
    this: DStream<Pair<K, V>>,
    other: DStream<Pair<K, W>>,
    opts?: ShuffleOptions,
  ): DStream<[K, [V | undefined, W | undefined]]> {
    return this.#binary('fullOuterJoin', other, opts, (a, b) => a.fullOuterJoin(b, opts?.numPartitions));
  }

  cogroup<K, V, W>(
    this: DStream<Pair<K, V>>,
    other: DStream<Pair<K, W>>,
    opts?: ShuffleOptions,
  ): DStream<[K, [V[], W[]]]> {
    return this.#binary('cogroup', other, opts, (a, b) => a.cogroup(b, opts?.numPartitions));
  }

  #binary<K, V, W, R>(
    this: DStream<Pair<K, V>>,
    kind: string,
    other: DStream<Pair<K, W>>,
    opts: ShuffleOptions | undefined,
    fn: (a: Batch<Pair<K, V>>, b: PairInput<K, W>) => Batch<R>,
  ): DStream<R> {
    return this.#derive(
      kind,
      opts,
      shuffleOptions(opts),
      ([a, b]) => fn(a as Batch<Pair<K, V>>, b as Batch<Pair<K, W>>),
      [other],
    );
  }

  // ---- Windows (Spark's window operations). Length and slide are multiples of this stream's slide;
  // a windowed stream produces a batch only at its slide times.

  /** The union of the batches of the last `windowMs`, every `slideMs` (default: every batch). */
  window(windowMs: number, opts?: WindowOptions): DStream<T> {
    const slideMs = this.#checkWindow(windowMs, opts?.slideMs);
    return this.#stateful('window', opts, { windowMs, slideMs }, slideMs, (name) => {
      const w = windowState<T>(name, windowMs);
      return { handle: w.handle, compute: ([b], ctx, _run, valid) => w.step(ctx.time, b, valid) };
    });
  }

  /** One record per slide: the number of records in the window (Spark: kept at 0 once data has passed). */
  countByWindow(windowMs: number, opts?: WindowOptions): DStream<number> {
    return this.map(() => 1, sub(opts, 'ones')).reduceByWindow((a, b) => a + b, windowMs, {
      ...opts,
      inverse: (a, b) => a - b,
    });
  }

  /**
   * One record per slide: all records of the window combined with `fn`. With `inverse`, computed
   * incrementally from the previous window (as Spark's reduceByWindow with invReduceFunc).
   */
  reduceByWindow(
    fn: (a: T, b: T) => T,
    windowMs: number,
    opts?: WindowOptions & { inverse?(a: T, b: T): T },
  ): DStream<T> {
    if (opts?.inverse) {
      return this.mapToPair((r): [number, T] => [1, r], sub(opts, 'keyed'))
        .reduceByKeyAndWindow(fn, windowMs, { ...opts, name: sub(opts, 'window')?.name, numPartitions: 1 })
        .map(([, v]) => v, opts);
    }
    return this.reduce(fn, sub(opts, 'batch'))
      .window(windowMs, { slideMs: opts?.slideMs, name: sub(opts, 'window')?.name })
      .reduce(fn, opts);
  }

  /**
   * `[key, reduced]` over the window, every slide. With `inverse`, incremental: the previous
   * window's values minus the batches that left plus those that entered; keys then stay (e.g. at 0)
   * unless `filter` drops them.
   */
  reduceByKeyAndWindow<K, V>(
    this: DStream<Pair<K, V>>,
    fn: (a: V, b: V) => V,
    windowMs: number,
    opts?: WindowOptions & { inverse?(a: V, b: V): V; filter?(pair: [K, V]): boolean },
  ): DStream<[K, V]> {
    const slideMs = this.#checkWindow(windowMs, opts?.slideMs);
    const perBatch = this.reduceByKey(fn, { ...sub(opts, 'batch'), numPartitions: opts?.numPartitions });
    if (!opts?.inverse) {
      return perBatch
        .window(windowMs, { slideMs, name: sub(opts, 'window')?.name })
        .reduceByKey(fn, { name: opts?.name, numPartitions: opts?.numPartitions });
    }
    const inverse = opts.inverse;
    return perBatch.#stateful(
      'reduceByKeyAndWindow',
      opts,
      { windowMs, slideMs, inverse: true, filter: Boolean(opts.filter) },
      slideMs,
      (name) => {
        const w = invertibleWindowState<K, V>(name, {
          windowMs,
          slideMs,
          reduce: fn,
          inverse,
          filter: opts.filter,
          numPartitions: () => opts.numPartitions ?? 1,
        });
        return { handle: w.handle, compute: ([b], ctx, _run, valid) => w.step(ctx.time, b, valid) };
      },
    );
  }

  /** `[value, count]` over the window, every slide; values whose count fell to 0 are dropped. */
  countByValueAndWindow(windowMs: number, opts?: WindowOptions): DStream<[T, number]> {
    return this.mapToPair((r): [T, number] => [r, 1], sub(opts, 'ones')).reduceByKeyAndWindow(
      (a, b) => a + b,
      windowMs,
      {
        ...opts,
        inverse: (a, b) => a - b,
        filter: ([, n]) => n !== 0,
      },
    );
  }

  /** `[key, values[]]` over the window, every slide. */
  groupByKeyAndWindow<K, V>(
    this: DStream<Pair<K, V>>,
    windowMs: number,
    opts?: WindowOptions,
  ): DStream<[K, V[]]> {
    return this.window(windowMs, { slideMs: opts?.slideMs, name: sub(opts, 'window')?.name }).groupByKey({
      name: opts?.name,
      numPartitions: opts?.numPartitions,
    });
  }

  // ---- State across batches (Spark's updateStateByKey and mapWithState).

  /**
   * Running state per key: after every batch, `fn(values of the key in this batch, previous state)`
   * for every key with state or new values; returning `undefined` removes the key. The stream is
   * every key's state after each batch.
   *
   * @example
   * ```ts
   * const totals = words.mapToPair((w) => [w, 1]).updateStateByKey((vs: number[], s?: number) => (s ?? 0) + vs.length);
   * ```
   */
  updateStateByKey<K, V, S>(
    this: DStream<Pair<K, V>>,
    fn: (values: V[], state: S | undefined) => S | undefined,
    opts?: ShuffleOptions & { readonly initialState?: Iterable<Pair<K, S>> },
  ): DStream<[K, S]> {
    const partitions = opts?.numPartitions;
    return this.#stateful('updateStateByKey', opts, shuffleOptions(opts), this.slideMs, (name) => {
      const u = updateState<K, V, S>(name, fn, opts?.initialState, () => partitions ?? 1);
      return { handle: u.handle, compute: ([b]) => (b ? u.step(b) : undefined) };
    });
  }

  /**
   * Spark's mapWithState: `spec.fn(key, value, state)` for every record, where `state` can be read,
   * updated or removed; what it returns (unless undefined) is emitted. Keys idle longer than
   * `spec.timeoutMs` get one more call with `state.isTimingOut()` and are removed.
   * `.stateSnapshots()` is every key's state after each batch.
   */
  mapWithState<K, V, S, U>(
    this: DStream<Pair<K, V>>,
    spec: MapWithStateSpec<K, V, S, U>,
    opts?: Named,
  ): DStream<U> & { stateSnapshots(opts?: Named): DStream<[K, S]> } {
    if (spec.timeoutMs !== undefined && !(Number.isInteger(spec.timeoutMs) && spec.timeoutMs > 0)) {
      throw new PipelineDefinitionError(
        `mapWithState timeoutMs must be a positive whole number, got ${spec.timeoutMs}`,
        'Pass milliseconds, e.g. 60000',
      );
    }
    let m!: ReturnType<typeof mapWithStateOf<K, V, S, U>>;
    const emitted = this.#stateful(
      'mapWithState',
      opts,
      { timeout: spec.timeoutMs ?? null },
      this.slideMs,
      (name) => {
        m = mapWithStateOf<K, V, S, U>(name, spec, () => spec.numPartitions ?? 1);
        return { handle: m.handle, compute: ([b], ctx) => (b ? m.step(ctx.time, b) : undefined) };
      },
    );
    return Object.assign(emitted, {
      stateSnapshots: (o?: Named): DStream<[K, S]> =>
        new DStream<[K, S]>(this.graph, {
          kind: 'stateSnapshots',
          name: o?.name,
          parents: [emitted],
          compute: (_p, ctx) => m.snapshotAt(ctx.time),
        }),
    });
  }

  #checkWindow(windowMs: number, slideMs: number | undefined): number {
    const slide = slideMs ?? this.slideMs;
    for (const [what, v] of [
      ['window length', windowMs],
      ['slide', slide],
    ] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % this.slideMs !== 0) {
        throw new PipelineDefinitionError(
          `The ${what} of a window over '${this.name}' is ${v} ms, not a positive multiple of its slide (${this.slideMs} ms)`,
          `Use a multiple of ${this.slideMs} ms (the batch interval for an input)`,
        );
      }
    }
    return slide;
  }

  #stateful<U>(
    kind: string,
    opts: Named | undefined,
    options: Record<string, unknown>,
    slideMs: number,
    make: (name: string) => { handle: StateHandle; compute: Compute<U> },
  ): DStream<U> {
    // The state needs the stream's final name, and the stream needs the state's compute.
    const ref: { impl?: { handle: StateHandle; compute: Compute<U> } } = {};
    const stream = new DStream<U>(this.graph, {
      kind,
      name: opts?.name,
      parents: [this],
      options,
      stateful: true,
      slideMs,
      compute: (parents, ctx, run, valid) => ref.impl!.compute(parents, ctx, run, valid),
    });
    const impl = (ref.impl = make(stream.name));
    this.graph.stateful.push({ handle: impl.handle, force: (run) => stream[COMPUTE](run) });
    return stream;
  }

  /**
   * Any batch-to-batch function, run once per batch: e.g. a join with reference data that is
   * reloaded while the job runs. May be async.
   *
   * @example
   * ```ts
   * const allowed = requests.transform(async (batch) => {
   *   const blacklist = await loadBlacklist(); // [ip, true] pairs
   *   return batch.leftOuterJoin(blacklist).filter(([, [, banned]]) => !banned).map(([, [line]]) => line);
   * });
   * ```
   */
  transform<U>(
    fn: (batch: Batch<T>, ctx: BatchContext) => Batch<U> | Promise<Batch<U>>,
    opts?: Named,
  ): DStream<U> {
    return this.#derive('transform', opts, {}, ([b], ctx) => fn(b!, ctx));
  }

  /** Like {@link transform}, over the batches of two streams at the same time. */
  transformWith<U, W>(
    other: DStream<U>,
    fn: (a: Batch<T>, b: Batch<U>, ctx: BatchContext) => Batch<W> | Promise<Batch<W>>,
    opts?: Named,
  ): DStream<W> {
    return this.#derive('transformWith', opts, {}, ([a, b], ctx) => fn(a!, b!, ctx), [other]);
  }

  /**
   * An output: `fn` gets each batch, its time and its offset ranges. The batch counts as done only
   * when the promise `fn` returns resolves; if it rejects, the batch fails and nothing of it is
   * committed. With `transaction`, `fn` runs inside the offset store's transaction (exactly-once).
   *
   * @example
   * ```ts
   * rows.foreachBatch(async (batch, { transaction: client }) => {
   *   for (const [name, id] of batch.collect()) await client.query('insert into t values ($1, $2)', [name, id]);
   * }, { transaction: pgOffsets });
   * ```
   */
  foreachBatch<Tx>(
    fn: (batch: Batch<T>, ctx: BatchContext & { readonly transaction: Tx }) => void | Promise<void>,
    opts: ForeachBatchOptions<Tx> & { readonly transaction: TransactionalOffsetStore<Tx> },
  ): void;
  foreachBatch(
    fn: (batch: Batch<T>, ctx: BatchContext) => void | Promise<void>,
    opts?: ForeachBatchOptions,
  ): void;
  foreachBatch(fn: (batch: Batch<T>, ctx: any) => void | Promise<void>, opts?: ForeachBatchOptions): void {
    const store = opts?.transaction;
    this.#output(
      'foreachBatch',
      opts,
      {},
      {
        idempotent: opts?.idempotent ?? false,
        write: async (batch, ctx) => {
          await fn(batch, ctx);
        },
        transactional: store && {
          store,
          write: (tx, batch, ctx) => Promise.resolve(fn(batch, { ...ctx, transaction: tx })),
        },
      },
    );
  }

  /**
   * Writes every batch to `sink`. The guarantee is checked against the sink and the offset store
   * when the context starts: a combination that cannot give it is refused with the reason.
   */
  writeTo(sink: Sink<T>, opts?: OutputOptions): void {
    this[WRITE_TO](sink, opts, false);
  }

  /** @internal `writeTo`, or (late) an output computed after every other: the dead-letter sinks. */
  [WRITE_TO](sink: Sink<T>, opts: OutputOptions | undefined, late: boolean): void {
    const transactional = isTransactionalSink(sink)
      ? {
          store: sink.store,
          write: (tx: unknown, batch: Batch<T>, ctx: BatchContext) => sink.writeInTransaction(tx, batch, ctx),
        }
      : undefined;
    this.#output(
      sink.kind,
      opts,
      { ...sink.describe(), ...(opts?.guarantee ? { guarantee: opts.guarantee } : {}) },
      {
        idempotent: sink.idempotent,
        write: (batch, ctx) => sink.write(batch, ctx),
        transactional,
        open: (ctx) => sink.open(ctx),
        close: () => sink.close(),
        ...(sink.checkAccess ? { checkAccess: sink.checkAccess.bind(sink) } : {}),
        late,
      },
    );
  }

  /** Prints the first `num` records of each batch under a header with the batch time, as Spark does. */
  print(num = 10, opts?: PrintOptions): void {
    if (!Number.isInteger(num) || num < 1)
      throw new PipelineDefinitionError(`print(${num})`, 'Print at least 1 record');
    const write = opts?.write ?? ((line: string) => console.log(line));
    this.#output(
      'print',
      opts,
      { num },
      {
        idempotent: false,
        write: (batch, ctx) => {
          const first = batch.take(num + 1);
          const rule = '-------------------------------------------';
          write(`${rule}\nTime: ${ctx.time} ms\n${rule}`);
          for (const r of first.slice(0, num)) write(formatRecord(r));
          if (first.length > num) write('...');
          write('');
        },
      },
    );
  }

  #output(
    kind: string,
    opts: OutputOptions | undefined,
    options: Record<string, unknown>,
    impl: {
      idempotent: boolean;
      write: (batch: Batch<T>, ctx: BatchContext) => void | Promise<void>;
      transactional?: {
        store: TransactionalOffsetStore<any>;
        write: (tx: unknown, batch: Batch<T>, ctx: BatchContext) => Promise<void>;
      };
      open?: (ctx: SinkContext) => Promise<void>;
      close?: () => Promise<void>;
      checkAccess?: CheckAccess;
      late?: boolean;
    },
  ): void {
    if (opts?.guarantee !== undefined && !GUARANTEES.includes(opts.guarantee)) {
      throw new PipelineDefinitionError(
        `Unknown guarantee ${JSON.stringify(opts.guarantee)}`,
        `Use one of ${GUARANTEES.join(', ')}`,
      );
    }
    const name = this.graph.name(kind, opts?.name);
    this.graph.add({ name, kind, parents: [this.name], options, output: true });
    const call = async (
      run: BatchRun,
      write: (batch: Batch<T>, ctx: BatchContext) => void | Promise<void>,
    ) => {
      const batch = await this[COMPUTE](run);
      if (batch === undefined) return; // not on this stream's slide: no batch, as in Spark
      try {
        await write(batch, batchContext(run, this.inputNames));
      } catch (e) {
        throw e instanceof OperatorError ? e : new OperatorError(name, run.time, e);
      }
    };
    const tx = impl.transactional;
    this.graph.outputs.push({
      name,
      kind,
      guarantee: opts?.guarantee,
      idempotent: impl.idempotent,
      transactional: tx && {
        store: tx.store,
        run: (run, handle) => call(run, (batch, ctx) => tx.write(handle, batch, ctx)),
      },
      open: impl.open,
      close: impl.close,
      ...(impl.checkAccess ? { checkAccess: impl.checkAccess } : {}),
      prepare: async (run) => void (await this[COMPUTE](run)),
      late: impl.late ?? false,
      run: (run) => call(run, impl.write),
    });
  }
}

/**
 * Records the bad-record policy of an owner and, for dead-letter, adds its output (an input or a tryMap): a stream of the letters
 * collected in each batch, written to the policy's sink after every other output has computed.
 */
export function registerBadRecords(graph: Graph, owner: string, options: BadRecordsOptions): void {
  graph.badRecords.set(owner, options);
  if (options.policy !== 'dead-letter' || !options.deadLetter) return;
  const letters = new DStream<DeadLetter>(graph, {
    kind: 'deadLetters',
    name: `${owner}.dead-letters`,
    parents: [],
    options: {},
    input: false,
    compute: (_p, _c, run) => new Batch([run.badRecords.letters(owner)]),
  });
  letters[WRITE_TO](
    options.deadLetter,
    { name: `${owner}.dead-letter-sink`, guarantee: options.guarantee },
    true,
  );
}

/** Names the inner nodes of a composite operator after the user's name, so they stay stable. */
function sub(opts: Named | undefined, part: string): Named | undefined {
  return opts?.name ? { name: `${opts.name}.${part}` } : undefined;
}

function batchContext(run: BatchRun, inputs: ReadonlySet<string>): BatchContext {
  const offsetRanges: OffsetRange[] = [];
  for (const name of inputs) offsetRanges.push(...(run.inputs.get(name)?.offsetRanges ?? []));
  return { time: run.time, offsetRanges };
}

function shuffleOptions(opts: ShuffleOptions | undefined): Record<string, unknown> {
  if (opts?.numPartitions === undefined) return {};
  checkPartitions(opts.numPartitions);
  return { numPartitions: opts.numPartitions };
}

function checkPartitions(n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw new PipelineDefinitionError(`numPartitions must be a positive integer, got ${n}`, 'Pass 1 or more');
  }
}

/**
 * Spark prints tuples as `(a,b)`; records that are arrays print the same way, objects as JSON. Control
 * characters are escaped (`\n`, `\x1b`, ...): a record prints as one line, which can never pass for
 * a log line nor drive the terminal.
 */
export function formatRecord(r: unknown): string {
  if (Array.isArray(r)) return `(${r.map(formatRecord).join(',')})`;
  if (r === undefined) return 'None';
  if (typeof r === 'object' && r !== null) {
    if (Buffer.isBuffer(r)) return escapeControlChars(r.toString('utf8'));
    return escapeControlChars(JSON.stringify(r));
  }
  return escapeControlChars(String(r));
}
