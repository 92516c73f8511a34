/**
 * Watches a librdkafka client for a refused login, so that a call waiting on the cluster ends at
 * once with the reason ({@link KafkaAuthenticationError}) instead of at its timeout with "broker
 * transport failure" or a `BrokerUnreachableError`: librdkafka never fails a call for a
 * rejected login, it keeps reconnecting (see the measurements above `isAuthenticationFailure` in
 * rdkafka.ts). The reason comes from the client's FAIL log lines, the only place that gives it.
 */
import { authenticationError, KafkaAuthenticationError, type KafkaIdentity } from './errors.js';
import { authenticationLogReason, describeError, isAuthenticationFailure } from './rdkafka.js';

/** What the watch listens to: a KafkaConsumer, Producer or (own) AdminClient. */
interface EventSource {
  on(event: 'event.error' | 'event.log', listener: (arg: never) => void): unknown;
}

export class AuthFailureWatch {
  readonly identity: KafkaIdentity;
  #failure: KafkaAuthenticationError | undefined;
  #reason: string | undefined;
  readonly #waiting = new Set<(e: KafkaAuthenticationError) => void>();

  constructor(identity: KafkaIdentity) {
    this.identity = identity;
  }

  /** Listens to `client`'s errors and log lines (for as long as the client lives). */
  watch(client: EventSource): this {
    client.on('event.log', ((line: { fac?: string; message?: string }) => {
      const reason = authenticationLogReason(line);
      if (reason !== undefined) this.#fail(reason, undefined);
    }) as (arg: never) => void);
    client.on('event.error', ((e: unknown) => {
      if (isAuthenticationFailure(e)) this.#fail(this.#reason ?? describeError(e), e);
    }) as (arg: never) => void);
    return this;
  }

  /** The refused login seen so far, if any. It stays: a client whose login was refused never gets in. */
  get failure(): KafkaAuthenticationError | undefined {
    return this.#failure;
  }

  /** `p`, unless a refused login is seen first: then a rejection with it, at once. */
  race<T>(p: Promise<T>): Promise<T> {
    if (this.#failure) {
      p.catch(() => {});
      return Promise.reject(this.#failure);
    }
    return new Promise<T>((resolve, reject) => {
      const onFailure = (e: KafkaAuthenticationError) => reject(e);
      this.#waiting.add(onFailure);
      p.then(
        (v) => {
          this.#waiting.delete(onFailure);
          resolve(v);
        },
        (e: unknown) => {
          this.#waiting.delete(onFailure);
          // A call that failed (e.g. timed out) while the login was refused failed because of it.
          reject(this.#failure ?? e);
        },
      );
    });
  }

  #fail(reason: string, cause: unknown): void {
    this.#reason ??= reason;
    if (this.#failure) return;
    this.#failure = authenticationError(this.identity, reason, cause);
    for (const w of [...this.#waiting]) w(this.#failure);
    this.#waiting.clear();
  }
}
