import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { Batch } from '../../src/core/batch.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { RedisSink, RedisUnreachableError, type RedisWrite } from '../../src/redis/index.js';
import { sinkConformance } from '../conformance/sink.js';
import { redisUrl, uniqueName } from '../helpers/services.js';

interface Rec {
  id: string;
  n: number;
}

const records = (n: number, seed: string): Rec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${seed}-${i}`, n: i }));

async function plainClient(): Promise<Redis> {
  return new Redis(await redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 2 });
}

async function keysMatching(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  return keys;
}

const ctx = { time: 1000, offsetRanges: [] };
const sinkCtx = {
  pipelineId: 'test',
  name: 'out',
  logger: silentLogger,
  signal: new AbortController().signal,
};

sinkConformance<Rec>('RedisSink (hset, one field per record)', async () => {
  const hash = uniqueName('sluice-test-sink');
  const reader = await plainClient();
  const sink = new RedisSink<Rec>({
    redis: await redisUrl(),
    command: (r) => ({ type: 'hset', key: hash, field: r.id, value: JSON.stringify(r) }),
    chunkSize: 7,
  });
  return {
    sink,
    records,
    readBack: async () => Object.values(await reader.hgetall(hash)).map((v) => JSON.parse(v) as Rec),
    cleanup: async () => {
      await reader.del(hash);
      reader.disconnect();
    },
  };
});

sinkConformance<Rec>('RedisSink (set, one key per record)', async () => {
  const prefix = `${uniqueName('sluice-test-sink')}:`;
  const reader = await plainClient();
  const sink = new RedisSink<Rec>({
    redis: await redisUrl(),
    command: (r) => ({ type: 'set', key: prefix + r.id, value: JSON.stringify(r) }),
  });
  return {
    sink,
    records,
    readBack: async () => {
      const keys = await keysMatching(reader, `${prefix}*`);
      if (keys.length === 0) return [];
      return (await reader.mget(...keys)).map((v) => JSON.parse(v!) as Rec);
    },
    cleanup: async () => {
      const keys = await keysMatching(reader, `${prefix}*`);
      if (keys.length > 0) await reader.del(...keys);
      reader.disconnect();
    },
  };
});

describe('RedisSink', () => {
  it('sends a batch in one round trip per chunk, not one per record', async () => {
    const hash = uniqueName('sluice-test-sink');
    const redis = await plainClient();
    const sink = new RedisSink<Rec>({
      redis,
      command: (r) => ({ type: 'hset', key: hash, field: r.id, value: r.n }),
      chunkSize: 100,
    });
    const pipelines: number[] = [];
    const original = redis.pipeline.bind(redis);
    redis.pipeline = ((...args: Parameters<typeof original>) => {
      const p = original(...args);
      const exec = p.exec.bind(p);
      p.exec = ((...a: Parameters<typeof exec>) => {
        pipelines.push(p.length);
        return exec(...a);
      }) as typeof p.exec;
      return p;
    }) as typeof redis.pipeline;
    try {
      await sink.open(sinkCtx);
      await sink.write(Batch.of(records(250, 'x'), 4), ctx);
      assert.deepEqual(pipelines, [100, 100, 50]);
      assert.equal(await redis.hlen(hash), 250);
      assert.equal(await redis.hget(hash, 'x-249'), '249');
    } finally {
      await sink.close();
      await redis.del(hash);
      redis.disconnect();
    }
  });

  it('writes several commands for one record, and the later of two writes to a key wins', async () => {
    const prefix = `${uniqueName('sluice-test-sink')}:`;
    const redis = await plainClient();
    const sink = new RedisSink<[string, number]>({
      redis,
      command: ([word, n]): RedisWrite[] => [
        { type: 'hset', key: `${prefix}counts`, field: word, value: n },
        { type: 'set', key: `${prefix}last`, value: word },
      ],
    });
    try {
      await sink.write(
        Batch.of<[string, number]>(
          [
            ['a', 1],
            ['b', 2],
            ['a', 3],
          ],
          1,
        ),
        ctx,
      );
      assert.deepEqual(await redis.hgetall(`${prefix}counts`), { a: '3', b: '2' });
      assert.equal(await redis.get(`${prefix}last`), 'a');
    } finally {
      await sink.close();
      await redis.del(`${prefix}counts`, `${prefix}last`);
      redis.disconnect();
    }
  });

  it('fails the write when a command is not a set or hset', async () => {
    const redis = await plainClient();
    const sink = new RedisSink<Rec>({
      redis,
      command: () => ({ type: 'del', key: 'k' }) as unknown as RedisWrite,
    });
    try {
      await assert.rejects(
        sink.write(Batch.of(records(1, 'z')), ctx),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'command',
      );
    } finally {
      await sink.close();
      redis.disconnect();
    }
  });

  it('open fails with RedisUnreachableError when Redis does not answer', async () => {
    const sink = new RedisSink<Rec>({
      redis: 'redis://127.0.0.1:1',
      command: (r) => ({ type: 'set', key: r.id, value: r.n }),
    });
    try {
      await assert.rejects(
        sink.open(sinkCtx),
        (e: unknown) => e instanceof RedisUnreachableError && e.address === '127.0.0.1:1',
      );
    } finally {
      await sink.close();
    }
  });

  it('rejects invalid options with InvalidOptionError naming the option', () => {
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option;
    const command = (r: Rec): RedisWrite => ({ type: 'set', key: r.id, value: r.n });
    assert.throws(() => new RedisSink<Rec>({} as never), named('command'));
    assert.throws(() => new RedisSink<Rec>({ command, chunkSize: 0 }), named('chunkSize'));
    assert.throws(() => new RedisSink<Rec>({ command, redis: 'localhost:6379' }), named('redis'));
  });

  it('is idempotent and describes its server without the password', async () => {
    const sink = new RedisSink<Rec>({
      redis: 'redis://:pw-secret@127.0.0.1:6379/0',
      command: (r) => ({ type: 'set', key: r.id, value: r.n }),
    });
    assert.equal(sink.idempotent, true);
    assert.equal(sink.kind, 'redis');
    assert.doesNotMatch(JSON.stringify(sink.describe()), /pw-secret/);
    await sink.close();
  });
});
