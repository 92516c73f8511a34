/**
 * A minimal long-lived Kafka producer for sample data, demos and examples: connect once per
 * process, `send` many times (records are batched by librdkafka: `linger.ms` 5, up to 10,000 per
 * request), `close` at the end. Creating a producer per record or per batch is the classic
 * performance bug; {@link sharedProducer} hands out one per process and bootstrap address.
 *
 * @example
 * ```ts
 * const producer = await sharedProducer();
 * await producer.send('words', ['a b c', 'b c']);
 * await producer.send('orders', [{ key: 'alice', value: JSON.stringify({ id: 1 }) }]);
 * await producer.close();
 * ```
 */
import { BrokerUnreachableError, InvalidOptionError, SourceError } from '../core/errors.js';
import type { KafkaHeader } from './deserializers.js';
import {
  CODES,
  Producer,
  call,
  delay,
  describeError,
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

export interface KafkaTextProducerOptions {
  /** Default: env `KAFKA_BOOTSTRAP`, else `127.0.0.1:9092`. */
  readonly bootstrapServers?: string;
  /** Bounded connection attempts (default 3 x 5000 ms), then BrokerUnreachableError. */
  readonly connect?: { readonly attempts?: number; readonly timeoutMs?: number };
  /** librdkafka producer properties, e.g. `{ acks: 1 }` or `{ 'linger.ms': 20 }`; never logged with secrets. */
  readonly producerConfig?: Readonly<Record<string, string | number | boolean>>;
}

interface Delivery {
  pending: number;
  error: LibrdKafkaError | undefined;
  done: (() => void) | undefined;
}

export class KafkaTextProducer {
  readonly bootstrapServers: string;
  readonly #producer: RdKafkaProducer;
  readonly #config: Record<string, string | number | boolean>;
  #closed = false;

  private constructor(producer: RdKafkaProducer, bootstrapServers: string, config: Record<string, string | number | boolean>) {
    this.#producer = producer;
    this.bootstrapServers = bootstrapServers;
    this.#config = config;
    producer.on('delivery-report', (err, report) => {
      const d = report.opaque as Delivery | undefined;
      if (!d) return;
      if (err && !d.error) d.error = err;
      if (--d.pending === 0) d.done?.();
    });
  }

  /** Connects a producer (bounded attempts, then BrokerUnreachableError). */
  static async connect(options: KafkaTextProducerOptions = {}): Promise<KafkaTextProducer> {
    const bootstrapServers = options.bootstrapServers ?? process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
    if (typeof bootstrapServers !== 'string' || !/^\S+:\d+(,\S+:\d+)*$/.test(bootstrapServers)) {
      throw new InvalidOptionError('bootstrapServers', "'host:port' or a comma-separated list of them", bootstrapServers);
    }
    const attempts = options.connect?.attempts ?? 3;
    const timeoutMs = options.connect?.timeoutMs ?? 5000;
    if (!Number.isInteger(attempts) || attempts < 1) throw new InvalidOptionError('connect.attempts', 'an integer >= 1', attempts);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 100) throw new InvalidOptionError('connect.timeoutMs', 'an integer >= 100 (ms)', timeoutMs);
    const config: Record<string, string | number | boolean> = {
      'client.id': 'sluice-producer',
      'linger.ms': 5,
      'batch.num.messages': 10_000,
      'enable.idempotence': true,
      ...options.producerConfig,
      'bootstrap.servers': bootstrapServers,
    };
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const producer = new Producer({ ...config, dr_cb: true } as never, {});
      try {
        await call((cb) => producer.connect({ timeout: timeoutMs }, cb as never));
        producer.setPollInBackground(true);
        return new KafkaTextProducer(producer, bootstrapServers, config);
      } catch (e) {
        lastError = e;
        producer.removeAllListeners();
        if (!isTransient(e)) {
          throw new SourceError('kafka-producer', `cannot create a producer for ${bootstrapServers}: ${describeError(e)}`, 'Check producerConfig', {
            cause: e,
          });
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
    if (this.#closed) throw new SourceError('kafka-producer', 'the producer is closed', 'Connect a new producer');
    const d: Delivery = { pending: 1, error: undefined, done: undefined };
    const finished = new Promise<void>((resolve) => (d.done = resolve));
    let n = 0;
    for (const r of records) {
      const rec: ProducerRecord = typeof r === 'string' || Buffer.isBuffer(r) ? { value: r } : r;
      const value = rec.value === null ? null : typeof rec.value === 'string' ? Buffer.from(rec.value) : rec.value;
      const headers = rec.headers === undefined ? undefined : toHeaderList(rec.headers);
      d.pending++;
      for (;;) {
        try {
          this.#producer.produce(topic, rec.partition ?? null, value, rec.key ?? null, rec.timestamp ?? null, d, headers);
          break;
        } catch (e) {
          if (errorCode(e) !== CODES.ERRORS.ERR__QUEUE_FULL) {
            d.pending--;
            throw new SourceError('kafka-producer', `cannot send to '${topic}': ${describeError(e)}`, 'Check the topic and the record', { cause: e });
          }
          await delay(5); // the local queue is full: let deliveries drain
        }
      }
      n++;
    }
    if (--d.pending === 0) d.done!();
    await finished;
    if (d.error) {
      throw new SourceError('kafka-producer', `delivery to '${topic}' failed: ${describeError(d.error)}`, 'Check that the topic exists and the broker is up', {
        cause: d.error,
        retriable: isTransient(d.error),
      });
    }
    return n;
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
      for (const [k, p] of shared) if (p === this) shared.delete(k);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.#producer.disconnect(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

function toHeaderList(h: NonNullable<ProducerRecord['headers']>): Array<Record<string, string | Buffer>> {
  if (Array.isArray(h)) return (h as readonly KafkaHeader[]).map((x) => ({ [x.key]: x.value }));
  return Object.entries(h as Record<string, string | Buffer>).map(([k, v]) => ({ [k]: v }));
}

const shared = new Map<string, KafkaTextProducer>();
const connecting = new Map<string, Promise<KafkaTextProducer>>();

/**
 * The process's producer for a bootstrap address: the first call connects it, later calls get the
 * same one (options of later calls are ignored). `close()` on it lets the next call connect anew.
 */
export async function sharedProducer(options: KafkaTextProducerOptions = {}): Promise<KafkaTextProducer> {
  const key = options.bootstrapServers ?? process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
  const existing = shared.get(key);
  if (existing) return existing;
  let pending = connecting.get(key);
  if (!pending) {
    pending = KafkaTextProducer.connect(options).then(
      (p) => {
        shared.set(key, p);
        connecting.delete(key);
        return p;
      },
      (e: unknown) => {
        connecting.delete(key);
        throw e;
      },
    );
    connecting.set(key, pending);
  }
  return pending;
}
