import type { Redis } from 'ioredis';
import { InvalidOptionError, OffsetConflictError } from '../core/errors.js';
import type { OffsetStore, PartitionOffset, OffsetRange } from '../core/offsets.js';
import {
  LuaScript,
  describeRedis,
  execPipeline,
  redisCall,
  releaseRedis,
  resolveRedis,
  type RedisConnection,
  type ResolvedRedis,
} from './connection.js';

export interface RedisOffsetStoreOptions {
  /** An ioredis client (yours: never quit by Sluice) or a URL. Default env `SLUICE_REDIS_URL`, else `redis://127.0.0.1:6379`. */
  readonly redis?: RedisConnection;
  /** Prepended to the topic name to make the hash's key. Default `''`: the key is the topic name itself. */
  readonly keyPrefix?: string;
  /** The hash key of a topic, instead of `keyPrefix + topic`. Must be a non-empty string. */
  readonly key?: (topic: string) => string;
}

/**
 * Offsets in Redis, in the layout Spark Streaming users know: one HASH per topic, one field per
 * (group, partition) named `group|partition`, whose value is the next offset to read as a decimal
 * string.
 *
 * ```
 * HGET orders "billing|3"   →  "1042"
 * ```
 *
 * A group name may contain `|`: fields are split at the LAST `|`, and partitions are digits only, so
 * `a|b|3` is partition 3 of group `a|b` and never read as a partition of group `a`.
 *
 * Every write is one Lua script, so it is atomic across all its ranges and topics (Redis runs a
 * script alone): with `compareAndSet` it checks every field first and writes either all of them or
 * none. The script touches one key per topic; on Redis Cluster those keys must hash to one slot
 * (use a `key` function with a hash tag, e.g. `(t) => '{offsets}:' + t`).
 *
 * Offsets are kept exactly up to 2^53 - 1 (`Number.MAX_SAFE_INTEGER`).
 *
 * @example
 * ```ts
 * const store = new RedisOffsetStore({ redis: 'redis://127.0.0.1:6379' });
 * await store.write('billing', [{ topic: 'orders', partition: 3, fromOffset: 1000, untilOffset: 1042 }], { compareAndSet: true });
 * await store.read('billing', ['orders']); // [{ topic: 'orders', partition: 3, offset: 1042 }]
 * ```
 */
export class RedisOffsetStore implements OffsetStore {
  readonly kind = 'redis';
  readonly capabilities = { compareAndSet: true, shared: true };
  readonly #redis: ResolvedRedis;
  readonly #key: (topic: string) => string;
  readonly #keyPrefix: string | undefined;
  readonly #customKey: boolean;
  #closed = false;

  constructor(options: RedisOffsetStoreOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('options', '{ redis?, keyPrefix?, key? }', options);
    }
    if (options.keyPrefix !== undefined && typeof options.keyPrefix !== 'string') {
      throw new InvalidOptionError('keyPrefix', 'a string (default empty)', options.keyPrefix);
    }
    if (options.key !== undefined && typeof options.key !== 'function') {
      throw new InvalidOptionError('key', 'a function (topic) => hash key', options.key);
    }
    if (options.key !== undefined && options.keyPrefix !== undefined) {
      throw new InvalidOptionError(
        'keyPrefix',
        'keyPrefix or key, not both (put the prefix in key)',
        options.keyPrefix,
      );
    }
    const prefix = options.keyPrefix ?? '';
    this.#keyPrefix = options.keyPrefix;
    this.#customKey = options.key !== undefined;
    this.#key = options.key ?? ((topic) => prefix + topic);
    this.#redis = resolveRedis(options.redis);
  }

  /** The ioredis client in use. */
  get redis(): Redis {
    return this.#redis.client;
  }

  describe(): Record<string, unknown> {
    return {
      ...describeRedis(this.#redis.client),
      layout: 'HASH per topic, field group|partition',
      ...(this.#customKey ? { key: 'custom' } : { keyPrefix: this.#keyPrefix ?? '' }),
    };
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    checkGroup(group);
    if (topics.length === 0) return [];
    const keys = topics.map((t) => this.#hashKey(t));
    const pipeline = this.#redis.client.pipeline();
    for (const k of keys) pipeline.hgetall(k);
    const hashes = (await execPipeline(this.#redis, pipeline)) as Record<string, string>[];
    const prefix = `${group}|`;
    const out: PartitionOffset[] = [];
    hashes.forEach((hash, i) => {
      for (const [field, value] of Object.entries(hash)) {
        if (!field.startsWith(prefix)) continue;
        const partition = field.slice(prefix.length);
        if (!/^\d+$/.test(partition)) continue; // a field of a group whose name starts with `group|`
        out.push({
          topic: topics[i]!,
          partition: Number(partition),
          offset: parseStored(keys[i]!, field, value),
        });
      }
    });
    return out.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  async write(
    group: string,
    ranges: readonly OffsetRange[],
    options: { compareAndSet?: boolean } = {},
  ): Promise<void> {
    checkGroup(group);
    if (ranges.length === 0) return;
    const keys: string[] = [];
    const args: string[] = [options.compareAndSet ? '1' : '0'];
    for (const r of ranges) {
      checkPartition(r.partition);
      keys.push(this.#hashKey(r.topic));
      args.push(`${group}|${r.partition}`, offsetText(r.fromOffset), offsetText(r.untilOffset));
    }
    const result = await redisCall(this.#redis, () => WRITE_SCRIPT.run(this.#redis.client, keys, args));
    if (Array.isArray(result)) {
      const [index, stored] = result as [number, string];
      const r = ranges[index - 1]!;
      throw new OffsetConflictError(
        group,
        r.topic,
        r.partition,
        r.fromOffset,
        parseStored(keys[index - 1]!, args[3 * (index - 1) + 1]!, stored),
      );
    }
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    await this.write(
      group,
      offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        fromOffset: o.offset,
        untilOffset: o.offset,
      })),
    );
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    checkGroup(group);
    if (topics.length === 0) return;
    await DELETE_SCRIPT.run(
      this.#redis.client,
      topics.map((t) => this.#hashKey(t)),
      [`${group}|`],
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await releaseRedis(this.#redis);
  }

  #hashKey(topic: string): string {
    if (typeof topic !== 'string' || topic === '')
      throw new InvalidOptionError('topic', 'a non-empty topic name', topic);
    const k = this.#key(topic);
    if (typeof k !== 'string' || k === '') {
      throw new InvalidOptionError('key', 'a function returning a non-empty string', k);
    }
    return k;
  }
}

/*
 * KEYS[i]: the hash of range i. ARGV[1]: '1' to compare-and-set. Then per range i, at
 * 2 + 3(i-1): field, expected (fromOffset), next (untilOffset). Returns 0, or {i, stored} for the
 * first range whose field holds another value (nothing written then).
 */
const WRITE_SCRIPT = new LuaScript(`
if ARGV[1] == '1' then
  for i = 1, #KEYS do
    local base = 2 + (i - 1) * 3
    local stored = redis.call('HGET', KEYS[i], ARGV[base])
    if stored and stored ~= ARGV[base + 1] then
      return {i, stored}
    end
  end
end
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 3
  redis.call('HSET', KEYS[i], ARGV[base], ARGV[base + 2])
end
return 0
`);

/* Deletes, in every hash of KEYS, the fields ARGV[1] .. digits (one group's partitions). */
const DELETE_SCRIPT = new LuaScript(`
local prefix = ARGV[1]
for i = 1, #KEYS do
  local fields = redis.call('HKEYS', KEYS[i])
  for _, f in ipairs(fields) do
    if string.sub(f, 1, #prefix) == prefix and string.match(string.sub(f, #prefix + 1), '^%d+$') then
      redis.call('HDEL', KEYS[i], f)
    end
  end
end
return 0
`);

function checkGroup(group: string): void {
  if (typeof group !== 'string' || group === '')
    throw new InvalidOptionError('group', 'a non-empty string', group);
}

function checkPartition(partition: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw new InvalidOptionError('partition', 'an integer >= 0', partition);
  }
}

/** An offset as the decimal text stored; refuses what would not round-trip exactly. */
function offsetText(offset: number): string {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Offset ${String(offset)} is not an integer between 0 and 2^53 - 1`);
  }
  return String(offset);
}

function parseStored(key: string, field: string, value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(
      `Redis hash '${key}' field '${field}' holds ${JSON.stringify(value)}, not an offset between 0 and 2^53 - 1`,
    );
  }
  return n;
}
