/**
 * The Kafka source's own bad-record policy (`badRecords`), against the real broker: records whose
 * value fails to deserialize are skipped and counted, or dead-lettered with their original bytes,
 * origin and reason; a tryMap downstream inherits the policy.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { DeadLetter } from '../../src/core/bad-records.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { InMemorySink } from '../../src/core/memory-sink.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { createDirectStream } from '../../src/kafka/index.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const bootstrapServers = await kafkaBootstrap();
const topics: string[] = [];
after(async () => {
  for (const t of topics) await deleteTopic(bootstrapServers, t);
});

async function topicWith(values: string[]): Promise<string> {
  const topic = uniqueName('bad-records');
  topics.push(topic);
  await createTopic(bootstrapServers, topic, 1);
  await produce(
    bootstrapServers,
    topic,
    values.map((value) => ({ value })),
  );
  return topic;
}

describe('Kafka source bad-record policy', () => {
  it('skips values that fail to deserialize and counts them in the batch', async () => {
    const topic = await topicWith(['{"n":1}', 'not json', '{"n":2}']);
    const driver = new TestDriver({ pipelineId: uniqueName('bad-skip') });
    const out = driver.collect(
      createDirectStream(driver.context, {
        topics: [topic],
        bootstrapServers,
        startingOffsets: 'earliest',
        valueDeserializer: 'json',
        badRecords: { policy: 'skip' },
      }).map((r) => (r.value as { n: number }).n),
    );
    await driver.start();
    const info = await driver.advance();
    await driver.stop();
    assert.deepEqual(out.last(), [1, 2]);
    assert.equal(
      info.badRecords.reduce((n, c) => n + c.skipped, 0),
      1,
    );
  });

  it('dead-letters them with topic, partition, offset, the original bytes and the reason; tryMap downstream shares the policy', async () => {
    const topic = await topicWith(['{"n":1}', '{oops', '{"n":-1}']);
    const dlq = new InMemorySink<DeadLetter>();
    const driver = new TestDriver({ pipelineId: uniqueName('bad-dlq') });
    const records = createDirectStream(driver.context, {
      name: 'numbers',
      topics: [topic],
      bootstrapServers,
      startingOffsets: 'earliest',
      valueDeserializer: 'json',
      badRecords: { policy: 'dead-letter', deadLetter: dlq },
    });
    const out = driver.collect(
      records.tryMap(
        (r) => {
          const n = (r.value as { n: number }).n;
          if (n < 0) throw new Error(`negative: ${n}`);
          return n;
        },
        { name: 'check' },
      ),
    );
    await driver.start();
    const info = await driver.advance();
    await driver.stop();
    assert.deepEqual(out.last(), [1]);
    const [bad, negative] = dlq.records;
    assert.equal(dlq.records.length, 2);
    assert.equal(bad!.input, 'numbers');
    assert.deepEqual([bad!.topic, bad!.partition, bad!.offset], [topic, 0, 1]);
    assert.equal(Buffer.from(bad!.value as Buffer).toString(), '{oops');
    assert.match(bad!.reason, /offset 1/);
    assert.deepEqual([negative!.operator, negative!.offset, negative!.reason], ['check', 2, 'negative: -1']);
    assert.deepEqual(info.badRecords, [{ name: 'numbers', skipped: 0, deadLettered: 2 }]);
  });

  it('refuses a dead-letter policy without a sink, naming the option', () => {
    assert.throws(
      () =>
        createDirectStream(new TestDriver().context, {
          topics: ['t'],
          badRecords: { policy: 'dead-letter' },
        }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'badRecords.deadLetter',
    );
  });
});
