/**
 * A minimal long-lived Kafka producer for sample data, demos and examples: connect once per
 * process, `send` many times (records are batched by librdkafka: `linger.ms` 5, up to 10,000 per
 * request), `close` at the end. Creating a producer per record or per batch is the classic
 * performance bug; {@link sharedProducer} hands out one per process and bootstrap address.
 *
 * Also the process's one pool of producers (the sinks' and {@link sharedProducer}'s), and the
 * produce loop every Sluice producer uses.
 *
 * @example
 * ```ts
 * const producer = await sharedProducer();
 * await producer.send('words', ['a b c', 'b c']);
 * await producer.send('orders', [{ key: 'alice', value: JSON.stringify({ id: 1 }) }]);
 * await producer.close();
 * ```
 */
import { BrokerUnreachableError, SourceError, type SluiceError } from '../core/errors.js';
import { AuthFailureWatch } from './auth-watch.js';
import type { KafkaHeader } from './deserializers.js';
import {
  KafkaAuthorizationError,
  identityOf,
  missingOf,
  securityError,
  type KafkaIdentity,
} from './errors.js';
import {
  librdkafkaConfig,
  resolveCluster,
  validateClusterOption,
  type ClusterOption,
  type KafkaCluster,
} from './cluster.js';
import {
  connectPolicy,
  validateBootstrapServers,
  validateConnect,
  type ClientConfig,
  type ConfigValue,
  type ConnectLimits,
  type ConnectOptions,
} from './options.js';
import {
  CODES,
  Producer,
  call,
  delay,
  describeError,
  disconnect,
  authorizationFailure,
  errorCode,
  isTransient,
  redactConfig,
  type LibrdKafkaError,
  type RdKafkaProducer,
} from './rdkafka.js';

/** One record to send. A bare string or Buffer is a value without key. */
export interface ProducerRecord {
  readonly key?: string | Buffer | null;
  readonly value: string | Buffer | null;
  /** Default: chosen by the partitioner from the key (or sticky when there is none). */
  readonly partition?: number;
  /** Default: now. */
  readonly timestamp?: number;
  readonly headers?: readonly KafkaHeader[] | Readonly<Record<string, string | Buffer>>;
}

export interface KafkaTextProducerOptions extends ClusterOption {
  /** Bounded connection attempts (default 3 x 5000 ms), then BrokerUnreachableError. */
  readonly connect?: ConnectOptions;
  /** librdkafka producer properties, e.g. `{ acks: 1 }` or `{ 'linger.ms': 20 }`; never logged with secrets. */
  readonly producerConfig?: ClientConfig;
}

const PRODUCER_DEFAULTS: ClientConfig = Object.freeze({
  'client.id': 'sluice-producer',
  'linger.ms': 5,
  'batch.num.messages': 10_000,
  'enable.idempotence': true,
});

/** This producer's `connect` bounds are looser than the other clients'. */
const PRODUCER_CONNECT_LIMITS: ConnectLimits = Object.freeze({
  maxAttempts: Number.POSITIVE_INFINITY,
  maxTimeoutMs: Number.POSITIVE_INFINITY,
  attemptsAccepted: 'an integer >= 1',
  timeoutAccepted: 'an integer >= 100 (ms)',
});

export class KafkaTextProducer {
  readonly bootstrapServers: string;
  readonly #producer: RdKafkaProducer;
  readonly #config: Record<string, ConfigValue>;
  readonly #identity: KafkaIdentity;
  /** A missing ACL the client reported as an event (see {@link refusedBy}). */
  readonly #refused: { error: unknown };
  #closed = false;

  private constructor(
    producer: RdKafkaProducer,
    bootstrapServers: string,
    config: Record<string, ConfigValue>,
    identity: KafkaIdentity,
    refused: { error: unknown },
  ) {
    this.#producer = producer;
    this.bootstrapServers = bootstrapServers;
    this.#config = config;
    this.#identity = identity;
    this.#refused = refused;
    trackDeliveries(producer);
  }

  /** Connects a producer (bounded attempts, then BrokerUnreachableError). */
  static async connect(options: KafkaTextProducerOptions = {}): Promise<KafkaTextProducer> {
    validateBootstrapServers(options.bootstrapServers);
    validateClusterOption(options.cluster);
    const cluster = resolveCluster(options);
    const { bootstrapServers } = cluster;
    validateConnect(options.connect, PRODUCER_CONNECT_LIMITS);
    const { attempts, timeoutMs } = connectPolicy(options.connect);
    const config = librdkafkaConfig(cluster, PRODUCER_DEFAULTS, options.producerConfig);
    const identity = identityOf(config);
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const producer = new Producer({ ...config, dr_cb: true } as never, {});
      const auth = new AuthFailureWatch(identity).watch(producer);
      const refused = refusedBy(producer);
      const connecting = call((cb) => producer.connect({ timeout: timeoutMs }, cb as never));
      try {
        // Ends at the first sign of a refused login, not at the timeout.
        await auth.race(connecting);
        producer.setPollInBackground(true);
        return new KafkaTextProducer(producer, bootstrapServers, config, identity, refused);
      } catch (e) {
        lastError = e;
        if (e === auth.failure) {
          // No further attempt: a refused login fails the same way until the settings change. The
          // connect still running ends at its timeout; a producer it connected after all is closed.
          connecting.then(
            () => void disconnect(producer, timeoutMs),
            () => {},
          );
          throw e;
        }
        producer.removeAllListeners();
        const security = securityError(e, identity);
        if (security) throw security;
        if (!isTransient(e)) {
          throw new SourceError(
            'kafka-producer',
            `cannot create a producer for ${bootstrapServers}: ${describeError(e)}`,
            'Check producerConfig',
            {
              cause: e,
            },
          );
        }
        if (attempt < attempts) await delay(Math.min(200 * attempt, 1000));
      }
    }
    throw new BrokerUnreachableError(bootstrapServers, attempts, lastError);
  }

  /** The configuration in effect, secrets redacted. */
  describe(): Record<string, unknown> {
    return redactConfig(this.#config);
  }

  /**
   * Sends the records to `topic` and resolves with their number once the broker acknowledged all
   * of them; rejects with the first delivery error.
   */
  async send(topic: string, records: Iterable<string | Buffer | ProducerRecord>): Promise<number> {
    if (this.#closed)
      throw new SourceError('kafka-producer', 'the producer is closed', 'Connect a new producer');
    const { sent, error } = await produceAll(
      this.#producer,
      topic,
      records,
      (e) =>
        this.#securityError(e, topic) ??
        new SourceError(
          'kafka-producer',
          `cannot send to '${topic}': ${describeError(e)}`,
          'Check the topic and the record',
          {
            cause: e,
          },
        ),
    );
    if (error) {
      const security = this.#securityError(error, topic);
      if (security) throw security;
      throw new SourceError(
        'kafka-producer',
        `delivery to '${topic}' failed: ${describeError(error)}`,
        'Check that the topic exists and the broker is up',
        {
          cause: error,
          retriable: isTransient(error),
        },
      );
    }
    return sent;
  }

  /**
   * `e` (a delivery or produce error) as the missing ACL it comes from, if it does: its own code,
   * or, for records purged or refused because the producer failed fatally, the refusal the client
   * reported as an event.
   */
  #securityError(e: unknown, topic: string): SluiceError | undefined {
    const needs = [{ operation: 'Write', resourceType: 'topic', resource: topic } as const];
    const own = securityError(e, this.#identity, needs);
    if (own) return own;
    const c = errorCode(e);
    const refused = this.#refused.error;
    if (refused === undefined || (c !== CODES.ERRORS.ERR__FATAL && c !== CODES.ERRORS.ERR__PURGE_QUEUE)) {
      return undefined;
    }
    if (authorizationFailure(refused) === 'cluster') {
      // InitProducerId of an idempotent producer: Write on any topic (Kafka 3.0+), which this one
      // needs anyway, or IdempotentWrite on the cluster.
      return new KafkaAuthorizationError(missingOf(this.#identity, needs), {
        reason: `${describeError(refused)}: an idempotent producer needs Write on a topic, or IdempotentWrite on the cluster`,
        cause: refused,
      });
    }
    return securityError(refused, this.#identity, needs);
  }

  /** Waits until every record sent so far is acknowledged (or the timeout passes). */
  async flush(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) return;
    await call<void>((cb) => this.#producer.flush(timeoutMs, cb));
  }

  /** Flushes, then disconnects. Idempotent. */
  async close(timeoutMs = 30_000): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush(timeoutMs);
    } finally {
      this.#closed = true;
      forgetPooled(this);
      await disconnect(this.#producer, timeoutMs);
    }
  }
}

// ---- the produce loop ------------------------------------------------------------------------------

/** The records of one produce call: done once every one of them has its delivery report. */
interface Delivery {
  pending: number;
  error: LibrdKafkaError | undefined;
  done: (() => void) | undefined;
}

/**
 * Keeps the first missing ACL a producer reports as an event (the binding gives those without
 * their code: see rdkafka.ts): a fatal refusal makes its records fail with "Purged in queue".
 */
function refusedBy(producer: RdKafkaProducer): { error: unknown } {
  const refused: { error: unknown } = { error: undefined };
  producer.on('event.error', (e) => {
    if (refused.error === undefined && authorizationFailure(e) !== undefined) refused.error = e;
  });
  return refused;
}

/** Counts a producer's delivery reports down on the {@link produceAll} call each record came from. */
export function trackDeliveries(producer: RdKafkaProducer): void {
  producer.on('delivery-report', (err, report) => {
    const d = report.opaque as Delivery | undefined;
    if (!d) return;
    if (err && !d.error) d.error = err;
    if (--d.pending === 0) d.done?.();
  });
}

/**
 * Produces the records to `topic` with `producer` (which must {@link trackDeliveries}) and waits for
 * every delivery report: answers how many were sent and the first delivery error. A record the
 * client refuses at once (other than a full local queue, which is waited out) throws, as
 * `refused(error)` when given, without waiting for the records produced before it.
 */
export async function produceAll(
  producer: RdKafkaProducer,
  topic: string,
  records: Iterable<string | Buffer | ProducerRecord>,
  refused?: (error: unknown) => Error,
): Promise<{ sent: number; error: LibrdKafkaError | undefined }> {
  const d: Delivery = { pending: 1, error: undefined, done: undefined };
  const finished = new Promise<void>((resolve) => (d.done = resolve));
  let n = 0;
  try {
    for (const r of records) {
      const rec: ProducerRecord = typeof r === 'string' || Buffer.isBuffer(r) ? { value: r } : r;
      const value =
        rec.value === null ? null : typeof rec.value === 'string' ? Buffer.from(rec.value) : rec.value;
      const headers = rec.headers === undefined ? undefined : toHeaderList(rec.headers);
      d.pending++;
      for (;;) {
        try {
          producer.produce(
            topic,
            rec.partition ?? null,
            value,
            rec.key ?? null,
            rec.timestamp ?? null,
            d,
            headers,
          );
          break;
        } catch (e) {
          if (errorCode(e) !== CODES.ERRORS.ERR__QUEUE_FULL) {
            d.pending--;
            throw refused ? refused(e) : e;
          }
          await delay(5); // the local queue is full: let deliveries drain
        }
      }
      n++;
    }
  } finally {
    if (--d.pending === 0) d.done!();
  }
  await finished;
  return { sent: n, error: d.error };
}

function toHeaderList(h: NonNullable<ProducerRecord['headers']>): Array<Record<string, string | Buffer>> {
  if (Array.isArray(h)) return (h as readonly KafkaHeader[]).map((x) => ({ [x.key]: x.value }));
  return Object.entries(h as Record<string, string | Buffer>).map(([k, v]) => ({ [k]: v }));
}

// ---- one producer per process and key --------------------------------------------------------------

/** Whose producers an entry of the pool is: the sinks' (by address and configuration) or {@link sharedProducer}'s (by address). */
export type PoolOwner = 'sink' | 'shared';

interface PoolEntry {
  readonly owner: PoolOwner;
  /** Leases not given back yet (sinks); the last one given back closes the producer. */
  leases: number;
  readonly producer: Promise<KafkaTextProducer>;
  /** Once connected: what `close()` on the producer takes out of the pool. */
  connected: KafkaTextProducer | undefined;
}

const pool = new Map<string, PoolEntry>();
const created: Record<PoolOwner, number> = { sink: 0, shared: 0 };

/** A producer taken from the pool; give it back with {@link releaseProducer}. */
export interface ProducerLease {
  readonly key: string;
  readonly producer: Promise<KafkaTextProducer>;
}

/** How many of `owner`'s pooled producers are open in this process, and how many were ever created. */
export function pooledProducers(owner: PoolOwner): { open: number; created: number } {
  let open = 0;
  for (const e of pool.values()) if (e.owner === owner) open++;
  return { open, created: created[owner] };
}

function sortedEntries(config: Record<string, ConfigValue>): [string, ConfigValue][] {
  return Object.entries(config).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The pool's producer for `key`, connected with `options` when there is none (or it failed). */
function pooled(owner: PoolOwner, key: string, options: KafkaTextProducerOptions): PoolEntry {
  const existing = pool.get(key);
  if (existing) return existing;
  created[owner]++;
  const producer = KafkaTextProducer.connect(options);
  const entry: PoolEntry = { owner, leases: 0, producer, connected: undefined };
  pool.set(key, entry);
  producer.then(
    (p) => (entry.connected = p),
    () => {
      if (pool.get(key) === entry) pool.delete(key);
    },
  );
  return entry;
}

/**
 * A lease on the process's producer for this cluster and producer configuration (the sinks': every
 * sink with the same address and configuration shares it; the last {@link releaseProducer} closes it).
 */
export function acquireProducer(
  cluster: KafkaCluster,
  producerConfig: Record<string, ConfigValue>,
  connect: ConnectOptions | undefined,
): ProducerLease {
  const key = JSON.stringify([
    'sink',
    cluster.bootstrapServers,
    sortedEntries({ ...cluster.config }),
    sortedEntries(producerConfig),
  ]);
  const entry = pooled('sink', key, { cluster, producerConfig, ...(connect ? { connect } : {}) });
  entry.leases++;
  return { key, producer: entry.producer };
}

/** Gives a lease back; the last one closes the producer. */
export async function releaseProducer(lease: ProducerLease): Promise<void> {
  const entry = pool.get(lease.key);
  if (!entry || entry.producer !== lease.producer) return;
  if (--entry.leases > 0) return;
  pool.delete(lease.key);
  const p = await lease.producer.catch(() => undefined);
  await p?.close();
}

/** A producer closed directly leaves the pool: the next call for its key connects anew. */
function forgetPooled(producer: KafkaTextProducer): void {
  for (const [k, e] of pool) if (e.connected === producer) pool.delete(k);
}

/**
 * The process's producer for a cluster: the first call connects it, later calls for the same
 * address and settings get the same one (their other options are ignored). `close()` on it lets the
 * next call connect anew.
 */
export async function sharedProducer(options: KafkaTextProducerOptions = {}): Promise<KafkaTextProducer> {
  const cluster = resolveCluster(options);
  const key = JSON.stringify(['shared', cluster.bootstrapServers, sortedEntries({ ...cluster.config })]);
  return pooled('shared', key, { ...options, cluster, bootstrapServers: undefined }).producer;
}
