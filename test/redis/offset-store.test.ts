import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { InvalidOptionError } from '../../src/core/errors.js';
import { RedisOffsetStore, RedisUnreachableError } from '../../src/redis/index.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import { compareAndSetAcrossTopics, refusesInexactOffsets } from '../helpers/offset-store.js';
import { redisUrl, uniqueName } from '../helpers/services.js';

// Every hash this file makes starts with this prefix (or is listed in `made`), and is deleted after.
const prefix = `${uniqueName('sluice-test')}:`;
const made: string[] = [];

async function plainClient(): Promise<Redis> {
  return new Redis(await redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 2 });
}

after(async () => {
  const redis = await plainClient();
  try {
    const keys = [...made];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
});

offsetStoreConformance(
  'RedisOffsetStore',
  async () => new RedisOffsetStore({ redis: await redisUrl(), keyPrefix: prefix }),
);

describe('RedisOffsetStore', () => {
  it('keeps offsets in a hash named after the topic, field "group|partition", value the next offset', async () => {
    const topic = uniqueName('orders');
    made.push(topic);
    const store = new RedisOffsetStore({ redis: await redisUrl() });
    const redis = await plainClient();
    try {
      await store.write('billing', [{ topic, partition: 3, fromOffset: 0, untilOffset: 1042 }]);
      assert.equal(await redis.hget(topic, 'billing|3'), '1042');
      assert.equal(await redis.type(topic), 'hash');
    } finally {
      await store.close();
      redis.disconnect();
    }
  });

  it('reads offsets that another program put in the hash', async () => {
    const topic = uniqueName('orders');
    made.push(topic);
    const store = new RedisOffsetStore({ redis: await redisUrl() });
    const redis = await plainClient();
    try {
      await redis.hset(topic, 'billing|0', '7', 'billing|1', String(2 ** 53 - 1), 'other|0', '99');
      assert.deepEqual(await store.read('billing', [topic]), [
        { topic, partition: 0, offset: 7 },
        { topic, partition: 1, offset: 2 ** 53 - 1 },
      ]);
    } finally {
      await store.close();
      redis.disconnect();
    }
  });

  it('uses keyPrefix + topic, or the key function, as the hash key', async () => {
    const topic = uniqueName('orders');
    const url = await redisUrl();
    const prefixed = new RedisOffsetStore({ redis: url, keyPrefix: `${prefix}offsets:` });
    const custom = new RedisOffsetStore({ redis: url, key: (t) => `${prefix}{${t}}` });
    const redis = await plainClient();
    try {
      await prefixed.write('g', [{ topic, partition: 0, fromOffset: 0, untilOffset: 5 }]);
      await custom.write('g', [{ topic, partition: 1, fromOffset: 0, untilOffset: 6 }]);
      assert.equal(await redis.hget(`${prefix}offsets:${topic}`, 'g|0'), '5');
      assert.equal(await redis.hget(`${prefix}{${topic}}`, 'g|1'), '6');
      assert.equal(await redis.exists(topic), 0);
    } finally {
      await prefixed.close();
      await custom.close();
      redis.disconnect();
    }
  });

  it('keeps a group whose name contains "|" apart from the group named by its first part', async () => {
    const store = new RedisOffsetStore({ redis: await redisUrl(), keyPrefix: prefix });
    const topic = uniqueName('t');
    try {
      await store.write('a', [{ topic, partition: 0, fromOffset: 0, untilOffset: 1 }]);
      await store.write('a|1', [{ topic, partition: 0, fromOffset: 0, untilOffset: 2 }]);
      await store.write('a|', [{ topic, partition: 5, fromOffset: 0, untilOffset: 3 }]);
      assert.deepEqual(await store.read('a', [topic]), [{ topic, partition: 0, offset: 1 }]);
      assert.deepEqual(await store.read('a|1', [topic]), [{ topic, partition: 0, offset: 2 }]);
      assert.deepEqual(await store.read('a|', [topic]), [{ topic, partition: 5, offset: 3 }]);
      await store.delete('a', [topic]);
      assert.deepEqual(await store.read('a', [topic]), []);
      assert.deepEqual(await store.read('a|1', [topic]), [{ topic, partition: 0, offset: 2 }]);
      assert.deepEqual(await store.read('a|', [topic]), [{ topic, partition: 5, offset: 3 }]);
    } finally {
      await store.close();
    }
  });

  it('compare-and-set across two topics writes neither when the second conflicts', async () => {
    const store = new RedisOffsetStore({ redis: await redisUrl(), keyPrefix: prefix });
    try {
      await compareAndSetAcrossTopics(store);
    } finally {
      await store.close();
    }
  });

  it('refuses an offset that Redis could not hold exactly (above 2^53 - 1 or fractional)', async () => {
    const store = new RedisOffsetStore({ redis: await redisUrl(), keyPrefix: prefix });
    try {
      await refusesInexactOffsets(store, 1.5);
    } finally {
      await store.close();
    }
  });

  it('leaves a client it was given connected on close', async () => {
    const redis = await plainClient();
    const store = new RedisOffsetStore({ redis });
    try {
      assert.equal(store.redis, redis);
      await store.read('g', [uniqueName('t')]);
      await store.close();
      assert.equal(await redis.ping(), 'PONG');
    } finally {
      redis.disconnect();
    }
  });

  it('describes host, port and db but never the password of its URL', () => {
    const store = new RedisOffsetStore({ redis: 'redis://app:s3cret-pw@127.0.0.1:6399/2', keyPrefix: 'p:' });
    const shown = JSON.stringify(store.describe());
    assert.doesNotMatch(shown, /s3cret-pw/);
    assert.deepEqual(store.describe(), {
      host: '127.0.0.1',
      port: 6399,
      db: 2,
      user: 'app',
      layout: 'HASH per topic, field group|partition',
      keyPrefix: 'p:',
    });
    return store.close();
  });

  it('fails within seconds with RedisUnreachableError, not forever, when Redis does not answer', async () => {
    const store = new RedisOffsetStore({ redis: 'redis://user:s3cret-pw@127.0.0.1:1' });
    const started = Date.now();
    try {
      await assert.rejects(
        store.read('g', ['t']),
        (e: unknown) =>
          e instanceof RedisUnreachableError &&
          e.retriable &&
          e.address === '127.0.0.1:1' &&
          /ECONNREFUSED/.test(e.message) &&
          !/s3cret-pw/.test(e.message),
      );
      await assert.rejects(
        store.write('g', [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: 1 }]),
        RedisUnreachableError,
      );
      assert.ok(Date.now() - started < 10_000);
    } finally {
      await store.close();
    }
  });

  it('rejects invalid options with InvalidOptionError naming the option', () => {
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option;
    assert.throws(() => new RedisOffsetStore({ redis: 'http://127.0.0.1:6379' }), named('redis'));
    assert.throws(() => new RedisOffsetStore({ redis: 42 as unknown as string }), named('redis'));
    assert.throws(() => new RedisOffsetStore({ keyPrefix: 7 as unknown as string }), named('keyPrefix'));
    assert.throws(() => new RedisOffsetStore({ key: 'offsets' as unknown as () => string }), named('key'));
    assert.throws(() => new RedisOffsetStore({ keyPrefix: 'a:', key: (t) => t }), named('keyPrefix'));
  });

  it('rejects a SLUICE_REDIS_URL that is not a redis:// URL, naming the variable', () => {
    const saved = process.env.SLUICE_REDIS_URL;
    process.env.SLUICE_REDIS_URL = '127.0.0.1:6379';
    try {
      assert.throws(
        () => new RedisOffsetStore(),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'SLUICE_REDIS_URL',
      );
    } finally {
      if (saved === undefined) delete process.env.SLUICE_REDIS_URL;
      else process.env.SLUICE_REDIS_URL = saved;
    }
  });

  it('does not show the password of an invalid URL in the error', () => {
    assert.throws(
      () => new RedisOffsetStore({ redis: 'http://app:s3cret-pw@127.0.0.1:6379' }),
      (e: unknown) => e instanceof InvalidOptionError && !/s3cret-pw/.test(e.message),
    );
  });

  it('rejects an empty group and a key function that returns no key', async () => {
    const store = new RedisOffsetStore({ redis: await redisUrl(), key: () => '' });
    try {
      await assert.rejects(
        store.read('', ['t']),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'group',
      );
      await assert.rejects(
        store.read('g', ['t']),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'key',
      );
    } finally {
      await store.close();
    }
  });
});
