/**
 * The direct source's consumer: its librdkafka configuration, how it connects, and the consume
 * loop that reads until every waiting range is complete. The loop is the engine's throughput
 * bottleneck: per message it does a routing lookup only when the topic changes and one call on
 * the partition's reader.
 */
import { BrokerUnreachableError, InvalidOptionError, SourceError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { IsolationLevelName } from './admin.js';
import { AuthFailureWatch } from './auth-watch.js';
import { defaultCluster, librdkafkaConfig, type KafkaCluster } from './cluster.js';
import { identityOf, securityError, type KafkaPermission } from './errors.js';
import type { ClientConfig, ConfigValue, ConnectPolicy } from './options.js';
import type { PartitionReader } from './partition-reader.js';
import {
  KafkaConsumer,
  call,
  delay,
  describeError,
  disconnect,
  isOffsetOutOfRange,
  isTransient,
  isUnreachable,
  redactConfig,
  type EofEvent,
  type RdKafkaConsumer,
  type RdMessage,
} from './rdkafka.js';
import type { RecordDecoder } from './record-decoder.js';

/** How many messages one native consume call returns at most. */
export const CONSUME_BATCH = 10_000;
/** How long one native consume call waits for its first message. */
const CONSUME_WAIT_MS = 100;
/** A fetch that gets nothing for this long checks whether a partition it waits for fell out of range. */
const OUT_OF_RANGE_PROBE_MS = 1000;

const CONSUMER_DEFAULTS: ClientConfig = Object.freeze({
  'allow.auto.create.topics': false,
  // librdkafka pauses fetching a partition for this long once its local queue is full
  // (queued.min.messages); the default 1000 ms starves a consumer that drains the queue fast
  // (measured: 115k -> 250k records/s on the benchmark).
  'fetch.queue.backoff.ms': 10,
});

/**
 * The librdkafka configuration of the direct source's consumer (exported so that the benchmark's
 * raw consume loop runs with exactly the same settings).
 */
export function directConsumerConfig(o: {
  /** The cluster, or an address on the process's default cluster. */
  cluster: KafkaCluster | string;
  groupId: string;
  clientId: string;
  isolationLevel: IsolationLevelName;
  consumerConfig?: ClientConfig;
}): Record<string, ConfigValue> {
  return librdkafkaConfig(
    typeof o.cluster === 'string' ? defaultCluster(o.cluster) : o.cluster,
    { 'client.id': o.clientId.slice(0, 200), ...CONSUMER_DEFAULTS },
    o.consumerConfig,
    {
      'group.id': o.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'enable.partition.eof': true,
      'isolation.level': o.isolationLevel,
      // A position that fell out of retention is an error, never a silent jump. Only effective in
      // the topic configuration too: see DIRECT_TOPIC_CONFIG.
      'auto.offset.reset': 'error',
    },
  );
}

/** librdkafka's default max.poll.interval.ms. */
const DEFAULT_MAX_POLL_INTERVAL_MS = 300_000;

/**
 * Consumer properties group membership refuses: librdkafka refuses the first four with the
 * consumer group protocol (an error at connect), and a static member (`group.instance.id`)
 * restarted within the session timeout is fenced for good under it (UNRELEASED_INSTANCE_ID).
 */
const GROUP_REFUSED: Readonly<Record<string, string>> = Object.freeze({
  'group.protocol': "no value: group membership uses the consumer group protocol of KIP-848 ('consumer')",
  'group.protocol.type': 'no value: not used by the consumer group protocol',
  'partition.assignment.strategy':
    "no value: the broker assigns the partitions (choose its assignor with 'group.remote.assignor')",
  'session.timeout.ms': "no value: the broker's group.consumer.session.timeout.ms applies",
  'heartbeat.interval.ms': "no value: the broker's group.consumer.heartbeat.interval.ms applies",
  'group.instance.id':
    'no value: a static member restarted within the session timeout would be fenced for good (UNRELEASED_INSTANCE_ID)',
});

/** Throws InvalidOptionError for a consumer property group membership cannot use. */
export function validateGroupConsumerConfig(consumerConfig: ClientConfig | undefined): void {
  for (const [k, v] of Object.entries(consumerConfig ?? {})) {
    const why = GROUP_REFUSED[k];
    if (why !== undefined) throw new InvalidOptionError(`consumerConfig['${k}']`, `in group membership, ${why}`, v);
  }
}

/**
 * `max.poll.interval.ms` in group membership: the consumer's, else the larger of librdkafka's
 * default (5 min) and ten batch intervals. A member that does not consume for that long is dropped
 * from the group (its batch is abandoned), and it is also how long a revoke may wait for the
 * running batch's commit: it must exceed the longest batch.
 */
export function maxPollIntervalOf(consumerConfig: ClientConfig | undefined, batchInterval: number): number {
  const given = consumerConfig?.['max.poll.interval.ms'];
  if (given !== undefined) return Number(given);
  return Math.max(DEFAULT_MAX_POLL_INTERVAL_MS, 10 * batchInterval);
}

/**
 * The group membership consumer's configuration: the direct consumer's, with the consumer group
 * protocol (KIP-848), `max.poll.interval.ms` (see {@link maxPollIntervalOf}) and the rebalance
 * callback, which the binding calls with the consumer as `this`.
 */
export function groupConsumerConfig(
  base: Record<string, ConfigValue>,
  consumerConfig: ClientConfig | undefined,
  batchInterval: number,
  onRebalance: (consumer: RdKafkaConsumer, err: unknown, parts: { topic: string; partition: number }[]) => void,
): Record<string, ConfigValue> {
  return {
    ...base,
    'group.protocol': 'consumer',
    'max.poll.interval.ms': maxPollIntervalOf(consumerConfig, batchInterval),
    rebalance_cb: function (this: RdKafkaConsumer, err: unknown, parts: { topic: string; partition: number }[]) {
      onRebalance(this, err, parts);
    } as unknown as ConfigValue,
  };
}

/**
 * The topic configuration of the direct source's consumer (the second argument of `new
 * KafkaConsumer`). `auto.offset.reset` must be set here: the client builds the topic configuration
 * from this argument, and an empty one silently resets an out-of-range position to the END
 * (measured with librdkafka 2.15: `offset reset ... to offset END`), whatever the global
 * configuration says. With `error`, the consumer reports ERR__AUTO_OFFSET_RESET and stops
 * fetching the partition until it is sought, and the `offsetOutOfRange` policy decides.
 */
export const DIRECT_TOPIC_CONFIG: Readonly<Record<string, string>> = Object.freeze({
  'auto.offset.reset': 'error',
});

/** How the direct source's consumer consumes: `consume(CONSUME_BATCH)` calls that wait only for their first message. */
export function tuneDirectConsumer(consumer: RdKafkaConsumer): void {
  consumer.setDefaultConsumeTimeout(CONSUME_WAIT_MS);
  // Wait for the first message only; then take what is ready. Not in the typings.
  const c = consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage?: (b: boolean) => void };
  c.setDefaultIsTimeoutOnlyForFirstMessage?.(true);
}

/** What {@link DirectConsumer.connect} needs. */
export interface DirectConsumerOptions {
  readonly config: Record<string, ConfigValue>;
  /** The caller's `consumerConfig`, for the error when librdkafka refuses the configuration. */
  readonly consumerConfig: ClientConfig | undefined;
  /** A topic the source reads: connecting waits for its metadata. */
  readonly topic: string;
  readonly bootstrapServers: string;
  readonly policy: ConnectPolicy;
  readonly signal: AbortSignal;
  readonly logger: Logger;
}

/**
 * Group membership: how the consume loop learns that the batch lost its partitions (undefined in
 * single membership, where a partition is never taken away).
 */
export interface MembershipHooks {
  /** A consume error; true when it says this member was dropped from the group (then handled). */
  dropped(e: unknown): boolean;
  /** Throws `OwnershipLostError` when the batch being fetched lost partitions. */
  check(): void;
}

/**
 * The direct source's one consumer: with manual assignment in single membership, subscribed to the
 * topics (partitions assigned by the group) in group membership.
 */
export class DirectConsumer {
  readonly client: RdKafkaConsumer;
  /** Group membership only. */
  membership: MembershipHooks | undefined;
  readonly #bootstrapServers: string;
  readonly #policy: ConnectPolicy;
  readonly #pendingEofs: EofEvent[] = [];
  /** topic -> partition -> reader, for routing delivered messages. */
  #byTopic: ReadonlyMap<string, readonly PartitionReader[]> = new Map();
  #lastClientError: unknown;
  /** A refused login, seen in the client's events (see auth-watch.ts). */
  readonly #auth: AuthFailureWatch;
  readonly #group: ConfigValue | undefined;
  #lastPolled = Date.now();

  private constructor(
    client: RdKafkaConsumer,
    bootstrapServers: string,
    policy: ConnectPolicy,
    config: Record<string, ConfigValue>,
  ) {
    this.client = client;
    this.#bootstrapServers = bootstrapServers;
    this.#policy = policy;
    this.#auth = new AuthFailureWatch({ ...identityOf(config), bootstrapServers }).watch(client);
    this.#group = config['group.id'];
  }

  /**
   * When the last consume call returned (ms since the epoch): librdkafka counts
   * `max.poll.interval.ms` from there (group membership: see GroupAssignment.assertOwned).
   */
  get lastPolled(): number {
    return this.#lastPolled;
  }

  /** Connects a consumer: bounded attempts, then BrokerUnreachableError. */
  static async connect(o: DirectConsumerOptions): Promise<DirectConsumer> {
    const { attempts, timeoutMs } = o.policy;
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (o.signal.aborted) throw o.signal.reason;
      let consumer: RdKafkaConsumer;
      try {
        consumer = new KafkaConsumer(o.config as never, { ...DIRECT_TOPIC_CONFIG });
      } catch (e) {
        // librdkafka refuses the configuration itself (an unknown property, a bad value).
        throw new InvalidOptionError(
          'consumerConfig',
          `librdkafka consumer properties it accepts (${describeError(e)})`,
          redactConfig(o.consumerConfig ?? {}),
        );
      }
      const dc = new DirectConsumer(consumer, o.bootstrapServers, o.policy, o.config);
      consumer.on('event.error', (e) => {
        dc.#lastClientError = e;
      });
      const connecting = call((cb) => consumer.connect({ timeout: timeoutMs, topic: o.topic }, cb as never));
      try {
        // Ends at the first sign of a refused login, not at the timeout.
        await dc.#auth.race(connecting);
        tuneDirectConsumer(consumer);
        return dc;
      } catch (e) {
        lastError = e;
        const security = securityError(e, dc.#auth.identity, [
          { operation: 'Describe', resourceType: 'topic', resource: o.topic },
        ]);
        if (security) {
          // No further attempt: a refused login fails the same way until the settings change. The
          // connect still running ends at its timeout; a consumer it connected after all is closed.
          connecting.then(
            () => void disconnect(consumer, timeoutMs),
            () => {},
          );
          throw security;
        }
        consumer.removeAllListeners();
        if (!isTransient(e)) {
          throw new SourceError(
            'kafka',
            `cannot create a consumer for ${o.bootstrapServers}: ${describeError(e)}`,
            'Check consumerConfig and the cluster settings',
            { cause: e },
          );
        }
        o.logger.warn(
          { attempt, attempts, bootstrapServers: o.bootstrapServers, err: describeError(e) },
          'kafka not reachable yet',
        );
        if (attempt < attempts) await delay(Math.min(200 * attempt, 1000), o.signal);
      }
    }
    throw new BrokerUnreachableError(o.bootstrapServers, attempts, lastError);
  }

  /** Assigns the readers' partitions at their next positions; `byTopic` routes messages to them. */
  assign(
    readers: readonly PartitionReader[],
    byTopic: ReadonlyMap<string, readonly PartitionReader[]>,
  ): void {
    this.#byTopic = byTopic;
    this.client.on('partition.eof', (e) => this.#pendingEofs.push(e));
    this.client.assign(readers.map((s) => ({ topic: s.topic, partition: s.partition, offset: s.next })));
  }

  /**
   * Group membership: routes delivered messages to the readers of `byTopic` (a map the rebalance
   * handling keeps up to date), without assigning anything: the group assigns.
   */
  route(byTopic: ReadonlyMap<string, readonly PartitionReader[]>): void {
    this.#byTopic = byTopic;
    this.client.on('partition.eof', (e) => this.#pendingEofs.push(e));
  }

  /**
   * One consume call that waits for nothing (group membership: it serves the rebalance callbacks
   * librdkafka queued, which only run inside consume calls). What it delivers goes to the readers'
   * buffers as in {@link consumeUntil}; its error, if any, is answered, not thrown.
   */
  async consumeNow(decoder: RecordDecoder): Promise<unknown> {
    const consumer = this.client;
    let consumed: Promise<RdMessage[]>;
    // The binding reads the timeout when the call starts.
    consumer.setDefaultConsumeTimeout(0);
    try {
      consumed = call<RdMessage[]>((cb) => consumer.consume(CONSUME_BATCH, cb));
    } finally {
      consumer.setDefaultConsumeTimeout(CONSUME_WAIT_MS);
    }
    let msgs: RdMessage[] = [];
    let error: unknown;
    try {
      msgs = await consumed;
    } catch (e) {
      error = e;
    } finally {
      this.#lastPolled = Date.now();
    }
    const byTopic = this.#byTopic;
    let topic: string | undefined;
    let readers: readonly PartitionReader[] | undefined;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.topic !== topic) {
        topic = m.topic;
        readers = byTopic.get(topic);
      }
      readers?.[m.partition]?.receive(m, decoder);
    }
    for (const e of this.#pendingEofs) byTopic.get(e.topic)?.[e.partition]?.advance(e.offset);
    this.#pendingEofs.length = 0;
    return error;
  }

  /**
   * Consumes until every reader in `open` has been delivered up to the end of its waiting range
   * (see {@link PartitionReader.receive}). `outOfRange` applies the `offsetOutOfRange` policy to
   * the waiting readers that fell out of their partition's range (and seeks them); it answers
   * whether there were any.
   */
  async consumeUntil(
    open: readonly PartitionReader[],
    decoder: RecordDecoder,
    signal: AbortSignal,
    outOfRange: (waiting: readonly PartitionReader[]) => Promise<boolean>,
  ): Promise<void> {
    const consumer = this.client;
    const byTopic = this.#byTopic;
    const stallMs = this.#policy.attempts * this.#policy.timeoutMs;
    let remaining = open.length;
    let lastProgress = Date.now();
    let lastProbe = Date.now();
    // Resolves the waiting readers that fell out of their range; true if there were any.
    const resolveOutOfRange = async (): Promise<boolean> => {
      const waiting = open.filter((s) => s.waiting);
      if (waiting.length === 0 || !(await outOfRange(waiting))) return false;
      for (const s of waiting) if (s.settle()) remaining--;
      return true;
    };
    this.#pendingEofs.length = 0;
    const membership = this.membership;
    while (remaining > 0) {
      if (signal.aborted) throw signal.reason;
      membership?.check();
      let msgs: RdMessage[];
      try {
        msgs = await call<RdMessage[]>((cb) => consumer.consume(CONSUME_BATCH, cb));
        this.#lastPolled = Date.now();
      } catch (e) {
        this.#lastPolled = Date.now();
        msgs = [];
        const security = securityError(e, this.#auth.identity, this.#fetchNeeds(open));
        if (security) throw security;
        if (membership?.dropped(e)) {
          membership.check();
        } else if (isOffsetOutOfRange(e)) {
          // The error does not say which partition: the log start tells. One that is not waiting
          // (it may have been reset since) is dealt with by the next plan.
          if (await resolveOutOfRange()) lastProgress = lastProbe = Date.now();
        } else if (!isTransient(e)) {
          throw new SourceError(
            'kafka',
            `consuming failed: ${describeError(e)}`,
            'Check the cluster and the consumer configuration',
            { cause: e },
          );
        } else {
          this.#lastClientError = e;
        }
      }
      let progressed = msgs.length > 0;
      let topic: string | undefined;
      let readers: readonly PartitionReader[] | undefined;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i]!;
        if (m.topic !== topic) {
          topic = m.topic;
          readers = byTopic.get(topic);
        }
        const s = readers?.[m.partition]; // undefined: not ours
        if (s !== undefined && s.receive(m, decoder)) remaining--;
      }
      if (this.#pendingEofs.length > 0) {
        for (const e of this.#pendingEofs) {
          const s = byTopic.get(e.topic)?.[e.partition];
          if (!s || !s.advance(e.offset)) continue;
          progressed = true;
          if (s.settle()) remaining--;
        }
        this.#pendingEofs.length = 0;
      }
      if (remaining > 0) {
        // The consumer's position moves past transaction markers (and aborted batches) as it
        // serves them, without delivering anything: a range ending on a marker is complete
        // once the position reaches its end, without waiting for the next fetch's EOF.
        const waiting = open.filter((s) => s.waiting);
        for (const p of consumer.position(waiting.map((s) => ({ topic: s.topic, partition: s.partition })))) {
          const s = byTopic.get(p.topic)?.[p.partition];
          if (!s || !s.advance(p.offset)) continue;
          progressed = true;
          if (s.settle()) remaining--;
        }
      }
      if (progressed) {
        lastProgress = Date.now();
      } else if (
        Date.now() - lastProgress > OUT_OF_RANGE_PROBE_MS &&
        Date.now() - lastProbe > OUT_OF_RANGE_PROBE_MS
      ) {
        // The client drops the out-of-range error when the same consume call returned messages of
        // other partitions, and then stops fetching the partition: look for it when nothing comes.
        lastProbe = Date.now();
        if (await resolveOutOfRange()) lastProgress = Date.now();
      } else if (Date.now() - lastProgress > stallMs) {
        const waiting = open
          .filter((s) => s.waiting)
          .map((s) => s.describeWait())
          .join(', ');
        if (this.#auth.failure) throw this.#auth.failure;
        const lastError = this.#lastClientError;
        if (lastError === undefined || isUnreachable(lastError)) {
          throw new BrokerUnreachableError(
            this.#bootstrapServers,
            this.#policy.attempts,
            lastError ?? new Error(`no record for ${stallMs} ms while waiting for ${waiting}`),
          );
        }
        throw new SourceError(
          'kafka',
          `no record for ${stallMs} ms while waiting for ${waiting}: ${describeError(lastError)}`,
          'Check the cluster; the batch was not committed',
          {
            cause: lastError,
            retriable: true,
          },
        );
      }
    }
  }

  /**
   * What a fetch of `open` needs: Read on their topics, and Describe on the consumer's group (a
   * consumer with a group.id looks up the group's coordinator, even with assign()). The error
   * code only names the kind of resource refused: every topic being read is named.
   */
  #fetchNeeds(open: readonly PartitionReader[]): KafkaPermission[] {
    const group = this.#group;
    return [
      ...[...new Set(open.map((r) => r.topic))].map((topic): KafkaPermission => ({
        operation: 'Read',
        resourceType: 'topic',
        resource: topic,
      })),
      ...(typeof group === 'string'
        ? [{ operation: 'Describe', resourceType: 'group', resource: group } as const]
        : []),
    ];
  }

  /** Disconnects (bounded by `timeoutMs`). */
  async close(timeoutMs: number): Promise<void> {
    this.client.removeAllListeners('partition.eof');
    await disconnect(this.client, timeoutMs);
  }
}
