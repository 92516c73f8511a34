/**
 * Kafka direct stream, as Spark's `KafkaUtils.createDirectStream`: each batch is one offset range
 * per topic-partition, fixed by {@link KafkaDirectSource.plan} before anything is read, and read by
 * {@link KafkaDirectSource.fetch} exactly, as one batch partition per Kafka partition.
 *
 * One long-lived librdkafka consumer, auto commit off. In single membership (the default) it
 * assigns every partition itself (no rebalance). In group membership (`membership: 'group'`) it
 * subscribes, and the group gives it a share of the partitions (see group-assignment.ts: rebalances,
 * and why a partition is never committed by two instances). Records the consumer delivers beyond a
 * batch's `untilOffset` are kept for the next batch. A partition's range is complete once the consumer has delivered a record at or past
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
 *
 * The parts: the options and their validation (direct-options.ts), one {@link PartitionReader} per
 * partition (positions, buffer, seek), the consumer and its consume loop (direct-consumer.ts),
 * records (record-decoder.ts) and retention handling (retention.ts). This class composes them.
 */
import type { AccessCheck, AccessCheckContext } from '../core/access.js';
import { InvalidOptionError, OwnershipLostError, SourceError } from '../core/errors.js';
import type { BadRecordsOptions } from '../core/bad-records.js';
import type { Logger } from '../core/logger.js';
import type { OffsetStore, OffsetRange } from '../core/offsets.js';
import { RateController } from '../core/rate.js';
import type { BatchFeedback, InputMetrics, InputPlan, Source, SourceContext } from '../core/source.js';
import { checkKafkaAccess } from './access.js';
import { KafkaAdmin, tpKey, type IsolationLevelName, type RetryPolicy } from './admin.js';
import {
  DirectConsumer,
  directConsumerConfig,
  groupConsumerConfig,
  maxPollIntervalOf,
  validateGroupConsumerConfig,
} from './direct-consumer.js';
import { GroupAssignment } from './group-assignment.js';
import { registerGroupMember, runAsMember } from './group.js';
import {
  mergeOffsets,
  rateOptionsOf,
  validateOffsets,
  validateOptions,
  type KafkaDirectOptions,
  type KafkaRecord,
  type PartitionOffsets,
} from './direct-options.js';
import { deserializerLabel } from './deserializers.js';
import { KafkaOffsetStore } from './offset-store.js';
import { resolveCluster, type KafkaCluster } from './cluster.js';
import { connectPolicy, type ConnectPolicy } from './options.js';
import { PartitionReader } from './partition-reader.js';
import { backoff, delay, describeError, isTransient, redactConfig } from './rdkafka.js';
import { RecordDecoder } from './record-decoder.js';
import { RetentionPolicy, special, type PlanLoss } from './retention.js';

export {
  validateOptions,
  type KafkaDirectOptions,
  type KafkaKeyOf,
  type KafkaRecord,
  type KafkaValueOf,
  type OffsetOutOfRangePolicy,
  type PartitionOffsets,
  type StartingOffsets,
} from './direct-options.js';
export {
  CONSUME_BATCH,
  DIRECT_TOPIC_CONFIG,
  directConsumerConfig,
  tuneDirectConsumer,
} from './direct-consumer.js';

/**
 * Group membership: how often the consumer is polled between batches, so that rebalances are
 * answered within about this long rather than at the next batch (rebalance callbacks only run
 * inside consume calls).
 */
const IDLE_CONSUME_MS = 200;
/** ... unless the readers already hold this many records delivered ahead (memory bound). */
const IDLE_BUFFER_LIMIT = 50_000;

/** One stored position, as the engine's offset store reports it. */
interface StoredOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
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
  /**
   * Runs in group membership: the instances of a job share the partitions through the consumer
   * group (Kafka's consumer group protocol, KIP-848), each planning only the partitions it owns.
   */
  readonly groupMembership = true;
  /** The per-source bad-record policy the engine applies (see {@link KafkaDirectOptions.badRecords}). */
  readonly badRecords: BadRecordsOptions | undefined;
  readonly topics: readonly string[];
  /** Where the source reads, and how it connects (security). */
  readonly cluster: KafkaCluster;
  readonly bootstrapServers: string;
  readonly isolationLevel: IsolationLevelName;
  readonly #options: KafkaDirectOptions;
  readonly #policy: ConnectPolicy;
  readonly #decoder: RecordDecoder;
  readonly #retention: RetentionPolicy;
  #ctx: SourceContext | undefined;
  #logger: Logger | undefined;
  #groupId: string | undefined;
  #consumer: DirectConsumer | undefined;
  #admin: KafkaAdmin | undefined;
  /** Batch partition order: topics in option order, partitions ascending. */
  #partitions: PartitionReader[] = [];
  /** topic -> partition -> reader, for routing delivered messages. */
  #byTopic = new Map<string, PartitionReader[]>();
  /** Positions given with {@link startAt} before open. */
  #requestedStart: PartitionOffsets | undefined;
  #closed = false;
  /** The store {@link defaultOffsetStore} made (it connects on first use; closed with the source). */
  #defaultStore: KafkaOffsetStore | undefined;
  /** Made at open (it needs the batch interval) when a rate option is set; one per (re)start. */
  #rate: RateController | undefined;
  /** What the fetches of each plan found deleted. */
  readonly #planLoss = new WeakMap<InputPlan, PlanLoss>();
  /** Group membership: the partitions the group gave this instance, and its rebalance handling. */
  #group: GroupAssignment | undefined;
  #unregister: (() => void) | undefined;
  /** Group membership: the consume calls between batches (see IDLE_CONSUME_MS). */
  #idleOn = false;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleRun: Promise<void> | undefined;

  constructor(options: KafkaDirectOptions) {
    validateOptions(options);
    this.#options = options;
    this.badRecords = options.badRecords;
    this.topics = [...options.topics];
    this.cluster = resolveCluster(options);
    this.bootstrapServers = this.cluster.bootstrapServers;
    this.isolationLevel = options.isolationLevel ?? 'read_committed';
    this.#policy = connectPolicy(options.connect);
    this.#retention = new RetentionPolicy(options.offsetOutOfRange ?? 'fail');
    this.#decoder = new RecordDecoder(
      options.keyDeserializer ?? 'string',
      options.valueDeserializer ?? 'string',
    );
  }

  describe(): Record<string, unknown> {
    const o = this.#options;
    return {
      topics: this.topics,
      ...this.cluster.describe(),
      groupId: o.groupId ?? this.#ctx?.pipelineId ?? '(pipeline id)',
      startingOffsets: o.startingOffsets ?? 'latest',
      isolationLevel: this.isolationLevel,
      offsetOutOfRange: this.#retention.policy,
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
      cluster: this.cluster,
      connect: this.#policy,
      ...(this.#options.consumerConfig ? { clientConfig: this.#options.consumerConfig } : {}),
    });
    return this.#defaultStore;
  }

  /**
   * The access check at start (the context runs it before opening anything): Read and Describe on
   * each topic and on the group (`groupId`, else the pipeline id), asked with one admin client
   * within the `connect` bounds, then closed. Describe on the group is what can be known up front;
   * Read on a group whose Describe is allowed is refused at the first commit (see access.ts). A
   * rejected login throws `KafkaAuthenticationError` at once; a topic that does not exist is
   * left to `open` (TopicNotFoundError, or `createTopics`).
   */
  async checkAccess(ctx: AccessCheckContext): Promise<AccessCheck> {
    return checkKafkaAccess({
      cluster: this.cluster,
      config: this.#options.consumerConfig,
      policy: this.#policy,
      signal: ctx.signal,
      topics: this.topics.map((topic) => ({ topic, operations: ['Read', 'Describe'] })),
      group: this.offsetGroup(ctx.pipelineId),
    });
  }

  async open(ctx: SourceContext): Promise<void> {
    if (this.#ctx)
      throw new SourceError('kafka', 'open() was called twice', 'Use a new KafkaDirectSource per context');
    this.#ctx = ctx;
    const logger = ctx.logger.child({ source: 'kafka' });
    this.#logger = logger;
    this.#groupId = this.offsetGroup(ctx.pipelineId);
    this.#decoder.bind(ctx);
    this.#retention.bind(ctx, logger);
    const o = this.#options;
    if (ctx.membership === 'group') return this.#openGroup(ctx, logger);
    const consumer = await DirectConsumer.connect({
      config: directConsumerConfig({
        cluster: this.cluster,
        groupId: this.#groupId,
        clientId: `sluice-${ctx.pipelineId}-${ctx.name}`,
        isolationLevel: this.isolationLevel,
        consumerConfig: o.consumerConfig,
      }),
      consumerConfig: o.consumerConfig,
      topic: this.topics[0]!,
      bootstrapServers: this.bootstrapServers,
      policy: this.#policy,
      signal: ctx.signal,
      logger,
    });
    this.#consumer = consumer;
    try {
      const admin = this.#openAdmin(ctx);
      const partitions = await admin.ensureTopics(this.topics, o.createTopics);
      for (const topic of this.topics) {
        const readers: PartitionReader[] = [];
        for (const partition of partitions.get(topic)!) {
          const r = new PartitionReader(topic, partition);
          readers[partition] = r;
          this.#partitions.push(r);
        }
        this.#byTopic.set(topic, readers);
      }
      this.#initRate(ctx);
      // Precedence: positions given with startAt() > the offset store's positions > startingOffsets.
      const stored = await this.#storedPositions(ctx);
      const resume = mergeOffsets(stored, this.#requestedStart ?? {});
      const start = this.#retention.startPositions(
        this.#partitions,
        await admin.bounds(this.#partitions, this.isolationLevel),
        o.startingOffsets ?? 'latest',
        resume,
      );
      for (const r of this.#partitions) r.init(start.get(tpKey(r.topic, r.partition))!);
      consumer.assign(this.#partitions, this.#byTopic);
      logger.info(
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
  async plan(batchTime: number): Promise<InputPlan> {
    const group = this.#group;
    if (group) return this.#planGroup(group, batchTime);
    return this.#planOf(this.#partitions);
  }

  /** The plan over `partitions` (every partition in single membership, the owned ones in group). */
  async #planOf(partitions: readonly PartitionReader[]): Promise<InputPlan> {
    const admin = this.#requireOpen();
    const bounds = await admin.bounds(partitions, this.isolationLevel);
    const ends: number[] = [];
    for (const r of partitions) {
      const b = bounds.get(tpKey(r.topic, r.partition))!;
      const next = this.#retention.checked(r, r.next, b);
      // Reading must start over there: drop what the consumer buffered and seek at fetch.
      if (next !== r.next) r.resetTo(next);
      ends.push(b.end);
    }
    const caps = this.#rate?.caps(partitions.map((r, i) => ends[i]! - r.next));
    const offsetRanges: OffsetRange[] = [];
    const lag: { topic: string; partition: number; lag: number }[] = [];
    for (const [i, r] of partitions.entries()) {
      const end = ends[i]!;
      const cap = caps?.[i];
      const until = cap === undefined ? end : Math.min(end, r.next + cap);
      offsetRanges.push({ topic: r.topic, partition: r.partition, fromOffset: r.next, untilOffset: until });
      lag.push({ topic: r.topic, partition: r.partition, lag: end - until });
    }
    for (const [i, range] of offsetRanges.entries()) partitions[i]!.planned(range.untilOffset);
    const rateLimit = this.#rateLimit();
    // Mutable on purpose: a fetch of this plan adds the records it finds deleted.
    const metrics: { rateLimit?: number; lag: typeof lag; recordsLost: number } = {
      ...(rateLimit !== undefined ? { rateLimit } : {}),
      lag,
      recordsLost: this.#retention.takeLost(),
    };
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
    this.#group?.check();
    const ranges = plan.offsetRanges;
    let loss = this.#planLoss.get(plan);
    // A plan this source did not make has no metrics of ours: its losses go with the next plan.
    const foreign = !loss;
    if (!loss) {
      loss = { metrics: { recordsLost: 0 }, skip: new Map() };
      this.#planLoss.set(plan, loss);
    }
    const planLoss = loss;
    const lostBefore = loss.metrics.recordsLost;
    const readers: PartitionReader[] = new Array(ranges.length);
    const out: KafkaRecord<unknown, unknown>[][] = new Array(ranges.length);
    const open: PartitionReader[] = [];
    for (const [i, r] of ranges.entries()) {
      const reader = this.#byTopic.get(r.topic)?.[r.partition];
      if (!reader && this.#group) {
        throw new OwnershipLostError(
          `instance '${this.#group.instanceId}' no longer owns ${r.topic}-${r.partition} of group '${this.#group.group}'`,
          [{ topic: r.topic, partition: r.partition }],
        );
      }
      if (!reader) {
        throw new SourceError(
          'kafka',
          `the plan has ${r.topic}-${r.partition}, which this source does not read`,
          'Pass fetch() a plan made by this source',
        );
      }
      readers[i] = reader;
    }
    const { timeoutMs } = this.#policy;
    try {
      // Take what the buffers already hold; seek partitions whose range is not where the consumer is.
      for (const [i, r] of ranges.entries()) {
        const reader = readers[i]!;
        // Past what an earlier fetch of this plan found deleted.
        const from = Math.max(r.fromOffset, loss.skip.get(tpKey(r.topic, r.partition)) ?? r.fromOffset);
        const recs: KafkaRecord<unknown, unknown>[] = [];
        out[i] = recs;
        if (await reader.begin(consumer.client, from, r.untilOffset, recs, this.#decoder, timeoutMs)) {
          open.push(reader);
        }
      }
      if (open.length > 0) {
        await consumer.consumeUntil(open, this.#decoder, this.#ctx!.signal, (waiting) =>
          this.#retention.resolveFetch(
            this.#admin!,
            this.isolationLevel,
            consumer.client,
            waiting,
            planLoss,
            timeoutMs,
          ),
        );
      }
    } catch (e) {
      // Forget what this fetch took: the next fetch of these ranges seeks and reads them again.
      for (const reader of readers) reader.abandon();
      throw e;
    } finally {
      if (foreign) this.#retention.addLost(loss.metrics.recordsLost - lostBefore);
    }
    for (const [i, r] of ranges.entries()) readers[i]!.complete(r.untilOffset);
    return out as KafkaRecord<K, V>[][];
  }

  async commit(plan: InputPlan): Promise<void> {
    for (const r of plan.offsetRanges) this.#byTopic.get(r.topic)?.[r.partition]?.commit(r.untilOffset);
    const group = this.#group;
    if (group) {
      // The revokes this batch held are answered now: its commit is visible to the next owner.
      group.endBatch();
      this.#startIdle();
    }
  }

  /**
   * Group membership: the batch of `plan` was abandoned uncommitted (this instance lost partitions
   * of it, or another instance committed first). The revokes it held are answered, and every
   * partition still owned starts again from the offset store's position (read again; the buffered
   * records are dropped and the next fetch seeks).
   */
  async abandon(_plan: InputPlan): Promise<void> {
    const group = this.#group;
    if (!group) return;
    group.endBatch();
    const readers = [...group.partitions];
    if (readers.length > 0 && !this.#closed) {
      const { attempts } = this.#policy;
      for (let attempt = 1; ; attempt++) {
        try {
          const start = await runAsMember(group, () => this.#startPositions(readers));
          for (const r of readers) {
            const at = start.get(tpKey(r.topic, r.partition));
            // A reader the group took meanwhile is gone: nothing to restart.
            if (at !== undefined && group.partitions.includes(r)) r.resetTo(at);
          }
          break;
        } catch (e) {
          if (attempt >= attempts) throw e;
          this.#logger?.warn({ err: describeError(e), attempt }, 'reading the stored offsets failed; trying again');
          await delay(backoff(attempt), this.#ctx!.signal);
        }
      }
    }
    this.#startIdle();
  }

  /** Where the next batch starts, per topic and partition (after the last planned batch). */
  positions(): PartitionOffsets {
    return toOffsets(this.#partitions, (r) => r.next);
  }

  /** Where the batch after the last committed one ends, per topic and partition. */
  committedPositions(): PartitionOffsets {
    return toOffsets(this.#partitions, (r) => r.committed);
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
    const listed = this.#partitions.filter((r) => positions[r.topic]?.[r.partition] !== undefined);
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
    const wanted = listed.map((r) => {
      const b = bounds.get(tpKey(r.topic, r.partition))!;
      return { r, b, offset: special(positions[r.topic]![r.partition]!, b) };
    });
    if (this.#retention.policy === 'fail') {
      // All or nothing: check every position before moving any.
      for (const { r, b, offset } of wanted) this.#retention.checked(r, offset, b);
    }
    for (const { r, b, offset } of wanted) r.setNext(this.#retention.checked(r, offset, b));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const group = this.#group;
    if (group) {
      await this.#stopIdle();
      // The revokes of disconnect() are answered at once from now on.
      await group.close(this.#policy.timeoutMs);
      this.#unregister?.();
    }
    this.#admin?.close();
    await this.#defaultStore?.close().catch(() => {});
    const consumer = this.#consumer;
    this.#consumer = undefined;
    for (const r of this.#partitions) r.forget();
    if (consumer) await consumer.close(this.#policy.timeoutMs);
    group?.closed();
    if (consumer) this.#logger?.debug({}, 'kafka direct source closed');
  }

  // ---- internals ---------------------------------------------------------------------------

  /**
   * The source's admin client, with connections of its own: on the consumer's connection, a
   * ListOffsets request would wait behind the consumer's long-poll Fetch (fetch.wait.max.ms) every batch.
   */
  #openAdmin(ctx: SourceContext): KafkaAdmin {
    const admin = KafkaAdmin.create(this.cluster, {
      config: {
        ...this.#options.consumerConfig,
        'client.id': `sluice-${ctx.pipelineId}-${ctx.name}-admin`.slice(0, 200),
      },
      policy: this.#retryPolicy(),
    });
    this.#admin = admin;
    return admin;
  }

  /** Rate control, when an option asks for it. */
  #initRate(ctx: SourceContext): void {
    const o = this.#options;
    if (o.maxRatePerPartition !== undefined || o.maxRecordsPerBatch !== undefined || o.backpressure) {
      this.#rate = new RateController(rateOptionsOf(o), ctx.batchInterval);
    }
  }

  /**
   * Group membership: subscribes to the topics with the consumer group protocol; the partitions
   * arrive through the rebalance callback (see group-assignment.ts), at the offsets the store holds.
   */
  async #openGroup(ctx: SourceContext, logger: Logger): Promise<void> {
    const o = this.#options;
    validateGroupConsumerConfig(o.consumerConfig);
    const group = new GroupAssignment(
      {
        bootstrapServers: this.bootstrapServers,
        group: this.#groupId!,
        instanceId: ctx.instanceId,
        topics: this.topics,
        logger,
        signal: ctx.signal,
        startPositions: (readers) => this.#startPositions(readers),
        report: (event) => ctx.reportRebalance(event),
        maxPollIntervalMs: maxPollIntervalOf(o.consumerConfig, ctx.batchInterval),
        lastPolled: () => this.#consumer?.lastPolled ?? Date.now(),
      },
      this.#partitions,
      this.#byTopic,
    );
    this.#group = group;
    const consumer = await DirectConsumer.connect({
      config: groupConsumerConfig(
        directConsumerConfig({
          cluster: this.cluster,
          groupId: this.#groupId!,
          clientId: `sluice-${ctx.pipelineId}-${ctx.name}-${ctx.instanceId}`,
          isolationLevel: this.isolationLevel,
          consumerConfig: o.consumerConfig,
        }),
        o.consumerConfig,
        ctx.batchInterval,
        (c, err, parts) => group.onRebalance(c, err, parts),
      ),
      consumerConfig: o.consumerConfig,
      topic: this.topics[0]!,
      bootstrapServers: this.bootstrapServers,
      policy: this.#policy,
      signal: ctx.signal,
      logger,
    });
    this.#consumer = consumer;
    group.attach(consumer.client);
    consumer.membership = group;
    try {
      await this.#openAdmin(ctx).ensureTopics(this.topics, o.createTopics);
      this.#initRate(ctx);
      consumer.route(this.#byTopic);
      this.#unregister = registerGroupMember(group);
      // Binds the pipeline's Kafka offset store to this instance (its commits go through this
      // consumer) and, with Kafka transactions, starts this instance's producer, which fences a
      // crashed incarnation of it at once.
      await runAsMember(group, () => this.#storedOffsetsOf(ctx, this.topics));
      consumer.client.subscribe([...this.topics]);
      this.#startIdle();
      logger.info(
        { ...this.describe(), groupId: this.#groupId, membership: 'group', instanceId: ctx.instanceId },
        'kafka direct source opened: waiting for the group to assign partitions',
      );
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  /**
   * Group membership, step 1 of a batch: first serve the rebalance events librdkafka queued (a
   * consume call that waits for nothing; what it delivers goes to the readers' buffers), wait
   * (bounded) for the partitions gained to be set up, then plan the partitions owned.
   */
  async #planGroup(group: GroupAssignment, batchTime: number): Promise<InputPlan> {
    const consumer = this.#requireConsumer();
    await this.#stopIdle();
    const error = await consumer.consumeNow(this.#decoder);
    if (error !== undefined) this.#betweenBatches(error);
    // The rebalance callbacks the consume call queued run before this continues.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await group.settle(this.#policy.timeoutMs);
    if (group.failure) throw group.failure;
    const readers = [...group.partitions];
    const plan = await this.#planOf(readers);
    group.beginBatch(batchTime, readers);
    return plan;
  }

  /**
   * A consume error between batches: this member dropped from the group (handled there), else
   * logged; an error that persists (e.g. a missing ACL) fails the next fetch, which says why.
   */
  #betweenBatches(e: unknown): void {
    if (this.#group?.dropped(e) || isTransient(e)) return;
    this.#logger?.debug({ err: describeError(e) }, 'consuming between batches failed');
  }

  /** Group membership: polls the consumer between batches (see IDLE_CONSUME_MS) until the next plan. */
  #startIdle(): void {
    if (!this.#group || this.#closed) return;
    this.#idleOn = true;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      this.#idleRun = this.#idleConsume().finally(() => (this.#idleRun = undefined));
    }, IDLE_CONSUME_MS);
    this.#idleTimer.unref();
  }

  async #idleConsume(): Promise<void> {
    const consumer = this.#consumer;
    if (!this.#idleOn || !consumer || this.#closed) return;
    if (this.#group!.buffered() < IDLE_BUFFER_LIMIT) {
      const error = await consumer.consumeNow(this.#decoder);
      if (error !== undefined) this.#betweenBatches(error);
    }
    if (this.#idleOn) this.#startIdle();
  }

  /** Stops the polling between batches; resolves once no consume call of it is running. */
  async #stopIdle(): Promise<void> {
    this.#idleOn = false;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    await this.#idleRun;
  }

  /**
   * Group membership: where each of `readers` (partitions gained, or still owned after an abandoned
   * batch) starts, with the rules of open in single membership: positions given with startAt()
   * before open (once), else the offset store's under the offsetOutOfRange policy, else
   * startingOffsets.
   */
  async #startPositions(readers: readonly PartitionReader[]): Promise<Map<string, number>> {
    const admin = this.#requireOpen();
    const topics = [...new Set(readers.map((r) => r.topic))];
    const stored: PartitionOffsets = {};
    for (const { topic, partition, offset } of await this.#storedOffsetsOf(this.#ctx!, topics)) {
      if (readers.some((r) => r.topic === topic && r.partition === partition))
        (stored[topic] ??= {})[partition] = offset;
    }
    const requested: PartitionOffsets = {};
    for (const r of readers) {
      const at = this.#requestedStart?.[r.topic]?.[r.partition];
      if (at === undefined) continue;
      (requested[r.topic] ??= {})[r.partition] = at;
      // Once: a partition that comes back later resumes from the store.
      delete this.#requestedStart![r.topic]![r.partition];
    }
    const bounds = await admin.bounds(readers, this.isolationLevel);
    return this.#retention.startPositions(
      readers,
      bounds,
      this.#options.startingOffsets ?? 'latest',
      mergeOffsets(stored, requested),
    );
  }

  /** The offset store's positions for `topics` (none when the engine gives no lookup). */
  async #storedOffsetsOf(ctx: SourceContext, topics: readonly string[]): Promise<readonly StoredOffset[]> {
    const lookup = (
      ctx as { storedOffsets?: (topics: readonly string[]) => Promise<readonly StoredOffset[]> }
    ).storedOffsets;
    return typeof lookup === 'function' ? lookup(topics) : [];
  }

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

  #requireConsumer(): DirectConsumer {
    this.#requireOpen();
    return this.#consumer!;
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
}

function toOffsets(
  readers: readonly PartitionReader[],
  pick: (r: PartitionReader) => number,
): PartitionOffsets {
  const out: PartitionOffsets = {};
  for (const r of readers) (out[r.topic] ??= {})[r.partition] = pick(r);
  return out;
}
