/**
 * Dead letters to Kafka against the real broker: the letter's original key and value bytes with
 * `sluice.*` headers, in a pipeline's bad-record policy, and inside the exactly-once transaction of
 * a Kafka-to-Kafka ETL. Read back with a plain read_committed librdkafka consumer.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import Kafka from '@confluentinc/kafka-javascript';
import type { DeadLetter } from '../../src/core/bad-records.js';
import { Batch } from '../../src/core/batch.js';
import { StreamingContext } from '../../src/core/context.js';
import { OperatorError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import {
  DEAD_LETTER_HEADERS,
  KafkaAdmin,
  KafkaSink,
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  deadLetterRecord,
  kafkaDeadLetterSink,
} from '../../src/kafka/index.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const bootstrapServers = await kafkaBootstrap();
const topics: string[] = [];
const closers: (() => Promise<void>)[] = [];

after(async () => {
  for (const c of closers) await c();
  for (const t of topics) await deleteTopic(bootstrapServers, t);
});

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueName(`dlq-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, partitions);
  return name;
}

interface ReadRecord {
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

const call = <R>(f: (cb: (err: unknown, v: R) => void) => void): Promise<R> =>
  new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));

/**
 * Every committed record of `t`, from the beginning to the end, read by a plain read_committed
 * consumer (after any transaction on `t` has ended: last stable offset = high watermark).
 */
async function readAll(t: string): Promise<ReadRecord[]> {
  const admin = KafkaAdmin.create(bootstrapServers);
  const parts = (await admin.describeTopics([t])).get(t)!.map((partition) => ({ topic: t, partition }));
  let ends: Map<string, number>;
  const settleBy = Date.now() + 15_000;
  for (;;) {
    ends = await admin.listOffsets(parts, 'latest', 'read_committed');
    const hw = await admin.listOffsets(parts, 'latest', 'read_uncommitted');
    if ([...hw].every(([k, v]) => ends.get(k) === v)) break;
    if (Date.now() > settleBy) throw new Error(`a transaction stayed open on ${t}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  admin.close();
  const consumer = new Kafka.KafkaConsumer(
    { 'bootstrap.servers': bootstrapServers, 'group.id': 'sluice-test-reader', 'enable.auto.commit': false, 'isolation.level': 'read_committed' },
    {},
  );
  await call((cb) => consumer.connect({ timeout: 10_000 }, cb as never));
  const out: ReadRecord[] = [];
  try {
    consumer.setDefaultConsumeTimeout(100);
    consumer.assign(parts.map((p) => ({ ...p, offset: 0 })));
    const deadline = Date.now() + 15_000;
    const done = () =>
      parts.every((p) => ends.get(`${t}:${p.partition}`) === 0) ||
      consumer.position(parts).every((p) => (p.offset ?? 0) >= ends.get(`${t}:${p.partition}`)!);
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`did not reach the end of ${t} within 15 s`);
      for (const m of await call<Kafka.Message[]>((cb) => consumer.consume(1000, cb as never))) {
        out.push({
          partition: m.partition,
          key: m.key == null ? null : Buffer.from(m.key),
          value: m.value,
          headers: Object.fromEntries((m.headers ?? []).flatMap((h) => Object.entries(h).map(([k, v]) => [k, v.toString()]))),
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

async function committed(group: string, t: string): Promise<number | undefined> {
  const c = new Kafka.KafkaConsumer({ 'bootstrap.servers': bootstrapServers, 'group.id': group, 'enable.auto.commit': false }, {});
  await call((cb) => c.connect({ timeout: 10_000 }, cb as never));
  try {
    const [p] = await call<Kafka.TopicPartitionOffsetAndMetadata[]>((cb) => c.committed([{ topic: t, partition: 0 }], 10_000, cb as never));
    return p && p.offset >= 0 ? p.offset : undefined;
  } finally {
    await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}

const H = DEAD_LETTER_HEADERS;
const sinkCtx = { pipelineId: 'dlq-test', name: 'dlq', logger: silentLogger, signal: new AbortController().signal };

/** `n,word`: n must be an integer. */
function parse(value: Buffer | null): { n: number; word: string } {
  const [n, word] = (value ?? Buffer.alloc(0)).toString().split(',');
  if (!/^\d+$/.test(n ?? '') || word === undefined) throw new Error(`malformed line: ${JSON.stringify(value?.toString())}`);
  return { n: Number(n), word };
}

describe('kafkaDeadLetterSink', () => {
  test('writes each letter with the original key and value bytes and the sluice.* headers', async () => {
    const t = await topic('direct');
    const sink = kafkaDeadLetterSink({ topic: t, bootstrapServers });
    closers.push(() => sink.close());
    assert.ok(sink instanceof KafkaSink);
    assert.equal(sink.kind, 'kafka');
    await sink.open(sinkCtx);
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x7b]);
    const letters: DeadLetter[] = [
      {
        input: 'orders',
        operator: 'orders',
        reason: 'Cannot deserialize the value of raw-0 at offset 41',
        batchTime: 1_700_000_002_000,
        topic: 'raw',
        partition: 0,
        offset: 41,
        key: Buffer.from([0x01, 0x02]),
        value: bytes,
      },
      { input: 'parse', operator: 'parse', reason: 'malformed line', batchTime: 1_700_000_004_000, key: 'k', value: 'a,b,c' },
      { input: 'parse', operator: 'parse', reason: 'no id', batchTime: 5, value: { id: null } },
      { input: 'parse', operator: 'parse', reason: 'tombstone', batchTime: 6, value: null },
    ];
    await sink.write(Batch.of(letters), { time: 1000, offsetRanges: [] });
    const got = await readAll(t);
    assert.equal(got.length, 4);
    assert.deepEqual(got[0], {
      partition: 0,
      key: Buffer.from([0x01, 0x02]),
      value: bytes,
      headers: {
        [H.reason]: 'Cannot deserialize the value of raw-0 at offset 41',
        [H.operator]: 'orders',
        [H.input]: 'orders',
        [H.sourceTopic]: 'raw',
        [H.sourcePartition]: '0',
        [H.sourceOffset]: '41',
        [H.batchTime]: '1700000002000',
      },
    });
    assert.deepEqual(got[1], {
      partition: 0,
      key: Buffer.from('k'),
      value: Buffer.from('a,b,c'),
      headers: { [H.reason]: 'malformed line', [H.operator]: 'parse', [H.input]: 'parse', [H.batchTime]: '1700000004000' },
    });
    assert.deepEqual(got[2]!.value, Buffer.from('{"id":null}'));
    assert.equal(got[3]!.value, null);
    assert.equal(got[3]!.key, null);
  });

  test('deadLetterRecord keeps a Buffer or a string value as given', () => {
    const base = { input: 'i', operator: 'o', reason: 'r', batchTime: 1 };
    const buf = Buffer.from([0x80]);
    assert.equal(deadLetterRecord({ ...base, value: buf }).value, buf);
    assert.equal(deadLetterRecord({ ...base, value: 'text' }).value, 'text');
  });

  test('as a pipeline’s dead-letter policy: rejected records reach the topic with their origin and reason, are counted, and never stop the job', async () => {
    const [input, dlq] = [await topic('pipe-in'), await topic('pipe-dlq')];
    await produce(bootstrapServers, input, [
      { key: 'a', value: '1,one' },
      { key: 'b', value: 'garbage' },
      { key: 'c', value: '3,three' },
      { key: null, value: Buffer.from([0xff, 0x2c]) },
    ]);
    const ctx = new StreamingContext({ batchInterval: 200, pipelineId: uniqueName('dlq-pipe'), logger: silentLogger });
    const good: string[] = [];
    createDirectStream(ctx, { topics: [input], bootstrapServers, startingOffsets: 'earliest', valueDeserializer: 'bytes' })
      .tryMap((r) => parse(r.value), {
        name: 'parse',
        badRecords: { policy: 'dead-letter', deadLetter: kafkaDeadLetterSink({ topic: dlq, bootstrapServers }) },
      })
      .foreachBatch((b) => void good.push(...b.collect().map((r) => r.word)));
    await ctx.start();
    try {
      const deadline = Date.now() + 20_000;
      while (good.length < 2) {
        if (Date.now() > deadline) throw new Error('the good records did not arrive within 20 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await ctx.stop();
      await ctx.awaitTermination();
    }
    assert.deepEqual(good, ['one', 'three']);
    const letters = await readAll(dlq);
    assert.deepEqual(
      letters.map((l) => [l.key?.toString() ?? null, l.value, l.headers[H.sourceOffset], l.headers[H.operator], l.headers[H.input]]),
      [
        ['b', Buffer.from('garbage'), '1', 'parse', 'parse'],
        [null, Buffer.from([0xff, 0x2c]), '3', 'parse', 'parse'],
      ],
    );
    assert.match(letters[0]!.headers[H.reason]!, /malformed line/);
    assert.equal(letters[0]!.headers[H.sourceTopic], input);
    assert.equal(letters[0]!.headers[H.sourcePartition], '0');
    const batch = ctx.batches.find((b) => b.badRecords.some((c) => c.deadLettered > 0))!;
    assert.equal(letters[0]!.headers[H.batchTime], String(batch.batchTime));
    assert.deepEqual(
      ctx.batches.flatMap((b) => b.badRecords).reduce((n, c) => n + c.deadLettered, 0),
      2,
    );
  });

  test('transactional: an exactly-once ETL commits its output, its dead letters and its offsets in one transaction, or none of them', async () => {
    const [input, output, dlq] = [await topic('etl-in'), await topic('etl-out'), await topic('etl-dlq')];
    await produce(bootstrapServers, input, [{ value: '1,one' }, { value: 'bad line' }, { value: '2,two' }]);
    const pipelineId = uniqueName('dlq-etl');

    const runJob = async (fail: boolean) => {
      const store = new KafkaTransactionalStore({ bootstrapServers });
      const ctx = new StreamingContext({ batchInterval: 200, pipelineId, logger: silentLogger, offsetStore: store });
      const deadLetter = kafkaDeadLetterSink({ topic: dlq, bootstrapServers, transactional: store });
      assert.ok(deadLetter instanceof KafkaTransactionalSink);
      const parsed = createDirectStream(ctx, { topics: [input], bootstrapServers, startingOffsets: 'earliest', valueDeserializer: 'bytes' }).tryMap(
        (r) => parse(r.value),
        { name: 'parse', badRecords: { policy: 'dead-letter', deadLetter } },
      );
      parsed.writeTo(
        new KafkaTransactionalSink<{ n: number; word: string }>({
          topic: output,
          store,
          bootstrapServers,
          toRecord: (r) => ({ key: String(r.n), value: r.word }),
        }),
        { name: 'out' },
      );
      parsed.foreachBatch(
        async (b) => {
          if (fail && b.size > 0) throw new Error('crash before the commit');
        },
        { name: 'check', transaction: store },
      );
      const plan = ctx.commitPlan();
      assert.deepEqual([...plan.transactionalOutputs].sort(), ['check', 'out', 'parse.dead-letter-sink']);
      await ctx.start();
      try {
        if (fail) {
          await assert.rejects(ctx.awaitTermination(), OperatorError);
        } else {
          const deadline = Date.now() + 20_000;
          while ((await committed(pipelineId, input)) !== 3) {
            if (Date.now() > deadline) throw new Error('the job did not commit within 20 s');
            await new Promise((r) => setTimeout(r, 100));
          }
          await ctx.stop();
          await ctx.awaitTermination();
        }
      } finally {
        await store.close();
      }
    };

    await runJob(true);
    assert.deepEqual(await readAll(output), []);
    assert.deepEqual(await readAll(dlq), [], 'the dead letters were aborted with the output');
    const admin = KafkaAdmin.create(bootstrapServers);
    const logEnd = await admin.listOffsets([{ topic: dlq, partition: 0 }], 'latest', 'read_uncommitted');
    admin.close();
    assert.ok(logEnd.get(`${dlq}:0`)! >= 2, 'the letter had been written (then aborted, then its marker)');
    assert.equal(await committed(pipelineId, input), undefined);

    await runJob(false);
    assert.deepEqual(
      (await readAll(output)).map((r) => [r.key!.toString(), r.value!.toString()]),
      [
        ['1', 'one'],
        ['2', 'two'],
      ],
    );
    const letters = await readAll(dlq);
    assert.deepEqual(
      letters.map((l) => [l.value!.toString(), l.headers[H.sourceOffset], l.headers[H.operator]]),
      [['bad line', '1', 'parse']],
    );
    assert.equal(await committed(pipelineId, input), 3);
  });
});
