/**
 * KafkaSink against the real broker: the sink conformance suite (read back by a plain consumer),
 * record fields, one shared producer, delivery errors, and a Kafka-to-Kafka pipeline.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import Kafka from '@confluentinc/kafka-javascript';
import { Batch } from '../../src/core/batch.js';
import { StreamingContext } from '../../src/core/context.js';
import { InvalidOptionError, SourceError, TopicNotFoundError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { KafkaAdmin, KafkaSink, createDirectStream } from '../../src/kafka/index.js';
import { kafkaSinkProducers } from '../../src/kafka/sink.js';
import { sinkConformance } from '../conformance/sink.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const bootstrapServers = await kafkaBootstrap();
const topics: string[] = [];
const sinks: KafkaSink<unknown>[] = [];

after(async () => {
  for (const s of sinks) await s.close();
  for (const t of topics) await deleteTopic(bootstrapServers, t);
});

async function topic(
  prefix: string,
  partitions = 1,
  config: Record<string, string | number> = {},
): Promise<string> {
  const name = uniqueName(`sink-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, partitions, config);
  return name;
}

const sinkCtx = {
  pipelineId: 'sink-test',
  name: 'out',
  logger: silentLogger,
  signal: new AbortController().signal,
};
const batchCtx = { time: 1000, offsetRanges: [] };

async function opened<T>(sink: KafkaSink<T>): Promise<KafkaSink<T>> {
  sinks.push(sink as KafkaSink<unknown>);
  await sink.open(sinkCtx);
  return sink;
}

interface ReadRecord {
  partition: number;
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: [string, Buffer][];
}

/**
 * Everything `t` holds, read from the beginning to the end by a plain librdkafka consumer (no
 * group, read_committed): the independent view of what the sink wrote.
 */
async function readAll(t: string): Promise<ReadRecord[]> {
  const admin = KafkaAdmin.create(bootstrapServers);
  const parts = (await admin.describeTopics([t])).get(t)!.map((partition) => ({ topic: t, partition }));
  const ends = await admin.listOffsets(parts, 'latest', 'read_committed');
  admin.close();
  const consumer = new Kafka.KafkaConsumer(
    {
      'bootstrap.servers': bootstrapServers,
      'group.id': 'sluice-test-reader',
      'enable.auto.commit': false,
      'isolation.level': 'read_committed',
    },
    {},
  );
  const call = <R>(f: (cb: (err: unknown, v: R) => void) => void): Promise<R> =>
    new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));
  await call((cb) => consumer.connect({ timeout: 10_000 }, cb as never));
  const out: ReadRecord[] = [];
  try {
    consumer.setDefaultConsumeTimeout(100);
    consumer.assign(parts.map((p) => ({ ...p, offset: 0 })));
    const deadline = Date.now() + 15_000;
    const done = () =>
      consumer.position(parts).every((p) => (p.offset ?? 0) >= ends.get(`${t}:${p.partition}`)!) ||
      parts.every((p) => ends.get(`${t}:${p.partition}`) === 0);
    while (!done()) {
      if (Date.now() > deadline)
        throw new Error(`read ${out.length} records of ${t} and did not reach its end within 15 s`);
      const msgs = await call<Kafka.Message[]>((cb) => consumer.consume(1000, cb as never));
      for (const m of msgs) {
        out.push({
          partition: m.partition,
          offset: m.offset,
          key: m.key == null ? null : Buffer.from(m.key),
          value: m.value,
          headers: (m.headers ?? []).flatMap((h) =>
            Object.entries(h).map(([k, v]) => [k, Buffer.from(v)] as [string, Buffer]),
          ),
        });
      }
    }
  } finally {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      consumer.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  return out;
}

interface Rec {
  id: string;
  n: number;
}

const records = (n: number, seed: string): Rec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${seed}-${i}`, n: i }));

sinkConformance('KafkaSink', async () => {
  const t = await topic('conformance', 3);
  const sink = new KafkaSink<Rec>({
    topic: t,
    bootstrapServers,
    toRecord: (r) => ({ key: r.id, value: JSON.stringify(r) }),
  });
  return {
    sink,
    records,
    readBack: async () => (await readAll(t)).map((r) => JSON.parse(r.value!.toString()) as Rec),
  };
});

describe('KafkaSink', () => {
  test('write resolves with every record stored: keys, values, headers, partitions and per-record topics as toRecord gives them', async () => {
    const [t, side] = [await topic('fields', 2), await topic('side')];
    const sink = await opened(
      new KafkaSink<{ k: string | null; v: string | null; p?: number; side?: boolean }>({
        topic: t,
        bootstrapServers,
        toRecord: (r) => ({
          key: r.k,
          value: r.v,
          headers: [
            { key: 'h', value: Buffer.from('1') },
            { key: 'h', value: Buffer.from('2') },
          ],
          ...(r.p !== undefined ? { partition: r.p } : {}),
          ...(r.side ? { topic: side } : {}),
        }),
      }),
    );
    await sink.write(
      Batch.of(
        [
          { k: 'a', v: 'one', p: 1 },
          { k: 'a', v: 'two', p: 1 },
          { k: null, v: null, p: 0 },
          { k: 'b', v: 'elsewhere', side: true },
        ],
        2,
      ),
      batchCtx,
    );
    const got = await readAll(t);
    assert.deepEqual(
      got.map((r) => [r.partition, r.key?.toString() ?? null, r.value?.toString() ?? null]).sort(),
      [
        [0, null, null],
        [1, 'a', 'one'],
        [1, 'a', 'two'],
      ],
    );
    assert.deepEqual(
      got[0]!.headers.map(([k, v]) => [k, v.toString()]),
      [
        ['h', '1'],
        ['h', '2'],
      ],
    );
    const onSide = await readAll(side);
    assert.deepEqual(
      onSide.map((r) => [r.key?.toString(), r.value?.toString()]),
      [['b', 'elsewhere']],
    );
  });

  test('without toRecord, strings and Buffers are the value and other records are JSON', async () => {
    const t = await topic('default');
    const sink = await opened(new KafkaSink<unknown>({ topic: t, bootstrapServers }));
    await sink.write(Batch.of(['text', Buffer.from([0xff, 0x00]), { a: 1 }]), batchCtx);
    const got = await readAll(t);
    assert.deepEqual(
      got.map((r) => r.value),
      [Buffer.from('text'), Buffer.from([0xff, 0x00]), Buffer.from('{"a":1}')],
    );
  });

  test('every sink and every batch shares one producer per configuration; it is closed with the last sink', async () => {
    const [t1, t2] = [await topic('shared-1'), await topic('shared-2')];
    const producerConfig = { 'client.id': uniqueName('shared') }; // a configuration no other test uses
    const before = kafkaSinkProducers();
    const a = await opened(new KafkaSink<string>({ topic: t1, bootstrapServers, producerConfig }));
    const b = await opened(new KafkaSink<string>({ topic: t2, bootstrapServers, producerConfig }));
    for (let i = 0; i < 5; i++) {
      await a.write(Batch.of([`a${i}`]), batchCtx);
      await b.write(Batch.of([`b${i}`, `b${i}'`]), batchCtx);
    }
    assert.equal(kafkaSinkProducers().created - before.created, 1);
    assert.equal(kafkaSinkProducers().open - before.open, 1);
    await a.close();
    assert.equal(kafkaSinkProducers().open - before.open, 1, 'still used by the other sink');
    await b.close();
    assert.equal(kafkaSinkProducers().open - before.open, 0);
    assert.equal((await readAll(t1)).length, 5);
    assert.equal((await readAll(t2)).length, 10);
  });

  test('a record the broker refuses fails the batch with a SourceError from its delivery report', async () => {
    const t = await topic('refused', 1, { 'max.message.bytes': 1024 });
    const sink = await opened(
      new KafkaSink<Buffer>({
        topic: t,
        bootstrapServers,
        producerConfig: { 'client.id': uniqueName('refused') },
      }),
    );
    await assert.rejects(
      sink.write(Batch.of([Buffer.from('small'), randomBytes(8192)]), batchCtx),
      (e: unknown) => e instanceof SourceError && /delivery to/.test(e.message),
    );
  });

  test('open fails with TopicNotFoundError for a missing topic, or creates it with createTopics', async () => {
    const missing = uniqueName('sink-missing');
    const sink = new KafkaSink<string>({ topic: missing, bootstrapServers });
    sinks.push(sink as KafkaSink<unknown>);
    await assert.rejects(
      sink.open(sinkCtx),
      (e: unknown) => e instanceof TopicNotFoundError && e.topic === missing,
    );
    const created = uniqueName('sink-created');
    topics.push(created);
    const made = await opened(
      new KafkaSink<string>({ topic: created, bootstrapServers, createTopics: { partitions: 2 } }),
    );
    await made.write(Batch.of(['x']), batchCtx);
    assert.deepEqual(
      (await readAll(created)).map((r) => r.value?.toString()),
      ['x'],
    );
  });

  test('bad options are refused with InvalidOptionError, and a write before open is refused', async () => {
    assert.throws(() => new KafkaSink({ topic: '' }), InvalidOptionError);
    assert.throws(() => new KafkaSink({ topic: 'a b' }), InvalidOptionError);
    assert.throws(
      () => new KafkaSink({ topic: 't', producerConfig: { 'transactional.id': 'x' } }),
      InvalidOptionError,
    );
    assert.throws(() => new KafkaSink({ topic: 't', bootstrapServers: 'nohost' }), InvalidOptionError);
    const sink = new KafkaSink<string>({ topic: 't', bootstrapServers });
    await assert.rejects(sink.write(Batch.of(['x']), batchCtx), /not open/);
    assert.equal(sink.kind, 'kafka');
    assert.equal(sink.idempotent, false);
    assert.deepEqual(sink.describe(), { topic: 't', bootstrapServers });
  });

  test('in a pipeline, every input record reaches the output topic and the offsets are committed after the writes (at-least-once)', async () => {
    const [input, output] = [await topic('pipe-in', 2), await topic('pipe-out', 2)];
    await produce(
      bootstrapServers,
      input,
      Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 4}`, value: `v${i}`, partition: i % 2 })),
    );
    const pipelineId = uniqueName('sink-pipe');
    const ctx = new StreamingContext({ batchInterval: 200, pipelineId, logger: silentLogger });
    createDirectStream(ctx, { topics: [input], bootstrapServers, startingOffsets: 'earliest' })
      .map((r) => ({ key: r.key, value: r.value!.toUpperCase() }))
      .writeTo(
        new KafkaSink<{ key: string | null; value: string }>({
          topic: output,
          bootstrapServers,
          toRecord: (r) => r,
        }),
        {
          name: 'to-kafka',
        },
      );
    assert.deepEqual(ctx.commitPlan().outputs, [
      { name: 'to-kafka', guarantee: 'at-least-once', how: 'write, then offsets' },
    ]);
    await ctx.start();
    try {
      const deadline = Date.now() + 20_000;
      while ((await readAll(output)).length < 20) {
        if (Date.now() > deadline) throw new Error('the output topic did not get 20 records within 20 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await ctx.stop();
      await ctx.awaitTermination();
    }
    const got = await readAll(output);
    assert.deepEqual(
      got.map((r) => r.value!.toString()).sort(),
      Array.from({ length: 20 }, (_, i) => `V${i}`).sort(),
    );
    // Same key, same partition: the keys were kept.
    for (const r of got) assert.equal(r.key!.toString(), `k${Number(r.value!.toString().slice(1)) % 4}`);
  });
});
