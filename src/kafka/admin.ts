/**
 * The few admin operations the Kafka adapters need: topic existence and partitions, topic creation,
 * offsets (earliest / latest, the latter as the last stable offset under read_committed, or both as
 * a partition's valid range), and deleting records below an offset. Every call is bounded:
 * `attempts` tries of at most `timeoutMs` each, then a typed error.
 */
import { BrokerUnreachableError, SluiceError, SourceError, TopicNotFoundError } from '../core/errors.js';
import { DEFAULT_CONNECT, type ClientConfig } from './options.js';
import { defaultCluster, librdkafkaConfig, type KafkaCluster } from './cluster.js';
import {
  AdminClient,
  IsolationLevel,
  OffsetSpec,
  backoff,
  call,
  delay,
  describeError,
  isTopicExists,
  isTransient,
  isUnknownTopic,
  isUnreachable,
  retrying,
  type IAdminClient,
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

export class KafkaAdmin {
  readonly #client: IAdminClient;
  readonly #owned: boolean;
  #closed = false;

  private constructor(
    client: IAdminClient,
    owned: boolean,
    readonly bootstrapServers: string,
    readonly policy: RetryPolicy,
  ) {
    this.#client = client;
    this.#owned = owned;
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
    const client = AdminClient.create(
      librdkafkaConfig(c, { 'client.id': 'sluice-admin' }, options.config) as never,
    );
    return new KafkaAdmin(client, true, c.bootstrapServers, options.policy ?? DEFAULT_RETRY);
  }

  /** An admin client sharing a connected consumer's or producer's connections. */
  static from(
    client: RdKafkaConsumer | RdKafkaProducer,
    bootstrapServers: string,
    policy: RetryPolicy,
  ): KafkaAdmin {
    return new KafkaAdmin(AdminClient.createFrom(client), false, bootstrapServers, policy);
  }

  /** Partition ids (ascending) of each topic; a topic that does not exist maps to `undefined`. */
  async describeTopics(topics: readonly string[]): Promise<Map<string, number[] | undefined>> {
    const result = await this.#retry('describe topics', (timeout) =>
      call<
        Array<{ name: string; error?: unknown; partitions: Array<{ partition: number; leader: unknown }> }>
      >((cb) => this.#client.describeTopics([...topics], { timeout }, cb as never)),
    );
    const out = new Map<string, number[] | undefined>();
    for (const t of topics) out.set(t, undefined);
    for (const d of result) {
      if (d.error) {
        if (isUnknownTopic(d.error)) continue;
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

  /** Creates the topics; a topic that already exists is left as it is. */
  async createTopics(topics: readonly string[], spec: NewTopicSpec): Promise<void> {
    for (const topic of topics) {
      await this.#retry(`create topic '${topic}'`, async (timeout) => {
        try {
          await call<void>((cb) =>
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
      });
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
        results = await call((cb) =>
          this.#client.listOffsets(
            pending.map((p) => ({ topic: p.topic, partition: p.partition, offset: spec })),
            { timeout: this.policy.timeoutMs, isolationLevel },
            cb as never,
          ),
        );
      } catch (e) {
        if (isUnknownTopic(e)) throw new TopicNotFoundError(pending[0]!.topic);
        if (!isTransient(e)) throw this.#failure(`list ${which} offsets`, e);
        lastError = e;
        if (attempt < this.policy.attempts) await delay(backoff(attempt), this.policy.signal);
        continue;
      }
      const retry: TopicPartition[] = [];
      for (const r of results) {
        if (r.error) {
          if (isUnknownTopic(r.error)) throw new TopicNotFoundError(r.topic);
          if (!isTransient(r.error))
            throw this.#failure(`list ${which} offsets of ${r.topic}-${r.partition}`, r.error);
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
      call<Array<{ topic: string; partition: number; lowWatermark: number; error?: unknown }>>((cb) =>
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
        throw this.#failure(`delete records of ${r.topic}-${r.partition}`, r.error);
      }
      out.set(tpKey(r.topic, r.partition), r.lowWatermark);
    }
    return out;
  }

  /** Releases the client if it is this object's own. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) this.#client.disconnect();
  }

  #retry<T>(what: string, op: (timeoutMs: number) => Promise<T>): Promise<T> {
    return retrying(this.policy, op, {
      retriable: isTransient,
      failure: (e) => this.#failure(what, e),
      exhausted: (e) => this.#exhausted(what, e),
    });
  }

  #exhausted(what: string, e: unknown): Error {
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

  #failure(what: string, e: unknown): Error {
    if (e instanceof SluiceError) return e;
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
