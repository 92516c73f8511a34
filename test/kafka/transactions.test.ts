/**
 * The direct source and Kafka transactions, against a real broker: read_committed (the default)
 * stops each range at the last stable offset, never returns aborted records, and never waits on
 * the offsets that transaction markers take.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SystemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import type { SourceContext } from '../../src/core/source.js';
import { KafkaAdmin, KafkaDirectSource, type KafkaDirectOptions, type KafkaRecord } from '../../src/kafka/index.js';
import { Producer, call, type RdKafkaProducer } from '../../src/kafka/rdkafka.js';
import { createTopic, deleteTopic } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

let bootstrapServers: string;
let admin: KafkaAdmin;
let txProducer: RdKafkaProducer;
const sources: KafkaDirectSource[] = [];
const topics: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
  admin = KafkaAdmin.create(bootstrapServers);
  txProducer = new Producer({ 'bootstrap.servers': bootstrapServers, 'transactional.id': `sluice-test-${randomUUID()}`, 'linger.ms': 0 } as never, {});
  await call((cb) => txProducer.connect({}, cb as never));
  await call<void>((cb) => txProducer.initTransactions(10_000, cb));
});

after(async () => {
  for (const s of sources) await s.close();
  await new Promise<void>((resolve) => txProducer?.disconnect(() => resolve()));
  for (const t of topics) await deleteTopic(bootstrapServers, t);
  admin?.close();
});

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueName(`direct-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, partitions);
  return name;
}

function context(): SourceContext {
  return {
    pipelineId: 'kafka-tx-test',
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
  } as unknown as SourceContext; // via unknown: the engine's context grows members this source need not use
}

async function open(options: Omit<KafkaDirectOptions, 'bootstrapServers'>): Promise<KafkaDirectSource> {
  const source = new KafkaDirectSource({ bootstrapServers, ...options });
  sources.push(source);
  await source.open(context());
  return source;
}

async function transaction(t: string, values: string[], outcome: 'commit' | 'abort' | 'leave-open'): Promise<void> {
  await call<void>((cb) => txProducer.beginTransaction(cb));
  for (const v of values) txProducer.produce(t, 0, Buffer.from(v), null, null);
  if (outcome === 'commit') await call<void>((cb) => txProducer.commitTransaction(10_000, cb));
  else {
    // Flush first: aborting purges records not sent yet, and an aborted record must be in the log.
    await call<void>((cb) => txProducer.flush(10_000, cb));
    if (outcome === 'abort') await call<void>((cb) => txProducer.abortTransaction(10_000, cb));
  }
}

/**
 * Waits until the partition's end (as `isolation` sees it) reaches `offset`: the coordinator writes
 * transaction markers asynchronously after commit/abort returns.
 */
async function waitForEnd(t: string, offset: number, isolation: 'read_committed' | 'read_uncommitted' = 'read_committed'): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const end = (await admin.listOffsets([{ topic: t, partition: 0 }], 'latest', isolation)).get(`${t}:0`)!;
    if (end >= offset) return;
    if (Date.now() > deadline) throw new Error(`${t}-0 ends at ${end}, expected ${offset}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function values(batch: KafkaRecord[][]): (string | null)[][] {
  return batch.map((p) => p.map((r) => r.value));
}

describe('KafkaDirectSource with Kafka transactions', () => {
  test('committed records are read, aborted ones never, and the markers between them do not stall the fetch', async () => {
    const t = await topic('tx-mixed');
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    await transaction(t, ['c1', 'c2'], 'commit'); // offsets 0,1 + marker 2
    await transaction(t, ['a1', 'a2'], 'abort'); // offsets 3,4 + marker 5
    await transaction(t, ['c3'], 'commit'); // offset 6 + marker 7
    await waitForEnd(t, 8);
    const plan = await source.plan(0);
    assert.deepEqual(plan.offsetRanges[0], { topic: t, partition: 0, fromOffset: 0, untilOffset: 8 });
    const started = Date.now();
    const batch = await source.fetch(plan);
    assert.ok(Date.now() - started < 3000, 'a range ending on a marker completes at partition EOF');
    assert.deepEqual(values(batch), [['c1', 'c2', 'c3']]);
    assert.deepEqual(
      batch[0]!.map((r) => r.offset),
      [0, 1, 6],
    );
    const next = await source.plan(1);
    assert.deepEqual(next.offsetRanges[0], { topic: t, partition: 0, fromOffset: 8, untilOffset: 8 });
  });

  test('read_committed stops the range at the last stable offset: an open transaction waits for the next batch after its commit', async () => {
    const t = await topic('tx-open');
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    await transaction(t, ['before'], 'commit'); // 0 + marker 1
    await transaction(t, ['pending'], 'leave-open'); // 2, not committed yet
    await waitForEnd(t, 3, 'read_uncommitted');
    const plan = await source.plan(0);
    assert.equal(plan.offsetRanges[0]!.untilOffset, 2, 'ends at the last stable offset, before the open transaction');
    assert.deepEqual(values(await source.fetch(plan)), [['before']]);

    await call<void>((cb) => txProducer.commitTransaction(10_000, cb)); // marker 3
    await waitForEnd(t, 4);
    const after = await source.plan(1);
    assert.deepEqual(after.offsetRanges[0], { topic: t, partition: 0, fromOffset: 2, untilOffset: 4 });
    assert.deepEqual(values(await source.fetch(after)), [['pending']]);
  });

  test('read_uncommitted reads up to the high watermark, open and aborted transactions included', async () => {
    const t = await topic('tx-uncommitted');
    const source = await open({ topics: [t], startingOffsets: 'earliest', isolationLevel: 'read_uncommitted' });
    await transaction(t, ['aborted'], 'abort'); // 0 + marker 1
    await transaction(t, ['open'], 'leave-open'); // 2
    await waitForEnd(t, 3, 'read_uncommitted');
    const plan = await source.plan(0);
    assert.equal(plan.offsetRanges[0]!.untilOffset, 3);
    assert.deepEqual(values(await source.fetch(plan)), [['aborted', 'open']]);
    await call<void>((cb) => txProducer.abortTransaction(10_000, cb));
  });
});
