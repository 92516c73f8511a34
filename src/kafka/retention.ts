/**
 * Retention loss: positions outside their partition's valid range [log start, end], below the log
 * start (records deleted by retention before they were read) or past the end (the topic was
 * deleted and re-created). Where a source starts (strictly for explicit starting offsets, under
 * the `offsetOutOfRange` policy for resumed ones), the policy itself with the reset event it
 * reports, and what a fetch does when Kafka answers offset out of range.
 */
import { OffsetOutOfRangeError, SourceError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { OffsetResetEvent, SourceContext } from '../core/source.js';
import { tpKey, type IsolationLevelName, type KafkaAdmin, type PartitionBounds } from './admin.js';
import type { OffsetOutOfRangePolicy, PartitionOffsets, StartingOffsets } from './direct-options.js';
import type { PartitionReader } from './partition-reader.js';
import type { RdKafkaConsumer } from './rdkafka.js';

/** What the fetches of one plan found deleted, so that fetching the plan again counts nothing twice. */
export interface PlanLoss {
  /** The plan's own metrics object. */
  readonly metrics: { recordsLost: number };
  /** tpKey -> where the partition's range continues after records found deleted: fetches start there. */
  readonly skip: Map<string, number>;
}

/** A partition, as the errors and events name it. */
interface Partition {
  readonly topic: string;
  readonly partition: number;
}

/** An explicit offset, with -2 as the log start and -1 as the end. */
export function special(offset: number, b: PartitionBounds): number {
  return offset === -2 ? b.logStart : offset === -1 ? b.end : offset;
}

/** An explicit starting offset (`startingOffsets`), which must lie in the partition. */
function strictStart(s: Partition, offset: number, b: PartitionBounds): number {
  if (offset < b.logStart) {
    throw new SourceError(
      'kafka',
      `the starting offset ${offset} of ${s.topic}-${s.partition} is no longer in Kafka: the partition starts at ${b.logStart} (records ${offset}..${b.logStart - 1} were deleted by retention)`,
      'Start from a later offset or from earliest, accepting the loss',
    );
  }
  if (offset > b.end) {
    throw new SourceError(
      'kafka',
      `the starting offset ${offset} of ${s.topic}-${s.partition} is past its end ${b.end}`,
      'Was the topic deleted and re-created? Start from explicit offsets within the partition, or from earliest/latest',
    );
  }
  return offset;
}

/**
 * A source's `offsetOutOfRange` policy (see {@link OffsetOutOfRangePolicy}): applies it to
 * positions outside their valid range, reports each reset, and keeps the records lost by resets
 * outside a plan until the next plan reports them.
 */
export class RetentionPolicy {
  readonly policy: OffsetOutOfRangePolicy;
  #ctx: SourceContext | undefined;
  #logger: Logger | undefined;
  /** Records lost to resets outside a plan (at open, by startAt): reported with the next plan. */
  #pendingLost = 0;

  constructor(policy: OffsetOutOfRangePolicy) {
    this.policy = policy;
  }

  /** The context resets are reported to (logged when it has no reporter). */
  bind(ctx: SourceContext, logger: Logger): void {
    this.#ctx = ctx;
    this.#logger = logger;
  }

  /** Records lost since the last call, by resets outside a plan (and fetches of foreign plans). */
  takeLost(): number {
    const lost = this.#pendingLost;
    this.#pendingLost = 0;
    return lost;
  }

  /** Losses that could not go with their own plan: reported with the next one. */
  addLost(lost: number): void {
    this.#pendingLost += lost;
  }

  /**
   * `offset` if it lies in [logStart, end]; otherwise the policy's answer: throws under `fail`,
   * else reports the reset and counts its loss towards the next plan.
   */
  checked(s: Partition, offset: number, b: PartitionBounds): number {
    if (offset >= b.logStart && offset <= b.end) return offset;
    const { resetTo, lost } = this.reset(s, offset, b);
    this.#pendingLost += lost;
    return resetTo;
  }

  /**
   * Where each partition starts: its resume position (stored, or given with startAt) under the
   * policy; else `startingOffsets`, strictly (explicit offsets out of range fail: they are the
   * caller's own choice). `bounds`: every partition's, from one ListOffsets round.
   */
  startPositions(
    partitions: readonly Partition[],
    bounds: Map<string, PartitionBounds>,
    starting: StartingOffsets,
    resume: PartitionOffsets,
  ): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of partitions) {
      const k = tpKey(s.topic, s.partition);
      const b = bounds.get(k)!;
      const resumeAt = resume[s.topic]?.[s.partition];
      if (resumeAt !== undefined) {
        out.set(k, this.checked(s, special(resumeAt, b), b));
      } else if (starting === 'earliest' || starting === 'latest') {
        out.set(k, starting === 'earliest' ? b.logStart : b.end);
      } else {
        out.set(k, strictStart(s, special(starting[s.topic]?.[s.partition] ?? -2, b), b));
      }
    }
    return out;
  }

  /**
   * Applies the policy to `offset`, outside `b`: throws, or reports the move. With `until`
   * (during a fetch), the move stays within the batch's range, which ends there.
   */
  reset(s: Partition, offset: number, b: PartitionBounds, until?: number): { resetTo: number; lost: number } {
    const policy = this.policy;
    if (policy === 'fail') throw new OffsetOutOfRangeError(s.topic, s.partition, offset, b.logStart, b.end);
    let resetTo = policy === 'earliest' ? b.logStart : b.end;
    if (until !== undefined)
      resetTo = policy === 'earliest' && offset < b.logStart ? Math.min(b.logStart, until) : until;
    const lost = Math.max(0, resetTo - offset);
    const event: Omit<OffsetResetEvent, 'input'> = {
      topic: s.topic,
      partition: s.partition,
      storedOffset: offset,
      logStartOffset: b.logStart,
      endOffset: b.end,
      resetTo,
      policy,
      recordsLost: lost,
    };
    const report = (
      this.#ctx as { reportOffsetReset?: (e: Omit<OffsetResetEvent, 'input'>) => void } | undefined
    )?.reportOffsetReset;
    if (report) report(event);
    else this.#logger?.warn(event, 'offset out of range: reset by policy');
    return { resetTo, lost };
  }

  /**
   * Applies the policy, during a fetch, to the `waiting` partitions whose position fell out of
   * their valid range (their records were deleted since the plan, or the topic was re-created):
   * throws under `fail`; else moves within the batch's range only ('earliest': to the log start if
   * it lies in the range, else to the range's end; 'latest': to the range's end), records the gap
   * in `loss`, and seeks there. False when none is out of range.
   *
   * The next plan still starts at the range's end, which the engine commits: if that position is
   * out of range too, the plan resets it, reporting the stored position as it will then be.
   */
  async resolveFetch(
    admin: KafkaAdmin,
    isolation: IsolationLevelName,
    consumer: RdKafkaConsumer,
    waiting: readonly PartitionReader[],
    loss: PlanLoss,
    timeoutMs: number,
  ): Promise<boolean> {
    if (waiting.length === 0) return false;
    const bounds = await admin.bounds(waiting, isolation);
    let any = false;
    for (const s of waiting) {
      const k = tpKey(s.topic, s.partition);
      const b = bounds.get(k)!;
      const at = s.reached;
      if (at >= b.logStart && at <= b.end) continue;
      any = true;
      const { resetTo, lost } = this.reset(s, at, b, s.until);
      loss.metrics.recordsLost += lost;
      loss.skip.set(k, resetTo);
      // Also restarts the client's fetching of the partition, which the error stopped.
      await s.seek(consumer, resetTo, timeoutMs);
    }
    return any;
  }
}
