/**
 * Kafka direct stream, as Spark's `KafkaUtils.createDirectStream`: each batch is one offset range
 * per topic-partition, fixed by {@link KafkaDirectSource.plan} before anything is read, and read by
 * {@link KafkaDirectSource.fetch} exactly, as one batch partition per Kafka partition.
 *
 * One long-lived librdkafka consumer with manual assignment (no group membership, no rebalance),
 * auto commit off. Records the consumer delivers beyond a batch's `untilOffset` are kept for the
 * next batch. A partition's range is complete once the consumer has delivered a record at or past
 * `untilOffset` or reported partition EOF at or past it, so offset gaps (transaction markers,
 * compaction) never make a fetch wait.
 *
 * Retention loss: on open and on every plan, each partition's position is checked against its
 * valid range [log start, end] (one ListOffsets round for all partitions), and a fetch that meets
 * Kafka's offset-out-of-range error is resolved the same way; what happens then is the
 * `offsetOutOfRange` policy (see {@link KafkaDirectOptions.offsetOutOfRange}).
 *
 * Rate control (Spark's `maxRatePerPartition`, `backpressure`): each plan caps each partition's
 * range with a {@link RateController} fed after every completed batch.
 */
import {
  BrokerUnreachableError,
  DeserializationError,
  InvalidOptionError,
  OffsetOutOfRangeError,
  SourceError,
} from '../core/errors.js';
import { validateBadRecords, type BadRecordsOptions } from '../core/bad-records.js';
import type { Logger } from '../core/logger.js';
import type { OffsetStore } from '../core/offsets.js';
import { RateController, validateRateOptions, type RateOptions } from '../core/rate.js';
import type {
  BatchFeedback,
  InputMetrics,
  InputPlan,
  OffsetRange,
  OffsetResetEvent,
  Source,
  SourceContext,
} from '../core/source.js';
import {
  KafkaAdmin,
  tpKey,
  type IsolationLevelName,
  type PartitionBounds,
  type RetryPolicy,
} from './admin.js';
import { KafkaOffsetStore } from './offset-store.js';
import {
  deserializerLabel,
  isBuiltinDeserializer,
  resolveDeserializer,
  type DeserializeContext,
  type Deserialized,
  type Deserializer,
  type DeserializerFn,
  type KafkaHeader,
} from './deserializers.js';
import {
  CODES,
  KafkaConsumer,
  call,
  errorCode,
  delay,
  describeError,
  isOffsetOutOfRange,
  isTransient,
  isUnreachable,
  redactConfig,
  type EofEvent,
  type RdKafkaConsumer,
  type RdMessage,
} from './rdkafka.js';

/** One Kafka record, deserialized. */
export interface KafkaRecord<K = string | null, V = string | null> {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: K;
  readonly value: V;
  /** In the order the producer added them; repeated keys are kept. Empty when there are none. */
  readonly headers: readonly KafkaHeader[];
  /** Milliseconds since the epoch (the record's CreateTime or LogAppendTime); -1 if unknown. */
  readonly timestamp: number;
}

/** Offsets per topic and partition: `{ orders: { 0: 42, 1: 17 } }` (Spark's JSON offsets shape). */
export type PartitionOffsets = { [topic: string]: { [partition: number]: number } };

/**
 * Where the first batch starts. `'earliest'`: the log start of every partition. `'latest'` (the
 * default, as Spark): the current end, so only records produced from now on are read. An object
 * gives explicit offsets; in it `-2` means earliest and `-1` latest (Spark's convention), and
 * **partitions (or whole topics) not listed start at earliest**, so no record of a partition the
 * caller did not know about is skipped.
 */
export type StartingOffsets = 'earliest' | 'latest' | PartitionOffsets;

/**
 * What to do when a position to read from is outside its partition's valid range [log start,
 * end]: below the log start (the records were deleted by retention before they were read) or past
 * the end (the topic was deleted and re-created).
 *
 * - `'fail'` (the default): throw {@link OffsetOutOfRangeError} naming the topic, partition, offset
 *   and the valid range. Nothing is skipped silently.
 * - `'earliest'`: continue at the log start (or, past the end, go back to it).
 * - `'latest'`: continue at the end: records still in the partition are skipped too.
 *
 * Under `'earliest'` and `'latest'` every move is reported through the engine
 * (`StreamingListener.onOffsetReset`, logged) with `recordsLost` = the offsets skipped that were
 * never read (`resetTo - offset` when moving forward, 0 when moving back), and counted in the
 * batch's `metrics.recordsLost`.
 */
export type OffsetOutOfRangePolicy = 'fail' | 'earliest' | 'latest';

export interface KafkaDirectOptions {
  /** Stable name of the input stream (used by {@link createDirectStream}). */
  readonly name?: string;
  /** Topics to read, in the order their partitions appear in a batch. Non-empty. */
  readonly topics: readonly string[];
  /** Default: env `KAFKA_BOOTSTRAP`, else `127.0.0.1:9092`. */
  readonly bootstrapServers?: string;
  /** Consumer group id (no group membership is used: offsets are assigned). Default: the pipeline id. */
  readonly groupId?: string;
  /** Default `'latest'`. See {@link StartingOffsets}. */
  readonly startingOffsets?: StartingOffsets;
  /** Default `'string'`. `null` keys stay `null` with the built-ins. */
  readonly keyDeserializer?: Deserializer<any>;
  /** Default `'string'`. `null` values (tombstones) stay `null` with the built-ins. */
  readonly valueDeserializer?: Deserializer<any>;
  /** Create missing topics (through the admin API) instead of failing with TopicNotFoundError. */
  readonly createTopics?: { readonly partitions: number; readonly replicationFactor?: number };
  /**
   * Bounds every wait on the cluster: `attempts` tries of at most `timeoutMs` each (default 3 x
   * 5000 ms), then BrokerUnreachableError. A fetch that gets no record for `attempts x timeoutMs`
   * fails the same way.
   */
  readonly connect?: { readonly attempts?: number; readonly timeoutMs?: number };
  /** librdkafka consumer properties passed through (never logged with their secrets). */
  readonly consumerConfig?: Readonly<Record<string, string | number | boolean>>;
  /** Default `'read_committed'`: records of open or aborted transactions are never read. */
  readonly isolationLevel?: IsolationLevelName;
  /**
   * Default `'fail'`. What to do with a position outside its partition's valid range: a stored
   * offset (from the offset store, or {@link KafkaDirectSource.startAt}) whose records were
   * deleted by retention, or that lies past the end of a re-created topic. Checked on open, at
   * every plan, and when a fetch meets Kafka's offset-out-of-range error (records deleted between
   * a batch's plan and its fetch: the batch keeps its ranges, the deleted records are a gap in
   * them, counted as lost). Explicit `startingOffsets` are the caller's own choice and always fail
   * with a SourceError when out of range. See {@link OffsetOutOfRangePolicy}.
   */
  readonly offsetOutOfRange?: OffsetOutOfRangePolicy;
  /**
   * Records per second per partition: a batch takes at most `maxRatePerPartition x interval`
   * records from each partition (Spark's `spark.streaming.kafka.maxRatePerPartition`), so a backlog
   * is worked off over several batches. Default: no cap.
   */
  readonly maxRatePerPartition?: number;
  /** Records per batch over all partitions, shared in proportion to what each would take. Default: no cap. */
  readonly maxRecordsPerBatch?: number;
  /**
   * Adapt the rate so processing keeps up with the batch interval (Spark's PID estimator), never
   * above `maxRatePerPartition`. `true` or `{ initialRate, minRate, proportional, integral,
   * derivative }`. `initialRate` (records/s over all partitions) caps the first batches after
   * every (re)start, until the estimator has measured two batches, so a backlog never becomes one
   * giant batch. Default off.
   */
  readonly backpressure?: RateOptions['backpressure'];
  /**
   * What happens to records that fail to deserialize, and to records a `tryMap` downstream rejects:
   * `{ policy: 'fail' }` (default: a DeserializationError naming topic, partition and offset stops
   * the job), `'skip'` (counted per batch) or `'dead-letter'` with a `deadLetter` sink (e.g.
   * `kafkaDeadLetterSink({ topic })`), which gets the original key and value bytes and the reason.
   */
  readonly badRecords?: BadRecordsOptions;
}

/** The key type the options produce. */
export type KafkaKeyOf<O> = O extends { keyDeserializer: infer D } ? Deserialized<D> : string | null;
/** The value type the options produce. */
export type KafkaValueOf<O> = O extends { valueDeserializer: infer D } ? Deserialized<D> : string | null;

/** How many messages one native consume call returns at most. */
export const CONSUME_BATCH = 10_000;
/** How long one native consume call waits for its first message. */
const CONSUME_WAIT_MS = 100;
/** A fetch that gets nothing for this long checks whether a partition it waits for fell out of range. */
const OUT_OF_RANGE_PROBE_MS = 1000;

/**
 * The librdkafka configuration of the direct source's consumer (exported so that the benchmark's
 * raw consume loop runs with exactly the same settings).
 */
export function directConsumerConfig(o: {
  bootstrapServers: string;
  groupId: string;
  clientId: string;
  isolationLevel: IsolationLevelName;
  consumerConfig?: Readonly<Record<string, string | number | boolean>>;
}): Record<string, string | number | boolean> {
  return {
    'client.id': o.clientId.slice(0, 200),
    'allow.auto.create.topics': false,
    // librdkafka pauses fetching a partition for this long once its local queue is full
    // (queued.min.messages); the default 1000 ms starves a consumer that drains the queue fast
    // (measured: 115k -> 250k records/s on the benchmark).
    'fetch.queue.backoff.ms': 10,
    ...o.consumerConfig,
    'bootstrap.servers': o.bootstrapServers,
    'group.id': o.groupId,
    'enable.auto.commit': false,
    'enable.auto.offset.store': false,
    'enable.partition.eof': true,
    'isolation.level': o.isolationLevel,
    // A position that fell out of retention is an error, never a silent jump. Only effective in
    // the topic configuration too: see DIRECT_TOPIC_CONFIG.
    'auto.offset.reset': 'error',
  };
}

/**
 * The topic configuration of the direct source's consumer (the second argument of `new
 * KafkaConsumer`). `auto.offset.reset` must be set here: the client builds the topic configuration
 * from this argument, and an empty one silently resets an out-of-range position to the END
 * (measured with librdkafka 2.15: `offset reset ... to offset END`), whatever the global
 * configuration says. With `error`, the consumer reports ERR__AUTO_OFFSET_RESET and stops
 * fetching the partition until it is sought, and the `offsetOutOfRange` policy decides.
 */
export const DIRECT_TOPIC_CONFIG: Readonly<Record<string, string>> = Object.freeze({
  'auto.offset.reset': 'error',
});

/** How the direct source's consumer consumes: `consume(CONSUME_BATCH)` calls that wait only for their first message. */
export function tuneDirectConsumer(consumer: RdKafkaConsumer): void {
  consumer.setDefaultConsumeTimeout(CONSUME_WAIT_MS);
  // Wait for the first message only; then take what is ready. Not in the typings.
  const c = consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage?: (b: boolean) => void };
  c.setDefaultIsTimeoutOnlyForFirstMessage?.(true);
}

/** The engine's bad-record hook (SourceContext.reportBadRecord): throws under `fail`, else counts. */
type BadRecordReporter = (
  letter: {
    operator: string;
    reason: string;
    topic: string;
    partition: number;
    offset: number;
    key: Buffer | null;
    value: unknown;
  },
  error: unknown,
) => void;

interface IncrementalAssign {
  incrementalAssign(assignments: { topic: string; partition: number; offset?: number }[]): void;
  incrementalUnassign(assignments: { topic: string; partition: number }[]): void;
}

/** One stored position, as the engine's offset store reports it. */
interface StoredOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

const EMPTY_HEADERS: readonly KafkaHeader[] = Object.freeze([]);

/** librdkafka keys the source sets itself, and the option to use instead. */
const OWNED_CONFIG: Record<string, string> = {
  'bootstrap.servers': 'bootstrapServers',
  'metadata.broker.list': 'bootstrapServers',
  'group.id': 'groupId',
  'isolation.level': 'isolationLevel',
  'auto.offset.reset': 'startingOffsets',
  'enable.auto.commit': '(always false: offsets are managed by Sluice)',
  'enable.auto.offset.store': '(always false: offsets are managed by Sluice)',
  'enable.partition.eof': '(always true: fetch relies on it)',
};

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

/** What the fetches of one plan found deleted, so that fetching the plan again counts nothing twice. */
interface PlanLoss {
  /** The plan's own metrics object. */
  readonly metrics: { recordsLost: number };
  /** tpKey -> where the partition's range continues after records found deleted: fetches start there. */
  readonly skip: Map<string, number>;
}

interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  /** Where the next plan starts: the previous plan's untilOffset, or the starting position. */
  next: number;
  /** The offset the last completed batch ended at (after commit). */
  committed: number;
  /** The buffer holds every record the consumer delivered in [coverStart, reached). */
  coverStart: number;
  /** The consumer has delivered (or skipped, at EOF) every record below this offset. */
  reached: number;
  /** Delivered records at or after coverStart not yet handed out, ascending. */
  buffer: RdMessage[];
  /** During a fetch that still needs records of this partition: the range's end; else -1. */
  until: number;
  /** During a fetch: where the records of the range go. */
  out: KafkaRecord<unknown, unknown>[] | undefined;
}

/**
 * The Kafka direct stream source. Build it with {@link createDirectStream}, or pass it to
 * `ctx.stream(source)`.
 *
 * @example
 * ```ts
 * const source = new KafkaDirectSource<string | null, unknown>({
 *   topics: ['orders'],
 *   startingOffsets: 'earliest',
 *   valueDeserializer: 'json',
 * });
 * ctx.stream(source, { name: 'orders' }).count().print();
 * ```
 */
export class KafkaDirectSource<K = string | null, V = string | null> implements Source<KafkaRecord<K, V>> {
  readonly kind = 'kafka';
  /** A batch planned but not committed can be read again after a restart: Kafka keeps the records. */
  readonly replayable = true;
  /** The per-source bad-record policy the engine applies (see {@link KafkaDirectOptions.badRecords}). */
  readonly badRecords: BadRecordsOptions | undefined;
  readonly topics: readonly string[];
  readonly bootstrapServers: string;
  readonly isolationLevel: IsolationLevelName;
  readonly #options: KafkaDirectOptions;
  readonly #policy: { attempts: number; timeoutMs: number };
  readonly #key: DeserializerFn<unknown>;
  readonly #value: DeserializerFn<unknown>;
  readonly #keyCustom: boolean;
  readonly #valueCustom: boolean;
  #ctx: SourceContext | undefined;
  #logger: Logger | undefined;
  #groupId: string | undefined;
  #consumer: RdKafkaConsumer | undefined;
  #admin: KafkaAdmin | undefined;
  /** Batch partition order: topics in option order, partitions ascending. */
  #partitions: PartitionState[] = [];
  /** topic -> partition -> state, for routing delivered messages. */
  #byTopic = new Map<string, PartitionState[]>();
  #pendingEofs: EofEvent[] = [];
  /** Positions given with {@link startAt} before open. */
  #requestedStart: PartitionOffsets | undefined;
  #lastClientError: unknown;
  #closed = false;
  /** The store {@link defaultOffsetStore} made (it connects on first use; closed with the source). */
  #defaultStore: KafkaOffsetStore | undefined;
  readonly #offsetOutOfRange: OffsetOutOfRangePolicy;
  /** Made at open (it needs the batch interval) when a rate option is set; one per (re)start. */
  #rate: RateController | undefined;
  /** Records lost to resets outside a plan (at open, by startAt): reported with the next plan. */
  #pendingLost = 0;
  /** What the fetches of each plan found deleted. */
  readonly #planLoss = new WeakMap<InputPlan, PlanLoss>();

  constructor(options: KafkaDirectOptions) {
    validateOptions(options);
    this.#options = options;
    this.badRecords = options.badRecords;
    this.topics = [...options.topics];
    this.bootstrapServers = options.bootstrapServers ?? process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
    this.isolationLevel = options.isolationLevel ?? 'read_committed';
    this.#policy = {
      attempts: options.connect?.attempts ?? 3,
      timeoutMs: options.connect?.timeoutMs ?? 5000,
    };
    this.#offsetOutOfRange = options.offsetOutOfRange ?? 'fail';
    const kd = options.keyDeserializer ?? 'string';
    const vd = options.valueDeserializer ?? 'string';
    this.#key = resolveDeserializer(kd);
    this.#value = resolveDeserializer(vd);
    this.#keyCustom = typeof kd === 'function';
    this.#valueCustom = typeof vd === 'function';
  }

  describe(): Record<string, unknown> {
    const o = this.#options;
    return {
      topics: this.topics,
      bootstrapServers: this.bootstrapServers,
      groupId: o.groupId ?? this.#ctx?.pipelineId ?? '(pipeline id)',
      startingOffsets: o.startingOffsets ?? 'latest',
      isolationLevel: this.isolationLevel,
      offsetOutOfRange: this.#offsetOutOfRange,
      ...(o.maxRatePerPartition !== undefined ? { maxRatePerPartition: o.maxRatePerPartition } : {}),
      ...(o.maxRecordsPerBatch !== undefined ? { maxRecordsPerBatch: o.maxRecordsPerBatch } : {}),
      ...(o.backpressure ? { backpressure: o.backpressure } : {}),
      keyDeserializer: deserializerLabel(o.keyDeserializer ?? 'string'),
      valueDeserializer: deserializerLabel(o.valueDeserializer ?? 'string'),
      ...(o.createTopics ? { createTopics: o.createTopics } : {}),
      ...(o.consumerConfig ? { consumerConfig: redactConfig(o.consumerConfig) } : {}),
    };
  }

  /** The consumer group the pipeline's offsets are kept under: `groupId`, else the pipeline id. */
  offsetGroup(pipelineId: string): string {
    return this.#options.groupId ?? pipelineId;
  }

  /**
   * Used when the context has no `offsetStore`: the group's commits in Kafka itself (a
   * {@link KafkaOffsetStore} on the same cluster, made once, closed with the source). The engine
   * commits there after the outputs (at-least-once; exactly-once with idempotent outputs), and a
   * restart resumes from those commits.
   */
  defaultOffsetStore(): OffsetStore {
    this.#defaultStore ??= new KafkaOffsetStore({
      bootstrapServers: this.bootstrapServers,
      connect: this.#policy,
      ...(this.#options.consumerConfig ? { clientConfig: this.#options.consumerConfig } : {}),
    });
    return this.#defaultStore;
  }

  async open(ctx: SourceContext): Promise<void> {
    if (this.#ctx)
      throw new SourceError('kafka', 'open() was called twice', 'Use a new KafkaDirectSource per context');
    this.#ctx = ctx;
    this.#logger = ctx.logger.child({ source: 'kafka' });
    this.#groupId = this.offsetGroup(ctx.pipelineId);
    const consumer = await this.#connect(ctx);
    this.#consumer = consumer;
    try {
      // An admin client with connections of its own: on the consumer's connection, a ListOffsets
      // request would wait behind the consumer's long-poll Fetch (fetch.wait.max.ms) every batch.
      const admin = KafkaAdmin.create(this.bootstrapServers, {
        config: {
          ...this.#options.consumerConfig,
          'client.id': `sluice-${ctx.pipelineId}-${ctx.name}-admin`.slice(0, 200),
        },
        policy: this.#retryPolicy(),
      });
      this.#admin = admin;
      const partitions = await admin.ensureTopics(this.topics, this.#options.createTopics);
      for (const topic of this.topics) {
        const states: PartitionState[] = [];
        for (const partition of partitions.get(topic)!) {
          const s: PartitionState = {
            topic,
            partition,
            next: 0,
            committed: 0,
            coverStart: 0,
            reached: 0,
            buffer: [],
            until: -1,
            out: undefined,
          };
          states[partition] = s;
          this.#partitions.push(s);
        }
        this.#byTopic.set(topic, states);
      }
      const o = this.#options;
      if (o.maxRatePerPartition !== undefined || o.maxRecordsPerBatch !== undefined || o.backpressure) {
        this.#rate = new RateController(rateOptionsOf(o), ctx.batchInterval);
      }
      // Precedence: positions given with startAt() > the offset store's positions > startingOffsets.
      const stored = await this.#storedPositions(ctx);
      const resume = mergeOffsets(stored, this.#requestedStart ?? {});
      const start = await this.#startPositions(o.startingOffsets ?? 'latest', resume);
      for (const s of this.#partitions) {
        const offset = start.get(tpKey(s.topic, s.partition))!;
        s.next = s.committed = s.coverStart = s.reached = offset;
      }
      consumer.on('partition.eof', (e) => this.#pendingEofs.push(e));
      consumer.assign(
        this.#partitions.map((s) => ({ topic: s.topic, partition: s.partition, offset: s.next })),
      );
      this.#logger.info(
        { ...this.describe(), groupId: this.#groupId, positions: this.positions() },
        'kafka direct source opened',
      );
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /**
   * Step 1 of a batch: asks the cluster for every partition's valid range (log start, and end = the
   * last stable offset under read_committed, else the high watermark) in one round, applies the
   * `offsetOutOfRange` policy to positions outside it, and fixes the ranges [next, until): `until`
   * is the end, or less under rate control (`next` + the partition's cap).
   *
   * `metrics`: `lag` = records left in each partition after this range; `recordsLost` = records
   * skipped by offset resets since the previous plan (at open, by startAt, by this plan), plus those
   * this plan's fetch finds deleted; `rateLimit` (under rate control) = the rate in force for this
   * batch, records/s over all partitions: the lowest of the backpressure estimate,
   * maxRatePerPartition x partitions and maxRecordsPerBatch / interval.
   */
  async plan(_batchTime: number): Promise<InputPlan> {
    const admin = this.#requireOpen();
    const bounds = await admin.bounds(this.#partitions, this.isolationLevel);
    const ends: number[] = [];
    for (const s of this.#partitions) {
      const b = bounds.get(tpKey(s.topic, s.partition))!;
      const next = this.#checked(s, s.next, b);
      if (next !== s.next) {
        // Reading must start over there: drop what the consumer buffered and seek at fetch.
        s.next = next;
        s.committed = Math.min(s.committed, next);
        s.buffer = [];
        s.coverStart = Number.POSITIVE_INFINITY;
      }
      ends.push(b.end);
    }
    const caps = this.#rate?.caps(this.#partitions.map((s, i) => ends[i]! - s.next));
    const offsetRanges: OffsetRange[] = [];
    const lag: { topic: string; partition: number; lag: number }[] = [];
    for (const [i, s] of this.#partitions.entries()) {
      const end = ends[i]!;
      const cap = caps?.[i];
      const until = cap === undefined ? end : Math.min(end, s.next + cap);
      offsetRanges.push({ topic: s.topic, partition: s.partition, fromOffset: s.next, untilOffset: until });
      lag.push({ topic: s.topic, partition: s.partition, lag: end - until });
    }
    for (const [i, r] of offsetRanges.entries()) this.#partitions[i]!.next = r.untilOffset;
    const rateLimit = this.#rateLimit();
    // Mutable on purpose: a fetch of this plan adds the records it finds deleted.
    const metrics: { rateLimit?: number; lag: typeof lag; recordsLost: number } = {
      ...(rateLimit !== undefined ? { rateLimit } : {}),
      lag,
      recordsLost: this.#pendingLost,
    };
    this.#pendingLost = 0;
    const plan: InputPlan = { offsetRanges, metrics: metrics as InputMetrics };
    this.#planLoss.set(plan, { metrics, skip: new Map() });
    return plan;
  }

  /** Feeds the rate controller (backpressure) with each completed batch. */
  onBatchCompleted(feedback: BatchFeedback): void {
    this.#rate?.update(
      feedback.batchTime,
      feedback.numRecords,
      feedback.processingTime,
      feedback.schedulingDelay,
    );
  }

  /**
   * Step 2: the records with offsets in [fromOffset, untilOffset) of each range, one array per
   * range in the plan's order. Can be called again with the same plan (the ranges are re-read).
   *
   * Records are deserialized as they arrive, so the client's message objects die young; a record
   * that fails goes to the engine's bad-record hook when it has one (which rethrows under `fail`,
   * the default). When a fetch fails, its partitions are re-read from Kafka by the next fetch.
   *
   * Records deleted by retention between the plan and the fetch (Kafka answers offset out of
   * range) are handled by the `offsetOutOfRange` policy within the plan's ranges, which do not
   * change (the engine commits them as they are): `'fail'` throws {@link OffsetOutOfRangeError};
   * `'earliest'` reads the rest of the range from the new log start (nothing more if the log now
   * starts past the range); `'latest'` skips the rest of the range. The records skipped are a gap
   * in the range, reported as an offset reset (`resetTo` within the range) and added to this plan's
   * `metrics.recordsLost`; fetching the plan again starts after the gap and counts nothing twice.
   * The next plan starts at the range's end as always, and resets it by the policy if the log
   * start has passed it too (or, under 'latest', the next plan reads on from there: it does not
   * jump to the end unless that position is out of range).
   */
  async fetch(plan: InputPlan): Promise<KafkaRecord<K, V>[][]> {
    const consumer = this.#requireConsumer();
    const ranges = plan.offsetRanges;
    let loss = this.#planLoss.get(plan);
    // A plan this source did not make has no metrics of ours: its losses go with the next plan.
    const foreign = !loss;
    if (!loss) {
      loss = { metrics: { recordsLost: 0 }, skip: new Map() };
      this.#planLoss.set(plan, loss);
    }
    const lostBefore = loss.metrics.recordsLost;
    const states: PartitionState[] = new Array(ranges.length);
    const out: KafkaRecord<K, V>[][] = new Array(ranges.length);
    const open: PartitionState[] = [];
    for (const [i, r] of ranges.entries()) {
      const s = this.#byTopic.get(r.topic)?.[r.partition];
      if (!s) {
        throw new SourceError(
          'kafka',
          `the plan has ${r.topic}-${r.partition}, which this source does not read`,
          'Pass fetch() a plan made by this source',
        );
      }
      states[i] = s;
    }
    try {
      // Take what the buffers already hold; seek partitions whose range is not where the consumer is.
      for (const [i, r] of ranges.entries()) {
        const s = states[i]!;
        // Past what an earlier fetch of this plan found deleted.
        const from = Math.max(r.fromOffset, loss.skip.get(tpKey(r.topic, r.partition)) ?? r.fromOffset);
        if (from < s.coverStart || from > s.reached) await this.#seek(consumer, s, from);
        const recs: KafkaRecord<K, V>[] = [];
        out[i] = recs;
        let k = 0;
        while (k < s.buffer.length && s.buffer[k]!.offset < from) k++;
        let j = k;
        for (; j < s.buffer.length && s.buffer[j]!.offset < r.untilOffset; j++)
          this.#deliver(recs, s.buffer[j]!, s.topic);
        s.buffer = j === s.buffer.length ? [] : s.buffer.slice(j);
        s.coverStart = from;
        if (s.reached < r.untilOffset) {
          s.until = r.untilOffset;
          s.out = recs as KafkaRecord<unknown, unknown>[];
          open.push(s);
        }
      }
      if (open.length > 0) await this.#consumeUntil(consumer, open, loss);
    } catch (e) {
      // Forget what this fetch took: the next fetch of these ranges seeks and reads them again.
      for (const s of states) {
        s.buffer = [];
        s.coverStart = Number.POSITIVE_INFINITY;
      }
      throw e;
    } finally {
      for (const s of open) {
        s.until = -1;
        s.out = undefined;
      }
      if (foreign) this.#pendingLost += loss.metrics.recordsLost - lostBefore;
    }
    for (const [i, r] of ranges.entries()) states[i]!.coverStart = r.untilOffset;
    return out;
  }

  async commit(plan: InputPlan): Promise<void> {
    for (const r of plan.offsetRanges) {
      const s = this.#byTopic.get(r.topic)?.[r.partition];
      if (s && r.untilOffset > s.committed) s.committed = r.untilOffset;
    }
  }

  /** Where the next batch starts, per topic and partition (after the last planned batch). */
  positions(): PartitionOffsets {
    return toOffsets(this.#partitions, (s) => s.next);
  }

  /** Where the batch after the last committed one ends, per topic and partition. */
  committedPositions(): PartitionOffsets {
    return toOffsets(this.#partitions, (s) => s.committed);
  }

  /**
   * Start the next batch at these positions (e.g. offsets read back from an offset store).
   * Before open: they override `startingOffsets` and the offset store for the partitions listed.
   * After open: the next plan starts there. `-2` means earliest and `-1` latest. A position outside
   * its partition's valid range is handled by the `offsetOutOfRange` policy, as a stored offset.
   */
  async startAt(positions: PartitionOffsets): Promise<void> {
    validateOffsets('positions', positions, this.topics);
    if (!this.#consumer) {
      this.#requestedStart = mergeOffsets(this.#requestedStart, positions);
      return;
    }
    const listed = this.#partitions.filter((s) => positions[s.topic]?.[s.partition] !== undefined);
    for (const topic of Object.keys(positions)) {
      for (const p of Object.keys(positions[topic]!)) {
        if (!this.#byTopic.get(topic)?.[Number(p)]) {
          throw new InvalidOptionError(
            `positions.${topic}.${p}`,
            `a partition of ${topic} (it has ${this.#byTopic.get(topic)?.filter(Boolean).length ?? 0})`,
            Number(p),
          );
        }
      }
    }
    const bounds = await this.#admin!.bounds(listed, this.isolationLevel);
    const wanted = listed.map((s) => {
      const b = bounds.get(tpKey(s.topic, s.partition))!;
      return { s, b, offset: special(positions[s.topic]![s.partition]!, b) };
    });
    if (this.#offsetOutOfRange === 'fail') {
      // All or nothing: check every position before moving any.
      for (const { s, b, offset } of wanted) this.#checked(s, offset, b);
    }
    for (const { s, b, offset } of wanted) s.next = this.#checked(s, offset, b);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#admin?.close();
    await this.#defaultStore?.close().catch(() => {});
    const consumer = this.#consumer;
    this.#consumer = undefined;
    for (const s of this.#partitions) s.buffer = [];
    if (!consumer) return;
    consumer.removeAllListeners('partition.eof');
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, this.#policy.timeoutMs);
      try {
        consumer.disconnect(() => {
          clearTimeout(t);
          resolve();
        });
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
    this.#logger?.debug({}, 'kafka direct source closed');
  }

  // ---- internals ---------------------------------------------------------------------------

  #retryPolicy(): RetryPolicy {
    return { ...this.#policy, ...(this.#ctx ? { signal: this.#ctx.signal } : {}) };
  }

  #requireOpen(): KafkaAdmin {
    if (!this.#admin || this.#closed) {
      throw new SourceError(
        'kafka',
        this.#closed ? 'the source is closed' : 'the source is not open',
        'The engine opens sources in start(); call open() first',
      );
    }
    return this.#admin;
  }

  #requireConsumer(): RdKafkaConsumer {
    this.#requireOpen();
    return this.#consumer!;
  }

  #consumerConfig(ctx: SourceContext): Record<string, string | number | boolean> {
    return directConsumerConfig({
      bootstrapServers: this.bootstrapServers,
      groupId: this.#groupId!,
      clientId: `sluice-${ctx.pipelineId}-${ctx.name}`,
      isolationLevel: this.isolationLevel,
      consumerConfig: this.#options.consumerConfig,
    });
  }

  /** Connects a consumer: bounded attempts, then BrokerUnreachableError. */
  async #connect(ctx: SourceContext): Promise<RdKafkaConsumer> {
    const config = this.#consumerConfig(ctx);
    const { attempts, timeoutMs } = this.#policy;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      let consumer: RdKafkaConsumer;
      try {
        consumer = new KafkaConsumer(config as never, { ...DIRECT_TOPIC_CONFIG });
      } catch (e) {
        // librdkafka refuses the configuration itself (an unknown property, a bad value).
        throw new InvalidOptionError(
          'consumerConfig',
          `librdkafka consumer properties it accepts (${describeError(e)})`,
          redactConfig(this.#options.consumerConfig ?? {}),
        );
      }
      consumer.on('event.error', (e) => {
        this.#lastClientError = e;
      });
      try {
        await call((cb) => consumer.connect({ timeout: timeoutMs, topic: this.topics[0] }, cb as never));
        tuneDirectConsumer(consumer);
        return consumer;
      } catch (e) {
        lastError = e;
        consumer.removeAllListeners();
        if (!isTransient(e)) {
          throw new SourceError(
            'kafka',
            `cannot create a consumer for ${this.bootstrapServers}: ${describeError(e)}`,
            'Check consumerConfig and the cluster settings',
            { cause: e },
          );
        }
        this.#logger?.warn(
          { attempt, attempts, bootstrapServers: this.bootstrapServers, err: describeError(e) },
          'kafka not reachable yet',
        );
        if (attempt < attempts) await delay(Math.min(200 * attempt, 1000), ctx.signal);
      }
    }
    throw new BrokerUnreachableError(this.bootstrapServers, attempts, lastError);
  }

  /**
   * The positions the pipeline's offset store holds (when the engine provides them), restricted to
   * partitions that exist.
   */
  async #storedPositions(ctx: SourceContext): Promise<PartitionOffsets | undefined> {
    const lookup = (
      ctx as { storedOffsets?: (topics: readonly string[]) => Promise<readonly StoredOffset[]> }
    ).storedOffsets;
    if (typeof lookup !== 'function') return undefined;
    const stored = await lookup(this.topics);
    if (stored.length === 0) return undefined;
    const out: PartitionOffsets = {};
    for (const { topic, partition, offset } of stored) {
      if (!this.#byTopic.get(topic)?.[partition]) {
        this.#logger?.warn(
          { topic, partition, offset },
          'stored offset of a partition this source does not read: ignored',
        );
        continue;
      }
      (out[topic] ??= {})[partition] = offset;
    }
    this.#logger?.info({ stored: out }, 'resuming from stored offsets');
    return out;
  }

  /**
   * Where each partition starts: its resume position (stored, or given with startAt) under the
   * `offsetOutOfRange` policy; else `startingOffsets`, strictly (explicit offsets out of range
   * fail: they are the caller's own choice). One ListOffsets round for all partitions.
   */
  async #startPositions(starting: StartingOffsets, resume: PartitionOffsets): Promise<Map<string, number>> {
    const bounds = await this.#admin!.bounds(this.#partitions, this.isolationLevel);
    const out = new Map<string, number>();
    for (const s of this.#partitions) {
      const k = tpKey(s.topic, s.partition);
      const b = bounds.get(k)!;
      const resumeAt = resume[s.topic]?.[s.partition];
      if (resumeAt !== undefined) {
        out.set(k, this.#checked(s, special(resumeAt, b), b));
      } else if (starting === 'earliest' || starting === 'latest') {
        out.set(k, starting === 'earliest' ? b.logStart : b.end);
      } else {
        out.set(k, strictStart(s, special(starting[s.topic]?.[s.partition] ?? -2, b), b));
      }
    }
    return out;
  }

  /**
   * `offset` if it lies in [logStart, end]; otherwise the policy's answer: throws under `fail`,
   * else reports the reset and counts its loss towards the next plan.
   */
  #checked(s: PartitionState, offset: number, b: PartitionBounds): number {
    if (offset >= b.logStart && offset <= b.end) return offset;
    const { resetTo, lost } = this.#reset(s, offset, b);
    this.#pendingLost += lost;
    return resetTo;
  }

  /**
   * Applies the `offsetOutOfRange` policy to `offset`, outside `b`: throws, or reports the move.
   * With `until` (during a fetch), the move stays within the batch's range, which ends there.
   */
  #reset(
    s: PartitionState,
    offset: number,
    b: PartitionBounds,
    until?: number,
  ): { resetTo: number; lost: number } {
    const policy = this.#offsetOutOfRange;
    if (policy === 'fail') throw new OffsetOutOfRangeError(s.topic, s.partition, offset, b.logStart, b.end);
    let resetTo = policy === 'earliest' ? b.logStart : b.end;
    if (until !== undefined)
      resetTo = policy === 'earliest' && offset < b.logStart ? Math.min(b.logStart, until) : until;
    const lost = Math.max(0, resetTo - offset);
    const event: Omit<OffsetResetEvent, 'input'> = {
      topic: s.topic,
      partition: s.partition,
      storedOffset: offset,
      logStartOffset: b.logStart,
      endOffset: b.end,
      resetTo,
      policy,
      recordsLost: lost,
    };
    const report = (
      this.#ctx as { reportOffsetReset?: (e: Omit<OffsetResetEvent, 'input'>) => void } | undefined
    )?.reportOffsetReset;
    if (report) report(event);
    else this.#logger?.warn(event, 'offset out of range: reset by policy');
    return { resetTo, lost };
  }

  /** The rate limit in force for the next batch (records/s over all partitions); undefined without rate control. */
  #rateLimit(): number | undefined {
    if (!this.#rate) return undefined;
    const o = this.#options;
    const limits: number[] = [];
    if (this.#rate.rate !== undefined) limits.push(this.#rate.rate);
    if (o.maxRatePerPartition !== undefined) limits.push(o.maxRatePerPartition * this.#partitions.length);
    if (o.maxRecordsPerBatch !== undefined)
      limits.push(o.maxRecordsPerBatch / (this.#ctx!.batchInterval / 1000));
    return limits.length > 0 ? Math.min(...limits) : undefined;
  }

  async #seek(consumer: RdKafkaConsumer, s: PartitionState, offset: number): Promise<void> {
    const tp = { topic: s.topic, partition: s.partition };
    try {
      try {
        await call<void>((cb) => consumer.seek({ ...tp, offset }, this.#policy.timeoutMs, cb));
      } catch (e) {
        // After an out-of-range error the client has stopped fetching the partition and refuses
        // to seek it (ERR__STATE): assign it again at the offset instead.
        if (errorCode(e) !== CODES.ERRORS.ERR__STATE) throw e;
        // Not in the typings; in the client since node-rdkafka 2.x.
        const c = consumer as unknown as IncrementalAssign;
        c.incrementalUnassign([tp]);
        c.incrementalAssign([{ ...tp, offset }]);
      }
    } catch (e) {
      throw new SourceError(
        'kafka',
        `cannot seek ${s.topic}-${s.partition} to ${offset}: ${describeError(e)}`,
        'Try again; if it persists, restart the job',
        {
          cause: e,
          retriable: true,
        },
      );
    }
    s.buffer = [];
    s.coverStart = s.reached = offset;
  }

  /**
   * Consumes until every partition in `open` has been delivered up to its `until`. Records below
   * it are deserialized into the partition's `out`; messages at or past it wait in its buffer.
   */
  async #consumeUntil(
    consumer: RdKafkaConsumer,
    open: readonly PartitionState[],
    loss: PlanLoss,
  ): Promise<void> {
    const ctx = this.#ctx!;
    const stallMs = this.#policy.attempts * this.#policy.timeoutMs;
    let remaining = open.length;
    let lastProgress = Date.now();
    let lastProbe = Date.now();
    // Marks `s` complete once it has reached its range's end.
    const settle = (s: PartitionState): void => {
      if (s.until >= 0 && s.reached >= s.until) {
        s.until = -1;
        remaining--;
      }
    };
    // Applies the offsetOutOfRange policy to the waiting partitions that fell out of their range;
    // true if there were any.
    const outOfRange = async (): Promise<boolean> => {
      const done = await this.#fetchOutOfRange(
        consumer,
        open.filter((s) => s.until >= 0),
        loss,
      );
      if (done === undefined) return false;
      for (const s of done) {
        if (s.until >= 0) {
          s.until = -1;
          remaining--;
        }
      }
      return true;
    };
    this.#pendingEofs.length = 0;
    while (remaining > 0) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      let msgs: RdMessage[];
      try {
        msgs = await call<RdMessage[]>((cb) => consumer.consume(CONSUME_BATCH, cb));
      } catch (e) {
        msgs = [];
        if (isOffsetOutOfRange(e)) {
          // The error does not say which partition: the log start tells. One that is not waiting
          // (it may have been reset since) is dealt with by the next plan.
          if (await outOfRange()) lastProgress = lastProbe = Date.now();
        } else if (!isTransient(e)) {
          throw new SourceError(
            'kafka',
            `consuming failed: ${describeError(e)}`,
            'Check the cluster and the consumer configuration',
            { cause: e },
          );
        } else {
          this.#lastClientError = e;
        }
      }
      let progressed = msgs.length > 0;
      let topic: string | undefined;
      let states: PartitionState[] | undefined;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i]!;
        if (m.topic !== topic) {
          topic = m.topic;
          states = this.#byTopic.get(topic);
        }
        const s = states?.[m.partition];
        if (!s || m.offset < s.reached) continue; // not ours, or delivered before a seek: never twice
        s.reached = m.offset + 1;
        if (m.offset < s.until) {
          this.#deliver(s.out as KafkaRecord<K, V>[], m, s.topic);
          if (s.reached >= s.until) {
            s.until = -1;
            remaining--;
          }
        } else {
          s.buffer.push(m);
          settle(s);
        }
      }
      if (this.#pendingEofs.length > 0) {
        for (const e of this.#pendingEofs) {
          const s = this.#byTopic.get(e.topic)?.[e.partition];
          if (!s || e.offset <= s.reached) continue;
          s.reached = e.offset;
          progressed = true;
          settle(s);
        }
        this.#pendingEofs.length = 0;
      }
      if (remaining > 0) {
        // The consumer's position moves past transaction markers (and aborted batches) as it
        // serves them, without delivering anything: a range ending on a marker is complete
        // once the position reaches its end, without waiting for the next fetch's EOF.
        const waiting = open.filter((s) => s.until >= 0);
        for (const p of consumer.position(waiting.map((s) => ({ topic: s.topic, partition: s.partition })))) {
          const s = this.#byTopic.get(p.topic)?.[p.partition];
          if (!s || !(p.offset > s.reached)) continue;
          s.reached = p.offset;
          progressed = true;
          settle(s);
        }
      }
      if (progressed) {
        lastProgress = Date.now();
      } else if (
        Date.now() - lastProgress > OUT_OF_RANGE_PROBE_MS &&
        Date.now() - lastProbe > OUT_OF_RANGE_PROBE_MS
      ) {
        // The client drops the out-of-range error when the same consume call returned messages of
        // other partitions, and then stops fetching the partition: look for it when nothing comes.
        lastProbe = Date.now();
        if (await outOfRange()) lastProgress = Date.now();
      } else if (Date.now() - lastProgress > stallMs) {
        const waiting = open
          .filter((s) => s.until >= 0)
          .map((s) => `${s.topic}-${s.partition} at ${s.reached} of ${s.until}`)
          .join(', ');
        if (this.#lastClientError === undefined || isUnreachable(this.#lastClientError)) {
          throw new BrokerUnreachableError(
            this.bootstrapServers,
            this.#policy.attempts,
            this.#lastClientError ?? new Error(`no record for ${stallMs} ms while waiting for ${waiting}`),
          );
        }
        throw new SourceError(
          'kafka',
          `no record for ${stallMs} ms while waiting for ${waiting}: ${describeError(this.#lastClientError)}`,
          'Check the cluster; the batch was not committed',
          {
            cause: this.#lastClientError,
            retriable: true,
          },
        );
      }
    }
  }

  /**
   * Applies the `offsetOutOfRange` policy, during a fetch, to the `waiting` partitions whose
   * position fell out of their valid range (their records were deleted since the plan, or the topic
   * was re-created): throws under `fail`; else moves within the batch's range only ('earliest': to
   * the log start if it lies in the range, else to the range's end; 'latest': to the range's end),
   * records the gap in `loss`, and answers the partitions whose range is now complete. Undefined
   * when none is out of range.
   *
   * The next plan still starts at the range's end, which the engine commits: if that position is
   * out of range too, the plan resets it, reporting the stored position as it will then be.
   */
  async #fetchOutOfRange(
    consumer: RdKafkaConsumer,
    waiting: readonly PartitionState[],
    loss: PlanLoss,
  ): Promise<PartitionState[] | undefined> {
    if (waiting.length === 0) return undefined;
    const bounds = await this.#admin!.bounds(waiting, this.isolationLevel);
    const done: PartitionState[] = [];
    let any = false;
    for (const s of waiting) {
      const k = tpKey(s.topic, s.partition);
      const b = bounds.get(k)!;
      const at = s.reached;
      if (at >= b.logStart && at <= b.end) continue;
      any = true;
      const until = s.until;
      const { resetTo, lost } = this.#reset(s, at, b, until);
      loss.metrics.recordsLost += lost;
      loss.skip.set(k, resetTo);
      // Also restarts the client's fetching of the partition, which the error stopped.
      await this.#seek(consumer, s, resetTo);
      if (resetTo >= until) done.push(s);
    }
    return any ? done : undefined;
  }

  /**
   * Deserializes `m` into `out`, or hands it to the engine's bad-record hook. `topic` is the
   * source's own string for the topic: the client makes a new string per message, and a batch
   * would otherwise keep a million copies alive.
   */
  #deliver(out: KafkaRecord<K, V>[], m: RdMessage, topic: string): void {
    let rec: KafkaRecord<K, V>;
    try {
      rec = this.#toRecord(m, topic);
    } catch (e) {
      const report = (this.#ctx as { reportBadRecord?: BadRecordReporter } | undefined)?.reportBadRecord;
      if (!report || !(e instanceof DeserializationError)) throw e;
      report(
        {
          operator: this.#ctx!.name,
          reason: e.message,
          topic: m.topic,
          partition: m.partition,
          offset: m.offset,
          key: m.key == null ? null : typeof m.key === 'string' ? Buffer.from(m.key) : m.key,
          value: m.value,
        },
        e,
      );
      return;
    }
    out.push(rec);
  }

  #toRecord(m: RdMessage, topic: string): KafkaRecord<K, V> {
    const headers = m.headers === undefined || m.headers.length === 0 ? EMPTY_HEADERS : toHeaders(m.headers);
    const rawKey = m.key;
    const keyBytes = rawKey == null ? null : typeof rawKey === 'string' ? Buffer.from(rawKey) : rawKey;
    let dctx: DeserializeContext | undefined;
    let key: unknown;
    let value: unknown;
    try {
      key = this.#keyCustom
        ? this.#key(
            keyBytes,
            (dctx ??= { topic: m.topic, partition: m.partition, offset: m.offset, headers }),
          )
        : this.#key(keyBytes, undefined as never);
    } catch (e) {
      throw new DeserializationError(m.topic, m.partition, m.offset, 'key', e);
    }
    try {
      value = this.#valueCustom
        ? this.#value(
            m.value,
            (dctx ??= { topic: m.topic, partition: m.partition, offset: m.offset, headers }),
          )
        : this.#value(m.value, undefined as never);
    } catch (e) {
      throw new DeserializationError(m.topic, m.partition, m.offset, 'value', e);
    }
    return {
      topic,
      partition: m.partition,
      offset: m.offset,
      key: key as K,
      value: value as V,
      headers,
      timestamp: m.timestamp ?? -1,
    };
  }
}

function toHeaders(hs: ReadonlyArray<Record<string, string | Buffer>>): KafkaHeader[] {
  const out: KafkaHeader[] = [];
  for (const h of hs) {
    for (const key of Object.keys(h)) {
      const v = h[key]!;
      out.push({ key, value: typeof v === 'string' ? Buffer.from(v) : v });
    }
  }
  return out;
}

function toOffsets(states: readonly PartitionState[], pick: (s: PartitionState) => number): PartitionOffsets {
  const out: PartitionOffsets = {};
  for (const s of states) (out[s.topic] ??= {})[s.partition] = pick(s);
  return out;
}

/** An explicit offset, with -2 as the log start and -1 as the end. */
function special(offset: number, b: PartitionBounds): number {
  return offset === -2 ? b.logStart : offset === -1 ? b.end : offset;
}

/** An explicit starting offset (`startingOffsets`), which must lie in the partition. */
function strictStart(s: { topic: string; partition: number }, offset: number, b: PartitionBounds): number {
  if (offset < b.logStart) {
    throw new SourceError(
      'kafka',
      `the starting offset ${offset} of ${s.topic}-${s.partition} is no longer in Kafka: the partition starts at ${b.logStart} (records ${offset}..${b.logStart - 1} were deleted by retention)`,
      'Start from a later offset or from earliest, accepting the loss',
    );
  }
  if (offset > b.end) {
    throw new SourceError(
      'kafka',
      `the starting offset ${offset} of ${s.topic}-${s.partition} is past its end ${b.end}`,
      'Was the topic deleted and re-created? Start from explicit offsets within the partition, or from earliest/latest',
    );
  }
  return offset;
}

function rateOptionsOf(o: KafkaDirectOptions): RateOptions {
  return {
    ...(o.maxRatePerPartition !== undefined ? { maxRatePerPartition: o.maxRatePerPartition } : {}),
    ...(o.maxRecordsPerBatch !== undefined ? { maxRecordsPerBatch: o.maxRecordsPerBatch } : {}),
    ...(o.backpressure !== undefined ? { backpressure: o.backpressure } : {}),
  };
}

function mergeOffsets(a: PartitionOffsets | undefined, b: PartitionOffsets): PartitionOffsets {
  const out: PartitionOffsets = {};
  for (const src of [a ?? {}, b]) {
    for (const [t, ps] of Object.entries(src)) Object.assign((out[t] ??= {}), ps);
  }
  return out;
}

// ---- option validation ---------------------------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function validateOffsets(option: string, offsets: unknown, topics: readonly string[]): void {
  if (!isPlainObject(offsets)) {
    throw new InvalidOptionError(
      option,
      'an object { topic: { partition: offset } } (offset -2 = earliest, -1 = latest)',
      offsets,
    );
  }
  for (const [topic, parts] of Object.entries(offsets)) {
    if (!topics.includes(topic)) {
      throw new InvalidOptionError(
        `${option}.${topic}`,
        `one of the topics read: ${topics.join(', ')}`,
        topic,
      );
    }
    if (!isPlainObject(parts)) {
      throw new InvalidOptionError(`${option}.${topic}`, '{ partition: offset }, e.g. { 0: 42 }', parts);
    }
    for (const [p, off] of Object.entries(parts)) {
      if (!/^(0|[1-9]\d*)$/.test(p))
        throw new InvalidOptionError(`${option}.${topic}`, 'partition numbers >= 0 as keys', p);
      if (!isInt(off) || off < -2) {
        throw new InvalidOptionError(
          `${option}.${topic}.${p}`,
          'an offset >= 0, or -2 (earliest) or -1 (latest)',
          off,
        );
      }
    }
  }
}

/** Checks every option; throws InvalidOptionError naming the first bad one and what it accepts. */
export function validateOptions(options: KafkaDirectOptions): void {
  if (!isPlainObject(options)) {
    throw new InvalidOptionError('options', "an object such as { topics: ['orders'] }", options);
  }
  const o = options as unknown as Record<string, unknown>;
  const known = new Set([
    'name',
    'topics',
    'bootstrapServers',
    'groupId',
    'startingOffsets',
    'keyDeserializer',
    'valueDeserializer',
    'createTopics',
    'connect',
    'consumerConfig',
    'isolationLevel',
    'offsetOutOfRange',
    'maxRatePerPartition',
    'maxRecordsPerBatch',
    'backpressure',
    'badRecords',
  ]);
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new InvalidOptionError(k, `one of the options ${[...known].join(', ')}`, o[k]);
  }
  validateBadRecords(options.badRecords);
  const { topics } = o;
  if (!Array.isArray(topics) || topics.length === 0) {
    throw new InvalidOptionError('topics', "a non-empty array of topic names, e.g. ['orders']", topics);
  }
  for (const t of topics) {
    if (typeof t !== 'string' || !TOPIC_NAME.test(t)) {
      throw new InvalidOptionError(
        'topics',
        'topic names of 1-249 characters among letters, digits, . _ -',
        t,
      );
    }
  }
  if (new Set(topics).size !== topics.length) {
    throw new InvalidOptionError('topics', 'distinct topic names', topics);
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length === 0)) {
    throw new InvalidOptionError('name', 'a non-empty string', o.name);
  }
  if (
    o.bootstrapServers !== undefined &&
    (typeof o.bootstrapServers !== 'string' || !/^\S+:\d+(,\S+:\d+)*$/.test(o.bootstrapServers))
  ) {
    throw new InvalidOptionError(
      'bootstrapServers',
      "'host:port' or a comma-separated list of them",
      o.bootstrapServers,
    );
  }
  if (o.groupId !== undefined && (typeof o.groupId !== 'string' || o.groupId.length === 0)) {
    throw new InvalidOptionError('groupId', 'a non-empty string', o.groupId);
  }
  const so = o.startingOffsets;
  if (so !== undefined && so !== 'earliest' && so !== 'latest') {
    if (typeof so === 'string' || !isPlainObject(so)) {
      throw new InvalidOptionError(
        'startingOffsets',
        "'earliest', 'latest' or { topic: { partition: offset } }",
        so,
      );
    }
    validateOffsets('startingOffsets', so, topics as string[]);
  }
  for (const field of ['keyDeserializer', 'valueDeserializer'] as const) {
    const d = o[field];
    if (d !== undefined && typeof d !== 'function' && !isBuiltinDeserializer(d)) {
      throw new InvalidOptionError(
        field,
        "'string', 'json', 'bytes' or a function (data: Buffer | null, ctx) => value",
        d,
      );
    }
  }
  if (o.createTopics !== undefined) {
    const c = o.createTopics;
    if (!isPlainObject(c))
      throw new InvalidOptionError('createTopics', '{ partitions: N, replicationFactor?: R }', c);
    if (!isInt(c.partitions) || c.partitions < 1) {
      throw new InvalidOptionError('createTopics.partitions', 'an integer >= 1', c.partitions);
    }
    if (c.replicationFactor !== undefined && (!isInt(c.replicationFactor) || c.replicationFactor < 1)) {
      throw new InvalidOptionError(
        'createTopics.replicationFactor',
        'an integer >= 1 (default: the broker default)',
        c.replicationFactor,
      );
    }
  }
  if (o.connect !== undefined) {
    const c = o.connect;
    if (!isPlainObject(c)) throw new InvalidOptionError('connect', '{ attempts?: N, timeoutMs?: ms }', c);
    if (c.attempts !== undefined && (!isInt(c.attempts) || c.attempts < 1 || c.attempts > 100)) {
      throw new InvalidOptionError('connect.attempts', 'an integer from 1 to 100', c.attempts);
    }
    if (c.timeoutMs !== undefined && (!isInt(c.timeoutMs) || c.timeoutMs < 100 || c.timeoutMs > 600_000)) {
      throw new InvalidOptionError(
        'connect.timeoutMs',
        'an integer number of milliseconds from 100 to 600000',
        c.timeoutMs,
      );
    }
  }
  if (o.consumerConfig !== undefined) {
    const c = o.consumerConfig;
    if (!isPlainObject(c))
      throw new InvalidOptionError('consumerConfig', 'an object of librdkafka consumer properties', c);
    for (const [k, v] of Object.entries(c)) {
      const owned = OWNED_CONFIG[k];
      if (owned !== undefined) {
        throw new InvalidOptionError(
          `consumerConfig.${k}`,
          owned.startsWith('(') ? `no value ${owned}` : `no value here: use the option '${owned}'`,
          '[set]',
        );
      }
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        throw new InvalidOptionError(`consumerConfig.${k}`, 'a string, number or boolean', typeof v);
      }
    }
  }
  if (
    o.isolationLevel !== undefined &&
    o.isolationLevel !== 'read_committed' &&
    o.isolationLevel !== 'read_uncommitted'
  ) {
    throw new InvalidOptionError(
      'isolationLevel',
      "'read_committed' or 'read_uncommitted'",
      o.isolationLevel,
    );
  }
  if (
    o.offsetOutOfRange !== undefined &&
    o.offsetOutOfRange !== 'fail' &&
    o.offsetOutOfRange !== 'earliest' &&
    o.offsetOutOfRange !== 'latest'
  ) {
    throw new InvalidOptionError(
      'offsetOutOfRange',
      "'fail' (the default), 'earliest' or 'latest'",
      o.offsetOutOfRange,
    );
  }
  const bp = o.backpressure;
  if (isPlainObject(bp)) {
    const keys = ['initialRate', 'minRate', 'proportional', 'integral', 'derivative'];
    for (const k of Object.keys(bp)) {
      if (!keys.includes(k))
        throw new InvalidOptionError(`backpressure.${k}`, `one of ${keys.join(', ')}`, bp[k]);
    }
  } else if (bp !== undefined && typeof bp !== 'boolean') {
    // validateRateOptions names the option for a non-boolean; an array is refused here, not there.
    throw new InvalidOptionError(
      'backpressure',
      'true, false or { initialRate, minRate, proportional, integral, derivative }',
      bp,
    );
  }
  validateRateOptions(rateOptionsOf(options));
}
