/**
 * Dead letters to a Kafka topic: each rejected record is written as it was read (its original key
 * and value bytes), with why and where it was rejected in `sluice.*` headers.
 */
import type { DeadLetter } from '../core/bad-records.js';
import { InvalidOptionError } from '../core/errors.js';
import type { Sink } from '../core/sink.js';
import { KafkaSink, KafkaTransactionalSink, type KafkaOutputRecord, type KafkaSinkOptions } from './sink.js';
import type { ClusterOption } from './cluster.js';
import type { KafkaTransactionalStore } from './transactions.js';

/** The headers a dead letter carries (values are UTF-8 strings; numbers in decimal). */
export const DEAD_LETTER_HEADERS = Object.freeze({
  reason: 'sluice.reason',
  operator: 'sluice.operator',
  input: 'sluice.input',
  sourceTopic: 'sluice.source.topic',
  sourcePartition: 'sluice.source.partition',
  sourceOffset: 'sluice.source.offset',
  batchTime: 'sluice.batch.time',
});

export interface KafkaDeadLetterSinkOptions extends ClusterOption {
  /** The dead-letter topic. */
  readonly topic: string;
  /** librdkafka producer properties (see {@link KafkaSinkOptions.producerConfig}). */
  readonly producerConfig?: KafkaSinkOptions<DeadLetter>['producerConfig'];
  /** Create the topic at open if it does not exist. */
  readonly createTopics?: KafkaSinkOptions<DeadLetter>['createTopics'];
  /** Bounds the connection and the topic check. */
  readonly connect?: KafkaSinkOptions<DeadLetter>['connect'];
  /**
   * Write the letters inside this store's transactions, together with the pipeline's other
   * transactional outputs and its offsets (exactly-once ETL: a batch's output, its dead letters and
   * its offsets commit together). The store must be the context's `offsetStore`.
   */
  readonly transactional?: KafkaTransactionalStore;
}

/**
 * The Kafka record of a dead letter: the ORIGINAL value as the value (a Buffer or string as given;
 * `null`/`undefined` stay a null value; any other value, e.g. an object an operator rejected, is
 * JSON-encoded), the original key, and the headers of {@link DEAD_LETTER_HEADERS} (source topic,
 * partition and offset only when the record came from Kafka).
 */
export function deadLetterRecord(letter: DeadLetter): KafkaOutputRecord {
  const v = letter.value;
  const value =
    v === null || v === undefined
      ? null
      : typeof v === 'string' || Buffer.isBuffer(v)
        ? v
        : JSON.stringify(v);
  const H = DEAD_LETTER_HEADERS;
  const headers: Record<string, string> = {
    [H.reason]: letter.reason,
    [H.operator]: letter.operator,
    [H.input]: letter.input,
  };
  if (letter.topic !== undefined) headers[H.sourceTopic] = letter.topic;
  if (letter.partition !== undefined) headers[H.sourcePartition] = String(letter.partition);
  if (letter.offset !== undefined) headers[H.sourceOffset] = String(letter.offset);
  headers[H.batchTime] = String(letter.batchTime);
  return { key: letter.key ?? null, value, headers };
}

/**
 * A sink for bad records (`badRecords: { policy: 'dead-letter', deadLetter }` of an input or a
 * `tryMap`) that writes each letter to a Kafka topic with {@link deadLetterRecord}. Plain: written
 * before the offsets are committed (at-least-once). With `transactional`: written in the store's
 * transaction with the batch's offsets (exactly-once).
 *
 * @example
 * ```ts
 * import { KafkaTransactionalStore, KafkaTransactionalSink, kafkaDeadLetterSink } from 'sluice/kafka';
 * const store = new KafkaTransactionalStore();
 * const ctx = new StreamingContext({ batchInterval: 1000, pipelineId: 'access-etl', offsetStore: store });
 * createDirectStream(ctx, { topics: ['access-raw'] })
 *   .tryMap((r) => parseLine(r.value!), {
 *     badRecords: { policy: 'dead-letter', deadLetter: kafkaDeadLetterSink({ topic: 'access-dlq', transactional: store }) },
 *   })
 *   .writeTo(new KafkaTransactionalSink<string>({ topic: 'access-clean', store }));
 * ```
 */
export function kafkaDeadLetterSink(
  options: KafkaDeadLetterSinkOptions & { readonly transactional: KafkaTransactionalStore },
): KafkaTransactionalSink<DeadLetter>;
export function kafkaDeadLetterSink(options: KafkaDeadLetterSinkOptions): Sink<DeadLetter>;
export function kafkaDeadLetterSink(options: KafkaDeadLetterSinkOptions): Sink<DeadLetter> {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionError('options', "an object such as { topic: 'dead-letters' }", options);
  }
  const { transactional, ...rest } = options;
  const base: KafkaSinkOptions<DeadLetter> = { ...rest, toRecord: deadLetterRecord };
  return transactional !== undefined
    ? new KafkaTransactionalSink<DeadLetter>({ ...base, store: transactional })
    : new KafkaSink<DeadLetter>(base);
}
