/**
 * `sluice/kafka`: the Kafka adapter. The core never imports this module.
 *
 * @example
 * ```ts
 * import { StreamingContext } from 'sluice';
 * import { createDirectStream } from 'sluice/kafka';
 *
 * const ctx = new StreamingContext({ batchInterval: 2000, pipelineId: 'orders-etl' });
 * createDirectStream(ctx, { topics: ['orders'], startingOffsets: 'earliest', valueDeserializer: 'json' })
 *   .foreachBatch((batch, { offsetRanges }) => console.log(offsetRanges, batch.size));
 * await ctx.start();
 * ```
 */
import type { StreamingContext } from '../core/context.js';
import type { DStream } from '../core/dstream.js';
import {
  KafkaDirectSource,
  type KafkaDirectOptions,
  type KafkaKeyOf,
  type KafkaRecord,
  type KafkaValueOf,
} from './direct-source.js';

export {
  KafkaDirectSource,
  type KafkaDirectOptions,
  type KafkaRecord,
  type KafkaKeyOf,
  type KafkaValueOf,
  type PartitionOffsets,
  type StartingOffsets,
  type OffsetOutOfRangePolicy,
} from './direct-source.js';
export {
  bytesDeserializer,
  jsonDeserializer,
  stringDeserializer,
  type BuiltinDeserializer,
  type DeserializeContext,
  type Deserialized,
  type Deserializer,
  type DeserializerFn,
  type KafkaHeader,
} from './deserializers.js';
export {
  KafkaAdmin,
  type IsolationLevelName,
  type NewTopicSpec,
  type RetryPolicy,
  type TopicPartition,
} from './admin.js';
export {
  KafkaTextProducer,
  sharedProducer,
  type KafkaTextProducerOptions,
  type ProducerRecord,
} from './producer.js';
export { KafkaOffsetStore, type KafkaOffsetStoreOptions } from './offset-store.js';
export { formatCommitMetadata, parseCommitMetadata, type CommitMetadata } from './group.js';
export {
  KafkaProducerFencedError,
  KafkaTransaction,
  KafkaTransactionalStore,
  type KafkaTransactionalStoreOptions,
} from './transactions.js';
export {
  KafkaSink,
  KafkaTransactionalSink,
  type KafkaOutputRecord,
  type KafkaSinkOptions,
  type KafkaTransactionalSinkOptions,
} from './sink.js';
export {
  DEAD_LETTER_HEADERS,
  deadLetterRecord,
  kafkaDeadLetterSink,
  type KafkaDeadLetterSinkOptions,
} from './dead-letter.js';
export { KafkaAuthenticationError, KafkaAuthorizationError } from './errors.js';
export { librdkafkaVersion } from './rdkafka.js';
export {
  kafkaCluster,
  type ClusterOption,
  type KafkaCluster,
  type KafkaClusterOptions,
  type SaslMechanism,
  type SaslOAuthBearerOptions,
  type SaslPasswordOptions,
  type TlsOptions,
} from './cluster.js';

/**
 * A Kafka direct stream (Spark's `KafkaUtils.createDirectStream`): every batch reads one offset
 * range per topic-partition, as one batch partition per Kafka partition. Key and value types follow
 * the deserializer options (`'string'` by default).
 */
export function createDirectStream<const O extends KafkaDirectOptions>(
  ctx: StreamingContext,
  options: O,
): DStream<KafkaRecord<KafkaKeyOf<O>, KafkaValueOf<O>>> {
  return ctx.stream(new KafkaDirectSource<KafkaKeyOf<O>, KafkaValueOf<O>>(options), {
    name: options.name ?? undefined,
  });
}
