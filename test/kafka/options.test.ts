/**
 * Option validation of the Kafka direct source: every bad option is refused in the constructor,
 * before anything connects, with an InvalidOptionError naming the option and what it accepts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidOptionError } from '../../src/core/errors.js';
import { KafkaDirectSource, type KafkaDirectOptions } from '../../src/kafka/index.js';

const cases: Array<[string, unknown, string, RegExp]> = [
  ['options that are not an object', null, 'options', /object/],
  ['no topics', {}, 'topics', /non-empty array/],
  ['an empty topic list', { topics: [] }, 'topics', /non-empty array/],
  ['an invalid topic name', { topics: ['a b'] }, 'topics', /letters, digits/],
  ['a repeated topic', { topics: ['a', 'a'] }, 'topics', /distinct/],
  ['an unknown option', { topics: ['a'], topic: 'a' }, 'topic', /one of the options/],
  ['a bootstrap address without port', { topics: ['a'], bootstrapServers: 'localhost' }, 'bootstrapServers', /host:port/],
  ['an empty group id', { topics: ['a'], groupId: '' }, 'groupId', /non-empty/],
  ['an unknown starting position', { topics: ['a'], startingOffsets: 'newest' }, 'startingOffsets', /'earliest', 'latest'/],
  ['explicit offsets for a topic not read', { topics: ['a'], startingOffsets: { b: { 0: 1 } } }, 'startingOffsets.b', /topics read: a/],
  ['a negative offset other than -1/-2', { topics: ['a'], startingOffsets: { a: { 0: -3 } } }, 'startingOffsets.a.0', /-2 \(earliest\)/],
  ['a non-integer offset', { topics: ['a'], startingOffsets: { a: { 0: 1.5 } } }, 'startingOffsets.a.0', /offset >= 0/],
  ['a partition key that is not a number', { topics: ['a'], startingOffsets: { a: { x: 1 } } }, 'startingOffsets.a', /partition numbers/],
  ['an unknown key deserializer', { topics: ['a'], keyDeserializer: 'avro' }, 'keyDeserializer', /'string', 'json', 'bytes' or a function/],
  ['an unknown value deserializer', { topics: ['a'], valueDeserializer: 42 }, 'valueDeserializer', /'string', 'json', 'bytes'/],
  ['zero partitions to create', { topics: ['a'], createTopics: { partitions: 0 } }, 'createTopics.partitions', /integer >= 1/],
  ['a bad replication factor', { topics: ['a'], createTopics: { partitions: 1, replicationFactor: 0 } }, 'createTopics.replicationFactor', /integer >= 1/],
  ['zero connection attempts', { topics: ['a'], connect: { attempts: 0 } }, 'connect.attempts', /1 to 100/],
  ['a tiny connection timeout', { topics: ['a'], connect: { timeoutMs: 5 } }, 'connect.timeoutMs', /100 to 600000/],
  ['group.id in consumerConfig', { topics: ['a'], consumerConfig: { 'group.id': 'g' } }, 'consumerConfig.group.id', /use the option 'groupId'/],
  ['enable.auto.commit in consumerConfig', { topics: ['a'], consumerConfig: { 'enable.auto.commit': true } }, 'consumerConfig.enable.auto.commit', /always false/],
  ['a consumerConfig value that is an object', { topics: ['a'], consumerConfig: { 'fetch.min.bytes': {} } }, 'consumerConfig.fetch.min.bytes', /string, number or boolean/],
  ['an unknown isolation level', { topics: ['a'], isolationLevel: 'serializable' }, 'isolationLevel', /read_committed/],
  ['an empty stream name', { topics: ['a'], name: '' }, 'name', /non-empty/],
];

describe('KafkaDirectSource options', () => {
  for (const [what, options, option, accepted] of cases) {
    test(`refuses ${what} with InvalidOptionError naming '${option}'`, () => {
      assert.throws(
        () => new KafkaDirectSource(options as KafkaDirectOptions),
        (e: unknown) => {
          assert.ok(e instanceof InvalidOptionError, String(e));
          assert.equal(e.option, option);
          assert.match(e.accepted, accepted);
          assert.equal(e.code, 'SLUICE_INVALID_OPTION');
          return true;
        },
      );
    });
  }

  test('a secret in consumerConfig never appears in the error of a refused option', () => {
    assert.throws(
      () => new KafkaDirectSource({ topics: ['a'], consumerConfig: { 'sasl.password': 'hunter2', 'group.id': 'x' } }),
      (e: unknown) => e instanceof InvalidOptionError && !e.message.includes('hunter2'),
    );
  });

  test('accepts the documented forms and applies the defaults', () => {
    const previous = process.env.KAFKA_BOOTSTRAP;
    delete process.env.KAFKA_BOOTSTRAP;
    try {
      const s = new KafkaDirectSource({ topics: ['orders'] });
      assert.equal(s.kind, 'kafka');
      assert.equal(s.bootstrapServers, '127.0.0.1:9092');
      assert.equal(s.isolationLevel, 'read_committed');
      assert.equal(s.describe().startingOffsets, 'latest');
      assert.equal(s.describe().keyDeserializer, 'string');
      process.env.KAFKA_BOOTSTRAP = 'kafka-1:9093,kafka-2:9093';
      assert.equal(new KafkaDirectSource({ topics: ['orders'] }).bootstrapServers, 'kafka-1:9093,kafka-2:9093');
    } finally {
      if (previous === undefined) delete process.env.KAFKA_BOOTSTRAP;
      else process.env.KAFKA_BOOTSTRAP = previous;
    }
    const full = new KafkaDirectSource({
      name: 'orders-in',
      topics: ['orders', 'payments'],
      bootstrapServers: 'h:1',
      groupId: 'g',
      startingOffsets: { orders: { 0: 5, 1: -1 }, payments: { 0: -2 } },
      keyDeserializer: 'bytes',
      valueDeserializer: function parseOrder(d) {
        return d?.length ?? 0;
      },
      createTopics: { partitions: 3, replicationFactor: 1 },
      connect: { attempts: 5, timeoutMs: 1000 },
      consumerConfig: { 'fetch.min.bytes': 1, 'check.crcs': false, 'client.rack': 'r1' },
      isolationLevel: 'read_uncommitted',
    });
    assert.equal(full.describe().valueDeserializer, 'custom:parseOrder');
    assert.equal(full.describe().groupId, 'g');
  });
});
