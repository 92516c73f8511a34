/**
 * Redis adapters: {@link RedisOffsetStore} (offsets in a hash per topic, field `group|partition`)
 * and {@link RedisSink} (idempotent `SET` / `HSET` upserts, pipelined per batch).
 */
export { RedisOffsetStore, type RedisOffsetStoreOptions } from './offset-store.js';
export { RedisSink, type RedisSinkOptions, type RedisValue, type RedisWrite } from './sink.js';
export { DEFAULT_REDIS_URL, type RedisConnection } from './connection.js';
export { RedisUnreachableError } from './errors.js';
