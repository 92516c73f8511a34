/**
 * The options every Kafka client of Sluice shares (the direct source, the sinks, the offset stores,
 * the producer) and their validation. Where a client connects, and how, is its cluster (cluster.ts).
 */
import { InvalidOptionError } from '../core/errors.js';

/** A librdkafka property value. */
export type ConfigValue = string | number | boolean;

/** librdkafka properties, as the `consumerConfig` / `producerConfig` / `clientConfig` options take them. */
export type ClientConfig = Readonly<Record<string, ConfigValue>>;

/** Where every client goes when neither the option nor env `KAFKA_BOOTSTRAP` says otherwise. */
export const DEFAULT_BOOTSTRAP = '127.0.0.1:9092';

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

// ---- bootstrapServers ----------------------------------------------------------------------------

const BOOTSTRAP = /^\S+:\d+(,\S+:\d+)*$/;

/** Checks a `bootstrapServers` value (undefined is fine: the default applies). */
export function validateBootstrapServers(value: unknown): void {
  if (value !== undefined && (typeof value !== 'string' || !BOOTSTRAP.test(value))) {
    throw new InvalidOptionError('bootstrapServers', "'host:port' or a comma-separated list of them", value);
  }
}

// ---- connect -------------------------------------------------------------------------------------

/** The `connect` option: `attempts` tries of at most `timeoutMs` each. */
export interface ConnectOptions {
  readonly attempts?: number;
  readonly timeoutMs?: number;
}

/** A `connect` option with its defaults applied. */
export interface ConnectPolicy {
  readonly attempts: number;
  readonly timeoutMs: number;
}

export const DEFAULT_CONNECT: ConnectPolicy = Object.freeze({ attempts: 3, timeoutMs: 5000 });

/** The bounds of `connect.attempts` and `connect.timeoutMs`, and what an error says they accept. */
export interface ConnectLimits {
  readonly maxAttempts: number;
  readonly maxTimeoutMs: number;
  readonly attemptsAccepted: string;
  readonly timeoutAccepted: string;
}

export const CONNECT_LIMITS: ConnectLimits = Object.freeze({
  maxAttempts: 100,
  maxTimeoutMs: 600_000,
  attemptsAccepted: 'an integer from 1 to 100',
  timeoutAccepted: 'an integer number of milliseconds from 100 to 600000',
});

/** Checks a `connect` option (undefined is fine: the defaults apply). */
export function validateConnect(value: unknown, limits: ConnectLimits = CONNECT_LIMITS): void {
  if (value === undefined) return;
  if (!isPlainObject(value))
    throw new InvalidOptionError('connect', '{ attempts?: N, timeoutMs?: ms }', value);
  const { attempts, timeoutMs } = value;
  if (attempts !== undefined && (!isInt(attempts) || attempts < 1 || attempts > limits.maxAttempts)) {
    throw new InvalidOptionError('connect.attempts', limits.attemptsAccepted, attempts);
  }
  if (timeoutMs !== undefined && (!isInt(timeoutMs) || timeoutMs < 100 || timeoutMs > limits.maxTimeoutMs)) {
    throw new InvalidOptionError('connect.timeoutMs', limits.timeoutAccepted, timeoutMs);
  }
}

/** A `connect` option with the defaults applied (3 attempts of 5000 ms). */
export function connectPolicy(connect: ConnectOptions | undefined): ConnectPolicy {
  return {
    attempts: connect?.attempts ?? DEFAULT_CONNECT.attempts,
    timeoutMs: connect?.timeoutMs ?? DEFAULT_CONNECT.timeoutMs,
  };
}

// ---- topics --------------------------------------------------------------------------------------

/** Kafka's rule for topic names. */
export const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

/** Checks one topic name; the error names `option` and says `topic names` (a list) or `a topic name`. */
export function validateTopicName(option: string, name: unknown, list = false): asserts name is string {
  if (typeof name !== 'string' || !TOPIC_NAME.test(name)) {
    throw new InvalidOptionError(
      option,
      `${list ? 'topic names' : 'a topic name'} of 1-249 characters among letters, digits, . _ -`,
      name,
    );
  }
}

/** The `createTopics` option: create missing topics through the admin API. */
export interface CreateTopicsOptions {
  readonly partitions: number;
  readonly replicationFactor?: number;
}

/**
 * Checks a `createTopics` option. With `accepted` (the sinks' form), a problem is reported on
 * `createTopics` itself with that text, and the replication factor is left to the broker.
 */
export function validateCreateTopics(value: unknown, accepted?: string): void {
  if (value === undefined) return;
  if (accepted !== undefined) {
    if (!isPlainObject(value) || !isInt(value.partitions) || value.partitions < 1) {
      throw new InvalidOptionError('createTopics', accepted, value);
    }
    return;
  }
  if (!isPlainObject(value)) {
    throw new InvalidOptionError('createTopics', '{ partitions: N, replicationFactor?: R }', value);
  }
  if (!isInt(value.partitions) || value.partitions < 1) {
    throw new InvalidOptionError('createTopics.partitions', 'an integer >= 1', value.partitions);
  }
  const rf = value.replicationFactor;
  if (rf !== undefined && (!isInt(rf) || rf < 1)) {
    throw new InvalidOptionError(
      'createTopics.replicationFactor',
      'an integer >= 1 (default: the broker default)',
      rf,
    );
  }
}

// ---- librdkafka properties -----------------------------------------------------------------------

/**
 * The librdkafka keys a client sets itself, each with what an error says instead of a value (e.g.
 * which option to use). Each client has its own table.
 */
export type OwnedKeys = Readonly<Record<string, string>>;

/**
 * The keys of the bootstrap address, which every client takes from the `bootstrapServers` option;
 * `accepted` is what the error says.
 */
export function bootstrapKeys(accepted = "no value here: the option 'bootstrapServers'"): OwnedKeys {
  return { 'bootstrap.servers': accepted, 'metadata.broker.list': accepted };
}

/**
 * Checks an option of librdkafka properties (`option`: its name, e.g. `consumerConfig`):
 * `accepted` says what the option is when it is not an object; keys in `owned` are refused (the
 * value is never shown: it may be a secret).
 */
export function validateClientConfig(
  option: string,
  value: unknown,
  accepted: string,
  owned: OwnedKeys,
): void {
  if (value === undefined) return;
  if (!isPlainObject(value)) throw new InvalidOptionError(option, accepted, value);
  for (const [k, v] of Object.entries(value)) {
    const refused = owned[k];
    if (refused !== undefined) throw new InvalidOptionError(`${option}.${k}`, refused, '[set]');
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new InvalidOptionError(`${option}.${k}`, 'a string, number or boolean', typeof v);
    }
  }
}
