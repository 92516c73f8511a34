/**
 * Exactly-once Kafka to Kafka: the batch's output records and its input offsets are committed in ONE
 * Kafka transaction (`beginTransaction` → produce → `sendOffsetsToTransaction` →
 * `commitTransaction`), so a read_committed consumer sees the output of a batch if and only if the
 * group's offsets moved past its input.
 */
import {
  BrokerUnreachableError,
  InvalidOptionError,
  OwnershipLostError,
  SluiceError,
  SourceError,
  TopicNotFoundError,
} from '../core/errors.js';
import { checkCompareAndSet, type PartitionOffset } from '../core/offsets.js';
import {
  KafkaOffsetStore,
  memberFencedCode,
  validateKafkaOffsetStoreOptions,
  type KafkaOffsetStoreOptions,
} from './offset-store.js';
import { formatCommitMetadata, type GroupMember } from './group.js';
import {
  bootstrapKeys,
  validateClientConfig,
  type ClientConfig,
  type ConfigValue,
  type OwnedKeys,
} from './options.js';
import { librdkafkaConfig } from './cluster.js';
import { securityError, type KafkaIdentity, type KafkaPermission } from './errors.js';
import { produceAll, trackDeliveries, type ProducerRecord } from './producer.js';
import {
  CODES,
  Producer,
  call,
  describeError,
  disconnect,
  errorCode,
  isTransient,
  isUnknownTopic,
  isUnreachable,
  redactConfig,
  type LibrdKafkaError,
  type RdKafkaProducer,
} from './rdkafka.js';
import type { TransactionalOffsetStore } from '../core/transactional-store.js';
import type { OffsetRange } from '../core/offsets.js';

const E = CODES.ERRORS;

/** Codes that mean "another producer with this transactional.id took over". */
const FENCED = new Set<number>([
  E.ERR__FENCED,
  E.ERR_PRODUCER_FENCED,
  E.ERR_INVALID_PRODUCER_EPOCH,
  E.ERR_TRANSACTION_COORDINATOR_FENCED,
]);

/**
 * The transactional producer of a group was fenced: another instance initialised a producer with
 * the same `transactional.id`, which aborted this one's open transaction. This instance is a
 * zombie; everything it tries from now on fails with this error.
 */
export class KafkaProducerFencedError extends SluiceError {
  static readonly code = 'SLUICE_KAFKA_PRODUCER_FENCED';
  readonly code = KafkaProducerFencedError.code;
  constructor(
    readonly group: string,
    readonly transactionalId: string,
    cause?: unknown,
  ) {
    super(
      `The Kafka transactional producer '${transactionalId}' of group '${group}' was fenced: another instance started a producer with the same transactional.id`,
      'Stop this instance: the newer one owns the group, and nothing of the transaction in progress here was committed. Run one instance per pipeline (group)',
      { cause },
    );
  }
}

export interface KafkaTransactionalStoreOptions extends KafkaOffsetStoreOptions {
  /**
   * The `transactional.id` of the group's producer. It must be STABLE across restarts of the same
   * pipeline: a restarted job initialises its producer with it, which fences the previous
   * incarnation (a zombie) and aborts its open transaction. Default `sluice-<group>`. A string
   * serves one group only (two groups sharing an id would fence each other): pass a function for
   * several.
   *
   * In group membership every instance has its own producer, fenced by its own restarts only:
   * default `sluice-<group>-<instanceId>` (stable when the instance id is: set
   * `SLUICE_INSTANCE_ID`, or the context's `instanceId`). A function gets the instance id as its
   * second argument (undefined in single membership) and must give each instance its own id; a
   * string is refused there (the instances would fence each other).
   */
  readonly transactionalId?: string | ((group: string, instanceId: string | undefined) => string);
  /**
   * librdkafka producer properties of the transactional producers (defaults: `linger.ms` 5,
   * `compression.type` lz4, `transaction.timeout.ms` 60000; idempotence and acks=all are implied
   * by transactions). Never logged with their secrets.
   */
  readonly producerConfig?: ClientConfig;
  /** Bound on each transactional call: init, send offsets, commit, abort (default 30000 ms). */
  readonly transactionTimeoutMs?: number;
}

const OWNED_PRODUCER_CONFIG: OwnedKeys = {
  ...bootstrapKeys(),
  'transactional.id': "no value here: the option 'transactionalId'",
  'enable.idempotence': 'no value here: (always true: transactions need it)',
};

/** A group's transactional producer (in group membership: the group's and this instance's). */
interface Channel {
  readonly group: string;
  /** Group membership: the instance the producer is this store's for. */
  readonly instanceId: string | undefined;
  readonly id: string;
  readonly producer: RdKafkaProducer;
  /** Who the producer is on the cluster (for the security errors). */
  readonly identity: KafkaIdentity;
  /** Set once fenced: every later use throws it. */
  fenced: KafkaProducerFencedError | undefined;
  /** A fatal error or a failed abort: the producer is disposed and the next transaction makes a new one. */
  broken: boolean;
  /** Transactions of a group run one at a time. */
  chain: Promise<unknown>;
}

/** What the store keeps about a transaction in progress (not part of its public face). */
interface TxState {
  readonly channel: Channel;
  open: boolean;
  readonly sends: Promise<number>[];
}

const states = new WeakMap<KafkaTransaction, TxState>();

/**
 * A Kafka transaction in progress, given to the function run by
 * {@link KafkaTransactionalStore.transaction} (and to transactional sinks): records sent through it
 * become visible to read_committed consumers only if the transaction commits, together with the
 * batch's offsets.
 *
 * @example
 * ```ts
 * // Two topics and the offsets in one transaction, with foreachBatch:
 * orders.foreachBatch(
 *   async (batch, { transaction: tx }) => {
 *     await tx.send('orders-clean', batch.collect().map((o) => ({ key: o.id, value: JSON.stringify(o) })));
 *     await tx.send('orders-audit', [`batch of ${batch.size}`]);
 *   },
 *   { transaction: store }, // the KafkaTransactionalStore that is the context's offsetStore
 * );
 * ```
 */
export class KafkaTransaction {
  /** @internal Made by {@link KafkaTransactionalStore.transaction}. */
  constructor(
    readonly group: string,
    readonly transactionalId: string,
  ) {}

  /**
   * Produces the records to `topic` inside the transaction; resolves with their number once the
   * broker acknowledged all of them (they stay invisible to read_committed readers until the
   * commit). Rejects with the first delivery error, which also aborts the transaction.
   */
  send(topic: string, records: Iterable<string | Buffer | ProducerRecord>): Promise<number> {
    const st = states.get(this);
    if (!st?.open) {
      return Promise.reject(
        new SourceError(
          'kafka-transactions',
          `send() to '${topic}' after the transaction of group '${this.group}' ended`,
          'Send only inside the transaction function, and await the sends before it returns',
        ),
      );
    }
    const sent = sendInTransaction(st.channel, topic, records);
    // The transaction awaits every send before committing (and aborts when one fails), so a send
    // the caller did not await never goes unobserved.
    sent.catch(() => {});
    st.sends.push(sent);
    return sent;
  }
}

/**
 * Kafka transactions as a {@link TransactionalOffsetStore}: Kafka-to-Kafka exactly-once. Pass it as
 * the context's `offsetStore` and write through a {@link KafkaTransactionalSink} (or
 * `foreachBatch(..., { transaction: store })` with `tx.send`): the engine then runs each batch's
 * output and offsets in one transaction of the group's producer.
 *
 * `transaction(group, ranges, fn)`: beginTransaction → `fn(tx)` (every `tx.send` awaited) → check
 * that the group's committed offsets still equal each range's `fromOffset` (or are absent), else
 * {@link OffsetConflictError} → sendOffsetsToTransaction(the ranges' untilOffsets, the group's
 * metadata) → commitTransaction. Any error aborts the transaction and is rethrown.
 *
 * **What stops a second instance** is fencing, not the offset check: all instances of a pipeline
 * derive the same `transactional.id` from the group, and initialising a producer with it fences the
 * previous one (its open transaction is aborted; its next call fails with
 * {@link KafkaProducerFencedError}). The offset check (compare-and-set emulation: a read, then the
 * commit) catches a replayed batch and stale state, but two producers with DIFFERENT ids could both
 * pass it; do not give instances of one pipeline different ids.
 *
 * **Group membership** (`membership: 'group'`, KIP-447): instances share the group's partitions,
 * so each has its own producer (`sluice-<group>-<instanceId>`, see `transactionalId`) and what
 * fences a stale instance is the group: the offsets go to the transaction with the group member's
 * metadata (`sendOffsetsToTransaction` with the instance's subscribed consumer), which the broker
 * refuses from a member it dropped. Before sending them, and again before committing, the store
 * checks that the instance still owns every partition of the batch (the broker would accept them
 * from a current member that does not). Either refusal aborts the transaction and is
 * `OwnershipLostError`: the engine abandons the batch. The offsets carry the commit metadata
 * `{"instance":"<instanceId>","batchTime":<ms>}` (see `parseCommitMetadata`). A store serves one
 * instance: two instances in one process need a store each.
 *
 * One transactional producer per group, made on the first transaction and kept until `close()`.
 * `read`/`write`/`set`/`delete` are {@link KafkaOffsetStore}'s (plain group commits). The input
 * must be read with read_committed (the direct source's default) so that aborted output of an
 * upstream Sluice job is never read.
 *
 * @example
 * ```ts
 * import { StreamingContext } from 'sluice';
 * import { createDirectStream, KafkaTransactionalStore, KafkaTransactionalSink } from 'sluice/kafka';
 *
 * const store = new KafkaTransactionalStore({ bootstrapServers: '127.0.0.1:9092' });
 * const ctx = new StreamingContext({ batchInterval: 2000, pipelineId: 'etl', offsetStore: store });
 * createDirectStream(ctx, { topics: ['raw'], startingOffsets: 'earliest' })
 *   .map((r) => r.value!.toUpperCase())
 *   .writeTo(new KafkaTransactionalSink<string>({ topic: 'clean', store }));
 * ctx.addListener({ onContextStopped: () => void store.close() });
 * await ctx.start();
 * ```
 */
export class KafkaTransactionalStore
  extends KafkaOffsetStore
  implements TransactionalOffsetStore<KafkaTransaction>
{
  override readonly kind: string = 'kafka-transactions';
  readonly transactional = true as const;
  readonly #transactionalId: KafkaTransactionalStoreOptions['transactionalId'];
  readonly #producerConfig: Record<string, ConfigValue>;
  readonly #txTimeoutMs: number;
  readonly #channels = new Map<string, Promise<Channel>>();
  /** With a string transactionalId: the one group it serves. */
  #idGroup: string | undefined;

  constructor(options: KafkaTransactionalStoreOptions = {}) {
    const { transactionalId, producerConfig, transactionTimeoutMs, ...base } = options;
    validateKafkaOffsetStoreOptions(base);
    if (
      transactionalId !== undefined &&
      typeof transactionalId !== 'function' &&
      !(typeof transactionalId === 'string' && transactionalId.length > 0)
    ) {
      throw new InvalidOptionError(
        'transactionalId',
        'a non-empty string, or a function (group, instanceId) => string',
        transactionalId,
      );
    }
    validateClientConfig(
      'producerConfig',
      producerConfig,
      'an object of librdkafka producer properties',
      OWNED_PRODUCER_CONFIG,
    );
    if (
      transactionTimeoutMs !== undefined &&
      !(
        Number.isInteger(transactionTimeoutMs) &&
        transactionTimeoutMs >= 1000 &&
        transactionTimeoutMs <= 900_000
      )
    ) {
      throw new InvalidOptionError(
        'transactionTimeoutMs',
        'an integer number of milliseconds from 1000 to 900000',
        transactionTimeoutMs,
      );
    }
    super(base);
    this.#transactionalId = transactionalId;
    this.#producerConfig = {
      'client.id': 'sluice-tx',
      'linger.ms': 5,
      'compression.type': 'lz4',
      'transaction.timeout.ms': 60_000,
      ...producerConfig,
    };
    this.#txTimeoutMs = transactionTimeoutMs ?? 30_000;
  }

  override describe(): Record<string, unknown> {
    return {
      ...super.describe(),
      transactionalId:
        typeof this.#transactionalId === 'string'
          ? this.#transactionalId
          : this.#transactionalId
            ? '(function)'
            : 'sluice-<group> (group membership: sluice-<group>-<instanceId>)',
      producerConfig: redactConfig(this.#producerConfig),
    };
  }

  /**
   * The `transactional.id` of `group`'s producer; in group membership, of the producer of instance
   * `instanceId` (see the option `transactionalId`).
   */
  transactionalIdOf(group: string, instanceId?: string): string {
    const t = this.#transactionalId;
    if (t === undefined) return instanceId === undefined ? `sluice-${group}` : `sluice-${group}-${instanceId}`;
    if (typeof t === 'string') {
      if (instanceId !== undefined) {
        throw new InvalidOptionError(
          'transactionalId',
          'in group membership a function (group, instanceId) => id giving each instance its own id (the instances of a string id would fence each other), or no value (sluice-<group>-<instanceId>)',
          t,
        );
      }
      return t;
    }
    const id = t(group, instanceId);
    if (typeof id !== 'string' || id.length === 0) {
      throw new InvalidOptionError('transactionalId', 'a function returning a non-empty string', id);
    }
    return id;
  }

  async transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: KafkaTransaction) => Promise<R>,
  ): Promise<R> {
    if (typeof group !== 'string' || group.length === 0)
      throw new InvalidOptionError('group', 'a non-empty group id', group);
    if (!Array.isArray(ranges)) throw new InvalidOptionError('ranges', 'an array of offset ranges', ranges);
    this.requireOpen();
    const member = this.memberOf(group);
    const instanceId = member?.instanceId ?? this.boundInstanceId();
    if (instanceId === undefined) this.#bindGroup(group);
    const ch = await this.#channel(group, instanceId);
    const run = ch.chain.then(() => this.#run(ch, ranges, fn, member));
    ch.chain = run.catch(() => {});
    return run;
  }

  /**
   * The group's committed offsets, as {@link KafkaOffsetStore.read}; but first the group's
   * transactional producer is started (on the first call for the group), which fences a previous
   * instance and ends the transaction it left open. Otherwise offsets it had sent to that
   * transaction (a crash between sending them and committing) would hold every read as unstable
   * until `transaction.timeout.ms`. So reading through this store takes the group over: inspect a
   * running pipeline's offsets with a {@link KafkaOffsetStore} instead.
   */
  override async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    if (typeof group === 'string' && group.length > 0 && !this.isClosed()) {
      const instanceId = this.memberOf(group, true)?.instanceId;
      if (instanceId === undefined) this.#bindGroup(group);
      await this.#channel(group, instanceId);
    }
    return super.read(group, topics);
  }

  override async close(): Promise<void> {
    const channels = [...this.#channels.values()];
    this.#channels.clear();
    for (const c of channels) {
      const ch = await c.catch(() => undefined);
      if (!ch) continue;
      // Lets a transaction in progress finish (bounded), then disconnects.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        ch.chain,
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#txTimeoutMs))),
      ]);
      clearTimeout(timer);
      await disconnect(ch.producer, this.policy.timeoutMs);
    }
    await super.close();
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** A string transactionalId serves the first group that uses the store, and no other. */
  #bindGroup(group: string): void {
    if (typeof this.#transactionalId !== 'string') return;
    this.#idGroup ??= group;
    if (this.#idGroup !== group) {
      throw new InvalidOptionError(
        'transactionalId',
        `a function (group) => id when several groups use the store (the string '${this.#transactionalId}' serves group '${this.#idGroup}')`,
        group,
      );
    }
  }

  async #run<R>(
    ch: Channel,
    ranges: readonly OffsetRange[],
    fn: (tx: KafkaTransaction) => Promise<R>,
    member: GroupMember | undefined,
  ): Promise<R> {
    if (ch.fenced) throw ch.fenced;
    if (ch.broken) {
      // The transaction before this one broke the producer: queue on a new one (initTransactions
      // resolves whatever the old one left open).
      return this.transaction(ch.group, ranges, fn);
    }
    try {
      await call<void>((cb) => ch.producer.beginTransaction(cb));
    } catch (e) {
      throw this.#fail(ch, 'begin a transaction', e, transactionNeeds(ch, ranges));
    }
    const tx = new KafkaTransaction(ch.group, ch.id);
    const st: TxState = { channel: ch, open: true, sends: [] };
    states.set(tx, st);
    let step = 'run the transaction';
    try {
      const result = await fn(tx);
      step = 'deliver the records of the transaction';
      // Sends the function started but did not await must be acknowledged before the commit.
      for (const r of await Promise.allSettled(st.sends)) if (r.status === 'rejected') throw r.reason;
      st.open = false;
      step = 'check the offsets';
      const stored = await this.read(ch.group, [...new Set(ranges.map((r) => r.topic))]);
      checkCompareAndSet(
        ch.group,
        ranges,
        (t, p) => stored.find((o) => o.topic === t && o.partition === p)?.offset,
      );
      if (ranges.length > 0) {
        step = 'send the offsets to the transaction';
        // Group membership: the member's consumer, so that the broker refuses the offsets of a
        // member it dropped (KIP-447); and only partitions still owned (it would take the others).
        member?.assertOwned(ranges);
        const metadata = member
          ? formatCommitMetadata({ instance: member.instanceId, batchTime: member.batchTime ?? Date.now() })
          : undefined;
        const consumer = member ? member.consumer : await this.groupConsumer(ch.group);
        await call<void>((cb) =>
          ch.producer.sendOffsetsToTransaction(
            ranges.map((r) => ({
              topic: r.topic,
              partition: r.partition,
              offset: r.untilOffset,
              ...(metadata !== undefined ? { metadata } : {}),
            })),
            consumer,
            this.#txTimeoutMs,
            cb,
          ),
        );
        // A rebalance served while the offsets were sent may have dropped this instance.
        member?.assertOwned(ranges);
      }
      step = 'commit the transaction';
      await this.#commit(ch);
      return result;
    } catch (e) {
      st.open = false;
      await this.#abort(ch, e);
      if (isUnknownTopic(e) && step === 'send the offsets to the transaction') {
        const missing = await this.missingTopic(ranges.map((r) => r.topic));
        if (missing !== undefined) throw new TopicNotFoundError(missing);
      }
      if (member && !(e instanceof SluiceError) && memberFencedCode(e) !== undefined && !ch.fenced) {
        throw new OwnershipLostError(
          `Kafka refused the offsets of group '${ch.group}' from instance '${member.instanceId}' (transactional.id '${ch.id}'): it is no longer the group's member it was (${describeError(e)}); the transaction was aborted`,
          ranges.map((r) => ({ topic: r.topic, partition: r.partition })),
          { cause: e },
        );
      }
      throw this.#fail(ch, step, e, transactionNeeds(ch, ranges));
    }
  }

  /** Commits; a retriable failure (e.g. a timeout) is retried, as librdkafka allows. */
  async #commit(ch: Channel): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await call<void>((cb) => ch.producer.commitTransaction(this.#txTimeoutMs, cb));
        return;
      } catch (e) {
        if (!(e as LibrdKafkaError).isRetriable || attempt >= this.policy.attempts) throw e;
      }
    }
  }

  /** Aborts after a failure; a producer that cannot abort is fenced or disposed. */
  async #abort(ch: Channel, cause: unknown): Promise<void> {
    if (fencedCode(cause) !== undefined) this.#fence(ch, cause);
    if (ch.fenced || ch.broken) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await call<void>((cb) => ch.producer.abortTransaction(this.#txTimeoutMs, cb));
        return;
      } catch (e) {
        if (fencedCode(e) !== undefined) return this.#fence(ch, e);
        if ((e as LibrdKafkaError).isRetriable && attempt < this.policy.attempts) continue;
        this.#dispose(ch);
        return;
      }
    }
  }

  #fence(ch: Channel, cause: unknown): void {
    ch.fenced ??= new KafkaProducerFencedError(ch.group, ch.id, cause);
  }

  /** The error to rethrow: fencing wins; librdkafka errors become typed; others pass through. */
  #fail(ch: Channel, step: string, e: unknown, needs: readonly KafkaPermission[] = []): Error {
    if (fencedCode(e) !== undefined) this.#fence(ch, e);
    if (ch.fenced) return ch.fenced;
    if (e instanceof SluiceError || !isLibrdKafkaError(e)) return e as Error;
    if ((e as LibrdKafkaError).isFatal) this.#dispose(ch);
    const security = securityError(e, ch.identity, needs);
    if (security) return security;
    return new SourceError(
      'kafka-transactions',
      `could not ${step} of group '${ch.group}' (transactional.id '${ch.id}'): ${describeError(e)}`,
      'The transaction was aborted: neither its records nor its offsets were committed. Check the cluster and try again',
      { cause: e, retriable: Boolean((e as LibrdKafkaError).isRetriable) || isTransient(e) },
    );
  }

  /** Forgets a producer that cannot go on; the next transaction of the group makes a new one. */
  #dispose(ch: Channel): void {
    if (ch.broken) return;
    ch.broken = true;
    const key = channelKey(ch.group, ch.instanceId);
    const current = this.#channels.get(key);
    if (current) {
      void current.then((c) => {
        if (c === ch && this.#channels.get(key) === current) this.#channels.delete(key);
      });
    }
    void disconnect(ch.producer, this.policy.timeoutMs);
  }

  #channel(group: string, instanceId: string | undefined): Promise<Channel> {
    const key = channelKey(group, instanceId);
    let c = this.#channels.get(key);
    if (!c) {
      const connecting = this.#connect(group, instanceId);
      c = connecting;
      this.#channels.set(key, connecting);
      connecting.catch(() => {
        if (this.#channels.get(key) === connecting) this.#channels.delete(key);
      });
    }
    return c;
  }

  async #connect(group: string, instanceId: string | undefined): Promise<Channel> {
    const id = this.transactionalIdOf(group, instanceId);
    let producer: RdKafkaProducer;
    try {
      producer = new Producer(
        librdkafkaConfig(
          this.cluster,
          {},
          { ...this.clientConfig, ...this.#producerConfig },
          { 'transactional.id': id, dr_cb: true },
        ) as never,
        {},
      );
    } catch (e) {
      throw new InvalidOptionError(
        'producerConfig',
        `librdkafka producer properties it accepts (${describeError(e)})`,
        redactConfig(this.#producerConfig),
      );
    }
    producer.on('event.error', () => {}); // fatal errors surface through the transactional calls
    this.auth.watch(producer);
    trackDeliveries(producer);
    const connecting = call((cb) => producer.connect({ timeout: this.policy.timeoutMs }, cb as never));
    try {
      await this.auth.race(connecting);
      producer.setPollInBackground(true);
      // Fences any earlier producer with this id and resolves the transaction it left open.
      await this.auth.race(call<void>((cb) => producer.initTransactions(this.#txTimeoutMs, cb)));
    } catch (e) {
      // After a connect that a refused login ended early, once that connect is over.
      void connecting.then(
        () => disconnect(producer, this.policy.timeoutMs),
        () => {},
      );
      if (e instanceof SluiceError) throw e;
      // InitProducerId with a transactional.id: Write on it (Describe is implied).
      const security = securityError(e, this.identity, [
        { operation: 'Write', resourceType: 'transactional-id', resource: id },
        { operation: 'Describe', resourceType: 'transactional-id', resource: id },
      ]);
      if (security) throw security;
      if (isUnreachable(e)) throw new BrokerUnreachableError(this.bootstrapServers, 1, e);
      throw new SourceError(
        'kafka-transactions',
        `cannot start the transactional producer '${id}' of group '${group}' on ${this.bootstrapServers}: ${describeError(e)}`,
        'Check that the cluster is up and supports transactions (transaction.state.log.* settings), and the ACLs for this transactional.id',
        { cause: e, retriable: isTransient(e) || Boolean((e as LibrdKafkaError).isRetriable) },
      );
    }
    return {
      group,
      instanceId,
      id,
      producer,
      identity: this.identity,
      fenced: undefined,
      broken: false,
      chain: Promise.resolve(),
    };
  }
}

function channelKey(group: string, instanceId: string | undefined): string {
  return JSON.stringify([group, instanceId ?? null]);
}

/**
 * What a transaction of `ch` over `ranges` needs besides writing its topics (checked per send):
 * Write on the transactional id (every transactional call), Read on the group and its input topics
 * (AddOffsetsToTxn, TxnOffsetCommit).
 */
function transactionNeeds(ch: Channel, ranges: readonly OffsetRange[]): KafkaPermission[] {
  return [
    { operation: 'Write', resourceType: 'transactional-id', resource: ch.id },
    { operation: 'Read', resourceType: 'group', resource: ch.group },
    ...[...new Set(ranges.map((r) => r.topic))].map((topic): KafkaPermission => ({
      operation: 'Read',
      resourceType: 'topic',
      resource: topic,
    })),
  ];
}

function isLibrdKafkaError(e: unknown): boolean {
  return (
    typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'number' && 'origin' in e
  );
}

/** The fencing code in `e` or its causes, if any. */
function fencedCode(e: unknown): number | undefined {
  for (let x: unknown = e, depth = 0; x && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    if (x instanceof KafkaProducerFencedError) return E.ERR__FENCED;
    const c = errorCode(x);
    if (c !== undefined && FENCED.has(c) && isLibrdKafkaError(x)) return c;
  }
  return undefined;
}

/** Produces the records with the channel's producer; resolves once all are acknowledged. */
async function sendInTransaction(
  ch: Channel,
  topic: string,
  records: Iterable<string | Buffer | ProducerRecord>,
): Promise<number> {
  if (ch.fenced) throw ch.fenced;
  let delivered: { sent: number; error: LibrdKafkaError | undefined };
  try {
    delivered = await produceAll(ch.producer, topic, records);
  } catch (e) {
    if (fencedCode(e) !== undefined) {
      ch.fenced ??= new KafkaProducerFencedError(ch.group, ch.id, e);
      throw ch.fenced;
    }
    if (e instanceof SluiceError) throw e;
    const security = securityError(e, ch.identity, [
      { operation: 'Write', resourceType: 'topic', resource: topic },
    ]);
    if (security) throw security;
    throw new SourceError(
      'kafka-transactions',
      `cannot send to '${topic}' in the transaction of group '${ch.group}': ${describeError(e)}`,
      'Check the topic, the partition and the record',
      {
        cause: e,
      },
    );
  }
  const { sent, error } = delivered;
  if (error) {
    if (fencedCode(error) !== undefined) {
      ch.fenced ??= new KafkaProducerFencedError(ch.group, ch.id, error);
      throw ch.fenced;
    }
    if (isUnknownTopic(error)) throw new TopicNotFoundError(topic);
    const security = securityError(error, ch.identity, [
      { operation: 'Write', resourceType: 'topic', resource: topic },
    ]);
    if (security) throw security;
    throw new SourceError(
      'kafka-transactions',
      `delivery to '${topic}' in the transaction of group '${ch.group}' failed: ${describeError(error)}`,
      'The transaction is aborted; check that the topic exists and the broker is up',
      {
        cause: error,
        retriable: isTransient(error),
      },
    );
  }
  return sent;
}
