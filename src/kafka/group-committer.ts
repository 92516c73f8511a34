/**
 * The channel through which {@link KafkaOffsetStore} commits a group's offsets: a consumer of that
 * group that never subscribes and only commits.
 */
import { InvalidOptionError, SourceError } from '../core/errors.js';
import type { PartitionOffset } from '../core/offsets.js';
import type { AuthFailureWatch } from './auth-watch.js';
import { librdkafkaConfig, type KafkaCluster } from './cluster.js';
import type { ClientConfig } from './options.js';
import {
  CODES,
  KafkaConsumer,
  call,
  describeError,
  disconnect,
  redactConfig,
  type LibrdKafkaError,
  type RdKafkaConsumer,
} from './rdkafka.js';

/** How often a commit's result is polled for while it is in flight. */
const COMMIT_POLL_MS = 20;

/**
 * One consumer with `group.id = group` that only commits. librdkafka's commits are asynchronous
 * and report through the offset-commit callback, which is served while the consumer is polled:
 * a commit is sent, then the consumer is polled (it has no assignment, so it fetches nothing)
 * until the callback answers or the time is up. One commit at a time.
 */
export class GroupCommitter {
  readonly consumer: RdKafkaConsumer;
  #chain: Promise<unknown> = Promise.resolve();
  #waiting: ((err: LibrdKafkaError | undefined) => void) | undefined;
  #closed = false;

  constructor(consumer: RdKafkaConsumer) {
    this.consumer = consumer;
    consumer.on('offset.commit', (err) => {
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.(err ?? undefined);
    });
  }

  /**
   * Connects the group's consumer (it never subscribes: it has no assignment and fetches nothing).
   * `auth` watches it: a refused login ends the connect at once with the reason.
   */
  static async connect(
    cluster: KafkaCluster,
    clientConfig: ClientConfig,
    group: string,
    timeoutMs: number,
    auth: AuthFailureWatch,
  ): Promise<GroupCommitter> {
    let consumer: RdKafkaConsumer;
    try {
      consumer = new KafkaConsumer(
        librdkafkaConfig(cluster, { 'client.id': 'sluice-offsets' }, clientConfig, {
          'group.id': group,
          'enable.auto.commit': false,
          'enable.auto.offset.store': false,
          offset_commit_cb: true,
        }) as never,
        {},
      );
    } catch (e) {
      throw new InvalidOptionError(
        'clientConfig',
        `librdkafka properties it accepts (${describeError(e)})`,
        redactConfig({ ...clientConfig }),
      );
    }
    consumer.on('event.error', () => {}); // reported through the calls that fail
    auth.watch(consumer);
    const connecting = call((cb) => consumer.connect({ timeout: timeoutMs }, cb as never));
    try {
      await auth.race(connecting);
    } catch (e) {
      if (e === auth.failure) {
        // The connect still running ends at its timeout; a consumer it connected after all is closed.
        connecting.then(
          () => void disconnect(consumer, timeoutMs),
          () => {},
        );
      } else {
        consumer.removeAllListeners();
      }
      throw e;
    }
    consumer.setDefaultConsumeTimeout(COMMIT_POLL_MS);
    return new GroupCommitter(consumer);
  }

  /** Resolves when the broker accepted every offset; rejects with the commit's error or a timeout. */
  commit(offsets: readonly PartitionOffset[], timeoutMs: number): Promise<void> {
    const run = this.#chain.then(() => this.#commitNow(offsets, timeoutMs));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #commitNow(offsets: readonly PartitionOffset[], timeoutMs: number): Promise<void> {
    if (this.#closed)
      throw new SourceError('kafka-offsets', 'the store is closed', 'Create a new offset store');
    let result: { err: LibrdKafkaError | undefined } | undefined;
    this.#waiting = (err) => (result = { err });
    try {
      this.consumer.commit(
        offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })),
      );
    } catch (e) {
      this.#waiting = undefined;
      throw e;
    }
    const deadline = Date.now() + timeoutMs;
    try {
      while (result === undefined) {
        if (Date.now() > deadline) {
          throw Object.assign(new Error(`the commit got no answer within ${timeoutMs} ms`), {
            code: CODES.ERRORS.ERR__TIMED_OUT,
          });
        }
        // Serves the offset-commit callback; returns after COMMIT_POLL_MS with nothing to consume.
        await call<unknown>((cb) => this.consumer.consume(1, cb as never));
      }
    } finally {
      this.#waiting = undefined;
    }
    if (result.err) throw result.err;
  }

  async close(timeoutMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#chain;
    await disconnect(this.consumer, timeoutMs);
  }
}
