/**
 * Sluice: micro-batch stream processing for TypeScript. Spark Streaming's DStream model on
 * Node.js, with Kafka in and out (`sluice/kafka`) and a deterministic test driver (`sluice/testing`).
 *
 * This entry point holds what a pipeline author uses: the context and its streams, the sources
 * that need no adapter, the contracts a custom source, sink, offset store or state store
 * implements (with their in-memory implementations), and the error catalogue.
 */

// The context, pipeline files and what a running job reports.
export { StreamingContext } from './core/context.js';
export type { ContextState, StopOptions, StreamingContextOptions, StreamingListener } from './core/context.js';
export { definePipeline } from './core/pipeline.js';
export type { PipelineDefinition } from './core/pipeline.js';
export type { BatchInfo, InputInfo } from './core/batch-protocol.js';
export type { CommitPlan } from './core/commit-plan.js';
export type { PipelinePlan, PlanNode } from './core/graph.js';

// Streams, batches and state.
export { DStream } from './core/dstream.js';
export type {
  ForeachBatchOptions,
  Named,
  OutputOptions,
  PrintOptions,
  ShuffleOptions,
  TryMapOptions,
  WindowOptions,
} from './core/dstream.js';
export { Batch } from './core/batch.js';
export type { BatchContext, PairInput } from './core/batch.js';
export type { Pair } from './core/keys.js';
export { State } from './core/stateful.js';
export type { MapWithStateSpec } from './core/stateful.js';

// Sources: the contract, the sources that need no adapter, the in-memory ones.
export type {
  BatchFeedback,
  InputMetrics,
  InputPlan,
  Membership,
  OffsetResetEvent,
  RebalanceEvent,
  Source,
  SourceContext,
  TopicPartition,
} from './core/source.js';
export { socketTextStream, SocketTextSource, textFileStream, DirectorySource } from './sources/index.js';
export type { DirectorySourceOptions, SocketTextSourceOptions } from './sources/index.js';
export { QueueSource, queueStream } from './core/queue-source.js';
export type { QueueSourceOptions } from './core/queue-source.js';
export { InMemoryLog, InMemoryLogSource } from './core/memory-log.js';
export type { InMemoryLogSourceOptions, LogRecord } from './core/memory-log.js';
export type { RateOptions } from './core/rate.js';
export type { BadRecordCounts, BadRecordPolicy, BadRecordsOptions, DeadLetter } from './core/bad-records.js';

// Offsets, state and outputs: the contracts and their in-memory implementations.
export { InMemoryOffsetStore, rangeSize } from './core/offsets.js';
export type { OffsetRange, OffsetStore, OffsetStoreCapabilities, PartitionOffset } from './core/offsets.js';
export { InMemoryCheckpointStore } from './core/state.js';
export type {
  CheckpointMeta,
  CheckpointOperator,
  OperatorState,
  StateDelta,
  StateStore,
  StateUpdate,
} from './core/state.js';
export type { TransactionalOffsetStore } from './core/transactional-store.js';
export type { Guarantee, Sink, SinkContext, TransactionalSink } from './core/sink.js';
export type { AccessCheck, AccessCheckContext, MissingPermission } from './core/access.js';
export {
  InMemorySink,
  InMemoryTransaction,
  InMemoryTransactionalSink,
  InMemoryTransactionalStore,
} from './core/memory-sink.js';

// Errors: every error Sluice raises is a SluiceError with a stable code and a hint.
export {
  BrokerUnreachableError,
  CheckpointIncompatibleError,
  ContextStateError,
  DeserializationError,
  InvalidOptionError,
  OffsetConflictError,
  OffsetOutOfRangeError,
  OperatorError,
  OwnershipLostError,
  PipelineDefinitionError,
  ServiceStartError,
  SluiceError,
  SourceError,
  TopicNotFoundError,
} from './core/errors.js';
export type { CheckpointDifference } from './core/errors.js';

// Clock and logging.
export { SystemClock } from './core/clock.js';
export type { Clock } from './core/clock.js';
export { createLogger, silentLogger } from './core/logger.js';
export type { Logger } from './core/logger.js';
