/**
 * Sluice: micro-batch stream processing for TypeScript. Spark Streaming's DStream model on
 * Node.js, with Kafka in and out (`sluice/kafka`) and a deterministic test driver (`sluice/testing`).
 */
export { StreamingContext } from './core/context.js';
export type {
  StreamingContextOptions,
  StreamingListener,
  BatchInfo,
  InputInfo,
  StopOptions,
  ContextState,
} from './core/context.js';
export { DStream, formatRecord } from './core/dstream.js';
export type { Named, ShuffleOptions, PrintOptions } from './core/dstream.js';
export { Batch } from './core/batch.js';
export type { PairInput } from './core/batch.js';
export type { Pair } from './core/keys.js';
export type { BatchContext, PipelinePlan, PlanNode } from './core/graph.js';
export { describePlan } from './core/graph.js';
export { SystemClock, ManualClock } from './core/clock.js';
export type { Clock } from './core/clock.js';
export { QueueSource } from './core/queue-source.js';
export type { QueueSourceOptions } from './core/queue-source.js';
export type { Source, SourceContext, InputPlan, OffsetRange } from './core/source.js';
export { rangeSize } from './core/source.js';
export type { Logger } from './core/logger.js';
export { createLogger, silentLogger } from './core/logger.js';
export * from './core/errors.js';
export { definePipeline, isPipelineDefinition } from './core/pipeline.js';
export type { PipelineDefinition } from './core/pipeline.js';
export { InMemoryOffsetStore, checkCompareAndSet } from './core/offsets.js';
export type { OffsetStore, PartitionOffset, OffsetStoreCapabilities } from './core/offsets.js';
export { GUARANTEES, isTransactionalSink, isTransactionalStore } from './core/sink.js';
export type { Guarantee, Sink, SinkContext, TransactionalOffsetStore, TransactionalSink } from './core/sink.js';
export {
  InMemorySink,
  InMemoryTransaction,
  InMemoryTransactionalSink,
  InMemoryTransactionalStore,
} from './core/memory-sink.js';
export { InMemoryLog, InMemoryLogSource } from './core/memory-log.js';
export type { LogRecord, InMemoryLogSourceOptions } from './core/memory-log.js';
export { PidRateEstimator, RateController, validateRateOptions } from './core/rate.js';
export type { RateOptions } from './core/rate.js';
export { BadRecordLedger, originOf, validateBadRecords, BAD_RECORD_POLICIES } from './core/bad-records.js';
export type { BadRecordPolicy, BadRecordsOptions, DeadLetter, BadRecordCounts } from './core/bad-records.js';
export type { CommitPlan } from './core/context.js';
export type { OutputOptions, ForeachBatchOptions, TryMapOptions } from './core/dstream.js';
export type { BatchFeedback } from './core/source.js';
export type { InputMetrics, OffsetResetEvent } from './core/source.js';
export { State } from './core/stateful.js';
export type { MapWithStateSpec, StateHandle } from './core/stateful.js';
export type { WindowOptions } from './core/dstream.js';
export { InMemoryCheckpointStore, isStateStore, compareOperators, collectState, restoreState } from './core/checkpoint.js';
export type { StateStore, CheckpointMeta, CheckpointOperator, OperatorState, StateDelta, StateUpdate } from './core/checkpoint.js';
