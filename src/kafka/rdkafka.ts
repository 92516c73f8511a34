/**
 * The one place that loads `@confluentinc/kafka-javascript` (librdkafka, node-rdkafka-style API)
 * and the small helpers every Kafka adapter file shares: promisified calls, error classification,
 * config redaction.
 */
import Kafka from '@confluentinc/kafka-javascript';
import type { LibrdKafkaError } from '@confluentinc/kafka-javascript';
import { isSecretName, redactUrl } from '../core/redact.js';

export type {
  KafkaConsumer as RdKafkaConsumer,
  Producer as RdKafkaProducer,
  IAdminClient,
  LibrdKafkaError,
  Message as RdMessage,
  EofEvent,
  TopicPartitionOffset,
} from '@confluentinc/kafka-javascript';

export const { KafkaConsumer, Producer, AdminClient, CODES, OffsetSpec, IsolationLevel, AclOperationTypes } =
  Kafka;

/**
 * What a subscribed consumer (group membership) offers beyond the typings of the binding: the
 * incremental (cooperative) assignment calls of a rebalance callback, and a commit answered through
 * a callback (run on a worker thread: `commitSync` would block the event loop for the round trip).
 */
export interface RdGroupConsumerApi {
  incrementalAssign(assignments: { topic: string; partition: number; offset?: number }[]): void;
  incrementalUnassign(assignments: { topic: string; partition: number }[]): void;
  /** Only meaningful inside a rebalance callback that revokes: the partitions were taken, not handed over. */
  assignmentLost(): boolean;
  commitCb(
    offsets: { topic: string; partition: number; offset: number; metadata?: string }[],
    cb: (err: LibrdKafkaError | null) => void,
  ): void;
}

/** `consumer` with the calls of {@link RdGroupConsumerApi} (in the binding since node-rdkafka 2.x). */
export function groupApi(consumer: unknown): RdGroupConsumerApi {
  return consumer as RdGroupConsumerApi;
}

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

/**
 * Errors a metadata change in progress causes (a topic just created, a leader or coordinator
 * moving, a broker restarted: measured in the scale-out chaos test, ListOffsets right after a broker restart fails
 * with FENCED_LEADER_EPOCH (74) until the client's metadata catches up).
 */
const TRANSIENT = new Set<number>([
  E.ERR_LEADER_NOT_AVAILABLE,
  E.ERR_NOT_LEADER_FOR_PARTITION,
  E.ERR_FENCED_LEADER_EPOCH,
  E.ERR_UNKNOWN_LEADER_EPOCH,
  E.ERR_OFFSET_NOT_AVAILABLE,
  // A group coordinator still loading or moving (a broker just started: measured in the chaos test,
  // the start's group access check got COORDINATOR_LOAD_IN_PROGRESS).
  E.ERR_COORDINATOR_LOAD_IN_PROGRESS,
  E.ERR_COORDINATOR_NOT_AVAILABLE,
  E.ERR_NOT_COORDINATOR,
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

/** Never transient: a security failure (rejected login, missing ACL) stays until someone fixes it. */
export function isTransient(e: unknown): boolean {
  const c = errorCode(e);
  return c !== undefined && (TRANSIENT.has(c) || UNREACHABLE.has(c)) && !isSecurityFailure(e);
}

// ---- security failures -------------------------------------------------------------------------
//
// Measured with the secured test broker (src/services/secure-kafka.ts: Kafka 4.3, SASL_SSL with
// SCRAM and PLAIN, StandardAuthorizer) and this client (librdkafka 2.15):
// - A rejected login never reaches a call as such: librdkafka keeps reconnecting, so connect() ends
//   at its timeout with -195 "broker transport failure" and admin calls with -185 "Timed out". What
//   says why is `event.error` — message 'authentication failure' (ERR__AUTHENTICATION), or
//   'ssl error' (ERR__SSL) for a CA that does not verify the broker — whose numeric code the
//   binding drops (`code` is -1), hence the match on the message; and `event.log` FAIL lines with
//   librdkafka's reason: "SASL authentication error: Authentication failed during authentication
//   due to invalid credentials with SASL mechanism SCRAM-SHA-512" (PLAIN: "... Invalid username or
//   password"), "SASL OAUTHBEARER mechanism handshake failed: Broker: Unsupported SASL mechanism:
//   ...", "SSL handshake failed: ... certificate verify failed: ...", and on the mutual-TLS
//   listener without a client certificate "... sslv3 alert bad certificate: SSL alert number 42"
//   (whose event.error is a plain 'broker transport failure'). An AdminClient emits event.error
//   within ~0.4 s; a KafkaConsumer only once its connect() returns (its events are served by its
//   own polling), a Producer not before; the log lines of all three come within ~0.4 s.
// - A missing ACL is a broker error code on the call or report that needed it: 29 topic (produce
//   delivery reports, describeTopics per topic, createTopic, fetch), 30 group (consume() of a
//   consumer with a group.id, even an assign()ed one: it looks up the group's coordinator; the
//   offset fetch of listConsumerGroupOffsets), 53 transactional id (initTransactions, fatal).
//   ListOffsets on a topic the principal may not describe fails with -156 "No such entry" (the
//   client finds no leader in the metadata it is allowed to see), not 29. An idempotent producer
//   (enable.idempotence) of a principal that may write no topic gets `event.error` 'cluster
//   authorization failed' (code -1, fatal) right after connect; its records are then reported as
//   -152 "Purged in queue" and later produce() calls throw -150 "Fatal error".

/** Codes of a rejected login or TLS handshake. */
const AUTHENTICATION = new Set<number>([
  E.ERR__AUTHENTICATION,
  E.ERR_SASL_AUTHENTICATION_FAILED,
  E.ERR_UNSUPPORTED_SASL_MECHANISM,
  E.ERR_ILLEGAL_SASL_STATE,
  E.ERR__SSL,
]);

/** `event.error` messages of a rejected login or TLS handshake, which come without their code. */
const AUTHENTICATION_MESSAGE = /^(Local: )?(authentication failure|ssl error)$/i;

/**
 * librdkafka's FAIL log lines that say why a connection was refused at login or TLS handshake.
 * Not "SSL handshake failed: Disconnected": a broker going away mid-handshake is not a refusal.
 */
const AUTHENTICATION_LOG =
  /SASL authentication error|SASL \S+ mechanism handshake failed|Unsupported SASL mechanism|certificate verify failed|SSL alert number (40|42|43|44|45|46|48|116)\b/i;

/** The resource type an authorization error code is about. */
const AUTHORIZATION = new Map<number, KafkaResourceType>([
  [E.ERR_TOPIC_AUTHORIZATION_FAILED, 'topic'],
  [E.ERR_GROUP_AUTHORIZATION_FAILED, 'group'],
  [E.ERR_CLUSTER_AUTHORIZATION_FAILED, 'cluster'],
  [E.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 'transactional-id'],
]);

/** The kinds of Kafka resources ACLs are given on that Sluice's clients use. */
export type KafkaResourceType = 'topic' | 'group' | 'cluster' | 'transactional-id';

/** A rejected login or TLS handshake (credentials, mechanism, CA, client certificate). */
export function isAuthenticationFailure(e: unknown): boolean {
  const c = errorCode(e);
  if (c !== undefined && AUTHENTICATION.has(c)) return true;
  const message = e && typeof e === 'object' ? (e as { message?: unknown }).message : undefined;
  return (c === undefined || c === -1) && typeof message === 'string' && AUTHENTICATION_MESSAGE.test(message);
}

/** The reason a librdkafka log line gives for a refused login or TLS handshake, if it is one. */
export function authenticationLogReason(
  line: { fac?: string; message?: string } | undefined,
): string | undefined {
  const message = line?.message;
  if (typeof message !== 'string' || !AUTHENTICATION_LOG.test(message)) return undefined;
  // "[thrd:...]: sasl_ssl://host:port/bootstrap: <reason> (after 306ms in state AUTH_REQ, ...)"
  const m = /^(?:\[thrd:[^\]]*\]:\s*)?(?:\S+:\/\/\S+:\s+)?(.*?)(?:\s*\(after \d+ms in state .*\))?$/s.exec(
    message,
  );
  return (m?.[1] ?? message).trim();
}

/**
 * `event.error` messages of a missing ACL, which come without their code: e.g. an idempotent
 * producer that may write no topic gets 'cluster authorization failed' (fatal) right after connect.
 */
const AUTHORIZATION_MESSAGE =
  /^(?:Broker: )?(topic|group|cluster|transactional id) authorization failed\.?$/i;

/** The resource type of an authorization failure (a missing ACL), if `e` is one. */
export function authorizationFailure(e: unknown): KafkaResourceType | undefined {
  const c = errorCode(e);
  if (c !== undefined && c !== -1) return AUTHORIZATION.get(c);
  const message = e && typeof e === 'object' ? (e as { message?: unknown }).message : undefined;
  const m = typeof message === 'string' ? AUTHORIZATION_MESSAGE.exec(message) : null;
  if (!m) return undefined;
  const kind = m[1]!.toLowerCase();
  return kind === 'transactional id' ? 'transactional-id' : (kind as KafkaResourceType);
}

/** A rejected login or a missing ACL: never worth retrying. */
export function isSecurityFailure(e: unknown): boolean {
  return isAuthenticationFailure(e) || authorizationFailure(e) !== undefined;
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

/**
 * Config keys whose values are never shown (plans, logs, errors): every key {@link isSecretName}
 * calls secret — among librdkafka's, `sasl.password`, `sasl.jaas.config`, `sasl.kerberos.keytab`,
 * `sasl.oauthbearer.config` (it holds the client secret), `sasl.oauthbearer.client.secret`,
 * `sasl.oauthbearer.assertion.private.key.*`, `sasl.oauthbearer.token.endpoint.url`, `ssl.key.pem`,
 * `ssl_key`, `ssl.key.password`, `ssl.key.location`, `ssl.keystore.location`,
 * `ssl.keystore.password` — and `sasl.username`. Certificates (`ssl.certificate.*`, `ssl.ca.*`) are
 * public and shown. A string value that is a URL is shown without its password and secret parameters.
 */
const SECRET_KEY = (key: string): boolean => isSecretName(key) || /^sasl\.username$/i.test(key);

/** A copy of a librdkafka config safe to log: secret values replaced by `[redacted]`. */
export function redactConfig(
  config: Record<string, string | number | boolean>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(config))
    out[k] = SECRET_KEY(k) ? '[redacted]' : typeof v === 'string' && v.includes('://') ? redactUrl(v) : v;
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
