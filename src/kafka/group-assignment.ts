/**
 * The direct source in group membership: the partitions the consumer group gives this instance,
 * and the rules that keep a partition from being committed by two instances. Measured with Kafka
 * 4.3 and librdkafka 2.15 under the consumer group protocol of KIP-848 (`group.protocol=consumer`):
 *
 * - Rebalances are incremental. The binding only queues librdkafka's rebalance event: the callback
 *   runs in JavaScript during a consume() (or disconnect()) call, and librdkafka waits until the
 *   application calls incrementalAssign / incrementalUnassign itself. So a gain can be answered
 *   later, with explicit offsets read from the offset store: nothing is delivered before, and
 *   consumption starts exactly there.
 * - The broker does not give revoked partitions to another member before this one unassigns them,
 *   as long as it does within max.poll.interval.ms (the rebalance timeout). A revoke that arrives
 *   while a batch over those partitions is planned but not committed waits for the batch to be
 *   committed or abandoned: no second instance reads them before this one's commit is visible.
 * - The broker accepts commits from a CURRENT member for partitions it no longer owns; so commits
 *   are checked here ({@link GroupAssignment.assertOwned}). A member that does not consume within
 *   max.poll.interval.ms is dropped: its next consume() fails with ERR__MAX_POLL_EXCEEDED, then it
 *   gets revokes whose assignment is lost, and it rejoins by itself; a batch running then is fenced
 *   (its fetch and its commits fail with OwnershipLostError: the engine abandons it).
 * - The application learns of that drop only at its next consume call, after the batch. Measured
 *   (test/kafka/group.test.ts, the zombie test): a batch that stalled past max.poll.interval.ms
 *   still had its transactional offset commit accepted, since the rebalance events had not run
 *   yet. So a batch whose consumer has not polled for nearly max.poll.interval.ms is fenced here,
 *   by the clock, before it commits ({@link pollSafetyMarginMs}).
 */
import { OwnershipLostError, SluiceError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { RebalanceEvent, TopicPartition } from '../core/source.js';
import { tpKey } from './admin.js';
import type { MembershipHooks } from './direct-consumer.js';
import { runAsMember, type GroupMember } from './group.js';
import { PartitionReader } from './partition-reader.js';
import {
  CODES,
  backoff,
  delay,
  describeError,
  errorCode,
  groupApi,
  isSecurityFailure,
  type RdKafkaConsumer,
} from './rdkafka.js';

const E = CODES.ERRORS;

/**
 * How long before max.poll.interval.ms runs out a batch stops committing (its commit may take that
 * long to reach the broker): a fifth of the interval, at most 5 s.
 */
export function pollSafetyMarginMs(maxPollIntervalMs: number): number {
  return Math.min(5000, Math.floor(maxPollIntervalMs / 5));
}

/** What the group assignment needs from its source. */
export interface GroupAssignmentHost {
  readonly bootstrapServers: string;
  readonly group: string;
  readonly instanceId: string;
  /** Topics in option order: the order of a batch's partitions. */
  readonly topics: readonly string[];
  readonly logger: Logger;
  /** Aborted when the context stops. */
  readonly signal: AbortSignal;
  /**
   * Where each of `readers` starts (tpKey -> offset): its stored position under the
   * offsetOutOfRange policy, else startingOffsets. Reads the offset store.
   */
  startPositions(readers: readonly PartitionReader[]): Promise<Map<string, number>>;
  report(event: Omit<RebalanceEvent, 'input' | 'instanceId'>): void;
  /** The consumer's `max.poll.interval.ms`. */
  readonly maxPollIntervalMs: number;
  /** When the consumer's last consume call returned (ms since the epoch). */
  lastPolled(): number;
}

/** The batch between its plan and its commit or abandonment. */
interface RunningBatch {
  readonly time: number;
  /** tpKeys of the partitions in its plan. */
  readonly planned: ReadonlySet<string>;
  /** Why it may no longer commit, once it may not. */
  fenced: string | undefined;
}

/**
 * The partitions a group gives one instance, their readers, and the rebalance callback. It is
 * the instance's {@link GroupMember}: the Kafka offset stores of the process commit through its
 * consumer, after {@link assertOwned}.
 */
export class GroupAssignment implements GroupMember, MembershipHooks {
  readonly bootstrapServers: string;
  readonly group: string;
  readonly instanceId: string;
  /** Owned readers in batch order (the source's array, kept up to date in place). */
  readonly partitions: PartitionReader[];
  /** topic -> partition -> reader (the source's routing map, kept up to date in place). */
  readonly byTopic: Map<string, PartitionReader[]>;
  readonly #host: GroupAssignmentHost;
  #consumer: RdKafkaConsumer | undefined;
  /** tpKeys incrementalAssign'ed and not unassigned yet (what librdkafka has assigned). */
  readonly #assigned = new Set<string>();
  /** Revokes held until the running batch ends, each unassigned with one call, in order. */
  readonly #deferred: TopicPartition[][] = [];
  /** Rebalance work runs one event at a time, in order. */
  #chain: Promise<void> = Promise.resolve();
  #batch: RunningBatch | undefined;
  /** Dropped from the group (max.poll.interval exceeded): revokes are not held until it rejoins. */
  #dropped = false;
  #closing = false;
  #open = true;
  /** An error that must stop the job (e.g. a stored offset out of range under 'fail'): thrown by the next plan. */
  #failure: Error | undefined;

  constructor(host: GroupAssignmentHost, partitions: PartitionReader[], byTopic: Map<string, PartitionReader[]>) {
    this.#host = host;
    this.bootstrapServers = host.bootstrapServers;
    this.group = host.group;
    this.instanceId = host.instanceId;
    this.partitions = partitions;
    this.byTopic = byTopic;
  }

  // ---- GroupMember ---------------------------------------------------------------------------

  get consumer(): RdKafkaConsumer {
    if (!this.#consumer) throw new OwnershipLostError('the source has no consumer yet');
    return this.#consumer;
  }

  get batchTime(): number | undefined {
    return this.#batch?.time;
  }

  get open(): boolean {
    return this.#open;
  }

  assertOwned(partitions: readonly TopicPartition[]): void {
    if (!this.#open) throw new OwnershipLostError(`instance '${this.instanceId}' closed its source`);
    this.#checkPolled();
    const fenced = this.#batch?.fenced;
    if (fenced) throw new OwnershipLostError(fenced, partitions);
    const gone = partitions.filter(
      (p) => !this.#assigned.has(tpKey(p.topic, p.partition)) || !this.#readerOf(p),
    );
    if (gone.length > 0) {
      throw new OwnershipLostError(
        `instance '${this.instanceId}' no longer owns ${gone.map((p) => `${p.topic}-${p.partition}`).join(', ')} of group '${this.group}'`,
        gone,
      );
    }
  }

  // ---- MembershipHooks (the fetch's consume loop) ----------------------------------------------

  dropped(e: unknown): boolean {
    if (errorCode(e) !== E.ERR__MAX_POLL_EXCEEDED) return false;
    this.#memberDropped(e);
    return true;
  }

  check(): void {
    this.#checkPolled();
    const fenced = this.#batch?.fenced;
    if (fenced) throw new OwnershipLostError(fenced, this.#batch ? [...this.#batch.planned].map(untpKey) : []);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** The consumer is connected: the rebalance callback answers on it from now on. */
  attach(consumer: RdKafkaConsumer): void {
    this.#consumer = consumer;
  }

  /** The error that must stop the job, if one happened while handling a rebalance. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** How many delivered records the readers hold (bounds consumption between batches). */
  buffered(): number {
    let n = 0;
    for (const r of this.partitions) n += r.buffered;
    return n;
  }

  /**
   * Waits (at most `ms`) for the rebalance work queued so far (a gain reading stored offsets), so a
   * plan right after a rebalance already has the partitions gained.
   */
  async settle(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#chain, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /** A batch was planned over `readers`: revokes of them wait for its end. */
  beginBatch(time: number, readers: readonly PartitionReader[]): void {
    this.#batch = { time, planned: new Set(readers.map((r) => tpKey(r.topic, r.partition))), fenced: undefined };
  }

  /** The batch was committed or abandoned: the revokes it held are carried out now. */
  endBatch(): void {
    this.#batch = undefined;
    for (const parts of this.#deferred.splice(0)) this.#release(parts, false);
  }

  /**
   * Closing: rebalance callbacks from now on (those of disconnect()) are answered at once, and
   * the work queued before is given `ms` to end.
   */
  async close(ms: number): Promise<void> {
    this.#closing = true;
    await this.settle(ms);
  }

  /** The consumer is disconnected. */
  closed(): void {
    this.#open = false;
    for (const r of this.partitions) r.forget();
  }

  // ---- the rebalance callback -------------------------------------------------------------------

  /**
   * The consumer's `rebalance_cb`: answers every event (librdkafka waits for the answer), never
   * throws (an error is logged; the work is retried or becomes the job's failure).
   */
  onRebalance(consumer: RdKafkaConsumer, err: unknown, parts: readonly TopicPartition[] | undefined): void {
    try {
      this.#consumer ??= consumer;
      const code = errorCode(err);
      const tps = (parts ?? []).map((p) => ({ topic: p.topic, partition: p.partition }));
      if (this.#closing) {
        // disconnect() waits for the answer; the protocol may read NONE then: never branch on it.
        this.#answer(code === E.ERR__ASSIGN_PARTITIONS ? 'assign' : 'unassign', tps);
        if (code !== E.ERR__ASSIGN_PARTITIONS) for (const tp of tps) this.#assigned.delete(key(tp));
        return;
      }
      if (code === E.ERR__ASSIGN_PARTITIONS) {
        this.#enqueue(() => this.#gain(tps));
      } else if (code === E.ERR__REVOKE_PARTITIONS) {
        let lost = false;
        try {
          lost = groupApi(consumer).assignmentLost();
        } catch {
          // Not answerable outside the callback on some versions: a plain revoke.
        }
        // At once, not in turn: a commit of the running batch must fail from now on.
        if (lost) this.#fence(`instance '${this.instanceId}' lost its partitions: the group gave them away`);
        this.#enqueue(async () => this.#revoke(tps, lost));
      } else {
        this.#host.logger.warn({ err: describeError(err) }, 'unexpected rebalance event: ignored');
      }
    } catch (e) {
      this.#host.logger.error({ err: describeError(e) }, 'handling a rebalance event failed');
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  #enqueue(work: () => Promise<void>): void {
    this.#chain = this.#chain.then(work).catch((e: unknown) => {
      this.#host.logger.error({ err: describeError(e) }, 'handling a rebalance event failed');
    });
  }

  #readerOf(tp: TopicPartition): PartitionReader | undefined {
    return this.byTopic.get(tp.topic)?.[tp.partition];
  }

  /**
   * Partitions gained: read where each starts (the offset store, retried until it answers), make
   * their readers and assign them at those offsets; nothing of them is delivered before.
   */
  async #gain(tps: TopicPartition[]): Promise<void> {
    this.#dropped = false;
    const fresh = tps.filter((tp) => !this.#readerOf(tp) && this.#host.topics.includes(tp.topic));
    // Assigned but readerless (dropped before the lost revoke came): librdkafka refuses to assign them twice.
    const stale = fresh.filter((tp) => this.#assigned.has(key(tp)));
    if (stale.length > 0) this.#answer('unassign', stale);
    for (const tp of stale) this.#assigned.delete(key(tp));
    const readers = fresh.map((tp) => new PartitionReader(tp.topic, tp.partition));
    let start: Map<string, number> | undefined;
    for (let attempt = 1; readers.length > 0 && !this.#closing; attempt++) {
      try {
        start = await runAsMember(this, () => this.#host.startPositions(readers));
        break;
      } catch (e) {
        if (e instanceof SluiceError ? !e.retriable : isSecurityFailure(e)) {
          // E.g. a stored offset out of range under 'fail': the job must stop, as at open in single
          // membership. The partitions are assigned without readers meanwhile (nothing is read).
          this.#failure ??= e as Error;
          this.#host.logger.error(
            { err: describeError(e), partitions: fresh.map(label) },
            'cannot start the partitions gained: the job stops at the next batch',
          );
          break;
        }
        this.#host.logger.warn(
          { err: describeError(e), attempt, partitions: fresh.map(label) },
          'reading the stored offsets of partitions gained failed; trying again',
        );
        try {
          await delay(backoff(attempt), this.#host.signal);
        } catch {
          break; // the context stops
        }
      }
    }
    if (!start || this.#closing) {
      this.#answer('assign', fresh);
      for (const tp of fresh) this.#assigned.add(key(tp));
      return;
    }
    for (const r of readers) {
      r.init(start.get(tpKey(r.topic, r.partition))!);
      let list = this.byTopic.get(r.topic);
      if (!list) this.byTopic.set(r.topic, (list = []));
      list[r.partition] = r;
    }
    this.#sortPartitions();
    this.#answer(
      'assign',
      readers.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.next })),
    );
    for (const tp of fresh) this.#assigned.add(key(tp));
    if (fresh.length > 0) this.#host.report({ gained: fresh, lost: [], owned: this.#owned() });
  }

  /**
   * Partitions revoked: given up at once, unless the running batch planned some of them and was
   * not fenced: then held (still assigned, still read) until the batch is committed or abandoned.
   */
  #revoke(tps: TopicPartition[], lost: boolean): void {
    const batch = this.#batch;
    const hold =
      !lost &&
      !this.#dropped &&
      batch !== undefined &&
      batch.fenced === undefined &&
      tps.some((tp) => batch.planned.has(key(tp)));
    if (hold) this.#deferred.push(tps);
    else this.#release(tps, lost);
  }

  /** Drops the readers of `tps`, unassigns them (one call: the answer to their revoke) and reports it. */
  #release(tps: TopicPartition[], lost: boolean): void {
    const dropped: TopicPartition[] = [];
    for (const tp of tps) {
      const r = this.#readerOf(tp);
      if (!r) continue;
      r.forget();
      delete this.byTopic.get(tp.topic)![tp.partition];
      dropped.push(tp);
    }
    if (dropped.length > 0) this.#sortPartitions();
    const assigned = tps.filter((tp) => this.#assigned.has(key(tp)));
    for (const tp of assigned) this.#assigned.delete(key(tp));
    this.#answer('unassign', assigned);
    if (dropped.length > 0) {
      if (lost) this.#host.logger.warn({ partitions: dropped.map(label) }, 'partitions lost to the group');
      this.#host.report({ gained: [], lost: dropped, owned: this.#owned() });
    }
  }

  /** Dropped from the group for not consuming in time: every partition is gone. */
  #memberDropped(e: unknown): void {
    this.#dropped = true;
    this.#fence(
      `instance '${this.instanceId}' was dropped from group '${this.group}': it did not consume within max.poll.interval.ms (${describeError(e)})`,
    );
    // Its readers go now; the revokes that follow unassign the partitions.
    const all = this.partitions.map((r) => ({ topic: r.topic, partition: r.partition }));
    for (const tp of all) {
      this.#readerOf(tp)?.forget();
      delete this.byTopic.get(tp.topic)![tp.partition];
    }
    this.#sortPartitions();
    if (all.length > 0) this.#host.report({ gained: [], lost: all, owned: [] });
  }

  /**
   * Fences the running batch when the consumer has not polled for max.poll.interval.ms less the
   * safety margin: librdkafka may have left the group already (see the module comment).
   */
  #checkPolled(): void {
    const batch = this.#batch;
    if (!batch || batch.fenced !== undefined) return;
    const { maxPollIntervalMs } = this.#host;
    const idle = Date.now() - this.#host.lastPolled();
    if (idle > maxPollIntervalMs - pollSafetyMarginMs(maxPollIntervalMs)) {
      this.#fence(
        `instance '${this.instanceId}' did not consume for ${idle} ms, too close to max.poll.interval.ms (${maxPollIntervalMs}): the group may have dropped it, so its batch does not commit`,
      );
    }
  }

  #fence(reason: string): void {
    if (this.#batch && this.#batch.fenced === undefined) this.#batch.fenced = reason;
  }

  #answer(what: 'assign' | 'unassign', tps: { topic: string; partition: number; offset?: number }[]): void {
    const consumer = this.#consumer;
    if (!consumer) return;
    try {
      if (what === 'assign') groupApi(consumer).incrementalAssign(tps);
      else groupApi(consumer).incrementalUnassign(tps);
    } catch (e) {
      // E.g. during disconnect; librdkafka then goes on without the answer.
      this.#host.logger.debug({ err: describeError(e), what, partitions: tps.map(label) }, `incremental ${what} failed`);
    }
  }

  /** Rebuilds the batch order (topics in option order, partitions ascending) in place. */
  #sortPartitions(): void {
    const sorted: PartitionReader[] = [];
    for (const topic of this.#host.topics) {
      for (const r of this.byTopic.get(topic) ?? []) if (r) sorted.push(r);
    }
    this.partitions.splice(0, this.partitions.length, ...sorted);
  }

  #owned(): TopicPartition[] {
    return this.partitions.map((r) => ({ topic: r.topic, partition: r.partition }));
  }
}

function key(tp: TopicPartition): string {
  return tpKey(tp.topic, tp.partition);
}

/** The inverse of tpKey (topic names cannot hold ':'). */
function untpKey(k: string): TopicPartition {
  const i = k.lastIndexOf(':');
  return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)) };
}

function label(tp: TopicPartition): string {
  return `${tp.topic}-${tp.partition}`;
}
