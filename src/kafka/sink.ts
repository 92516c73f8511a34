/**
 * Kafka as an output: each batch's records are produced to a topic through ONE long-lived producer
 * per process (per cluster and producer configuration), shared by every batch and every sink.
 * Creating a producer per record or per batch is the classic performance bug; here the producer
 * is connected when the first sink opens and closed when the last one closes.
 */
import type { AccessCheck, AccessCheckContext } from '../core/access.js';
import type { Batch, BatchContext } from '../core/batch.js';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import type { Sink, SinkContext, TransactionalSink } from '../core/sink.js';
import { checkKafkaAccess } from './access.js';
import { KafkaAdmin } from './admin.js';
import type { KafkaHeader } from './deserializers.js';
import { resolveCluster, validateClusterOption, type ClusterOption, type KafkaCluster } from './cluster.js';
import {
  bootstrapKeys,
  connectPolicy,
  validateBootstrapServers,
  validateClientConfig,
  validateConnect,
  validateCreateTopics,
  validateTopicName,
  type ClientConfig,
  type ConfigValue,
  type ConnectOptions,
  type CreateTopicsOptions,
  type OwnedKeys,
} from './options.js';
import {
  acquireProducer,
  pooledProducers,
  releaseProducer,
  type KafkaTextProducer,
  type ProducerLease,
  type ProducerRecord,
} from './producer.js';
import { redactConfig } from './rdkafka.js';
import { KafkaTransactionalStore, type KafkaTransaction } from './transactions.js';

/** What one output record becomes in Kafka. */
export interface KafkaOutputRecord {
  readonly key?: string | Buffer | null;
  /** `null` is a tombstone. */
  readonly value: string | Buffer | null;
  readonly headers?: readonly KafkaHeader[] | Readonly<Record<string, string | Buffer>>;
  /** Default: the partitioner's choice (by key; sticky without one). */
  readonly partition?: number;
  /** Default: the sink's topic. */
  readonly topic?: string;
  /** Milliseconds since the epoch. Default: now. */
  readonly timestamp?: number;
}

export interface KafkaSinkOptions<T> extends ClusterOption {
  /** Where records go (unless `toRecord` names another topic for a record). */
  readonly topic: string;
  /**
   * Turns a record into a Kafka record. Default: a string or Buffer is the value, `null` a
   * tombstone, anything else is JSON-encoded into the value; no key.
   */
  readonly toRecord?: (record: T) => KafkaOutputRecord;
  /**
   * librdkafka producer properties over the sink's defaults (`acks` all, idempotence on,
   * `linger.ms` 5, `compression.type` lz4, `message.timeout.ms` 30000). Sinks with the same
   * cluster and configuration share one producer. Never logged with their secrets.
   */
  readonly producerConfig?: ClientConfig;
  /** Create the topic at open if it does not exist (otherwise open fails with TopicNotFoundError). */
  readonly createTopics?: CreateTopicsOptions;
  /** Bounds the connection and the topic check (default 3 x 5000 ms). */
  readonly connect?: ConnectOptions;
}

/** The producer settings of the sinks; `producerConfig` goes over them. */
export const KAFKA_SINK_PRODUCER_DEFAULTS: ClientConfig = Object.freeze({
  'client.id': 'sluice-sink',
  acks: 'all',
  'enable.idempotence': true,
  'linger.ms': 5,
  'batch.num.messages': 10_000,
  'compression.type': 'lz4',
  'message.timeout.ms': 30_000,
});

/** librdkafka keys the sinks set themselves. */
const OWNED_CONFIG: OwnedKeys = {
  ...bootstrapKeys(),
  'transactional.id':
    'no value here: (a KafkaTransactionalStore owns transactional producers: use KafkaTransactionalSink)',
};

/** How many sink producers are open in this process, and how many were ever created. */
export function kafkaSinkProducers(): { open: number; created: number } {
  return pooledProducers('sink');
}

// ---- the sinks ---------------------------------------------------------------------------------

function defaultToRecord(r: unknown): KafkaOutputRecord {
  if (r === null || typeof r === 'string' || Buffer.isBuffer(r))
    return { value: r as string | Buffer | null };
  return { value: JSON.stringify(r) };
}

function validateSinkOptions(options: KafkaSinkOptions<unknown>): void {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', "an object such as { topic: 'out' }", options);
  validateTopicName('topic', options.topic);
  if (options.toRecord !== undefined && typeof options.toRecord !== 'function') {
    throw new InvalidOptionError(
      'toRecord',
      'a function (record) => { key?, value, headers?, partition?, topic? }',
      options.toRecord,
    );
  }
  validateBootstrapServers(options.bootstrapServers);
  validateClusterOption(options.cluster);
  validateClientConfig(
    'producerConfig',
    options.producerConfig,
    'an object of librdkafka producer properties',
    OWNED_CONFIG,
  );
  validateCreateTopics(options.createTopics, '{ partitions: N >= 1, replicationFactor?: R }');
  validateConnect(options.connect);
}

/**
 * Writes every batch to a Kafka topic. `write` resolves once the broker acknowledged every record
 * of the batch (acks=all, idempotent producer) and fails the batch on any delivery error. Not
 * idempotent: a batch written again after a crash is appended again, so with offsets committed
 * after it the guarantee is at-least-once. For exactly-once use {@link KafkaTransactionalSink}.
 *
 * Records go through one long-lived producer per process, cluster and producer configuration,
 * shared by all batches and all sinks.
 *
 * @example
 * ```ts
 * import { KafkaSink } from 'sluice/kafka';
 * words.countByValue().writeTo(
 *   new KafkaSink<[string, number]>({
 *     topic: 'word-counts',
 *     toRecord: ([word, n]) => ({ key: word, value: String(n) }),
 *   }),
 * );
 * ```
 */
export class KafkaSink<T> implements Sink<T> {
  readonly kind: string = 'kafka';
  readonly idempotent: boolean = false;
  readonly topic: string;
  /** Where the sink writes, and how it connects (security). */
  readonly cluster: KafkaCluster;
  readonly bootstrapServers: string;
  readonly #options: KafkaSinkOptions<T>;
  readonly #toRecord: (record: T) => KafkaOutputRecord;
  readonly #config: Record<string, ConfigValue>;
  #lease: ProducerLease | undefined;
  #opened = false;
  #closed = false;

  constructor(options: KafkaSinkOptions<T>) {
    validateSinkOptions(options as KafkaSinkOptions<unknown>);
    this.#options = options;
    this.topic = options.topic;
    this.cluster = resolveCluster(options);
    this.bootstrapServers = this.cluster.bootstrapServers;
    this.#toRecord = options.toRecord ?? (defaultToRecord as (r: T) => KafkaOutputRecord);
    this.#config = { ...KAFKA_SINK_PRODUCER_DEFAULTS, ...options.producerConfig };
  }

  describe(): Record<string, unknown> {
    return {
      topic: this.topic,
      ...this.cluster.describe(),
      ...(this.#options.toRecord ? { toRecord: this.#options.toRecord.name || 'custom' } : {}),
      ...(this.#options.producerConfig
        ? { producerConfig: redactConfig({ ...this.#options.producerConfig }) }
        : {}),
      ...(this.#options.createTopics ? { createTopics: this.#options.createTopics } : {}),
    };
  }

  /**
   * The access check at start (the context runs it before opening anything): Write and Describe on
   * the topic, asked with one admin client within the `connect` bounds, then closed. A rejected
   * login throws `KafkaAuthenticationError` at once. Not checked: topics the records name
   * themselves (`toRecord`'s `topic`) and, for a {@link KafkaTransactionalSink}, the transactional
   * id, which only the producer's start can tell (the store starts it when the source opens, still
   * in `start()`, and a refusal fails the start with `KafkaAuthorizationError`).
   */
  async checkAccess(ctx: AccessCheckContext): Promise<AccessCheck> {
    return checkKafkaAccess({
      cluster: this.cluster,
      config: this.#options.producerConfig,
      policy: connectPolicy(this.#options.connect),
      signal: ctx.signal,
      topics: [{ topic: this.topic, operations: ['Write', 'Describe'] }],
    });
  }

  /** Checks the topic (creating it with `createTopics`) and takes the shared producer. */
  async open(_ctx?: SinkContext): Promise<void> {
    if (this.#opened) return;
    // With the cluster's settings, and the caller's producer properties (which may hold security
    // settings given the old way) as the producer gets them.
    const admin = KafkaAdmin.create(this.cluster, {
      ...(this.#options.producerConfig ? { config: this.#options.producerConfig } : {}),
      policy: connectPolicy(this.#options.connect),
    });
    try {
      await admin.ensureTopics([this.topic], this.#options.createTopics);
    } finally {
      admin.close();
    }
    this.#opened = true;
    if (this.connectsAtOpen()) await this.#producer();
  }

  /** Produces the batch; resolves when every record is acknowledged, rejects on any delivery error. */
  async write(batch: Batch<T>, _ctx?: BatchContext): Promise<void> {
    const byTopic = this.records(batch);
    if (byTopic.size === 0) return;
    const producer = await this.#producer();
    const results = await Promise.allSettled([...byTopic].map(([topic, recs]) => producer.send(topic, recs)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease) await releaseProducer(lease);
  }

  /** The batch's records as Kafka records, by topic, in batch order. */
  protected records(batch: Batch<T>): Map<string, ProducerRecord[]> {
    const byTopic = new Map<string, ProducerRecord[]>();
    for (const part of batch.partitions) {
      for (const r of part) {
        const rec = this.#toRecord(r);
        if (
          typeof rec !== 'object' ||
          rec === null ||
          !(rec.value === null || typeof rec.value === 'string' || Buffer.isBuffer(rec.value))
        ) {
          throw new InvalidOptionError(
            'toRecord',
            'a function returning { value: string | Buffer | null, key?, headers?, partition?, topic?, timestamp? }',
            rec,
          );
        }
        const topic = rec.topic ?? this.topic;
        let list = byTopic.get(topic);
        if (!list) byTopic.set(topic, (list = []));
        list.push({
          key: rec.key ?? null,
          value: rec.value,
          ...(rec.partition !== undefined ? { partition: rec.partition } : {}),
          ...(rec.timestamp !== undefined ? { timestamp: rec.timestamp } : {}),
          ...(rec.headers !== undefined ? { headers: rec.headers } : {}),
        });
      }
    }
    return byTopic;
  }

  /** Whether `open` takes the shared producer (a transactional sink takes it at its first plain write). */
  protected connectsAtOpen(): boolean {
    return true;
  }

  #producer(): Promise<KafkaTextProducer> {
    if (this.#closed)
      return Promise.reject(new SourceError('kafka-sink', 'the sink is closed', 'Open a new sink'));
    if (!this.#opened) {
      return Promise.reject(
        new SourceError(
          'kafka-sink',
          'the sink is not open',
          'The engine opens sinks in start(); call open() first',
        ),
      );
    }
    this.#lease ??= acquireProducer(this.cluster, this.#config, this.#options.connect);
    return this.#lease.producer;
  }
}

export interface KafkaTransactionalSinkOptions<T> extends KafkaSinkOptions<T> {
  /** The store whose transactions the sink joins; also the context's `offsetStore`. */
  readonly store: KafkaTransactionalStore;
}

/**
 * A {@link KafkaSink} that writes inside a {@link KafkaTransactionalStore}'s transactions: the
 * engine produces a batch's records and commits its input offsets in one Kafka transaction
 * (exactly-once Kafka to Kafka). Give the same store to the context as `offsetStore`. Consumers of
 * the output must read with `isolation.level=read_committed` (librdkafka's and Sluice's default).
 *
 * `write` (outside a transaction, when the output is asked for at-least-once) uses the shared
 * non-transactional producer.
 *
 * @example
 * ```ts
 * import { KafkaTransactionalStore, KafkaTransactionalSink, createDirectStream } from 'sluice/kafka';
 * const store = new KafkaTransactionalStore();
 * const ctx = new StreamingContext({ batchInterval: 1000, pipelineId: 'etl', offsetStore: store });
 * createDirectStream(ctx, { topics: ['in'], startingOffsets: 'earliest' })
 *   .map((r) => r.value!.trim())
 *   .writeTo(new KafkaTransactionalSink<string>({ topic: 'out', store }));
 * ```
 */
export class KafkaTransactionalSink<T>
  extends KafkaSink<T>
  implements TransactionalSink<T, KafkaTransaction>
{
  readonly store: KafkaTransactionalStore;

  constructor(options: KafkaTransactionalSinkOptions<T>) {
    const { store, ...rest } = options ?? ({} as KafkaTransactionalSinkOptions<T>);
    if (!(store instanceof KafkaTransactionalStore)) {
      throw new InvalidOptionError('store', 'a KafkaTransactionalStore (the context’s offsetStore)', store);
    }
    super(rest);
    this.store = store;
  }

  override describe(): Record<string, unknown> {
    return { ...super.describe(), transactional: this.store.kind };
  }

  /** Produces the batch inside the transaction; resolves when every record is acknowledged. */
  async writeInTransaction(tx: KafkaTransaction, batch: Batch<T>, _ctx?: BatchContext): Promise<void> {
    const byTopic = this.records(batch);
    const results = await Promise.allSettled([...byTopic].map(([topic, recs]) => tx.send(topic, recs)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  protected override connectsAtOpen(): boolean {
    return false;
  }
}
