/**
 * Kafka as an output: each batch's records are produced to a topic through ONE long-lived producer
 * per process (per cluster and producer configuration), shared by every batch and every sink.
 * Creating a producer per record or per batch is the classic performance bug; here the producer
 * is connected when the first sink opens and closed when the last one closes.
 */
import type { Batch } from '../core/batch.js';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import type { BatchContext } from '../core/graph.js';
import type { Sink, SinkContext, TransactionalSink } from '../core/sink.js';
import { KafkaAdmin } from './admin.js';
import type { KafkaHeader } from './deserializers.js';
import { KafkaTextProducer, type ProducerRecord } from './producer.js';
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

export interface KafkaSinkOptions<T> {
  /** Where records go (unless `toRecord` names another topic for a record). */
  readonly topic: string;
  /**
   * Turns a record into a Kafka record. Default: a string or Buffer is the value, `null` a
   * tombstone, anything else is JSON-encoded into the value; no key.
   */
  readonly toRecord?: (record: T) => KafkaOutputRecord;
  /** Default: env `KAFKA_BOOTSTRAP`, else `127.0.0.1:9092`. */
  readonly bootstrapServers?: string;
  /**
   * librdkafka producer properties over the sink's defaults (`acks` all, idempotence on,
   * `linger.ms` 5, `compression.type` lz4, `message.timeout.ms` 30000). Sinks with the same
   * cluster and configuration share one producer. Never logged with their secrets.
   */
  readonly producerConfig?: Readonly<Record<string, string | number | boolean>>;
  /** Create the topic at open if it does not exist (otherwise open fails with TopicNotFoundError). */
  readonly createTopics?: { readonly partitions: number; readonly replicationFactor?: number };
  /** Bounds the connection and the topic check (default 3 x 5000 ms). */
  readonly connect?: { readonly attempts?: number; readonly timeoutMs?: number };
}

/** The producer settings of the sinks; `producerConfig` goes over them. */
export const KAFKA_SINK_PRODUCER_DEFAULTS: Readonly<Record<string, string | number | boolean>> = Object.freeze({
  'client.id': 'sluice-sink',
  acks: 'all',
  'enable.idempotence': true,
  'linger.ms': 5,
  'batch.num.messages': 10_000,
  'compression.type': 'lz4',
  'message.timeout.ms': 30_000,
});

const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

const OWNED_CONFIG: Record<string, string> = {
  'bootstrap.servers': "the option 'bootstrapServers'",
  'metadata.broker.list': "the option 'bootstrapServers'",
  'transactional.id': '(a KafkaTransactionalStore owns transactional producers: use KafkaTransactionalSink)',
};

// ---- one producer per process and configuration ------------------------------------------------

interface SharedEntry {
  users: number;
  readonly producer: Promise<KafkaTextProducer>;
}

const producers = new Map<string, SharedEntry>();
let producersCreated = 0;

/** How many sink producers are open in this process, and how many were ever created. */
export function kafkaSinkProducers(): { open: number; created: number } {
  return { open: producers.size, created: producersCreated };
}

function producerKey(bootstrapServers: string, config: Record<string, string | number | boolean>): string {
  return JSON.stringify([bootstrapServers, Object.entries(config).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
}

function acquireProducer(
  bootstrapServers: string,
  config: Record<string, string | number | boolean>,
  connect: KafkaSinkOptions<unknown>['connect'],
): { key: string; producer: Promise<KafkaTextProducer> } {
  const key = producerKey(bootstrapServers, config);
  let entry = producers.get(key);
  if (!entry) {
    producersCreated++;
    const producer = KafkaTextProducer.connect({ bootstrapServers, producerConfig: config, ...(connect ? { connect } : {}) });
    const created: SharedEntry = { users: 0, producer };
    entry = created;
    producers.set(key, created);
    producer.catch(() => {
      if (producers.get(key) === created) producers.delete(key);
    });
  }
  entry.users++;
  return { key, producer: entry.producer };
}

async function releaseProducer(key: string, producer: Promise<KafkaTextProducer>): Promise<void> {
  const entry = producers.get(key);
  if (!entry || entry.producer !== producer) return;
  if (--entry.users > 0) return;
  producers.delete(key);
  const p = await producer.catch(() => undefined);
  await p?.close();
}

// ---- the sinks ---------------------------------------------------------------------------------

function defaultToRecord(r: unknown): KafkaOutputRecord {
  if (r === null || typeof r === 'string' || Buffer.isBuffer(r)) return { value: r as string | Buffer | null };
  return { value: JSON.stringify(r) };
}

function validateSinkOptions(options: KafkaSinkOptions<unknown>): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', "an object such as { topic: 'out' }", options);
  if (typeof options.topic !== 'string' || !TOPIC_NAME.test(options.topic)) {
    throw new InvalidOptionError('topic', 'a topic name of 1-249 characters among letters, digits, . _ -', options.topic);
  }
  if (options.toRecord !== undefined && typeof options.toRecord !== 'function') {
    throw new InvalidOptionError('toRecord', 'a function (record) => { key?, value, headers?, partition?, topic? }', options.toRecord);
  }
  if (
    options.bootstrapServers !== undefined &&
    (typeof options.bootstrapServers !== 'string' || !/^\S+:\d+(,\S+:\d+)*$/.test(options.bootstrapServers))
  ) {
    throw new InvalidOptionError('bootstrapServers', "'host:port' or a comma-separated list of them", options.bootstrapServers);
  }
  const pc = options.producerConfig;
  if (pc !== undefined) {
    if (typeof pc !== 'object' || pc === null || Array.isArray(pc)) {
      throw new InvalidOptionError('producerConfig', 'an object of librdkafka producer properties', pc);
    }
    for (const [k, v] of Object.entries(pc)) {
      const owned = OWNED_CONFIG[k];
      if (owned !== undefined) throw new InvalidOptionError(`producerConfig.${k}`, `no value here: ${owned}`, '[set]');
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        throw new InvalidOptionError(`producerConfig.${k}`, 'a string, number or boolean', typeof v);
      }
    }
  }
  const ct = options.createTopics;
  if (ct !== undefined && (typeof ct !== 'object' || ct === null || !Number.isInteger(ct.partitions) || ct.partitions < 1)) {
    throw new InvalidOptionError('createTopics', '{ partitions: N >= 1, replicationFactor?: R }', ct);
  }
  const c = options.connect;
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null) throw new InvalidOptionError('connect', '{ attempts?: N, timeoutMs?: ms }', c);
    if (c.attempts !== undefined && !(Number.isInteger(c.attempts) && c.attempts >= 1 && c.attempts <= 100)) {
      throw new InvalidOptionError('connect.attempts', 'an integer from 1 to 100', c.attempts);
    }
    if (c.timeoutMs !== undefined && !(Number.isInteger(c.timeoutMs) && c.timeoutMs >= 100 && c.timeoutMs <= 600_000)) {
      throw new InvalidOptionError('connect.timeoutMs', 'an integer number of milliseconds from 100 to 600000', c.timeoutMs);
    }
  }
}

/**
 * Writes every batch to a Kafka topic. `write` resolves once the broker acknowledged every record
 * of the batch (acks=all, idempotent producer) and fails the batch on any delivery error. Not
 * idempotent: a batch written again after a crash is appended again, so with offsets committed
 * after it the guarantee is at-least-once. For exactly-once use {@link KafkaTransactionalSink}.
 *
 * Records go through one long-lived producer per process, cluster and producer configuration,
 * shared by all batches and all sinks ({@link kafkaSinkProducers} counts them).
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
  readonly bootstrapServers: string;
  readonly #options: KafkaSinkOptions<T>;
  readonly #toRecord: (record: T) => KafkaOutputRecord;
  readonly #config: Record<string, string | number | boolean>;
  #lease: { key: string; producer: Promise<KafkaTextProducer> } | undefined;
  #opened = false;
  #closed = false;

  constructor(options: KafkaSinkOptions<T>) {
    validateSinkOptions(options as KafkaSinkOptions<unknown>);
    this.#options = options;
    this.topic = options.topic;
    this.bootstrapServers = options.bootstrapServers ?? process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
    this.#toRecord = options.toRecord ?? (defaultToRecord as (r: T) => KafkaOutputRecord);
    this.#config = { ...KAFKA_SINK_PRODUCER_DEFAULTS, ...options.producerConfig };
  }

  describe(): Record<string, unknown> {
    return {
      topic: this.topic,
      bootstrapServers: this.bootstrapServers,
      ...(this.#options.toRecord ? { toRecord: this.#options.toRecord.name || 'custom' } : {}),
      ...(this.#options.producerConfig ? { producerConfig: redactConfig({ ...this.#options.producerConfig }) } : {}),
      ...(this.#options.createTopics ? { createTopics: this.#options.createTopics } : {}),
    };
  }

  /** Checks the topic (creating it with `createTopics`) and takes the shared producer. */
  async open(_ctx?: SinkContext): Promise<void> {
    if (this.#opened) return;
    const admin = KafkaAdmin.create(this.bootstrapServers, {
      policy: { attempts: this.#options.connect?.attempts ?? 3, timeoutMs: this.#options.connect?.timeoutMs ?? 5000 },
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
    if (lease) await releaseProducer(lease.key, lease.producer);
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
    if (this.#closed) return Promise.reject(new SourceError('kafka-sink', 'the sink is closed', 'Open a new sink'));
    if (!this.#opened) {
      return Promise.reject(new SourceError('kafka-sink', 'the sink is not open', 'The engine opens sinks in start(); call open() first'));
    }
    this.#lease ??= acquireProducer(this.bootstrapServers, this.#config, this.#options.connect);
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
export class KafkaTransactionalSink<T> extends KafkaSink<T> implements TransactionalSink<T, KafkaTransaction> {
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
