/**
 * The few admin operations the Kafka adapters need: topic existence and partitions, topic creation,
 * offsets (earliest / latest, the latter as the last stable offset under read_committed, or both as
 * a partition's valid range), and deleting records below an offset. Every call is bounded:
 * `attempts` tries of at most `timeoutMs` each, then a typed error.
 */
import { BrokerUnreachableError, SluiceError, SourceError, TopicNotFoundError } from '../core/errors.js';
import { DEFAULT_CONNECT, type ClientConfig } from './options.js';
import { AuthFailureWatch } from './auth-watch.js';
import { defaultCluster, librdkafkaConfig, type KafkaCluster } from './cluster.js';
import { identityOf, securityError, type KafkaIdentity, type KafkaPermission } from './errors.js';
import {
  AclOperationTypes,
  AdminClient,
  IsolationLevel,
  OffsetSpec,
  CODES,
  backoff,
  call,
  delay,
  describeError,
  errorCode,
  isTopicExists,
  isTransient,
  isUnknownTopic,
  isUnreachable,
  retrying,
  type IAdminClient,
  type LibrdKafkaError,
  type RdKafkaConsumer,
  type RdKafkaProducer,
} from './rdkafka.js';

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

/** How hard to try before giving up: `attempts` calls of at most `timeoutMs` each. */
export interface RetryPolicy {
  readonly attempts: number;
  readonly timeoutMs: number;
  /** Aborts waits between attempts. */
  readonly signal?: AbortSignal;
}

export const DEFAULT_RETRY: RetryPolicy = DEFAULT_CONNECT;

export type IsolationLevelName = 'read_committed' | 'read_uncommitted';

/** `topic:partition`, the key of per-partition maps. */
export function tpKey(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** The offsets a partition can be read from: `[logStart, end]` (`end` = the next offset to be written, or the LSO). */
export interface PartitionBounds {
  readonly logStart: number;
  readonly end: number;
}

export interface NewTopicSpec {
  readonly partitions: number;
  /** Default: the broker's `default.replication.factor`. */
  readonly replicationFactor?: number;
  /** Topic configs, e.g. `{ 'retention.ms': '1000' }`. */
  readonly config?: Record<string, string>;
}

/**
 * What a principal may do with a topic, as the cluster says (`describeTopics` with the authorized
 * operations): `denied` when it may not even describe it (Kafka then does not say whether it
 * exists), `missing` when it does not exist, else the operations allowed (undefined: the cluster
 * did not say, Kafka < 2.3).
 */
export type TopicAccess =
  | { readonly kind: 'denied' }
  | { readonly kind: 'missing' }
  | { readonly kind: 'found'; readonly operations: ReadonlySet<string> | undefined };

/** @internal A member of a consumer group and the partitions it owns. */
export interface ConsumerGroupMember {
  readonly memberId: string;
  readonly clientId: string;
  readonly host: string;
  /** Static membership's `group.instance.id`, when the member has one. */
  readonly groupInstanceId?: string;
  readonly partitions: readonly TopicPartition[];
}

/** @internal What {@link KafkaAdmin.consumerGroup} answers. */
export interface ConsumerGroupInfo {
  readonly group: string;
  /** `dead` for a group that does not exist. */
  readonly state: 'stable' | 'empty' | 'dead' | 'preparing-rebalance' | 'completing-rebalance' | 'unknown';
  /** `consumer` (KIP-848), `classic`, or `unknown` (a group that only commits offsets, or none). */
  readonly type: 'consumer' | 'classic' | 'unknown';
  readonly members: readonly ConsumerGroupMember[];
  /** The committed offsets (the next offset to read) with their commit metadata. */
  readonly offsets: readonly {
    readonly topic: string;
    readonly partition: number;
    readonly offset: number;
    readonly metadata?: string;
  }[];
}

/** The binding's ConsumerGroupStates and ConsumerGroupTypes, by number. */
const GROUP_STATES: Record<number, ConsumerGroupInfo['state']> = {
  0: 'unknown',
  1: 'preparing-rebalance',
  2: 'completing-rebalance',
  3: 'stable',
  4: 'dead',
  5: 'empty',
};
const GROUP_TYPES: Record<number, ConsumerGroupInfo['type']> = { 0: 'unknown', 1: 'consumer', 2: 'classic' };

/** AclOperationTypes -> the operation names of Kafka's ACL tools. */
const OPERATION_NAMES: ReadonlyMap<number, string> = new Map([
  [AclOperationTypes.READ, 'Read'],
  [AclOperationTypes.WRITE, 'Write'],
  [AclOperationTypes.CREATE, 'Create'],
  [AclOperationTypes.DELETE, 'Delete'],
  [AclOperationTypes.ALTER, 'Alter'],
  [AclOperationTypes.DESCRIBE, 'Describe'],
  [AclOperationTypes.CLUSTER_ACTION, 'ClusterAction'],
  [AclOperationTypes.DESCRIBE_CONFIGS, 'DescribeConfigs'],
  [AclOperationTypes.ALTER_CONFIGS, 'AlterConfigs'],
  [AclOperationTypes.IDEMPOTENT_WRITE, 'IdempotentWrite'],
]);

function operationNames(ops: readonly number[] | undefined): ReadonlySet<string> | undefined {
  if (!Array.isArray(ops)) return undefined;
  if (ops.includes(AclOperationTypes.ALL)) return new Set(OPERATION_NAMES.values());
  return new Set(ops.flatMap((o) => OPERATION_NAMES.get(o) ?? []));
}

/** What ListOffsets needs: Describe on the topics. */
function describeNeeds(partitions: readonly TopicPartition[]): KafkaPermission[] {
  return [...new Set(partitions.map((p) => p.topic))].map((topic) => ({
    operation: 'Describe',
    resourceType: 'topic',
    resource: topic,
  }));
}

export class KafkaAdmin {
  readonly #client: IAdminClient;
  readonly #owned: boolean;
  readonly #identity: KafkaIdentity;
  /** An own client's refused login (a derived client gets no events). */
  readonly #auth: AuthFailureWatch | undefined;
  /** Calls not answered yet: the client is disconnected after them (see {@link close}). */
  readonly #pending = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(
    client: IAdminClient,
    owned: boolean,
    readonly bootstrapServers: string,
    readonly policy: RetryPolicy,
    identity: KafkaIdentity,
  ) {
    this.#client = client;
    this.#owned = owned;
    this.#identity = identity;
    this.#auth = owned
      ? new AuthFailureWatch(identity).watch(client as unknown as Parameters<AuthFailureWatch['watch']>[0])
      : undefined;
  }

  /** @internal The principal this client connects as, as far as its configuration tells. */
  get identity(): KafkaIdentity {
    return this.#identity;
  }

  /**
   * An admin client of its own (close it) on `cluster` (a {@link kafkaCluster}, or an address on the
   * process's default cluster), with its security settings.
   */
  static create(
    cluster: KafkaCluster | string,
    options: { config?: ClientConfig; policy?: RetryPolicy } = {},
  ): KafkaAdmin {
    const c = typeof cluster === 'string' ? defaultCluster(cluster) : cluster;
    const config = librdkafkaConfig(c, { 'client.id': 'sluice-admin' }, options.config);
    const client = AdminClient.create(config as never);
    return new KafkaAdmin(
      client,
      true,
      c.bootstrapServers,
      options.policy ?? DEFAULT_RETRY,
      identityOf(config),
    );
  }

  /** An admin client sharing a connected consumer's or producer's connections. */
  static from(
    client: RdKafkaConsumer | RdKafkaProducer,
    bootstrapServers: string,
    policy: RetryPolicy,
  ): KafkaAdmin {
    return new KafkaAdmin(AdminClient.createFrom(client), false, bootstrapServers, policy, {
      bootstrapServers,
    });
  }

  /**
   * The names of the topics this client's principal may see: one authenticated round trip, what
   * `sluice kafka status` asks a cluster. A refused login fails with KafkaAuthenticationError.
   */
  async listTopics(): Promise<string[]> {
    const topics = await this.#retry('list topics', (timeout) =>
      this.#call<string[]>((cb) => this.#client.listTopics({ timeout }, cb as never)),
    );
    return [...topics].sort();
  }

  /** Partition ids (ascending) of each topic; a topic that does not exist maps to `undefined`. */
  async describeTopics(topics: readonly string[]): Promise<Map<string, number[] | undefined>> {
    const result = await this.#retry(
      'describe topics',
      (timeout) =>
        this.#call<
          Array<{ name: string; error?: unknown; partitions: Array<{ partition: number; leader: unknown }> }>
        >((cb) => this.#client.describeTopics([...topics], { timeout }, cb as never)),
      describeNeeds(topics.map((topic) => ({ topic, partition: 0 }))),
    );
    const out = new Map<string, number[] | undefined>();
    for (const t of topics) out.set(t, undefined);
    for (const d of result) {
      if (d.error) {
        if (isUnknownTopic(d.error)) continue;
        const security = securityError(d.error, this.#identity, [
          { operation: 'Describe', resourceType: 'topic', resource: d.name },
        ]);
        if (security) throw security;
        throw new SourceError(
          'kafka',
          `cannot describe topic '${d.name}': ${describeError(d.error)}`,
          'Check the topic and the ACLs of this client',
          {
            cause: d.error,
          },
        );
      }
      // A topic being created may show partitions without a leader yet: not usable yet.
      if (d.partitions.length === 0 || d.partitions.some((p) => p.leader == null)) continue;
      out.set(
        d.name,
        d.partitions.map((p) => p.partition).sort((a, b) => a - b),
      );
    }
    return out;
  }

  /**
   * @internal What this client's principal may do with each topic (see {@link TopicAccess}): one
   * describeTopics round with the authorized operations.
   */
  async topicAccess(topics: readonly string[]): Promise<Map<string, TopicAccess>> {
    const result = await this.#retry('describe topics', (timeout) =>
      this.#call<Array<{ name: string; error?: unknown; authorizedOperations?: number[] }>>((cb) =>
        this.#client.describeTopics([...topics], { timeout, includeAuthorizedOperations: true }, cb as never),
      ),
    );
    const out = new Map<string, TopicAccess>();
    for (const d of result) {
      if (!d.error) {
        out.set(d.name, { kind: 'found', operations: operationNames(d.authorizedOperations) });
      } else if (isUnknownTopic(d.error)) {
        out.set(d.name, { kind: 'missing' });
      } else if (errorCode(d.error) === CODES.ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED) {
        out.set(d.name, { kind: 'denied' });
      } else {
        throw this.#failure(`describe topic '${d.name}'`, d.error);
      }
    }
    return out;
  }

  /**
   * @internal Whether this client's principal may describe `group` (ask for its committed offsets: Kafka
   * checks Describe on the group first, also for a group that does not exist yet). Read implies
   * Describe, so a principal refused here lacks both.
   *
   * Not with describeGroups (and its authorized operations, which would also tell Read apart):
   * this client's describeGroups crashes the process (SIGSEGV, measured with 1.10 / librdkafka 2.15)
   * when the answer for a group is an error, as GROUP_AUTHORIZATION_FAILED is: it reads the
   * description's strings without checking them for NULL (confluent-kafka-javascript issue #531).
   */
  async groupDescribable(group: string): Promise<boolean> {
    return this.#retry(`read the offsets of group '${group}'`, async (timeout) => {
      try {
        await this.#call<unknown>((cb) =>
          this.#client.listConsumerGroupOffsets([{ groupId: group }], { timeout }, cb as never),
        );
        return true;
      } catch (e) {
        if (errorCode(e) === CODES.ERRORS.ERR_GROUP_AUTHORIZATION_FAILED) return false;
        throw e;
      }
    });
  }

  /**
   * @internal A consumer group as `sluice group status` shows it: its state and protocol type, its
   * members with the partitions each owns (describeGroups), and its committed offsets with their
   * commit metadata (listConsumerGroupOffsets). A group that does not exist has state `dead`, no
   * member and no offset. A principal that may not describe the group fails with
   * KafkaAuthorizationError.
   *
   * The offsets are asked for first, and describeGroups only when that worked: its answer for a
   * group this principal may not describe crashes the process (see {@link groupDescribable}),
   * while the offset fetch fails cleanly with GROUP_AUTHORIZATION_FAILED.
   */
  async consumerGroup(group: string): Promise<ConsumerGroupInfo> {
    const needs: KafkaPermission[] = [{ operation: 'Describe', resourceType: 'group', resource: group }];
    const fetched = await this.#retry(
      `read the offsets of group '${group}'`,
      async (timeout) => {
        const [r] = await this.#call<
          Array<{
            error?: unknown;
            partitions?: Array<{
              topic: string;
              partition: number;
              offset: number;
              metadata?: string | null;
              error?: unknown;
            }>;
          }>
        >((cb) => this.#client.listConsumerGroupOffsets([{ groupId: group }], { timeout }, cb as never));
        if (r?.error) throw r.error;
        return r?.partitions ?? [];
      },
      needs,
    );
    const described = await this.#retry(
      `describe group '${group}'`,
      async (timeout) => {
        const { groups } = await this.#call<{
          groups: Array<{
            error?: unknown;
            state: number;
            type: number;
            members: Array<{
              memberId: string;
              clientId: string;
              clientHost: string;
              groupInstanceId?: string | null;
              assignment?: { topicPartitions?: TopicPartition[] } | null;
            }>;
          }>;
        }>((cb) => this.#client.describeGroups([group], { timeout }, cb as never));
        const d = groups[0];
        if (!d) throw new SourceError('kafka', `describe group '${group}' gave no answer`, 'Try again');
        if (d.error) throw d.error;
        return d;
      },
      needs,
    );
    return {
      group,
      state: GROUP_STATES[described.state] ?? 'unknown',
      type: GROUP_TYPES[described.type] ?? 'unknown',
      members: described.members.map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        host: m.clientHost,
        ...(m.groupInstanceId ? { groupInstanceId: m.groupInstanceId } : {}),
        partitions: (m.assignment?.topicPartitions ?? [])
          .map((p) => ({ topic: p.topic, partition: p.partition }))
          .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1)),
      })),
      // A partition of the request without a committed offset comes back as -1001.
      offsets: fetched
        .filter((p) => !p.error && p.offset >= 0)
        .map((p) => ({
          topic: p.topic,
          partition: p.partition,
          offset: p.offset,
          ...(p.metadata ? { metadata: p.metadata } : {}),
        })),
    };
  }

  /** Creates the topics; a topic that already exists is left as it is. */
  async createTopics(topics: readonly string[], spec: NewTopicSpec): Promise<void> {
    for (const topic of topics) {
      await this.#retry(
        `create topic '${topic}'`,
        async (timeout) => {
          try {
            await this.#call<void>((cb) =>
              this.#client.createTopic(
                {
                  topic,
                  num_partitions: spec.partitions,
                  replication_factor: spec.replicationFactor ?? -1,
                  ...(spec.config ? { config: spec.config } : {}),
                },
                timeout,
                cb,
              ),
            );
          } catch (e) {
            if (!isTopicExists(e)) throw e;
          }
        },
        // Create on the topic, or on the cluster (which allows creating any topic).
        [
          { operation: 'Create', resourceType: 'topic', resource: topic },
          { operation: 'Create', resourceType: 'cluster', resource: 'kafka-cluster' },
        ],
      );
    }
  }

  /**
   * The partitions of every topic, in the order given, partitions ascending. Missing topics are
   * created when `create` is given (then this waits until they have leaders), otherwise they fail
   * with {@link TopicNotFoundError}.
   */
  async ensureTopics(topics: readonly string[], create?: NewTopicSpec): Promise<Map<string, number[]>> {
    let described = await this.describeTopics(topics);
    const missing = topics.filter((t) => described.get(t) === undefined);
    if (missing.length > 0) {
      if (!create) {
        // A topic created a moment ago may not have its leaders yet: look once more before failing.
        await delay(200, this.policy.signal);
        described = await this.describeTopics(topics);
        const still = topics.find((t) => described.get(t) === undefined);
        if (still !== undefined) throw new TopicNotFoundError(still);
      } else {
        await this.createTopics(missing, create);
        const deadline = Date.now() + this.policy.attempts * this.policy.timeoutMs;
        for (;;) {
          described = await this.describeTopics(topics);
          const waiting = topics.filter((t) => described.get(t) === undefined);
          if (waiting.length === 0) break;
          if (Date.now() > deadline) {
            throw new SourceError(
              'kafka',
              `topic(s) ${waiting.join(', ')} were created but have no leader yet`,
              'The cluster is slow to elect leaders; try again',
              { retriable: true },
            );
          }
          await delay(100, this.policy.signal);
        }
      }
    }
    return described as Map<string, number[]>;
  }

  /**
   * Offsets of partitions: `earliest` = log start offset; `latest` = the end a consumer with
   * `isolation` can read to (high watermark, or last stable offset under read_committed).
   * Transient errors (leader moving, topic just created) are retried within the policy.
   */
  async listOffsets(
    partitions: readonly TopicPartition[],
    which: 'earliest' | 'latest',
    isolation: IsolationLevelName = 'read_committed',
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let pending = [...partitions];
    if (pending.length === 0) return out;
    const spec = which === 'earliest' ? OffsetSpec.EARLIEST : OffsetSpec.LATEST;
    const isolationLevel =
      isolation === 'read_committed' ? IsolationLevel.READ_COMMITTED : IsolationLevel.READ_UNCOMMITTED;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      let results: Array<{ topic: string; partition: number; offset: number; error?: unknown }>;
      try {
        results = await this.#call((cb) =>
          this.#client.listOffsets(
            pending.map((p) => ({ topic: p.topic, partition: p.partition, offset: spec })),
            { timeout: this.policy.timeoutMs, isolationLevel },
            cb as never,
          ),
        );
      } catch (e) {
        if (isUnknownTopic(e)) throw new TopicNotFoundError(pending[0]!.topic);
        // A topic this principal may not describe has no leader it can see: "No such entry".
        if (errorCode(e) === CODES.ERRORS.ERR__NOENT) await this.#requireDescribable(pending);
        if (!isTransient(e)) throw this.#failure(`list ${which} offsets`, e, describeNeeds(pending));
        lastError = e;
        if (attempt < this.policy.attempts) await delay(backoff(attempt), this.policy.signal);
        continue;
      }
      const retry: TopicPartition[] = [];
      for (const r of results) {
        if (r.error) {
          if (isUnknownTopic(r.error)) throw new TopicNotFoundError(r.topic);
          if (!isTransient(r.error))
            throw this.#failure(
              `list ${which} offsets of ${r.topic}-${r.partition}`,
              r.error,
              describeNeeds([r]),
            );
          lastError = r.error;
          retry.push({ topic: r.topic, partition: r.partition });
        } else {
          out.set(tpKey(r.topic, r.partition), r.offset);
        }
      }
      pending = retry;
      if (pending.length === 0) return out;
      if (attempt < this.policy.attempts) await delay(backoff(attempt), this.policy.signal);
    }
    throw this.#exhausted(`list ${which} offsets`, lastError);
  }

  /**
   * Both ends of each partition's valid range at once: the log start offset (records below it were
   * deleted by retention or `deleteRecords`) and the end as {@link listOffsets} `latest` gives it.
   * One round trip: librdkafka refuses the same partition twice in one ListOffsets request, so the
   * two requests go out together.
   */
  async bounds(
    partitions: readonly TopicPartition[],
    isolation: IsolationLevelName = 'read_committed',
  ): Promise<Map<string, PartitionBounds>> {
    const [low, high] = await Promise.all([
      this.listOffsets(partitions, 'earliest', isolation),
      this.listOffsets(partitions, 'latest', isolation),
    ]);
    const out = new Map<string, PartitionBounds>();
    for (const p of partitions) {
      const k = tpKey(p.topic, p.partition);
      out.set(k, { logStart: low.get(k)!, end: high.get(k)! });
    }
    return out;
  }

  /**
   * Deletes every record below `offset` in each partition (Kafka's DeleteRecords): the log start
   * offset moves there at once. `-1` deletes up to the high watermark. Answers the new log start
   * of each partition.
   */
  async deleteRecords(
    offsets: readonly { topic: string; partition: number; offset: number }[],
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (offsets.length === 0) return out;
    const results = await this.#retry('delete records', (timeout) =>
      this.#call<Array<{ topic: string; partition: number; lowWatermark: number; error?: unknown }>>((cb) =>
        this.#client.deleteRecords(
          offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })),
          { timeout, operationTimeout: timeout },
          cb as never,
        ),
      ),
    );
    for (const r of results) {
      if (r.error) {
        if (isUnknownTopic(r.error)) throw new TopicNotFoundError(r.topic);
        throw this.#failure(`delete records of ${r.topic}-${r.partition}`, r.error, [
          { operation: 'Delete', resourceType: 'topic', resource: r.topic },
        ]);
      }
      out.set(tpKey(r.topic, r.partition), r.lowWatermark);
    }
    return out;
  }

  /**
   * Releases the client if it is this object's own. With a call still waiting for its answer (one
   * that ended early on a refused login), after that answer: the binding's disconnect() blocks the
   * event loop until pending calls end.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#owned) return;
    const client = this.#client;
    if (this.#pending.size === 0) client.disconnect();
    else void Promise.allSettled([...this.#pending]).then(() => client.disconnect());
  }

  /** A call on the client: tracked until answered, and ended at once by a refused login. */
  #call<T>(fn: (cb: (err: LibrdKafkaError | null | undefined, value: T) => void) => void): Promise<T> {
    const p = call<T>(fn);
    this.#pending.add(p);
    const done = () => void this.#pending.delete(p);
    p.then(done, done);
    return this.#auth ? this.#auth.race(p) : p;
  }

  /** Throws the authorization error when one of `partitions`' topics may not be described. */
  async #requireDescribable(partitions: readonly TopicPartition[]): Promise<void> {
    const topics = [...new Set(partitions.map((p) => p.topic))];
    const access = await this.topicAccess(topics);
    const denied = topics.filter((t) => access.get(t)?.kind === 'denied');
    if (denied.length === 0) return;
    throw securityError(
      { code: CODES.ERRORS.ERR_TOPIC_AUTHORIZATION_FAILED, message: 'Broker: Topic authorization failed' },
      this.#identity,
      denied.map((t) => ({ operation: 'Describe', resourceType: 'topic', resource: t })),
    )!;
  }

  #retry<T>(
    what: string,
    op: (timeoutMs: number) => Promise<T>,
    needs: readonly KafkaPermission[] = [],
  ): Promise<T> {
    return retrying(this.policy, op, {
      retriable: isTransient,
      failure: (e) => this.#failure(what, e, needs),
      exhausted: (e) => this.#exhausted(what, e),
    });
  }

  #exhausted(what: string, e: unknown): Error {
    if (this.#auth?.failure) return this.#auth.failure;
    if (isUnreachable(e)) return new BrokerUnreachableError(this.bootstrapServers, this.policy.attempts, e);
    return new SourceError(
      'kafka',
      `${what} failed after ${this.policy.attempts} attempt(s): ${describeError(e)}`,
      'The cluster is changing (leader election?) or overloaded; try again',
      {
        cause: e,
        retriable: true,
      },
    );
  }

  #failure(what: string, e: unknown, needs: readonly KafkaPermission[] = []): Error {
    if (e instanceof SluiceError) return e;
    const security = securityError(e, this.#identity, needs) ?? this.#auth?.failure;
    if (security) return security;
    return new SourceError(
      'kafka',
      `${what} failed: ${describeError(e)}`,
      'Check the cluster, the topic and the ACLs of this client',
      {
        cause: e,
      },
    );
  }
}
