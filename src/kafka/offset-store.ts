/**
 * Offsets kept where Kafka users expect them: as the consumer group's committed offsets
 * (`__consumer_offsets`), visible to `kafka-consumer-groups --describe`, lag monitors and any
 * Kafka client.
 *
 * In single membership Sluice never joins the group: its direct source assigns partitions itself.
 * A group without members accepts "standalone" commits (generation -1, no member id), which is
 * what this store sends, through one librdkafka consumer per group that never subscribes and never
 * fetches. In group membership the direct source is a member of the group, and the broker takes
 * commits only from members: the store commits through the source's consumer (see ./group.ts).
 */
import {
  BrokerUnreachableError,
  InvalidOptionError,
  OwnershipLostError,
  SluiceError,
  SourceError,
  TopicNotFoundError,
} from '../core/errors.js';
import type { OffsetStore, PartitionOffset, OffsetRange } from '../core/offsets.js';
import {
  AdminClient,
  CODES,
  backoff,
  call,
  delay,
  describeError,
  errorCode,
  groupApi,
  isTransient,
  isUnknownTopic,
  isUnreachable,
  redactConfig,
  retrying,
  type IAdminClient,
  type LibrdKafkaError,
  type RdKafkaConsumer,
} from './rdkafka.js';
import { GroupCommitter } from './group-committer.js';
import { formatCommitMetadata, readingMember, registeredMembers, type GroupMember } from './group.js';
import { AuthFailureWatch } from './auth-watch.js';
import { identityOf, securityError, type KafkaIdentity, type KafkaPermission } from './errors.js';
import {
  bootstrapKeys,
  connectPolicy,
  validateBootstrapServers,
  validateClientConfig,
  validateConnect,
  type ClientConfig,
  type ConnectOptions,
  type ConnectPolicy,
  type OwnedKeys,
} from './options.js';
import {
  librdkafkaConfig,
  resolveCluster,
  validateClusterOption,
  type ClusterOption,
  type KafkaCluster,
} from './cluster.js';

const E = CODES.ERRORS;

export interface KafkaOffsetStoreOptions extends ClusterOption {
  /**
   * Bounds every call on the cluster: `attempts` tries of at most `timeoutMs` each (default 3 x
   * 5000 ms), then {@link BrokerUnreachableError} (or a retriable `SourceError` when the broker
   * answered but kept refusing, e.g. offsets held by an open transaction).
   */
  readonly connect?: ConnectOptions;
  /**
   * librdkafka properties for the store's clients (an admin client and one consumer per group),
   * over the cluster's. Never logged with their secrets.
   */
  readonly clientConfig?: ClientConfig;
}

/** Keys the store sets itself. */
const OWNED_CONFIG: OwnedKeys = {
  ...bootstrapKeys(),
  'group.id': 'no value here: the group passed to each call',
  'enable.auto.commit': 'no value here: (always false: the store commits explicitly)',
};

/** Commit errors that mean "the coordinator is moving or loading": worth another attempt. */
const COORDINATOR_BUSY = new Set<number>([
  E.ERR_COORDINATOR_LOAD_IN_PROGRESS,
  E.ERR_COORDINATOR_NOT_AVAILABLE,
  E.ERR_NOT_COORDINATOR,
  E.ERR__WAIT_COORD,
  E.ERR_REBALANCE_IN_PROGRESS,
  E.ERR_UNSTABLE_OFFSET_COMMIT,
]);

/** The group has members (someone subscribed with this group id): standalone commits are refused. */
const GROUP_HAS_MEMBERS = new Set<number>([
  E.ERR_ILLEGAL_GENERATION,
  E.ERR_UNKNOWN_MEMBER_ID,
  E.ERR_FENCED_INSTANCE_ID,
  E.ERR_STALE_MEMBER_EPOCH,
]);

/**
 * A member's commit refused because it is no longer the member it was (dropped for not polling, a
 * newer member epoch, a restarted static member): in group membership, the batch is abandoned.
 */
export const MEMBER_FENCED = new Set<number>([
  E.ERR_ILLEGAL_GENERATION,
  E.ERR_UNKNOWN_MEMBER_ID,
  E.ERR_FENCED_INSTANCE_ID,
  E.ERR_STALE_MEMBER_EPOCH,
  E.ERR_FENCED_MEMBER_EPOCH,
  E.ERR__MAX_POLL_EXCEEDED,
  E.ERR__ASSIGNMENT_LOST,
]);

/** The member-fencing code in `e` or its causes, if any. */
export function memberFencedCode(e: unknown): number | undefined {
  for (let x: unknown = e, depth = 0; x && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    const c = errorCode(x);
    if (c !== undefined && MEMBER_FENCED.has(c)) return c;
  }
  return undefined;
}

function retriable(e: unknown): boolean {
  const c = errorCode(e);
  return isTransient(e) || (c !== undefined && COORDINATOR_BUSY.has(c));
}

/** What a commit of `offsets` for `group` needs: Read on the group and on the topics. */
function commitNeeds(group: string, offsets: readonly { topic: string }[]): KafkaPermission[] {
  return [
    { operation: 'Read', resourceType: 'group', resource: group },
    ...[...new Set(offsets.map((o) => o.topic))].map((topic): KafkaPermission => ({
      operation: 'Read',
      resourceType: 'topic',
      resource: topic,
    })),
  ];
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks the options shared by the Kafka offset stores; throws InvalidOptionError. */
export function validateKafkaOffsetStoreOptions(o: KafkaOffsetStoreOptions): void {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('options', 'an object', o);
  validateBootstrapServers(o.bootstrapServers);
  validateClusterOption(o.cluster);
  validateConnect(o.connect);
  validateClientConfig('clientConfig', o.clientConfig, 'an object of librdkafka properties', OWNED_CONFIG);
}

function validateGroup(group: unknown): asserts group is string {
  if (typeof group !== 'string' || group.length === 0)
    throw new InvalidOptionError('group', 'a non-empty group id', group);
}

function validateTopics(topics: unknown): asserts topics is readonly string[] {
  if (!Array.isArray(topics) || topics.some((t) => typeof t !== 'string' || t.length === 0)) {
    throw new InvalidOptionError('topics', 'an array of topic names', topics);
  }
}

/**
 * Offsets as Kafka consumer-group commits. `read` returns the group's committed offsets
 * (partitions without a commit are absent); `write` and `set` commit; `delete` removes the group's
 * offsets of the given topics.
 *
 * **No compare-and-set** (`capabilities.compareAndSet` is false, and `write` ignores the option):
 * Kafka's OffsetCommit has no conditional form. The broker stores whatever a member (or, for a group
 * without members, anyone) sends, and a read-then-commit check would still race with a second
 * instance. So the engine commits here after the outputs: at-least-once, or exactly-once when the
 * outputs are idempotent. For Kafka-to-Kafka exactly-once use {@link KafkaTransactionalStore}.
 *
 * **Topics must exist:** Kafka 4 refuses commits for topics it does not know
 * ({@link TopicNotFoundError}). A pipeline only commits offsets of topics it reads, which exist.
 * `read` asks for the partitions the topics have now: offsets left behind by a deleted topic are
 * not returned.
 *
 * **delete** cannot remove single topics with this client (librdkafka's DeleteConsumerGroupOffsets
 * is not exposed by `@confluentinc/kafka-javascript`), so it reads all of the group's offsets,
 * deletes the group and commits back the offsets of the other topics (offsets of topics that no
 * longer exist are dropped). That is not atomic: run it on a stopped job (`sluice offsets reset`
 * does), never while the pipeline commits. A group with active members cannot be deleted.
 *
 * Offsets are kept exactly up to 2^53 - 1. Every call is bounded (see `connect`).
 *
 * @example
 * ```ts
 * import { KafkaOffsetStore } from 'sluice/kafka';
 * const store = new KafkaOffsetStore({ bootstrapServers: '127.0.0.1:9092' });
 * await store.write('billing', [{ topic: 'orders', partition: 0, fromOffset: 0, untilOffset: 42 }]);
 * await store.read('billing', ['orders']); // [{ topic: 'orders', partition: 0, offset: 42 }]
 * await store.close();
 * ```
 *
 * A `KafkaDirectSource` uses one of these by default: a Kafka pipeline without an `offsetStore`
 * commits its offsets to its group (the source's `groupId`, else the pipeline id) after its outputs.
 *
 * **Group membership** (`membership: 'group'`): `write` and `set` commit as the group member the
 * instance's direct source is, through its consumer, and only partitions it still owns (else
 * `OwnershipLostError`, and the batch is abandoned); a refusal by the broker because the instance
 * was dropped from the group is `OwnershipLostError` too. Each partition's commit carries the
 * metadata `{"instance":"<instanceId>","batchTime":<ms>}` (see `parseCommitMetadata`). A store
 * serves one instance: two instances in one process need a store each.
 */
export class KafkaOffsetStore implements OffsetStore {
  readonly kind: string = 'kafka';
  /** Shared: in group membership the group's members commit, and the broker fences old generations. */
  readonly capabilities = { compareAndSet: false, shared: true };
  readonly bootstrapServers: string;
  protected readonly cluster: KafkaCluster;
  protected readonly policy: ConnectPolicy;
  protected readonly clientConfig: ClientConfig;
  /** @internal Who the store's clients are on the cluster (for the security errors). */
  protected readonly identity: KafkaIdentity;
  /**
   * @internal A refused login, seen in the events of any of the store's clients (they share the cluster's
   * settings and `clientConfig`): later calls fail at once with it.
   */
  protected readonly auth: AuthFailureWatch;
  #admin: IAdminClient | undefined;
  /** Admin calls not answered yet: the admin client is disconnected after them. */
  readonly #pending = new Set<Promise<unknown>>();
  readonly #committers = new Map<string, Promise<GroupCommitter>>();
  /** Group membership: the member each group's commits go through (bound at its first read). */
  readonly #members = new Map<string, GroupMember>();
  #closed = false;

  constructor(options: KafkaOffsetStoreOptions = {}) {
    validateKafkaOffsetStoreOptions(options);
    this.cluster = resolveCluster(options);
    this.bootstrapServers = this.cluster.bootstrapServers;
    this.policy = connectPolicy(options.connect);
    this.clientConfig = { ...options.clientConfig };
    this.identity = identityOf(librdkafkaConfig(this.cluster, {}, this.clientConfig));
    this.auth = new AuthFailureWatch(this.identity);
  }

  describe(): Record<string, unknown> {
    return {
      ...this.cluster.describe(),
      ...(Object.keys(this.clientConfig).length
        ? { clientConfig: redactConfig({ ...this.clientConfig }) }
        : {}),
    };
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    validateGroup(group);
    validateTopics(topics);
    this.#requireOpen();
    // A read on a source's behalf (group membership) binds the store to that instance.
    this.memberOf(group, true);
    const partitions = await this.#partitionsOf(topics);
    if (partitions.length === 0) return [];
    return this.#fetchOffsets(group, partitions);
  }

  /**
   * Commits each range's `untilOffset`, in one commit request. `compareAndSet` is ignored: Kafka's
   * commits are unconditional (see the class comment), and `capabilities.compareAndSet` says so.
   */
  async write(
    group: string,
    ranges: readonly OffsetRange[],
    _options?: { compareAndSet?: boolean },
  ): Promise<void> {
    validateGroup(group);
    if (!Array.isArray(ranges)) throw new InvalidOptionError('ranges', 'an array of offset ranges', ranges);
    for (const r of ranges) {
      if (!isNonNegativeInt(r.untilOffset) || !isNonNegativeInt(r.partition)) {
        throw new InvalidOptionError('ranges', 'ranges with integer partition and untilOffset >= 0', r);
      }
    }
    await this.commit(
      group,
      ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.untilOffset })),
    );
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    validateGroup(group);
    if (!Array.isArray(offsets))
      throw new InvalidOptionError('offsets', 'an array of { topic, partition, offset }', offsets);
    for (const o of offsets) {
      if (!isNonNegativeInt(o.offset) || !isNonNegativeInt(o.partition)) {
        throw new InvalidOptionError('offsets', 'positions with integer partition and offset >= 0', o);
      }
    }
    await this.commit(group, offsets);
  }

  /**
   * Forgets the group's offsets of `topics`: deletes the group and commits back its other topics'
   * offsets (not atomic; run it on a stopped job; see the class comment).
   */
  async delete(group: string, topics: readonly string[]): Promise<void> {
    validateGroup(group);
    validateTopics(topics);
    this.#requireOpen();
    const all = await this.#fetchOffsets(group, undefined);
    if (!all.some((o) => topics.includes(o.topic))) return;
    const keep = all.filter((o) => !topics.includes(o.topic));
    await this.#deleteGroup(group);
    if (keep.length === 0) return;
    // Offsets of topics that were deleted cannot be committed again (and could never be used).
    const existing = new Set(
      (await this.#partitionsOf([...new Set(keep.map((o) => o.topic))])).map((p) => p.topic),
    );
    const back = keep.filter((o) => existing.has(o.topic));
    if (back.length) await this.commit(group, back);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const committers = [...this.#committers.values()];
    this.#committers.clear();
    for (const c of committers) {
      const committer = await c.catch(() => undefined);
      await committer?.close(this.policy.timeoutMs);
    }
    const admin = this.#admin;
    this.#admin = undefined;
    // After the calls still waiting for their answer (ones a refused login ended early): the
    // binding's disconnect() blocks the event loop until pending calls end.
    if (admin && this.#pending.size === 0) admin.disconnect();
    else if (admin) void Promise.allSettled([...this.#pending]).then(() => admin.disconnect());
  }

  // ---- for the transactional store -------------------------------------------------------------

  /** Commits offsets for `group`: bounded attempts; typed errors. */
  protected async commit(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    this.#requireOpen();
    if (offsets.length === 0) return;
    const member = this.memberOf(group);
    if (member) return this.#commitAsMember(member, offsets);
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      if (attempt > 1) await delay(backoff(attempt - 1));
      let committer: GroupCommitter;
      try {
        committer = await this.#committer(group);
      } catch (e) {
        if (e instanceof SluiceError || !retriable(e))
          throw this.#failure(`connect a client for group '${group}'`, e, commitNeeds(group, offsets));
        lastError = e;
        continue;
      }
      try {
        await this.auth.race(committer.commit(offsets, this.policy.timeoutMs));
        return;
      } catch (e) {
        lastError = e;
        const c = errorCode(e);
        const security = securityError(e, this.identity, commitNeeds(group, offsets));
        if (security) throw security;
        if (isUnknownTopic(e) || c === E.ERR__UNKNOWN_PARTITION) {
          const missing = await this.missingTopic(offsets.map((o) => o.topic));
          if (missing !== undefined) throw new TopicNotFoundError(missing);
        } else if (c !== undefined && GROUP_HAS_MEMBERS.has(c)) {
          throw new SourceError(
            'kafka-offsets',
            `Kafka refused the commit of group '${group}': the group has members (${describeError(e)})`,
            'Sluice assigns partitions itself and commits as a group without members: use a group id that no subscribed consumer uses',
            { cause: e },
          );
        } else if (c === E.ERR__TIMED_OUT || c === E.ERR__STATE) {
          // No answer: this consumer's late answer must not be taken for the next commit's.
          this.#dropCommitter(group, committer);
        } else if (!retriable(e)) {
          throw this.#failure(`commit the offsets of group '${group}'`, e);
        }
      }
    }
    throw this.#exhausted(`commit the offsets of group '${group}'`, lastError);
  }

  /**
   * Group membership: the member (this instance's direct source) that commits `group`'s offsets, or
   * undefined in single membership. The store binds itself to the member it first serves (a read
   * made on a source's behalf names it: see ./group.ts); a store shared by two instances of the
   * group in one process is refused.
   */
  protected memberOf(group: string, forRead = false): GroupMember | undefined {
    const bound = this.#members.get(group);
    const reading = readingMember(group);
    if (reading) {
      if (bound?.open && bound !== reading) throw sharedStore(group, bound, reading);
      this.#members.set(group, reading);
      return reading;
    }
    if (bound?.open) return bound;
    // A read outside a source (an operator's, a check) binds nothing.
    if (forRead) return undefined;
    const registered = registeredMembers(this.bootstrapServers, group);
    if (registered.length > 1) {
      throw new SourceError(
        'kafka-offsets',
        `${registered.length} instances of group '${group}' run in this process and this offset store serves none of them yet`,
        'Give each StreamingContext its own offset store',
      );
    }
    const found = registered[0];
    if (found) this.#members.set(group, found);
    else this.#members.delete(group);
    return found;
  }

  /** The instance id of a member this store serves, if any: the store is in group membership. */
  protected boundInstanceId(): string | undefined {
    for (const m of this.#members.values()) if (m.open) return m.instanceId;
    return undefined;
  }

  /**
   * Commits as the group member, with the commit metadata: only partitions the member still owns
   * (the broker would take the others from a current member too); a member the group dropped is
   * refused by the broker, which is {@link OwnershipLostError} here.
   */
  async #commitAsMember(member: GroupMember, offsets: readonly PartitionOffset[]): Promise<void> {
    const metadata = formatCommitMetadata({
      instance: member.instanceId,
      batchTime: member.batchTime ?? Date.now(),
    });
    const withMetadata = offsets.map((o) => ({
      topic: o.topic,
      partition: o.partition,
      offset: o.offset,
      metadata,
    }));
    const group = member.group;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      if (attempt > 1) await delay(backoff(attempt - 1));
      member.assertOwned(offsets);
      try {
        await this.auth.race(
          call<void>((cb) => groupApi(member.consumer).commitCb(withMetadata, cb as never)),
        );
        return;
      } catch (e) {
        lastError = e;
        const security = securityError(e, this.identity, commitNeeds(group, offsets));
        if (security) throw security;
        if (memberFencedCode(e) !== undefined) {
          throw new OwnershipLostError(
            `Kafka refused the commit of group '${group}' by instance '${member.instanceId}': it is no longer the group's member it was (${describeError(e)})`,
            offsets.map((o) => ({ topic: o.topic, partition: o.partition })),
            { cause: e },
          );
        }
        if (isUnknownTopic(e) || errorCode(e) === E.ERR__UNKNOWN_PARTITION) {
          const missing = await this.missingTopic(offsets.map((o) => o.topic));
          if (missing !== undefined) throw new TopicNotFoundError(missing);
        } else if (!retriable(e)) {
          throw this.#failure(`commit the offsets of group '${group}'`, e);
        }
      }
    }
    throw this.#exhausted(`commit the offsets of group '${group}'`, lastError);
  }

  /**
   * A connected consumer whose `group.id` is `group` (one per group, made on first use, never
   * subscribed): what `sendOffsetsToTransaction` takes the group's metadata from.
   */
  protected async groupConsumer(group: string): Promise<RdKafkaConsumer> {
    return (await this.#committer(group)).consumer;
  }

  /** Throws if the store was closed. */
  protected requireOpen(): void {
    this.#requireOpen();
  }

  protected isClosed(): boolean {
    return this.#closed;
  }

  /** The first of `topics` that does not exist, if any. */
  protected async missingTopic(topics: readonly string[]): Promise<string | undefined> {
    const unique = [...new Set(topics)];
    const have = await this.#partitionsOf(unique);
    return unique.find((t) => !have.some((p) => p.topic === t));
  }

  // ---- internals ---------------------------------------------------------------------------------

  #committer(group: string): Promise<GroupCommitter> {
    this.#requireOpen();
    let c = this.#committers.get(group);
    if (!c) {
      const connecting = GroupCommitter.connect(
        this.cluster,
        this.clientConfig,
        group,
        this.policy.timeoutMs,
        this.auth,
      );
      c = connecting;
      this.#committers.set(group, connecting);
      connecting.catch(() => {
        if (this.#committers.get(group) === connecting) this.#committers.delete(group);
      });
    }
    return c;
  }

  #requireOpen(): void {
    if (this.#closed)
      throw new SourceError('kafka-offsets', 'the offset store is closed', 'Create a new KafkaOffsetStore');
  }

  /** A call on the store's admin client: tracked until answered, and ended at once by a refused login. */
  #adminCall<T>(
    fn: (admin: IAdminClient, cb: (err: LibrdKafkaError | null | undefined, value: T) => void) => void,
  ): Promise<T> {
    const admin = this.#adminClient();
    const p = call<T>((cb) => fn(admin, cb));
    this.#pending.add(p);
    const done = () => void this.#pending.delete(p);
    p.then(done, done);
    return this.auth.race(p);
  }

  #adminClient(): IAdminClient {
    this.#requireOpen();
    if (!this.#admin) {
      this.#admin = AdminClient.create(
        librdkafkaConfig(this.cluster, { 'client.id': 'sluice-offsets-admin' }, this.clientConfig) as never,
      );
      this.auth.watch(this.#admin as unknown as Parameters<AuthFailureWatch['watch']>[0]);
    }
    return this.#admin;
  }

  #dropCommitter(group: string, committer: GroupCommitter): void {
    const current = this.#committers.get(group);
    if (current) {
      void current.then((c) => {
        if (c === committer && this.#committers.get(group) === current) this.#committers.delete(group);
      });
    }
    void committer.close(this.policy.timeoutMs);
  }

  /** Partitions (ascending) of the topics that exist. */
  async #partitionsOf(topics: readonly string[]): Promise<{ topic: string; partition: number }[]> {
    const unique = [...new Set(topics)];
    if (unique.length === 0) return [];
    const needs = unique.map((topic): KafkaPermission => ({
      operation: 'Describe',
      resourceType: 'topic',
      resource: topic,
    }));
    const described = await this.#retry(
      'describe topics',
      (timeout) =>
        this.#adminCall<Array<{ name: string; error?: unknown; partitions: Array<{ partition: number }> }>>(
          (admin, cb) => admin.describeTopics(unique, { timeout }, cb as never),
        ),
      needs,
    );
    const out: { topic: string; partition: number }[] = [];
    for (const d of described) {
      if (d.error) {
        if (isUnknownTopic(d.error)) continue;
        throw this.#failure(`describe topic '${d.name}'`, d.error, needs);
      }
      for (const p of [...d.partitions].sort((a, b) => a.partition - b.partition)) {
        out.push({ topic: d.name, partition: p.partition });
      }
    }
    return out;
  }

  /**
   * The group's committed offsets of `partitions` (all of the group's when undefined). Asks for
   * stable offsets: while a transaction holds offsets of a partition the broker answers
   * UNSTABLE_OFFSET_COMMIT, and this retries until the transaction ends (bounded).
   */
  async #fetchOffsets(
    group: string,
    partitions: readonly { topic: string; partition: number }[] | undefined,
  ): Promise<PartitionOffset[]> {
    const deadline = Date.now() + this.policy.attempts * this.policy.timeoutMs;
    let lastError: unknown;
    for (let attempt = 1; ; attempt++) {
      let results: Array<{
        groupId: string;
        error?: unknown;
        partitions: Array<{ topic: string; partition: number; offset: number; error?: unknown }>;
      }>;
      // OffsetFetch: Describe on the group and on the topics.
      const needs: KafkaPermission[] = [
        { operation: 'Describe', resourceType: 'group', resource: group },
        ...[...new Set((partitions ?? []).map((p) => p.topic))].map((topic): KafkaPermission => ({
          operation: 'Describe',
          resourceType: 'topic',
          resource: topic,
        })),
      ];
      try {
        results = await this.#adminCall((admin, cb) =>
          admin.listConsumerGroupOffsets(
            [
              {
                groupId: group,
                ...(partitions
                  ? { partitions: partitions.map((p) => ({ topic: p.topic, partition: p.partition })) }
                  : {}),
              },
            ],
            { timeout: this.policy.timeoutMs, requireStableOffsets: true },
            cb as never,
          ),
        );
      } catch (e) {
        if (!retriable(e)) throw this.#failure(`read the offsets of group '${group}'`, e, needs);
        lastError = e;
        results = [];
      }
      const result = results.find((r) => r.groupId === group);
      let again = result === undefined;
      const out: PartitionOffset[] = [];
      if (result?.error) {
        if (errorCode(result.error) === E.ERR_GROUP_ID_NOT_FOUND) return [];
        if (!retriable(result.error))
          throw this.#failure(`read the offsets of group '${group}'`, result.error, needs);
        lastError = result.error;
        again = true;
      }
      for (const p of result?.partitions ?? []) {
        if (p.error) {
          if (!retriable(p.error))
            throw this.#failure(
              `read the offset of group '${group}' on ${p.topic}-${p.partition}`,
              p.error,
              needs,
            );
          lastError = p.error;
          again = true;
        } else if (p.offset >= 0) {
          out.push({ topic: p.topic, partition: p.partition, offset: p.offset });
        }
      }
      if (!again)
        return out.sort((a, b) =>
          a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition,
        );
      if (Date.now() > deadline) {
        if (errorCode(lastError) === E.ERR_UNSTABLE_OFFSET_COMMIT) {
          throw new SourceError(
            'kafka-offsets',
            `the offsets of group '${group}' are held by a Kafka transaction that did not end within ${this.policy.attempts * this.policy.timeoutMs} ms`,
            'Another instance with this group’s transactional.id may be mid-transaction; it ends within transaction.timeout.ms. Try again',
            { cause: lastError, retriable: true },
          );
        }
        throw this.#exhausted(`read the offsets of group '${group}'`, lastError);
      }
      await delay(Math.min(20 * attempt, 500));
    }
  }

  async #deleteGroup(group: string): Promise<void> {
    await this.#retry(
      `delete group '${group}'`,
      async (timeout) => {
        const [r] = await this.#adminCall<Array<{ groupId: string; errorCode?: number; error?: unknown }>>(
          (admin, cb) => admin.deleteGroups([group], { timeout }, cb as never),
        );
        const code = r?.errorCode ?? errorCode(r?.error) ?? 0;
        if (code === 0 || code === E.ERR_GROUP_ID_NOT_FOUND) return;
        if (code === E.ERR_NON_EMPTY_GROUP) {
          throw new SourceError(
            'kafka-offsets',
            `cannot delete the offsets of group '${group}': the group has active members`,
            'Stop the consumers subscribed with this group id first',
            { cause: r?.error },
          );
        }
        throw r?.error ?? Object.assign(new Error(`delete group failed with code ${code}`), { code });
      },
      [{ operation: 'Delete', resourceType: 'group', resource: group }],
    );
  }

  #retry<T>(
    what: string,
    op: (timeoutMs: number) => Promise<T>,
    needs: readonly KafkaPermission[] = [],
  ): Promise<T> {
    return retrying(this.policy, op, {
      retriable,
      failure: (e) => this.#failure(what, e, needs),
      exhausted: (e) => this.#exhausted(what, e),
    });
  }

  #exhausted(what: string, e: unknown): Error {
    if (this.auth.failure) return this.auth.failure;
    if (e === undefined || isUnreachable(e) || errorCode(e) === E.ERR__TIMED_OUT) {
      return new BrokerUnreachableError(this.bootstrapServers, this.policy.attempts, e);
    }
    return new SourceError(
      'kafka-offsets',
      `${what} failed after ${this.policy.attempts} attempt(s): ${describeError(e)}`,
      'The cluster is busy or changing (coordinator moving?); try again',
      {
        cause: e,
        retriable: true,
      },
    );
  }

  #failure(what: string, e: unknown, needs: readonly KafkaPermission[] = []): Error {
    if (e instanceof SluiceError) return e;
    const security = securityError(e, this.identity, needs) ?? this.auth.failure;
    if (security) return security;
    if (isUnreachable(e)) return new BrokerUnreachableError(this.bootstrapServers, this.policy.attempts, e);
    return new SourceError(
      'kafka-offsets',
      `${what} failed: ${describeError(e)}`,
      'Check the cluster, the group and the ACLs of this client',
      {
        cause: e,
      },
    );
  }
}

function sharedStore(group: string, bound: GroupMember, other: GroupMember): InvalidOptionError {
  return new InvalidOptionError(
    'offsetStore',
    `one offset store per instance: this one commits group '${group}' for instance '${bound.instanceId}'`,
    `a second instance '${other.instanceId}'`,
  );
}
