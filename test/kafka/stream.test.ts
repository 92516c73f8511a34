/**
 * createDirectStream inside a StreamingContext, against a real broker: the engine plans, fetches
 * and commits each batch through the Kafka source.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StreamingContext } from '../../src/core/context.js';
import { silentLogger } from '../../src/core/logger.js';
import { TestDriver } from '../../src/core/testing/index.js';
import { createDirectStream } from '../../src/kafka/index.js';
import { createTopic, deleteTopic, produce, type TestRecord } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

let bootstrapServers: string;
const topics: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
});

after(async () => {
  for (const t of topics) await deleteTopic(bootstrapServers, t);
});

async function topic(prefix: string, partitions: number): Promise<string> {
  const name = uniqueName(`stream-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, partitions);
  return name;
}

describe('createDirectStream', () => {
  test('each batch holds the records produced before it, one batch partition per Kafka partition, with its offset ranges', async () => {
    const t = await topic('driver', 2);
    const driver = new TestDriver({ batchInterval: 1000, pipelineId: uniqueName('pipeline') });
    const stream = createDirectStream(driver.context, { name: 'orders', topics: [t], bootstrapServers, startingOffsets: 'earliest' });
    const out = driver.collect(stream.map((r) => `${r.partition}:${r.offset}:${r.value}`));
    await driver.start();
    try {
      await produce(bootstrapServers, t, [
        { value: 'a', partition: 0 },
        { value: 'b', partition: 1 },
        { value: 'c', partition: 0 },
      ]);
      const info = await driver.advance();
      assert.equal(info.numRecords, 3);
      const first = out.batches.at(-1)!;
      assert.deepEqual(first.partitions, [['0:0:a', '0:1:c'], ['1:0:b']]);
      assert.deepEqual(first.offsetRanges, [
        { topic: t, partition: 0, fromOffset: 0, untilOffset: 2 },
        { topic: t, partition: 1, fromOffset: 0, untilOffset: 1 },
      ]);

      await driver.advance();
      assert.deepEqual(out.batches.at(-1)!.partitions, [[], []], 'nothing new: an empty batch');

      await produce(bootstrapServers, t, [{ value: 'd', partition: 1 }]);
      await driver.advance();
      assert.deepEqual(out.batches.at(-1)!.records, ['1:1:d']);
      assert.deepEqual(
        out.batches.at(-1)!.offsetRanges.map((r) => [r.fromOffset, r.untilOffset]),
        [
          [2, 2],
          [1, 2],
        ],
      );
    } finally {
      await driver.stop();
    }
    const plan = driver.context.describe('json');
    assert.match(plan, /"kafka"/);
    assert.match(plan, /"orders"/);
  });

  test('a running pipeline (count, foreachBatch) counts every record of a 3-partition topic exactly once', async () => {
    const t = await topic('count', 3);
    const records: TestRecord[] = Array.from({ length: 3000 }, (_, i) => ({ value: `r${i}`, partition: i % 3 }));
    await produce(bootstrapServers, t, records);
    const ctx = new StreamingContext({ batchInterval: 200, pipelineId: uniqueName('count'), logger: silentLogger });
    let total = 0;
    let done!: () => void;
    const allCounted = new Promise<void>((resolve) => (done = resolve));
    createDirectStream(ctx, { topics: [t], bootstrapServers, startingOffsets: 'earliest', valueDeserializer: 'bytes' })
      .count()
      .foreachBatch((batch) => {
        for (const n of batch.collect()) total += n;
        if (total >= 3000) done();
      });
    await ctx.start();
    const timeout = setTimeout(() => done(), 20_000);
    await allCounted;
    clearTimeout(timeout);
    await produce(bootstrapServers, t, [{ value: 'late', partition: 2 }]);
    const deadline = Date.now() + 10_000;
    while (total < 3001 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await ctx.stop();
    await ctx.awaitTermination();
    assert.equal(total, 3001);
    assert.ok(ctx.batches.every((b) => b.status === 'completed'));
  });
});
