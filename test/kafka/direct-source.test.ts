/**
 * The Kafka direct source against a real broker (the shared local single-node broker, or
 * KAFKA_BOOTSTRAP). Every test uses topics of its own; records are produced by the test helpers'
 * independent client, not by the adapter under test.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SystemClock } from '../../src/core/clock.js';
import { DeserializationError, SourceError, TopicNotFoundError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { SourceContext } from '../../src/core/source.js';
import {
  KafkaAdmin,
  KafkaDirectSource,
  type DeserializeContext,
  type KafkaDirectOptions,
  type KafkaRecord,
} from '../../src/kafka/index.js';
import { createTopic, deleteTopic, produce, type TestRecord } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

let bootstrapServers: string;
let admin: KafkaAdmin;
const sources: KafkaDirectSource<unknown, unknown>[] = [];
const topics: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
  admin = KafkaAdmin.create(bootstrapServers);
});

after(async () => {
  for (const s of sources) await s.close();
  for (const t of topics) await deleteTopic(bootstrapServers, t);
  admin?.close();
});

function uniqueTopic(prefix: string): string {
  const name = uniqueName(`direct-${prefix}`);
  topics.push(name);
  return name;
}

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueTopic(prefix);
  await createTopic(bootstrapServers, name, partitions);
  return name;
}

type StoredOffsets = (topics: readonly string[]) => Promise<Array<{ topic: string; partition: number; offset: number }>>;

function context(overrides: Partial<SourceContext> & { storedOffsets?: StoredOffsets } = {}): SourceContext {
  return {
    pipelineId: 'kafka-direct-test',
    name: 'input',
    clock: new SystemClock(),
    batchInterval: 1000,
    logger: silentLogger,
    signal: new AbortController().signal,
    storedOffsets: async () => [],
    reportBadRecord: (_letter: unknown, error: unknown) => {
      throw error; // the `fail` policy
    },
    reportOffsetReset: () => {},
    reportRebalance: () => {},
    membership: 'single',
    instanceId: 'test-instance',
    ...overrides,
  } as unknown as SourceContext; // via unknown: the engine's context grows members this source need not use
}

async function open<K = string | null, V = string | null>(
  options: Omit<KafkaDirectOptions, 'bootstrapServers'>,
  ctx: SourceContext = context(),
): Promise<KafkaDirectSource<K, V>> {
  const source = new KafkaDirectSource<K, V>({ bootstrapServers, ...options });
  sources.push(source as KafkaDirectSource<unknown, unknown>);
  await source.open(ctx);
  return source;
}

/** Sends values to one partition each, as `{ partition: values }`. */
async function produceTo(t: string, byPartition: Record<number, string[]>): Promise<void> {
  const records: TestRecord[] = [];
  for (const [p, values] of Object.entries(byPartition)) {
    for (const value of values) records.push({ value, partition: Number(p) });
  }
  await produce(bootstrapServers, t, records);
}

function values<K, V>(batch: KafkaRecord<K, V>[][]): V[][] {
  return batch.map((p) => p.map((r) => r.value));
}

async function oneBatch<K, V>(source: KafkaDirectSource<K, V>): Promise<KafkaRecord<K, V>[][]> {
  return source.fetch(await source.plan(Date.now()));
}

describe('KafkaDirectSource batches', () => {
  test('plan fixes each partition range at the current end before reading, and fetch returns exactly those records', async () => {
    const t = await topic('ranges', 2);
    await produceTo(t, { 0: ['a0', 'a1', 'a2'], 1: ['b0'] });
    const source = await open({ topics: [t], startingOffsets: 'earliest' });

    const plan = await source.plan(1000);
    assert.deepEqual(plan.offsetRanges, [
      { topic: t, partition: 0, fromOffset: 0, untilOffset: 3 },
      { topic: t, partition: 1, fromOffset: 0, untilOffset: 1 },
    ]);
    // Produced after plan(): not part of this batch even though fetch() runs later.
    await produceTo(t, { 0: ['a3'], 1: ['b1', 'b2'] });
    const batch = await source.fetch(plan);
    assert.deepEqual(values(batch), [['a0', 'a1', 'a2'], ['b0']]);
    assert.deepEqual(
      batch.map((p) => p.map((r) => r.offset)),
      [[0, 1, 2], [0]],
    );

    const next = await source.plan(2000);
    assert.deepEqual(
      next.offsetRanges.map((r) => [r.fromOffset, r.untilOffset]),
      [
        [3, 4],
        [1, 3],
      ],
    );
    assert.deepEqual(values(await source.fetch(next)), [['a3'], ['b1', 'b2']]);
  });

  test('a partition with nothing new gives an empty batch partition without waiting', async () => {
    const t = await topic('empty', 3);
    await produceTo(t, { 1: ['only'] });
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    const plan = await source.plan(0);
    assert.deepEqual(
      plan.offsetRanges.map((r) => r.untilOffset - r.fromOffset),
      [0, 1, 0],
    );
    const started = Date.now();
    assert.deepEqual(values(await source.fetch(plan)), [[], ['only'], []]);
    const second = await source.plan(1);
    assert.ok(second.offsetRanges.every((r) => r.fromOffset === r.untilOffset));
    assert.deepEqual(values(await source.fetch(second)), [[], [], []]);
    assert.ok(Date.now() - started < 3000, 'fetching empty ranges must not wait for records');
  });

  test('a 3-partition topic gives 3 batch partitions in partition order, topics in option order', async () => {
    const a = await topic('order-a', 3);
    const b = await topic('order-b', 1);
    await produceTo(a, { 0: ['a0'], 1: ['a1'], 2: ['a2'] });
    await produceTo(b, { 0: ['b0'] });
    const source = await open({ topics: [b, a], startingOffsets: 'earliest' });
    const plan = await source.plan(0);
    assert.deepEqual(
      plan.offsetRanges.map((r) => `${r.topic}-${r.partition}`),
      [`${b}-0`, `${a}-0`, `${a}-1`, `${a}-2`],
    );
    const batch = await source.fetch(plan);
    assert.equal(batch.length, 4);
    assert.deepEqual(values(batch), [['b0'], ['a0'], ['a1'], ['a2']]);
    for (const [i, r] of plan.offsetRanges.entries()) {
      assert.ok(batch[i]!.every((rec) => rec.topic === r.topic && rec.partition === r.partition));
    }
  });

  test('many records across several batches arrive once each, in offset order per partition', async () => {
    const t = await topic('many', 3);
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    const seen: string[][] = [[], [], []];
    let sent = 0;
    for (let round = 0; round < 4; round++) {
      const recs: TestRecord[] = [];
      for (let i = 0; i < 3000; i++, sent++) recs.push({ value: String(sent), partition: sent % 3 });
      await produce(bootstrapServers, t, recs);
      const batch = await oneBatch(source);
      batch.forEach((p, i) => seen[i]!.push(...p.map((r) => r.value!)));
    }
    assert.equal(seen.flat().length, sent);
    for (const [p, vs] of seen.entries()) {
      const expected = Array.from({ length: sent }, (_, i) => i).filter((i) => i % 3 === p).map(String);
      assert.deepEqual(vs, expected, `partition ${p}`);
    }
  });

  test('fetching the same plan again returns the same records (replay)', async () => {
    const t = await topic('replay', 2);
    await produceTo(t, { 0: ['x', 'y'], 1: ['z'] });
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    const plan = await source.plan(0);
    const first = values(await source.fetch(plan));
    await produceTo(t, { 0: ['later'] });
    assert.deepEqual(values(await oneBatch(source)), [['later'], []]);
    assert.deepEqual(values(await source.fetch(plan)), first);
    // ...and the stream carries on where it was.
    await produceTo(t, { 1: ['after'] });
    assert.deepEqual(values(await oneBatch(source)), [[], ['after']]);
  });
});

describe('KafkaDirectSource starting offsets and positions', () => {
  test("'latest' (the default) skips what the topic held at open and reads what comes after", async () => {
    const t = await topic('latest', 2);
    await produceTo(t, { 0: ['old0'], 1: ['old1'] });
    const source = await open({ topics: [t] });
    assert.deepEqual(source.positions(), { [t]: { 0: 1, 1: 1 } });
    await produceTo(t, { 0: ['new0'] });
    assert.deepEqual(values(await oneBatch(source)), [['new0'], []]);
  });

  test("'earliest' reads every record the topic holds", async () => {
    const t = await topic('earliest', 1);
    await produceTo(t, { 0: ['one', 'two'] });
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    assert.deepEqual(values(await oneBatch(source)), [['one', 'two']]);
  });

  test('explicit offsets start each listed partition there; -1 is latest, unlisted partitions start at earliest', async () => {
    const t = await topic('explicit', 3);
    await produceTo(t, { 0: ['p0-0', 'p0-1', 'p0-2'], 1: ['p1-0', 'p1-1'], 2: ['p2-0', 'p2-1'] });
    const source = await open({ topics: [t], startingOffsets: { [t]: { 0: 2, 1: -1 } } });
    assert.deepEqual(source.positions(), { [t]: { 0: 2, 1: 2, 2: 0 } });
    assert.deepEqual(values(await oneBatch(source)), [['p0-2'], [], ['p2-0', 'p2-1']]);
  });

  test('an explicit offset past the end of a partition fails to open with a SourceError naming it', async () => {
    const t = await topic('past-end', 1);
    await produceTo(t, { 0: ['only'] });
    const source = new KafkaDirectSource({ bootstrapServers, topics: [t], startingOffsets: { [t]: { 0: 5 } } });
    await assert.rejects(source.open(context()), (e: unknown) => {
      assert.ok(e instanceof SourceError);
      assert.match(e.message, new RegExp(`${t}-0`));
      assert.match(e.message, /past its end 1/);
      return true;
    });
  });

  test('a new source started at positions() of the previous one continues exactly where it stopped', async () => {
    const t = await topic('resume', 2);
    await produceTo(t, { 0: ['a', 'b'], 1: ['c'] });
    const first = await open({ topics: [t], startingOffsets: 'earliest' });
    const plan = await first.plan(0);
    await first.fetch(plan);
    await first.commit(plan);
    assert.deepEqual(first.committedPositions(), { [t]: { 0: 2, 1: 1 } });
    const saved = first.positions();
    await first.close();

    await produceTo(t, { 0: ['d'], 1: ['e', 'f'] });
    const second = new KafkaDirectSource({ bootstrapServers, topics: [t] /* default 'latest' */ });
    sources.push(second);
    await second.startAt(saved); // before open: overrides startingOffsets
    await second.open(context());
    assert.deepEqual(values(await oneBatch(second)), [['d'], ['e', 'f']]);
  });

  test("positions from the engine's offset store (ctx.storedOffsets) win over startingOffsets; others use startingOffsets", async () => {
    const t = await topic('stored', 2);
    await produceTo(t, { 0: ['s0', 's1', 's2'], 1: ['t0', 't1'] });
    const asked: string[][] = [];
    const source = await open(
      { topics: [t], startingOffsets: 'earliest' },
      context({
        storedOffsets: async (topics) => {
          asked.push([...topics]);
          return [{ topic: t, partition: 0, offset: 2 }];
        },
      }),
    );
    assert.deepEqual(asked, [[t]]);
    assert.deepEqual(source.positions(), { [t]: { 0: 2, 1: 0 } });
    assert.deepEqual(values(await oneBatch(source)), [['s2'], ['t0', 't1']]);
  });

  test('startAt on an open source moves the next batch to the given offsets', async () => {
    const t = await topic('startat', 1);
    await produceTo(t, { 0: ['r0', 'r1', 'r2', 'r3'] });
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    assert.deepEqual(values(await oneBatch(source)), [['r0', 'r1', 'r2', 'r3']]);
    await source.startAt({ [t]: { 0: 1 } });
    const plan = await source.plan(0);
    assert.deepEqual(plan.offsetRanges[0], { topic: t, partition: 0, fromOffset: 1, untilOffset: 4 });
    assert.deepEqual(values(await source.fetch(plan)), [['r1', 'r2', 'r3']]);
  });
});

describe('KafkaDirectSource records and deserializers', () => {
  test('keys, values, headers and timestamps arrive as produced', async () => {
    const t = await topic('fields', 1);
    const ts = Date.now() - 60_000;
    await produce(bootstrapServers, t, [
      { key: 'k1', value: 'v1', timestamp: ts, headers: { trace: Buffer.from('abc'), tenant: 'acme' } },
      { key: null, value: null, timestamp: ts + 1 },
    ]);
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    const [[a, b]] = (await oneBatch(source)) as [KafkaRecord[]];
    assert.equal(a!.topic, t);
    assert.equal(a!.partition, 0);
    assert.equal(a!.offset, 0);
    assert.equal(a!.key, 'k1');
    assert.equal(a!.value, 'v1');
    assert.equal(a!.timestamp, ts);
    assert.deepEqual(
      a!.headers.map((h) => [h.key, h.value.toString()]),
      [
        ['trace', 'abc'],
        ['tenant', 'acme'],
      ],
    );
    assert.equal(b!.key, null, 'a missing key stays null');
    assert.equal(b!.value, null, 'a tombstone stays null');
    assert.deepEqual(b!.headers, []);
    assert.equal(b!.timestamp, ts + 1);
  });

  test("'json' parses values, 'bytes' gives the Buffer, 'string' decodes UTF-8", async () => {
    const t = await topic('deser', 1);
    await produce(bootstrapServers, t, [{ key: 'ключ', value: JSON.stringify({ n: 1, s: 'é' }) }]);
    const json = await open<Buffer | null, unknown>({ topics: [t], startingOffsets: 'earliest', keyDeserializer: 'bytes', valueDeserializer: 'json' });
    const r = (await oneBatch(json))[0]![0];
    assert.deepEqual(r!.value, { n: 1, s: 'é' });
    assert.ok(Buffer.isBuffer(r!.key));
    assert.equal(r!.key!.toString('utf8'), 'ключ');

    const str = await open({ topics: [t], startingOffsets: 'earliest', keyDeserializer: 'string', valueDeserializer: 'bytes' });
    const s = (await oneBatch(str))[0]![0];
    assert.equal(s!.key, 'ключ');
    assert.ok(Buffer.isBuffer(s!.value));
  });

  test('a custom deserializer gets the bytes and the record coordinates', async () => {
    const t = await topic('custom', 1);
    await produce(bootstrapServers, t, [{ key: 'a', value: '21', headers: { unit: 'x2' } }]);
    const seen: DeserializeContext[] = [];
    const source = await open<string | null, number>({
      topics: [t],
      startingOffsets: 'earliest',
      valueDeserializer: (data, ctx) => {
        seen.push(ctx);
        const factor = ctx.headers.find((h) => h.key === 'unit')?.value.toString() === 'x2' ? 2 : 1;
        return Number(data!.toString()) * factor;
      },
    });
    const r = (await oneBatch(source))[0]![0];
    assert.equal(r!.value, 42);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.topic, t);
    assert.equal(seen[0]!.partition, 0);
    assert.equal(seen[0]!.offset, 0);
  });

  test('a value that is not JSON fails the fetch with a DeserializationError naming topic, partition and offset', async () => {
    const t = await topic('badjson', 2);
    await produceTo(t, { 0: ['{"ok":1}'], 1: ['{"ok":2}', '{not json'] });
    const source = await open({ topics: [t], startingOffsets: 'earliest', valueDeserializer: 'json' });
    const plan = await source.plan(0);
    await assert.rejects(source.fetch(plan), (e: unknown) => {
      assert.ok(e instanceof DeserializationError);
      assert.equal(e.topic, t);
      assert.equal(e.partition, 1);
      assert.equal(e.offset, 1);
      assert.equal(e.field, 'value');
      assert.match(e.message, new RegExp(`${t}-1 at offset 1`));
      return true;
    });
  });

  test("a bad record goes to the engine's bad-record hook when it does not rethrow: counted there, left out of the batch", async () => {
    const t = await topic('badrecord', 1);
    await produceTo(t, { 0: ['{"n":1}', 'oops', '{"n":3}'] });
    const letters: Array<Record<string, unknown>> = [];
    const source = await open(
      { topics: [t], startingOffsets: 'earliest', valueDeserializer: 'json' },
      context({ reportBadRecord: (letter: Record<string, unknown>) => void letters.push(letter) } as Partial<SourceContext>),
    );
    assert.deepEqual(values(await oneBatch(source)), [[{ n: 1 }, { n: 3 }]]);
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.topic, t);
    assert.equal(letters[0]!.partition, 0);
    assert.equal(letters[0]!.offset, 1);
    assert.equal(letters[0]!.operator, 'input');
    assert.equal(String(letters[0]!.value), 'oops', 'the dead letter keeps the original bytes');
    assert.match(String(letters[0]!.reason), /value .* at offset 1/);
  });

  test('after a deserializer failure the same plan can be fetched again and gives the whole range', async () => {
    const t = await topic('deser-retry', 1);
    await produceTo(t, { 0: ['1', '2', '3'] });
    let failOnce = true;
    const source = await open<string | null, number>({
      topics: [t],
      startingOffsets: 'earliest',
      keyDeserializer: (d) => (d === null ? null : d.toString()),
      valueDeserializer: (d, ctx) => {
        if (ctx.offset === 2 && failOnce) {
          failOnce = false;
          throw new Error('flaky');
        }
        return Number(d!.toString());
      },
    });
    const plan = await source.plan(0);
    await assert.rejects(source.fetch(plan), DeserializationError);
    assert.deepEqual(values(await source.fetch(plan)), [[1, 2, 3]]);
  });
});

describe('KafkaDirectSource topics and brokers', () => {
  test('a topic that does not exist fails open with TopicNotFoundError', async () => {
    const t = uniqueTopic('missing');
    const source = new KafkaDirectSource({ bootstrapServers, topics: [t], connect: { attempts: 2, timeoutMs: 2000 } });
    await assert.rejects(source.open(context()), (e: unknown) => {
      assert.ok(e instanceof TopicNotFoundError);
      assert.equal(e.topic, t);
      return true;
    });
  });

  test('with createTopics a missing topic is created with the given partitions and read', async () => {
    const t = uniqueTopic('created');
    const source = await open({ topics: [t], startingOffsets: 'earliest', createTopics: { partitions: 3, replicationFactor: 1 } });
    const described = await admin.describeTopics([t]);
    assert.deepEqual(described.get(t), [0, 1, 2]);
    await produceTo(t, { 2: ['hello'] });
    assert.deepEqual(values(await oneBatch(source)), [[], [], ['hello']]);
  });

  test('an unreachable broker fails open with BrokerUnreachableError within the bounded attempts', async () => {
    const source = new KafkaDirectSource({ bootstrapServers: '127.0.0.1:1', topics: ['t'], connect: { attempts: 2, timeoutMs: 1000 } });
    const started = Date.now();
    await assert.rejects(source.open(context()), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'BrokerUnreachableError');
      assert.equal((e as { code?: string }).code, 'SLUICE_BROKER_UNREACHABLE');
      assert.equal((e as { attempts?: number }).attempts, 2);
      assert.match(e.message, /127\.0\.0\.1:1/);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took < 6000, `took ${took} ms`);
    await source.close();
  });

  test('open honours the context abort signal while retrying', async () => {
    const ac = new AbortController();
    const source = new KafkaDirectSource({ bootstrapServers: '127.0.0.1:1', topics: ['t'], connect: { attempts: 50, timeoutMs: 1000 } });
    const started = Date.now();
    setTimeout(() => ac.abort(new Error('stopped')), 1500);
    await assert.rejects(source.open(context({ signal: ac.signal })), /stopped/);
    assert.ok(Date.now() - started < 5000);
    await source.close();
  });

  test('describe() shows the options without secret values', async () => {
    const source = new KafkaDirectSource({
      bootstrapServers,
      topics: ['a', 'b'],
      valueDeserializer: 'json',
      consumerConfig: { 'sasl.password': 'hunter2', 'fetch.min.bytes': 1 },
    });
    const d = source.describe();
    assert.deepEqual(d.topics, ['a', 'b']);
    assert.equal(d.valueDeserializer, 'json');
    assert.equal(d.startingOffsets, 'latest');
    assert.equal(d.isolationLevel, 'read_committed');
    assert.doesNotMatch(JSON.stringify(d), /hunter2/);
    assert.deepEqual(d.consumerConfig, { 'sasl.password': '[redacted]', 'fetch.min.bytes': 1 });
  });
});
