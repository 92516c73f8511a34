import type { Redis } from 'ioredis';
import type { Batch, BatchContext } from '../core/batch.js';
import { InvalidOptionError } from '../core/errors.js';
import type { Sink, SinkContext } from '../core/sink.js';
import {
  describeRedis,
  execPipeline,
  redisCall,
  releaseRedis,
  resolveRedis,
  type RedisConnection,
  type ResolvedRedis,
} from './connection.js';

/** A value Redis stores as is: strings and buffers verbatim, numbers as their decimal text. */
export type RedisValue = string | number | Buffer;

/**
 * One write, expressed as data. Both kinds are upserts of a value at a key, so writing the same
 * record again leaves Redis as the first write did: the sink is idempotent.
 * - `set`: `SET key value` (a string key).
 * - `hset`: `HSET key field value` (a field of a hash).
 */
export type RedisWrite =
  | { readonly type: 'set'; readonly key: string; readonly value: RedisValue }
  | { readonly type: 'hset'; readonly key: string; readonly field: string; readonly value: RedisValue };

export interface RedisSinkOptions<T> {
  /** An ioredis client (yours: never quit by Sluice) or a URL. Default env `SLUICE_REDIS_URL`, else `redis://127.0.0.1:6379`. */
  readonly redis?: RedisConnection;
  /** The write(s) for one record; an empty array writes nothing for it. */
  readonly command: (record: T) => RedisWrite | readonly RedisWrite[];
  /** Writes sent in one pipeline (one round trip). Default 1000. */
  readonly chunkSize?: number;
}

/**
 * Writes each record as `SET` or `HSET` commands, pipelined: one round trip per `chunkSize` writes,
 * not one per record. Writes of a batch are sent in record order (partition after partition), so
 * when two records of a batch write the same key, the later one wins, on every replay alike.
 *
 * Delivery: exactly-once with an offset store (write the batch, then the offsets): a batch replayed
 * after a crash rewrites the same values. A batch is not atomic: a crash in the middle leaves some
 * of its writes applied until the replay completes them.
 *
 * @example
 * ```ts
 * counts.output(new RedisSink<[string, number]>({
 *   command: ([word, n]) => ({ type: 'hset', key: 'wordcount', field: word, value: n }),
 * }));
 * ```
 */
export class RedisSink<T> implements Sink<T> {
  readonly kind = 'redis';
  readonly idempotent = true;
  readonly #redis: ResolvedRedis;
  readonly #command: (record: T) => RedisWrite | readonly RedisWrite[];
  readonly #chunkSize: number;
  #closed = false;

  constructor(options: RedisSinkOptions<T>) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('options', '{ command, redis?, chunkSize? }', options);
    }
    if (typeof options.command !== 'function') {
      throw new InvalidOptionError(
        'command',
        "a function (record) => { type: 'set', key, value } | { type: 'hset', key, field, value }",
        options.command,
      );
    }
    const chunk = options.chunkSize ?? 1000;
    if (!Number.isSafeInteger(chunk) || chunk < 1) {
      throw new InvalidOptionError('chunkSize', 'an integer >= 1', options.chunkSize);
    }
    this.#command = options.command;
    this.#chunkSize = chunk;
    this.#redis = resolveRedis(options.redis);
  }

  /** The ioredis client in use. */
  get redis(): Redis {
    return this.#redis.client;
  }

  describe(): Record<string, unknown> {
    return { ...describeRedis(this.#redis.client), chunkSize: this.#chunkSize };
  }

  async open(_ctx: SinkContext): Promise<void> {
    const { client } = this.#redis;
    await redisCall(this.#redis, async () => {
      if (this.#redis.owned && client.status === 'wait') await client.connect();
      await client.ping();
    });
  }

  async write(batch: Batch<T>, _ctx: BatchContext): Promise<void> {
    let pipeline = this.#redis.client.pipeline();
    for (const partition of batch.partitions) {
      for (const record of partition) {
        const produced = this.#command(record);
        for (const w of Array.isArray(produced)
          ? (produced as readonly RedisWrite[])
          : [produced as RedisWrite]) {
          queue(pipeline, w);
          if (pipeline.length >= this.#chunkSize) {
            await this.#run(pipeline);
            pipeline = this.#redis.client.pipeline();
          }
        }
      }
    }
    if (pipeline.length > 0) await this.#run(pipeline);
  }

  async #run(pipeline: Pipeline): Promise<void> {
    await execPipeline(this.#redis, pipeline);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await releaseRedis(this.#redis);
  }
}

type Pipeline = ReturnType<Redis['pipeline']>;

function queue(pipeline: Pipeline, w: RedisWrite): void {
  if (w === null || typeof w !== 'object' || typeof w.key !== 'string' || !isValue(w.value)) {
    throw new InvalidOptionError(
      'command',
      "returns { type: 'set', key, value } or { type: 'hset', key, field, value } with string keys",
      w,
    );
  }
  if (w.type === 'set') pipeline.set(w.key, w.value);
  else if (w.type === 'hset' && typeof w.field === 'string') pipeline.hset(w.key, w.field, w.value);
  else
    throw new InvalidOptionError(
      'command',
      "returns { type: 'set', key, value } or { type: 'hset', key, field, value }",
      w,
    );
}

function isValue(v: unknown): v is RedisValue {
  return typeof v === 'string' || Buffer.isBuffer(v) || (typeof v === 'number' && Number.isFinite(v));
}
