/**
 * The error catalogue. Every error Sluice raises is a {@link SluiceError} with a stable `code`
 * (taken from its own class), a `retriable` flag and a `hint` that says what to do next.
 *
 * @example
 * ```ts
 * import { SluiceError, InvalidOptionError } from 'sluice';
 * try {
 *   new StreamingContext({ batchInterval: -1 });
 * } catch (e) {
 *   if (e instanceof InvalidOptionError) console.error(e.code, e.option, e.hint);
 * }
 * ```
 */
export abstract class SluiceError extends Error {
  /** Stable machine-readable code, e.g. `SLUICE_INVALID_OPTION`. */
  abstract readonly code: string;
  /** True when trying the same thing again may succeed. */
  readonly retriable: boolean = false;
  /** What to do about it. */
  readonly hint: string;

  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super(hint ? `${message}. ${hint}` : message, options);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** An option has a value that is not accepted. Raised before anything starts. */
export class InvalidOptionError extends SluiceError {
  static readonly code = 'SLUICE_INVALID_OPTION';
  readonly code = InvalidOptionError.code;
  constructor(
    readonly option: string,
    readonly accepted: string,
    readonly received: unknown,
  ) {
    super(`Invalid option '${option}': got ${describeValue(received)}`, `Accepted: ${accepted}`);
  }
}

/**
 * In group membership, this instance no longer owns partitions of the batch it was running (the
 * group gave them to another instance, or dropped this one as too slow), or another instance
 * committed them first: the batch was abandoned, nothing of it committed, and the job goes on
 * from the stored offsets with the partitions it owns. Not a job failure.
 */
export class OwnershipLostError extends SluiceError {
  static readonly code = 'SLUICE_OWNERSHIP_LOST';
  readonly code = OwnershipLostError.code;
  override readonly retriable = true;
  constructor(
    message: string,
    readonly partitions: readonly { readonly topic: string; readonly partition: number }[] = [],
    options?: { cause?: unknown },
  ) {
    super(
      message,
      'Nothing to do: the batch was abandoned uncommitted and the partitions still owned are read again from the stored offsets',
      options,
    );
  }
}

/** The pipeline as built cannot run: duplicate names, no output, a stream used across contexts. */
export class PipelineDefinitionError extends SluiceError {
  static readonly code = 'SLUICE_PIPELINE_DEFINITION';
  readonly code = PipelineDefinitionError.code;
  constructor(message: string, hint: string) {
    super(message, hint);
  }
}

/** An operation that is not allowed in the context's current state (e.g. adding a stream after start). */
export class ContextStateError extends SluiceError {
  static readonly code = 'SLUICE_CONTEXT_STATE';
  readonly code = ContextStateError.code;
  constructor(
    message: string,
    hint: string,
    readonly state: string,
  ) {
    super(message, hint);
  }
}

/** A user function threw. The batch failed and nothing of it was committed. */
export class OperatorError extends SluiceError {
  static readonly code = 'SLUICE_OPERATOR_FAILED';
  readonly code = OperatorError.code;
  constructor(
    readonly operator: string,
    readonly batchTime: number,
    cause: unknown,
  ) {
    super(
      `Operator '${operator}' failed in the batch of ${new Date(batchTime).toISOString()} (${batchTime}): ${causeMessage(cause)}`,
      'The batch was not committed; fix the function or the input and restart the job',
      { cause },
    );
  }
}

/** A source could not fix or read its part of a batch. */
export class SourceError extends SluiceError {
  static readonly code = 'SLUICE_SOURCE_FAILED';
  readonly code = SourceError.code;
  override readonly retriable: boolean;
  constructor(
    readonly source: string,
    message: string,
    hint: string,
    options: { cause?: unknown; retriable?: boolean } = {},
  ) {
    super(`Source '${source}': ${message}`, hint, { cause: options.cause });
    this.retriable = options.retriable ?? false;
  }
}

/** A record's bytes could not be turned into a value. */
export class DeserializationError extends SluiceError {
  static readonly code = 'SLUICE_DESERIALIZATION';
  readonly code = DeserializationError.code;
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: number,
    readonly field: 'key' | 'value',
    cause: unknown,
  ) {
    super(
      `Cannot deserialize the ${field} of ${topic}-${partition} at offset ${offset}: ${causeMessage(cause)}`,
      'Check the producer and the deserializer configured for this topic',
      { cause },
    );
  }
}

/** The Kafka cluster did not answer within the bounded retries. */
export class BrokerUnreachableError extends SluiceError {
  static readonly code = 'SLUICE_BROKER_UNREACHABLE';
  readonly code = BrokerUnreachableError.code;
  override readonly retriable = true;
  constructor(
    readonly bootstrapServers: string,
    readonly attempts: number,
    cause?: unknown,
  ) {
    super(
      `Kafka at ${bootstrapServers} did not answer after ${attempts} attempt(s)${cause ? `: ${causeMessage(cause)}` : ''}`,
      'Start a broker (`sluice kafka start`) or point KAFKA_BOOTSTRAP / bootstrapServers at a running cluster',
      { cause },
    );
  }
}

/** A topic the pipeline reads does not exist. */
export class TopicNotFoundError extends SluiceError {
  static readonly code = 'SLUICE_TOPIC_NOT_FOUND';
  readonly code = TopicNotFoundError.code;
  constructor(readonly topic: string) {
    super(
      `Topic '${topic}' does not exist`,
      'Create it first, or pass createTopics: { partitions: N } to have Sluice create it',
    );
  }
}

/** A local service (Kafka, ZooKeeper, a database) could not be started. */
export class ServiceStartError extends SluiceError {
  static readonly code = 'SLUICE_SERVICE_START';
  readonly code = ServiceStartError.code;
  constructor(
    readonly service: string,
    reason: string,
    readonly logTail: string,
  ) {
    super(
      `${service} could not be started: ${reason}${logTail ? `\n--- last lines of its log ---\n${logTail}` : ''}`,
      `Read the log above; fix the cause, or point Sluice at a running ${service}`,
    );
  }
}

/** A compare-and-set offset write found another position than the batch started from. */
export class OffsetConflictError extends SluiceError {
  static readonly code = 'SLUICE_OFFSET_CONFLICT';
  readonly code = OffsetConflictError.code;
  constructor(
    readonly group: string,
    readonly topic: string,
    readonly partition: number,
    readonly expected: number,
    readonly stored: number | undefined,
  ) {
    super(
      `Offset conflict for group '${group}' on ${topic}-${partition}: the batch starts at ${expected} but the store holds ${stored ?? 'nothing'}`,
      'Another instance, or an earlier run of this batch, already committed it; nothing of this batch was applied. Check that only one instance runs this group',
    );
  }
}

/**
 * A stored offset lies outside a partition's valid range: below its log start (records deleted by
 * retention) or past its end (topic recreated). Raised under the `fail` policy.
 */
export class OffsetOutOfRangeError extends SluiceError {
  static readonly code = 'SLUICE_OFFSET_OUT_OF_RANGE';
  readonly code = OffsetOutOfRangeError.code;
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly offset: number,
    readonly logStartOffset: number,
    readonly endOffset: number,
  ) {
    super(
      `Offset ${offset} of ${topic}-${partition} is outside the partition's valid range [${logStartOffset}, ${endOffset}]${
        offset < logStartOffset
          ? `: ${logStartOffset - offset} record(s) were deleted by retention before they were read`
          : ': the topic was probably recreated'
      }`,
      "Set the source's offsetOutOfRange policy to 'earliest' or 'latest' to continue (the loss is logged and counted), or fix the stored offset with `sluice offsets set`",
    );
  }
}

/** A stateful operator's state in a checkpoint that the pipeline can no longer take. */
export interface CheckpointDifference {
  readonly operator: string;
  readonly change: 'removed-or-renamed' | 'kind-changed';
  readonly detail: string;
}

/** The checkpoint was written by a pipeline whose stateful operators differ incompatibly. */
export class CheckpointIncompatibleError extends SluiceError {
  static readonly code = 'SLUICE_CHECKPOINT_INCOMPATIBLE';
  readonly code = CheckpointIncompatibleError.code;
  constructor(
    readonly location: string,
    readonly differences: readonly CheckpointDifference[],
  ) {
    super(
      `The checkpoint at ${location} does not fit this pipeline:\n${differences.map((d) => `  - ${d.detail}`).join('\n')}`,
      `Ways forward: keep the offsets and drop that state with \`sluice checkpoint migrate ${location} ${differences
        .map((d) => `--drop ${d.operator}`)
        .join(
          ' ',
        )}\`; or restore the operator's name; or start fresh with a new checkpoint location (the offsets and all state are lost)`,
    );
  }
}

function causeMessage(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
