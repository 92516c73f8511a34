/**
 * The one place that loads `@confluentinc/kafka-javascript` (librdkafka, node-rdkafka-style API)
 * and the small helpers every Kafka adapter file shares: promisified calls, error classification,
 * config redaction.
 */
import Kafka from '@confluentinc/kafka-javascript';
import type { LibrdKafkaError } from '@confluentinc/kafka-javascript';

export type {
  KafkaConsumer as RdKafkaConsumer,
  Producer as RdKafkaProducer,
  IAdminClient,
  LibrdKafkaError,
  Message as RdMessage,
  EofEvent,
  TopicPartitionOffset,
} from '@confluentinc/kafka-javascript';

export const { KafkaConsumer, Producer, AdminClient, CODES, OffsetSpec, IsolationLevel } = Kafka;

/** librdkafka's version, for plans and bench reports. */
export const librdkafkaVersion: string = Kafka.librdkafkaVersion;

const E = CODES.ERRORS;

/** Errors that mean "no broker answered": worth retrying, and reported as BrokerUnreachableError. */
const UNREACHABLE = new Set<number>([
  E.ERR__TRANSPORT,
  E.ERR__RESOLVE,
  E.ERR__ALL_BROKERS_DOWN,
  E.ERR__TIMED_OUT,
  E.ERR_REQUEST_TIMED_OUT,
]);

/** Errors a metadata change in progress causes (a topic just created, a leader moving). */
const TRANSIENT = new Set<number>([
  E.ERR_LEADER_NOT_AVAILABLE,
  E.ERR_NOT_LEADER_FOR_PARTITION,
  E.ERR__UNKNOWN_PARTITION,
  E.ERR__IN_PROGRESS,
  E.ERR_NOT_CONTROLLER,
]);

export function errorCode(e: unknown): number | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof (e as { code: unknown }).code === 'number') {
    return (e as { code: number }).code;
  }
  return undefined;
}

export function isUnreachable(e: unknown): boolean {
  const c = errorCode(e);
  return c !== undefined && UNREACHABLE.has(c);
}

export function isTransient(e: unknown): boolean {
  const c = errorCode(e);
  return c !== undefined && (TRANSIENT.has(c) || UNREACHABLE.has(c));
}

export function isUnknownTopic(e: unknown): boolean {
  const c = errorCode(e);
  return c === E.ERR_UNKNOWN_TOPIC_OR_PART || c === E.ERR__UNKNOWN_TOPIC || c === E.ERR_UNKNOWN_TOPIC_ID;
}

export function isTopicExists(e: unknown): boolean {
  return errorCode(e) === E.ERR_TOPIC_ALREADY_EXISTS;
}

export function isOffsetOutOfRange(e: unknown): boolean {
  const c = errorCode(e);
  return c === E.ERR__AUTO_OFFSET_RESET || c === E.ERR_OFFSET_OUT_OF_RANGE;
}

/** `fn(cb)` as a promise; librdkafka errors are passed through as they are. */
export function call<T>(
  fn: (cb: (err: LibrdKafkaError | null | undefined, value: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    fn((err, value) => (err ? reject(err) : resolve(value)));
  });
}

export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e && typeof e === 'object' && 'message' in e) {
    const c = errorCode(e);
    return `${String((e as { message: unknown }).message)}${c !== undefined ? ` (code ${c})` : ''}`;
  }
  return String(e);
}

/** Config keys whose values are never shown (plans, logs, errors). */
const SECRET_KEY =
  /(password|secret|token|sasl\.jaas|sasl\.username|ssl\.key\.pem|ssl\.keystore|ssl_key|credentials?)/i;

/** A copy of a librdkafka config safe to log: secret values replaced by `[redacted]`. */
export function redactConfig(
  config: Record<string, string | number | boolean>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(config)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : v;
  return out;
}

/** Waits `ms`, or rejects with the signal's reason when it is aborted first. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Disconnects a consumer or producer. Resolves when it is done or after `timeoutMs` (librdkafka's
 * disconnect can wait a long time on an unreachable cluster), and never rejects: closing goes on.
 */
export function disconnect(
  client: { disconnect(cb: () => void): unknown },
  timeoutMs: number,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, timeoutMs);
    try {
      client.disconnect(() => {
        clearTimeout(t);
        resolve();
      });
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

/** The wait before try `attempt + 1`: 100 ms, doubling, at most 2 s. */
export function backoff(attempt: number): number {
  return Math.min(100 * 2 ** (attempt - 1), 2000);
}

/**
 * Runs `op` (given the time it may take) up to `policy.attempts` times, backing off between tries,
 * while `retriable` says its error is worth another try. Any other error becomes `failure(error)`;
 * the last retriable one, `exhausted(error)` (undefined if there was none).
 */
export async function retrying<T>(
  policy: { readonly attempts: number; readonly timeoutMs: number; readonly signal?: AbortSignal },
  op: (timeoutMs: number) => Promise<T>,
  errors: {
    retriable: (e: unknown) => boolean;
    failure: (e: unknown) => Error;
    exhausted: (e: unknown) => Error;
  },
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      return await op(policy.timeoutMs);
    } catch (e) {
      if (!errors.retriable(e)) throw errors.failure(e);
      lastError = e;
      if (attempt < policy.attempts) await delay(backoff(attempt), policy.signal);
    }
  }
  throw errors.exhausted(lastError);
}
