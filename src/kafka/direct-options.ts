/**
 * The options of the Kafka direct stream ({@link KafkaDirectOptions}), the record and offset types
 * it works with, and the validation of the options.
 */
import { validateBadRecords, type BadRecordsOptions } from '../core/bad-records.js';
import { InvalidOptionError } from '../core/errors.js';
import { validateRateOptions, type RateOptions } from '../core/rate.js';
import type { IsolationLevelName } from './admin.js';
import {
  isBuiltinDeserializer,
  type Deserialized,
  type Deserializer,
  type KafkaHeader,
} from './deserializers.js';
import {
  bootstrapKeys,
  isInt,
  isPlainObject,
  validateBootstrapServers,
  validateClientConfig,
  validateConnect,
  validateCreateTopics,
  validateTopicName,
  type ClientConfig,
  type ConnectOptions,
  type CreateTopicsOptions,
  type OwnedKeys,
} from './options.js';
import { validateClusterOption, type ClusterOption } from './cluster.js';

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

export interface KafkaDirectOptions extends ClusterOption {
  /** Stable name of the input stream (used by {@link createDirectStream}). */
  readonly name?: string;
  /** Topics to read, in the order their partitions appear in a batch. Non-empty. */
  readonly topics: readonly string[];
  /** Consumer group id (no group membership is used: offsets are assigned). Default: the pipeline id. */
  readonly groupId?: string;
  /** Default `'latest'`. See {@link StartingOffsets}. */
  readonly startingOffsets?: StartingOffsets;
  /** Default `'string'`. `null` keys stay `null` with the built-ins. */
  readonly keyDeserializer?: Deserializer<any>;
  /** Default `'string'`. `null` values (tombstones) stay `null` with the built-ins. */
  readonly valueDeserializer?: Deserializer<any>;
  /** Create missing topics (through the admin API) instead of failing with TopicNotFoundError. */
  readonly createTopics?: CreateTopicsOptions;
  /**
   * Bounds every wait on the cluster: `attempts` tries of at most `timeoutMs` each (default 3 x
   * 5000 ms), then BrokerUnreachableError. A fetch that gets no record for `attempts x timeoutMs`
   * fails the same way.
   */
  readonly connect?: ConnectOptions;
  /** librdkafka consumer properties passed through (never logged with their secrets). */
  readonly consumerConfig?: ClientConfig;
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

/** The rate-control options among the source's options. */
export function rateOptionsOf(o: KafkaDirectOptions): RateOptions {
  return {
    ...(o.maxRatePerPartition !== undefined ? { maxRatePerPartition: o.maxRatePerPartition } : {}),
    ...(o.maxRecordsPerBatch !== undefined ? { maxRecordsPerBatch: o.maxRecordsPerBatch } : {}),
    ...(o.backpressure !== undefined ? { backpressure: o.backpressure } : {}),
  };
}

/** `a` with `b` over it, per partition. */
export function mergeOffsets(a: PartitionOffsets | undefined, b: PartitionOffsets): PartitionOffsets {
  const out: PartitionOffsets = {};
  for (const src of [a ?? {}, b]) {
    for (const [t, ps] of Object.entries(src)) Object.assign((out[t] ??= {}), ps);
  }
  return out;
}

// ---- option validation ---------------------------------------------------------------------

/** librdkafka keys the source sets itself, and what to use instead. */
const OWNED_CONFIG: OwnedKeys = {
  ...bootstrapKeys("no value here: use the option 'bootstrapServers'"),
  'group.id': "no value here: use the option 'groupId'",
  'isolation.level': "no value here: use the option 'isolationLevel'",
  'auto.offset.reset': "no value here: use the option 'startingOffsets'",
  'enable.auto.commit': 'no value (always false: offsets are managed by Sluice)',
  'enable.auto.offset.store': 'no value (always false: offsets are managed by Sluice)',
  'enable.partition.eof': 'no value (always true: fetch relies on it)',
};

export function validateOffsets(option: string, offsets: unknown, topics: readonly string[]): void {
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
    'cluster',
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
  for (const t of topics) validateTopicName('topics', t, true);
  if (new Set(topics).size !== topics.length) {
    throw new InvalidOptionError('topics', 'distinct topic names', topics);
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length === 0)) {
    throw new InvalidOptionError('name', 'a non-empty string', o.name);
  }
  validateBootstrapServers(o.bootstrapServers);
  validateClusterOption(o.cluster);
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
  validateCreateTopics(o.createTopics);
  validateConnect(o.connect);
  validateClientConfig(
    'consumerConfig',
    o.consumerConfig,
    'an object of librdkafka consumer properties',
    OWNED_CONFIG,
  );
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
