/**
 * KafkaTextProducer against a real broker; what it sends is read back with the test helpers'
 * independent consumer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BrokerUnreachableError } from '../../src/core/errors.js';
import { KafkaTextProducer, sharedProducer } from '../../src/kafka/index.js';
import { consume, createTopic, deleteTopic } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

let bootstrapServers: string;
const topics: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
});

after(async () => {
  for (const t of topics) await deleteTopic(bootstrapServers, t);
});

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueName(`producer-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, partitions);
  return name;
}

describe('KafkaTextProducer', () => {
  test('send resolves once every record is acknowledged, with keys, partitions, timestamps and headers as given', async () => {
    const t = await topic('fields', 2);
    const producer = await KafkaTextProducer.connect({ bootstrapServers });
    try {
      const ts = Date.now() - 5000;
      const n = await producer.send(t, [
        'plain line',
        Buffer.from('bytes'),
        { key: 'k', value: 'keyed', partition: 1, timestamp: ts, headers: [{ key: 'h', value: Buffer.from('1') }, { key: 'h', value: Buffer.from('2') }] },
        { key: 'k2', value: null, partition: 1, headers: { single: 'x' } },
      ]);
      assert.equal(n, 4);
      const got = await consume(bootstrapServers, t, 4);
      const byValue = new Map(got.map((r) => [r.value?.toString() ?? null, r]));
      assert.ok(byValue.has('plain line'));
      assert.ok(byValue.has('bytes'));
      const keyed = byValue.get('keyed')!;
      assert.equal(keyed.key?.toString(), 'k');
      assert.equal(keyed.partition, 1);
      assert.equal(Number(keyed.timestamp), ts);
      const tomb = byValue.get(null)!;
      assert.equal(tomb.key?.toString(), 'k2');
      assert.equal(String(tomb.headers.single), 'x');
    } finally {
      await producer.close();
    }
  });

  test('sends 100,000 records in one call through the batching queue', async () => {
    const t = await topic('bulk', 3);
    const producer = await KafkaTextProducer.connect({ bootstrapServers });
    try {
      const lines = Array.from({ length: 100_000 }, (_, i) => `line ${i}`);
      assert.equal(await producer.send(t, lines), 100_000);
    } finally {
      await producer.close();
    }
  });

  test('sharedProducer gives one producer per process and bootstrap address until it is closed', async () => {
    const [a, b] = await Promise.all([sharedProducer({ bootstrapServers }), sharedProducer({ bootstrapServers })]);
    assert.equal(a, b);
    assert.equal(await sharedProducer({ bootstrapServers }), a);
    await a.close();
    const c = await sharedProducer({ bootstrapServers });
    assert.notEqual(c, a);
    await c.close();
  });

  test('an unreachable broker fails connect with BrokerUnreachableError within the bounded attempts', async () => {
    const started = Date.now();
    await assert.rejects(KafkaTextProducer.connect({ bootstrapServers: '127.0.0.1:1', connect: { attempts: 2, timeoutMs: 1000 } }), BrokerUnreachableError);
    assert.ok(Date.now() - started < 6000);
  });

  test('describe() shows the configuration with secret values redacted', async () => {
    const producer = await KafkaTextProducer.connect({ bootstrapServers, producerConfig: { 'linger.ms': 1, 'sasl.password': 'hunter2' } });
    try {
      const d = producer.describe();
      assert.equal(d['linger.ms'], 1);
      assert.equal(d['sasl.password'], '[redacted]');
      assert.doesNotMatch(JSON.stringify(d), /hunter2/);
    } finally {
      await producer.close();
    }
  });
});
