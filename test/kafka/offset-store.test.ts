/**
 * KafkaOffsetStore against the real broker: the offset store conformance suite, the commits as a
 * plain Kafka consumer sees them, typed errors, and the Kafka direct source's default store (a
 * pipeline without an offsetStore commits to its consumer group and resumes from it).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import Kafka from '@confluentinc/kafka-javascript';
import { StreamingContext } from '../../src/core/context.js';
import { BrokerUnreachableError, InvalidOptionError, OperatorError, TopicNotFoundError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { OffsetStore } from '../../src/core/offsets.js';
import { KafkaDirectSource, KafkaOffsetStore, createDirectStream } from '../../src/kafka/index.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const bootstrapServers = await kafkaBootstrap();
const topics = new Map<string, Promise<void>>();
const stores: OffsetStore[] = [];

after(async () => {
  for (const s of stores) await s.close();
  for (const t of topics.keys()) await deleteTopic(bootstrapServers, t);
});

/** Creates `name` once (3 partitions: the conformance suite uses partitions 0 to 2). */
function ensureTopic(name: string, partitions = 3): Promise<void> {
  let p = topics.get(name);
  if (!p) {
    p = createTopic(bootstrapServers, name, partitions);
    topics.set(name, p);
  }
  return p;
}

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueName(`offsets-${prefix}`);
  await ensureTopic(name, partitions);
  return name;
}

function store(options: ConstructorParameters<typeof KafkaOffsetStore>[0] = {}): KafkaOffsetStore {
  const s = new KafkaOffsetStore({ bootstrapServers, ...options });
  stores.push(s);
  return s;
}

/**
 * Kafka 4 refuses commits for topics that do not exist, and the conformance suite makes up topic
 * names: this fixture creates each topic the suite writes to before the store commits (as a
 * pipeline's input topics exist). Everything else goes straight to a new KafkaOffsetStore.
 */
offsetStoreConformance(
  'KafkaOffsetStore',
  () => {
    const s = new KafkaOffsetStore({ bootstrapServers });
    const prepare = (names: readonly string[]) => Promise.all([...new Set(names)].map((t) => ensureTopic(t)));
    return {
      kind: s.kind,
      capabilities: s.capabilities,
      describe: () => s.describe(),
      read: (g, t) => s.read(g, t),
      write: async (g, ranges, o) => {
        await prepare(ranges.map((r) => r.topic));
        return s.write(g, ranges, o);
      },
      set: async (g, offsets) => {
        await prepare(offsets.map((o) => o.topic));
        return s.set(g, offsets);
      },
      delete: (g, t) => s.delete(g, t),
      close: () => s.close(),
    };
  },
  { compareAndSet: false },
);

const call = <T>(f: (cb: (err: unknown, v: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));

/** A plain librdkafka consumer of `group` (never subscribed): the independent view of the group's commits. */
async function plainConsumer(group: string): Promise<Kafka.KafkaConsumer> {
  const c = new Kafka.KafkaConsumer({ 'bootstrap.servers': bootstrapServers, 'group.id': group, 'enable.auto.commit': false }, {});
  await call((cb) => c.connect({ timeout: 10_000 }, cb as never));
  return c;
}

async function disconnect(c: Kafka.KafkaConsumer): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 5000);
    c.disconnect(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** partition -> committed offset of `group` on `t`, as a plain consumer reads them (absent: no commit). */
async function committed(group: string, t: string, partitions: number): Promise<Map<number, number>> {
  const c = await plainConsumer(group);
  try {
    const got = await call<Kafka.TopicPartitionOffsetAndMetadata[]>((cb) =>
      c.committed(
        Array.from({ length: partitions }, (_, partition) => ({ topic: t, partition })),
        10_000,
        cb as never,
      ),
    );
    return new Map(got.filter((p) => p.offset >= 0).map((p) => [p.partition, p.offset]));
  } finally {
    await disconnect(c);
  }
}

async function waitUntil(what: string, timeoutMs: number, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('KafkaOffsetStore', () => {
  test('write commits each untilOffset to the consumer group, as a plain consumer reads them, and read returns a plain consumer’s commits', async () => {
    const t = await topic('plain', 2);
    const group = uniqueName('g-plain');
    const s = store();
    await s.write(group, [
      { topic: t, partition: 0, fromOffset: 0, untilOffset: 12 },
      { topic: t, partition: 1, fromOffset: 3, untilOffset: 3 },
    ]);
    assert.deepEqual(
      await committed(group, t, 2),
      new Map([
        [0, 12],
        [1, 3],
      ]),
    );

    const other = uniqueName('g-other');
    const c = await plainConsumer(other);
    try {
      c.commitSync([{ topic: t, partition: 1, offset: 7 }]);
    } finally {
      await disconnect(c);
    }
    assert.deepEqual(await s.read(other, [t]), [{ topic: t, partition: 1, offset: 7 }]);
  });

  test('write has no compare-and-set: a replayed batch simply commits its untilOffset again', async () => {
    const t = await topic('replay');
    const group = uniqueName('g-replay');
    const s = store();
    assert.equal(s.capabilities.compareAndSet, false);
    await s.write(group, [{ topic: t, partition: 0, fromOffset: 0, untilOffset: 10 }], { compareAndSet: true });
    await s.write(group, [{ topic: t, partition: 0, fromOffset: 10, untilOffset: 20 }], { compareAndSet: true });
    await s.write(group, [{ topic: t, partition: 0, fromOffset: 0, untilOffset: 10 }], { compareAndSet: true });
    assert.deepEqual(await s.read(group, [t]), [{ topic: t, partition: 0, offset: 10 }]);
  });

  test('delete forgets only the given topics, keeps the group’s other topics, and is a no-op for a group without offsets', async () => {
    const [a, b] = [await topic('del-a', 2), await topic('del-b')];
    const group = uniqueName('g-del');
    const s = store();
    await s.delete(uniqueName('g-none'), [a]);
    await s.set(group, [
      { topic: a, partition: 0, offset: 4 },
      { topic: a, partition: 1, offset: 5 },
      { topic: b, partition: 0, offset: 6 },
    ]);
    await s.delete(group, [a]);
    assert.deepEqual(await committed(group, a, 2), new Map());
    assert.deepEqual(await committed(group, b, 1), new Map([[0, 6]]));
    await s.write(group, [{ topic: a, partition: 1, fromOffset: 0, untilOffset: 2 }]);
    assert.deepEqual(await s.read(group, [a, b]), [
      { topic: a, partition: 1, offset: 2 },
      { topic: b, partition: 0, offset: 6 },
    ]);
  });

  test('a commit for a topic that does not exist fails with TopicNotFoundError naming it', async () => {
    const missing = uniqueName('offsets-missing');
    await assert.rejects(
      store().write(uniqueName('g-missing'), [{ topic: missing, partition: 0, fromOffset: 0, untilOffset: 1 }]),
      (e: unknown) => e instanceof TopicNotFoundError && e.topic === missing,
    );
  });

  test('an unreachable broker fails read, write and delete with BrokerUnreachableError within the bounded attempts', async () => {
    const s = store({ bootstrapServers: '127.0.0.1:1', connect: { attempts: 2, timeoutMs: 300 } });
    const range = { topic: 'x', partition: 0, fromOffset: 0, untilOffset: 1 };
    for (const op of [() => s.read('g', ['x']), () => s.write('g', [range]), () => s.delete('g', ['x'])]) {
      const started = Date.now();
      await assert.rejects(op(), BrokerUnreachableError);
      assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`);
    }
  });

  test('bad options and arguments are refused with InvalidOptionError before anything connects', async () => {
    assert.throws(() => new KafkaOffsetStore({ bootstrapServers: 'no port' }), InvalidOptionError);
    assert.throws(() => new KafkaOffsetStore({ connect: { attempts: 0 } }), InvalidOptionError);
    assert.throws(() => new KafkaOffsetStore({ clientConfig: { 'group.id': 'x' } }), InvalidOptionError);
    const s = store();
    await assert.rejects(s.read('', ['t']), InvalidOptionError);
    await assert.rejects(s.set('g', [{ topic: 't', partition: 0, offset: -1 }]), InvalidOptionError);
    assert.deepEqual(s.describe(), { bootstrapServers });
  });

  test('a closed store refuses further calls', async () => {
    const s = store();
    await s.close();
    await assert.rejects(s.read('g', ['t']), /closed/);
  });
});

describe('KafkaDirectSource default offset store', () => {
  /** Runs a pipeline reading `t` until `expected` records were seen, then stops it gracefully. */
  async function run(
    pipelineId: string,
    t: string,
    expected: number,
    options: { groupId?: string; fail?: boolean } = {},
  ): Promise<{ values: string[]; ctx: StreamingContext }> {
    const ctx = new StreamingContext({ batchInterval: 200, pipelineId, logger: silentLogger });
    const values: string[] = [];
    createDirectStream(ctx, {
      topics: [t],
      bootstrapServers,
      startingOffsets: 'earliest',
      ...(options.groupId ? { groupId: options.groupId } : {}),
    }).foreachBatch((batch) => {
      if (options.fail && batch.size > 0) throw new Error('output failed');
      for (const r of batch.collect()) values.push(r.value!);
    });
    await ctx.start();
    if (options.fail) {
      await assert.rejects(ctx.awaitTermination(), OperatorError);
      return { values, ctx };
    }
    await waitUntil(`${expected} records`, 20_000, () => values.length >= expected);
    await ctx.stop();
    await ctx.awaitTermination();
    return { values, ctx };
  }

  test('offsetGroup is the groupId option, else the pipeline id; defaultOffsetStore is one KafkaOffsetStore per source', () => {
    const plain = new KafkaDirectSource({ topics: ['t'], bootstrapServers });
    const named = new KafkaDirectSource({ topics: ['t'], bootstrapServers, groupId: 'billing' });
    assert.equal(plain.offsetGroup('pipe'), 'pipe');
    assert.equal(named.offsetGroup('pipe'), 'billing');
    const s = plain.defaultOffsetStore();
    assert.ok(s instanceof KafkaOffsetStore);
    assert.equal(plain.defaultOffsetStore(), s);
    assert.notEqual(named.defaultOffsetStore(), s);
  });

  test('a Kafka pipeline without an offsetStore commits to its consumer group after its outputs, and a new run resumes exactly there', async () => {
    const t = await topic('resume', 2);
    const pipelineId = uniqueName('resume-job');
    await produce(
      bootstrapServers,
      t,
      Array.from({ length: 6 }, (_, i) => ({ value: `first-${i}`, partition: i % 2 })),
    );
    const first = await run(pipelineId, t, 6);
    assert.deepEqual(first.ctx.commitPlan().offsetStore, 'kafka');
    assert.deepEqual(first.ctx.commitPlan().offsets, 'after-outputs');
    assert.deepEqual(first.values.sort(), Array.from({ length: 6 }, (_, i) => `first-${i}`).sort());
    assert.deepEqual(
      await committed(pipelineId, t, 2),
      new Map([
        [0, 3],
        [1, 3],
      ]),
    );

    await produce(
      bootstrapServers,
      t,
      Array.from({ length: 3 }, (_, i) => ({ value: `second-${i}`, partition: i % 2 })),
    );
    const second = await run(pipelineId, t, 3);
    assert.deepEqual(second.values.sort(), ['second-0', 'second-1', 'second-2']);
    assert.deepEqual(
      await committed(pipelineId, t, 2),
      new Map([
        [0, 5],
        [1, 4],
      ]),
    );
  });

  test('the groupId option names the group the offsets are committed under', async () => {
    const t = await topic('groupid');
    const pipelineId = uniqueName('pipe');
    const groupId = uniqueName('billing');
    await produce(bootstrapServers, t, [{ value: 'a' }, { value: 'b' }]);
    await run(pipelineId, t, 2, { groupId });
    assert.deepEqual(await committed(groupId, t, 1), new Map([[0, 2]]));
    assert.deepEqual(await committed(pipelineId, t, 1), new Map());
  });

  test('a batch whose output fails commits nothing: the next run reads it again (at-least-once)', async () => {
    const t = await topic('fail');
    const pipelineId = uniqueName('fail-job');
    await produce(bootstrapServers, t, [{ value: 'x' }, { value: 'y' }]);
    await run(pipelineId, t, 0, { fail: true });
    assert.deepEqual(await committed(pipelineId, t, 1), new Map());
    const again = await run(pipelineId, t, 2);
    assert.deepEqual(again.values, ['x', 'y']);
    assert.deepEqual(await committed(pipelineId, t, 1), new Map([[0, 2]]));
  });
});
