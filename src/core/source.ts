import type { AccessCheck, AccessCheckContext } from './access.js';
import type { BadRecordsOptions, DeadLetter } from './bad-records.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { OffsetRange, OffsetStore, PartitionOffset } from './offsets.js';

/** A stored position that was no longer valid (deleted by retention, or past the end) and was moved. */
export interface OffsetResetEvent {
  readonly input: string;
  readonly topic: string;
  readonly partition: number;
  /** The position the pipeline was at. */
  readonly storedOffset: number;
  /** The partition's valid range at the time: [logStartOffset, endOffset]. */
  readonly logStartOffset: number;
  readonly endOffset: number;
  /** Where reading continues. */
  readonly resetTo: number;
  readonly policy: 'earliest' | 'latest';
  /** Records skipped that the pipeline never read (0 when it moved backwards). */
  readonly recordsLost: number;
}

/** Per-batch figures a source reports with its plan (rate control, lag, retention loss). */
export interface InputMetrics {
  /** The rate limit in force for this batch, records/s over all partitions (undefined: none). */
  readonly rateLimit?: number;
  /** Records left behind in each partition after this batch's range. */
  readonly lag?: readonly { readonly topic: string; readonly partition: number; readonly lag: number }[];
  /** Records lost to offset resets while planning this batch. */
  readonly recordsLost?: number;
}

/** What one batch takes from one source, fixed before any record of the batch is read. */
export interface InputPlan {
  /** One range per partition; empty for sources that have no offsets (socket, queue). */
  readonly offsetRanges: readonly OffsetRange[];
  readonly metrics?: InputMetrics;
  /** Source-specific, opaque to the engine (e.g. the file names a directory source will read). */
  readonly detail?: unknown;
}

/**
 * How the instances of a job share its inputs: `single`, this process reads every partition;
 * `group`, every instance (process) of the job joins its inputs' consumer group and the server
 * (Kafka's group protocol) assigns the partitions among the live instances.
 */
export type Membership = 'single' | 'group';

/** A partition of an input. */
export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** In group membership: the partitions this instance gained and lost in one rebalance. */
export interface RebalanceEvent {
  readonly input: string;
  readonly instanceId: string;
  readonly gained: readonly TopicPartition[];
  readonly lost: readonly TopicPartition[];
  /** Every partition the instance owns after the rebalance. */
  readonly owned: readonly TopicPartition[];
}

/** What the engine gives a source when the context starts. */
export interface SourceContext {
  readonly pipelineId: string;
  /** How the job's instances share the input (see {@link Membership}). */
  readonly membership: Membership;
  /** This instance's stable id (the same after a restart), e.g. for a per-instance transactional id. */
  readonly instanceId: string;
  /** The stable name of the input stream this source feeds. */
  readonly name: string;
  readonly clock: Clock;
  readonly batchInterval: number;
  readonly logger: Logger;
  /** Aborted when the context stops; long waits must honour it. */
  readonly signal: AbortSignal;
  /**
   * The positions the pipeline's offset store holds for this source's group and `topics`: where
   * to resume. Partitions absent from the answer have no stored position (use the starting policy).
   */
  readonly storedOffsets: (topics: readonly string[]) => Promise<PartitionOffset[]>;
  /**
   * Hands a record that cannot be read (e.g. fails to deserialize) to the source's bad-record
   * policy: throws `error` under `fail`, else counts it and, under `dead-letter`, keeps it for the
   * dead-letter output of this batch. Only valid during `fetch`.
   */
  readonly reportBadRecord: (letter: Omit<DeadLetter, 'input' | 'batchTime'>, error: unknown) => void;
  /** Reports a reset of a stored position (retention loss): logged, counted and given to listeners. */
  readonly reportOffsetReset: (event: Omit<OffsetResetEvent, 'input'>) => void;
  /** In group membership: reports the partitions gained and lost (logged and given to listeners). */
  readonly reportRebalance: (event: Omit<RebalanceEvent, 'input' | 'instanceId'>) => void;
}

/** What the engine tells a source after each batch (for rate control). */
export interface BatchFeedback {
  readonly batchTime: number;
  readonly numRecords: number;
  readonly processingTime: number;
  readonly schedulingDelay: number;
}

/**
 * The source contract. A batch is read in two steps so that its content is decided before it is
 * read: {@link Source.plan} fixes the offset ranges (or the equivalent cut), {@link Source.fetch}
 * reads exactly that. The engine calls them in order, one batch at a time, never concurrently.
 * After the batch's outputs and offsets are committed the engine calls {@link Source.commit}.
 */
export interface Source<T> {
  /** Short kind name shown in plans and metrics, e.g. `kafka`, `socket`. */
  readonly kind: string;
  /** The options worth showing in a plan. Never secrets. */
  describe(): Record<string, unknown>;
  /** Connects; fails with a typed error if the source cannot be used. */
  open(ctx: SourceContext): Promise<void>;
  /** Step 1 of a batch: fix what it contains. */
  plan(batchTime: number): Promise<InputPlan>;
  /** Step 2: read exactly what `plan` fixed, as one array per batch partition. */
  fetch(plan: InputPlan): Promise<T[][]>;
  /**
   * The batch that used `plan` is complete and committed; the source may forget what it covered.
   * A replayable source without an offset group that saves its position here (a directory's read
   * set) does so after the batch's transaction, so its pipelines get exactly-once only through
   * idempotent outputs.
   */
  commit?(plan: InputPlan): Promise<void>;
  /**
   * In group membership: the batch that used `plan` was abandoned uncommitted (this instance lost
   * partitions of it, or another instance committed them first). The next plan starts again from
   * the stored offsets of the partitions the source still owns.
   */
  abandon?(plan: InputPlan): Promise<void>;
  /** Releases connections. Called once, after the last batch. */
  close(): Promise<void>;
  /**
   * True when a batch that was planned but not committed can be read again after a restart (Kafka,
   * a directory). False (socket) limits its pipelines to at-most-once. Default false.
   */
  readonly replayable?: boolean;
  /**
   * True when the source can run in group membership: a group assigns its partitions among the
   * job's instances (Kafka's consumer groups), and it plans only the partitions it owns.
   */
  readonly groupMembership?: boolean;
  /** The group its offsets are stored under (default: the pipeline id). */
  offsetGroup?(pipelineId: string): string;
  /** The offset store to use when the context names none (e.g. Kafka's consumer-group commits). */
  defaultOffsetStore?(): OffsetStore | undefined;
  /** What to do with records that fail to deserialize, and with records operators reject (`tryMap`). */
  readonly badRecords?: BadRecordsOptions;
  /** Called after every completed batch, e.g. to adapt the rate. */
  onBatchCompleted?(feedback: BatchFeedback): void;
  /**
   * Which permissions the source needs and its principal lacks (e.g. Kafka ACLs on its topics and
   * group), found without opening it. The context runs every input's and output's check at start,
   * before opening anything, and fails with one error listing all that are missing. The contract
   * is {@link AccessCheck}'s.
   */
  checkAccess?(ctx: AccessCheckContext): Promise<AccessCheck | undefined>;
}
