/**
 * Retention loss and positions out of range, against the real broker: records are deleted under a
 * stored or current position with Kafka's DeleteRecords (the log start moves at once), and topics
 * are deleted and re-created with fewer records. For each `offsetOutOfRange` policy: `fail` raises
 * OffsetOutOfRangeError with the valid range, `earliest` continues at the log start, `latest` at
 * the end, and every reset is reported with the exact number of records skipped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SystemClock } from '../../src/core/clock.js';
import type { BatchInfo } from '../../src/core/batch-protocol.js';
import { OffsetOutOfRangeError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { OffsetResetEvent, SourceContext } from '../../src/core/source.js';
import { TestDriver } from '../../src/core/testing/index.js';
import {
  KafkaAdmin,
  KafkaDirectSource,
  createDirectStream,
  type KafkaDirectOptions,
  type KafkaRecord,
} from '../../src/kafka/index.js';
import { DIRECT_TOPIC_CONFIG, directConsumerConfig } from '../../src/kafka/direct-source.js';
import { KafkaOffsetStore } from '../../src/kafka/offset-store.js';
import { CODES, KafkaConsumer, call, errorCode, type RdMessage } from '../../src/kafka/rdkafka.js';
import { createTopic, deleteTopic, produce, type TestRecord } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

let bootstrapServers: string;
let admin: KafkaAdmin;
const sources: KafkaDirectSource<unknown, unknown>[] = [];
/** Offset stores given to contexts: the context does not close a store it was given. */
const stores: KafkaOffsetStore[] = [];
const topics: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
  admin = KafkaAdmin.create(bootstrapServers);
});

after(async () => {
  for (const s of sources) await s.close();
  for (const s of stores) await s.close();
  for (const t of topics) await deleteTopic(bootstrapServers, t);
  admin?.close();
});

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueName(`retention-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, partitions);
  return name;
}

/** Produces `count` records `p<partition>-<i>` to each partition listed, as `{ partition: count }`. */
async function fill(t: string, counts: Record<number, number>, from = 0): Promise<void> {
  const records: TestRecord[] = [];
  for (const [p, n] of Object.entries(counts)) {
    for (let i = from; i < from + n; i++) records.push({ value: `p${p}-${i}`, partition: Number(p) });
  }
  await produce(bootstrapServers, t, records);
}

/** Deletes the records below `offset` in each partition and checks the log start moved there. */
async function deleteBelow(t: string, offsets: Record<number, number>): Promise<void> {
  const list = Object.entries(offsets).map(([p, offset]) => ({ topic: t, partition: Number(p), offset }));
  const starts = await admin.deleteRecords(list);
  for (const o of list)
    assert.equal(starts.get(`${t}:${o.partition}`), o.offset, 'the log start moved to the deletion offset');
}

/** Deletes the topic and creates it again (empty, same partitions), bounded. */
async function recreate(t: string, partitions = 1): Promise<void> {
  await deleteTopic(bootstrapServers, t);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await createTopic(bootstrapServers, t, partitions);
      return;
    } catch (e) {
      // The deletion finishes in the background: "topic is marked for deletion" until then.
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

type StoredOffsets = (
  topics: readonly string[],
) => Promise<Array<{ topic: string; partition: number; offset: number }>>;

/** A source context as the engine gives it, recording offset resets. */
function context(
  events: Omit<OffsetResetEvent, 'input'>[],
  stored: StoredOffsets = async () => [],
): SourceContext {
  return {
    pipelineId: 'retention-test',
    name: 'input',
    clock: new SystemClock(),
    batchInterval: 1000,
    logger: silentLogger,
    signal: new AbortController().signal,
    storedOffsets: stored,
    reportBadRecord: (_letter: unknown, error: unknown) => {
      throw error;
    },
    reportOffsetReset: (e: Omit<OffsetResetEvent, 'input'>) => void events.push(e),
    reportRebalance: () => {},
    membership: 'single',
    instanceId: 'test-instance',
  } as unknown as SourceContext;
}

async function open(
  options: Omit<KafkaDirectOptions, 'bootstrapServers'>,
  ctx: SourceContext,
): Promise<KafkaDirectSource> {
  const source = new KafkaDirectSource({ bootstrapServers, ...options });
  sources.push(source as KafkaDirectSource<unknown, unknown>);
  await source.open(ctx);
  return source;
}

function values(batch: KafkaRecord[][]): (string | null)[][] {
  return batch.map((p) => p.map((r) => r.value));
}

function range(prefix: string, from: number, until: number): string[] {
  return Array.from({ length: until - from }, (_, i) => `${prefix}-${from + i}`);
}

function isOutOfRange(t: string, partition: number, offset: number, logStart: number, end: number) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof OffsetOutOfRangeError, `expected OffsetOutOfRangeError, got ${String(e)}`);
    assert.equal(e.code, 'SLUICE_OFFSET_OUT_OF_RANGE');
    assert.equal(e.topic, t);
    assert.equal(e.partition, partition);
    assert.equal(e.offset, offset);
    assert.equal(e.logStartOffset, logStart);
    assert.equal(e.endOffset, end);
    assert.ok(e.message.includes(`Offset ${offset} of ${t}-${partition}`), e.message);
    assert.ok(e.message.includes(`[${logStart}, ${end}]`), e.message);
    return true;
  };
}

describe('stored offsets deleted by retention, on open', () => {
  test("'fail' (the default) refuses to open with OffsetOutOfRangeError naming the partition, the stored offset and the valid range", async () => {
    const t = await topic('open-fail');
    await fill(t, { 0: 10 });
    await deleteBelow(t, { 0: 5 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = new KafkaDirectSource({ bootstrapServers, topics: [t], startingOffsets: 'earliest' });
    sources.push(source);
    await assert.rejects(
      source.open(context(events, async () => [{ topic: t, partition: 0, offset: 2 }])),
      (e: unknown) =>
        isOutOfRange(t, 0, 2, 5, 10)(e) &&
        /3 record\(s\) were deleted by retention/.test((e as Error).message),
    );
    assert.deepEqual(events, []);
  });

  test("'earliest' opens at the log start, reports the reset with the records lost, and counts them in the first plan's metrics", async () => {
    const t = await topic('open-earliest', 2);
    await fill(t, { 0: 10, 1: 10 });
    await deleteBelow(t, { 0: 7 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = await open(
      { topics: [t], offsetOutOfRange: 'earliest' },
      context(events, async () => [
        { topic: t, partition: 0, offset: 2 },
        { topic: t, partition: 1, offset: 4 },
      ]),
    );
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 2,
        logStartOffset: 7,
        endOffset: 10,
        resetTo: 7,
        policy: 'earliest',
        recordsLost: 5,
      },
    ]);
    assert.deepEqual(source.positions(), { [t]: { 0: 7, 1: 4 } });
    const plan = await source.plan(0);
    assert.equal(plan.metrics?.recordsLost, 5);
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 7, 10), range('p1', 4, 10)]);
    assert.equal((await source.plan(1)).metrics?.recordsLost, 0, 'a loss is counted once');
  });

  test("'latest' opens at the end: the records still there are skipped too, and counted", async () => {
    const t = await topic('open-latest');
    await fill(t, { 0: 10 });
    await deleteBelow(t, { 0: 6 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = await open(
      { topics: [t], offsetOutOfRange: 'latest' },
      context(events, async () => [{ topic: t, partition: 0, offset: 1 }]),
    );
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 1,
        logStartOffset: 6,
        endOffset: 10,
        resetTo: 10,
        policy: 'latest',
        recordsLost: 9,
      },
    ]);
    await fill(t, { 0: 2 }, 10);
    const plan = await source.plan(0);
    assert.equal(plan.metrics?.recordsLost, 9);
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 10, 12)]);
  });

  test('a stored offset exactly at the log start or at the end is in range: nothing is reset', async () => {
    const t = await topic('open-edges', 2);
    await fill(t, { 0: 10, 1: 4 });
    await deleteBelow(t, { 0: 3 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = await open(
      { topics: [t], offsetOutOfRange: 'fail' },
      context(events, async () => [
        { topic: t, partition: 0, offset: 3 },
        { topic: t, partition: 1, offset: 4 },
      ]),
    );
    assert.deepEqual(source.positions(), { [t]: { 0: 3, 1: 4 } });
    assert.deepEqual(values(await source.fetch(await source.plan(0))), [range('p0', 3, 10), []]);
    assert.deepEqual(events, []);
  });

  test('positions given with startAt are checked like stored ones; explicit startingOffsets still fail as a SourceError', async () => {
    const t = await topic('open-startat');
    await fill(t, { 0: 10 });
    await deleteBelow(t, { 0: 4 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const resumed = new KafkaDirectSource({ bootstrapServers, topics: [t], offsetOutOfRange: 'earliest' });
    sources.push(resumed);
    await resumed.startAt({ [t]: { 0: 1 } });
    await resumed.open(context(events));
    assert.deepEqual(resumed.positions(), { [t]: { 0: 4 } });
    assert.equal(events[0]?.recordsLost, 3);

    const explicit = new KafkaDirectSource({
      bootstrapServers,
      topics: [t],
      offsetOutOfRange: 'earliest',
      startingOffsets: { [t]: { 0: 1 } },
    });
    sources.push(explicit);
    await assert.rejects(
      explicit.open(context([])),
      /starting offset 1 of .* is no longer in Kafka: the partition starts at 4/,
    );
  });
});

describe('records deleted under the position of a running source, at the next plan', () => {
  /** A source that has read the first 10 records of each partition; then 10 more are produced and the first `deleted` deleted. */
  async function readThenDelete(prefix: string, policy: 'fail' | 'earliest' | 'latest', deleted: number) {
    const t = await topic(prefix);
    await fill(t, { 0: 10 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = await open(
      { topics: [t], startingOffsets: 'earliest', offsetOutOfRange: policy },
      context(events),
    );
    const first = await source.plan(0);
    assert.deepEqual(values(await source.fetch(first)), [range('p0', 0, 10)]);
    await source.commit(first);
    await fill(t, { 0: 10 }, 10);
    await deleteBelow(t, { 0: deleted });
    return { t, source, events };
  }

  test("'fail': the plan throws OffsetOutOfRangeError with the range; the position is left as it was", async () => {
    const { t, source, events } = await readThenDelete('plan-fail', 'fail', 15);
    await assert.rejects(source.plan(1), isOutOfRange(t, 0, 10, 15, 20));
    assert.deepEqual(source.positions(), { [t]: { 0: 10 } });
    await assert.rejects(source.plan(2), OffsetOutOfRangeError, 'every plan checks again');
    assert.deepEqual(events, []);
  });

  test("'earliest': the plan starts at the new log start and counts exactly the records deleted unread", async () => {
    const { t, source, events } = await readThenDelete('plan-earliest', 'earliest', 15);
    const plan = await source.plan(1);
    assert.deepEqual(plan.offsetRanges, [{ topic: t, partition: 0, fromOffset: 15, untilOffset: 20 }]);
    assert.equal(plan.metrics?.recordsLost, 5);
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 10,
        logStartOffset: 15,
        endOffset: 20,
        resetTo: 15,
        policy: 'earliest',
        recordsLost: 5,
      },
    ]);
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 15, 20)]);
    await source.commit(plan);
    assert.deepEqual(source.committedPositions(), { [t]: { 0: 20 } });
  });

  test("'earliest': records deleted that the source had already read are no loss", async () => {
    const { source, events } = await readThenDelete('plan-read', 'earliest', 8);
    const plan = await source.plan(1);
    assert.equal(plan.metrics?.recordsLost, 0);
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 10, 20)]);
    assert.deepEqual(events, []);
  });

  test("'latest': the plan jumps to the end; everything skipped counts as lost", async () => {
    const { t, source, events } = await readThenDelete('plan-latest', 'latest', 15);
    const plan = await source.plan(1);
    assert.deepEqual(plan.offsetRanges, [{ topic: t, partition: 0, fromOffset: 20, untilOffset: 20 }]);
    assert.equal(plan.metrics?.recordsLost, 10);
    assert.deepEqual(
      events.map((e) => [e.storedOffset, e.logStartOffset, e.endOffset, e.resetTo, e.recordsLost]),
      [[10, 15, 20, 20, 10]],
    );
    assert.deepEqual(values(await source.fetch(plan)), [[]]);
    await fill(t, { 0: 1 }, 20);
    assert.deepEqual(values(await source.fetch(await source.plan(2))), [['p0-20']]);
  });
});

describe('records deleted between a plan and its fetch (Kafka answers offset out of range)', () => {
  /**
   * A source that read offsets 0..9 of each partition, was moved back with startAt and planned
   * [from, 10); then 2 more records are produced to each partition and the records below
   * `deleted` are deleted. The fetch seeks back, so the broker (not the client's prefetch queue)
   * answers.
   */
  async function planThenDelete(
    prefix: string,
    policy: 'fail' | 'earliest' | 'latest',
    from: Record<number, number>,
    deleted: Record<number, number>,
  ) {
    const partitions = Object.keys(from).length;
    const t = await topic(prefix, partitions);
    await fill(t, Object.fromEntries(Object.keys(from).map((p) => [p, 10])));
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = await open(
      {
        topics: [t],
        startingOffsets: 'earliest',
        offsetOutOfRange: policy,
        connect: { attempts: 2, timeoutMs: 5000 },
      },
      context(events),
    );
    await source.fetch(await source.plan(0));
    await source.startAt({ [t]: from });
    const plan = await source.plan(1);
    assert.deepEqual(
      plan.offsetRanges.map((r) => [r.fromOffset, r.untilOffset]),
      Object.values(from).map((f) => [f, 10]),
    );
    await fill(t, Object.fromEntries(Object.keys(from).map((p) => [p, 2])), 10);
    await deleteBelow(t, deleted);
    return { t, source, plan, events };
  }

  test("'fail': the fetch throws OffsetOutOfRangeError with the partition's new range", async () => {
    const { t, source, plan } = await planThenDelete('fetch-fail', 'fail', { 0: 2 }, { 0: 6 });
    await assert.rejects(source.fetch(plan), isOutOfRange(t, 0, 2, 6, 12));
  });

  test("'earliest': the batch keeps its range, reads the rest from the log start, and counts the gap once even when fetched again", async () => {
    const { t, source, plan, events } = await planThenDelete(
      'fetch-earliest',
      'earliest',
      { 0: 2 },
      { 0: 6 },
    );
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 6, 10)]);
    assert.deepEqual(
      plan.offsetRanges,
      [{ topic: t, partition: 0, fromOffset: 2, untilOffset: 10 }],
      'the plan is not changed',
    );
    assert.equal(plan.metrics?.recordsLost, 4);
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 2,
        logStartOffset: 6,
        endOffset: 12,
        resetTo: 6,
        policy: 'earliest',
        recordsLost: 4,
      },
    ]);
    // A replay of the batch (e.g. after a failed output) gives the same records and no new loss.
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 6, 10)]);
    assert.equal(plan.metrics?.recordsLost, 4);
    assert.equal(events.length, 1);
    const next = await source.plan(2);
    assert.deepEqual(next.offsetRanges, [{ topic: t, partition: 0, fromOffset: 10, untilOffset: 12 }]);
    assert.equal(next.metrics?.recordsLost, 0);
    assert.deepEqual(values(await source.fetch(next)), [range('p0', 10, 12)]);
  });

  test("'earliest': a range wholly deleted ends empty; the next plan starts at the range's end, reset to the log start beyond it", async () => {
    const { t, source, plan, events } = await planThenDelete('fetch-whole', 'earliest', { 0: 2 }, { 0: 11 });
    assert.deepEqual(values(await source.fetch(plan)), [[]]);
    assert.equal(plan.metrics?.recordsLost, 8, 'offsets 2..9: the rest of this range');
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 2,
        logStartOffset: 11,
        endOffset: 12,
        resetTo: 10,
        policy: 'earliest',
        recordsLost: 8,
      },
    ]);
    const next = await source.plan(2);
    assert.deepEqual(next.offsetRanges, [{ topic: t, partition: 0, fromOffset: 11, untilOffset: 12 }]);
    assert.equal(next.metrics?.recordsLost, 1, 'offset 10, past the previous range');
    assert.deepEqual(events[1], {
      topic: t,
      partition: 0,
      storedOffset: 10,
      logStartOffset: 11,
      endOffset: 12,
      resetTo: 11,
      policy: 'earliest',
      recordsLost: 1,
    });
    assert.deepEqual(values(await source.fetch(next)), [['p0-11']]);
  });

  test("'latest': the rest of the range is skipped; the next plan reads on from the range's end, which is in range", async () => {
    const { t, source, plan, events } = await planThenDelete('fetch-latest', 'latest', { 0: 2 }, { 0: 6 });
    assert.deepEqual(values(await source.fetch(plan)), [[]]);
    assert.equal(plan.metrics?.recordsLost, 8, 'offsets 2..9: deleted, or skipped to the end of the range');
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 2,
        logStartOffset: 6,
        endOffset: 12,
        resetTo: 10,
        policy: 'latest',
        recordsLost: 8,
      },
    ]);
    const next = await source.plan(2);
    assert.deepEqual(next.offsetRanges, [{ topic: t, partition: 0, fromOffset: 10, untilOffset: 12 }]);
    assert.equal(next.metrics?.recordsLost, 0);
    assert.deepEqual(values(await source.fetch(next)), [range('p0', 10, 12)]);
  });

  test("'earliest' with several partitions: only the partition that lost records is moved; the others are read whole", async () => {
    const { t, source, plan, events } = await planThenDelete(
      'fetch-multi',
      'earliest',
      { 0: 1, 1: 0, 2: 3 },
      { 1: 5 },
    );
    assert.deepEqual(values(await source.fetch(plan)), [
      range('p0', 1, 10),
      range('p1', 5, 10),
      range('p2', 3, 10),
    ]);
    assert.equal(plan.metrics?.recordsLost, 5);
    assert.deepEqual(
      events.map((e) => [e.topic, e.partition, e.storedOffset, e.resetTo, e.recordsLost]),
      [[t, 1, 0, 5, 5]],
    );
  });
});

describe("the direct source's consumer configuration", () => {
  test('an out-of-range position makes the client report an error, never jump to the end by itself', async () => {
    const t = await topic('client');
    await fill(t, { 0: 10 });
    await deleteBelow(t, { 0: 6 });
    const consumer = new KafkaConsumer(
      directConsumerConfig({
        cluster: bootstrapServers,
        groupId: uniqueName('client'),
        clientId: 'retention-test',
        isolationLevel: 'read_committed',
      }) as never,
      { ...DIRECT_TOPIC_CONFIG },
    );
    await call((cb) => consumer.connect({ timeout: 10_000 }, cb as never));
    try {
      consumer.setDefaultConsumeTimeout(100);
      consumer.assign([{ topic: t, partition: 0, offset: 2 }]);
      const delivered: number[] = [];
      let error: unknown;
      const deadline = Date.now() + 15_000;
      while (error === undefined && Date.now() < deadline) {
        try {
          delivered.push(
            ...(await call<RdMessage[]>((cb) => consumer.consume(100, cb))).map((m) => m.offset),
          );
        } catch (e) {
          error = e;
        }
      }
      assert.equal(
        errorCode(error),
        CODES.ERRORS.ERR__AUTO_OFFSET_RESET,
        `expected the auto-offset-reset error, got ${String(error)}`,
      );
      assert.deepEqual(delivered, [], 'nothing delivered from a position the client moved by itself');
    } finally {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5_000);
        consumer.disconnect(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  });
});

describe('a position past the end (the topic was deleted and re-created with fewer records)', () => {
  /** A source that read 8 records, then the topic is re-created holding 3. */
  async function readThenRecreate(prefix: string, policy: 'fail' | 'earliest' | 'latest') {
    const t = await topic(prefix);
    await fill(t, { 0: 8 });
    const events: Omit<OffsetResetEvent, 'input'>[] = [];
    const source = await open(
      { topics: [t], startingOffsets: 'earliest', offsetOutOfRange: policy },
      context(events),
    );
    const first = await source.plan(0);
    assert.deepEqual(values(await source.fetch(first)), [range('p0', 0, 8)]);
    await source.commit(first);
    await recreate(t);
    await fill(t, { 0: 3 }, 100);
    return { t, source, events };
  }

  test("'fail': the plan throws OffsetOutOfRangeError saying the topic was probably re-created", async () => {
    const { t, source } = await readThenRecreate('recreate-fail', 'fail');
    await assert.rejects(
      source.plan(1),
      (e: unknown) => isOutOfRange(t, 0, 8, 0, 3)(e) && /recreated/.test((e as Error).message),
    );
  });

  test("'earliest': reading starts over at the new log start; nothing counts as lost", async () => {
    const { t, source, events } = await readThenRecreate('recreate-earliest', 'earliest');
    const plan = await source.plan(1);
    assert.deepEqual(plan.offsetRanges, [{ topic: t, partition: 0, fromOffset: 0, untilOffset: 3 }]);
    assert.equal(plan.metrics?.recordsLost, 0);
    assert.deepEqual(events, [
      {
        topic: t,
        partition: 0,
        storedOffset: 8,
        logStartOffset: 0,
        endOffset: 3,
        resetTo: 0,
        policy: 'earliest',
        recordsLost: 0,
      },
    ]);
    assert.deepEqual(values(await source.fetch(plan)), [range('p0', 100, 103)]);
  });

  test("'latest': reading continues at the new end", async () => {
    const { t, source, events } = await readThenRecreate('recreate-latest', 'latest');
    const plan = await source.plan(1);
    assert.deepEqual(plan.offsetRanges, [{ topic: t, partition: 0, fromOffset: 3, untilOffset: 3 }]);
    assert.deepEqual(
      events.map((e) => [e.storedOffset, e.resetTo, e.recordsLost]),
      [[8, 3, 0]],
    );
    assert.deepEqual(values(await source.fetch(plan)), [[]]);
    await fill(t, { 0: 1 }, 103);
    assert.deepEqual(values(await source.fetch(await source.plan(2))), [['p0-103']]);
  });
});

describe('retention loss through a StreamingContext', () => {
  /**
   * A pipeline whose group has offsets committed in Kafka (the default offset store) under which
   * records were deleted; runs batches with a manual clock and a listener.
   */
  async function pipeline(prefix: string, policy: 'fail' | 'earliest' | 'latest') {
    const t = await topic(prefix, 2);
    await fill(t, { 0: 10, 1: 10 });
    const group = uniqueName(`${prefix}-group`);
    const store = new KafkaOffsetStore({ bootstrapServers });
    try {
      await store.set(group, [
        { topic: t, partition: 0, offset: 2 },
        { topic: t, partition: 1, offset: 3 },
      ]);
    } finally {
      await store.close();
    }
    await deleteBelow(t, { 0: 7, 1: 3 });
    const offsetStore = new KafkaOffsetStore({ bootstrapServers });
    stores.push(offsetStore);
    const driver = new TestDriver({ batchInterval: 1000, pipelineId: group, offsetStore });
    const resets: OffsetResetEvent[] = [];
    const batches: BatchInfo[] = [];
    driver.context.addListener({
      onOffsetReset: (e) => void resets.push(e),
      onBatchCompleted: (b) => void batches.push(b),
    });
    const stream = createDirectStream(driver.context, {
      name: 'orders',
      topics: [t],
      bootstrapServers,
      groupId: group,
      offsetOutOfRange: policy,
    });
    const out = driver.collect(stream.map((r) => r.value));
    return { t, group, driver, out, resets, batches };
  }

  test("'earliest': the listener hears the reset, the batch reads from the log start, and the offsets are committed past it", async () => {
    const { t, group, driver, out, resets } = await pipeline('ctx-earliest', 'earliest');
    await driver.start();
    try {
      assert.deepEqual(resets, [
        {
          input: 'orders',
          topic: t,
          partition: 0,
          storedOffset: 2,
          logStartOffset: 7,
          endOffset: 10,
          resetTo: 7,
          policy: 'earliest',
          recordsLost: 5,
        },
      ]);
      const info = await driver.advance();
      assert.deepEqual(out.last(), [...range('p0', 7, 10), ...range('p1', 3, 10)]);
      assert.deepEqual(
        info.inputs[0]!.offsetRanges.map((r) => [r.fromOffset, r.untilOffset]),
        [
          [7, 10],
          [3, 10],
        ],
      );
    } finally {
      await driver.stop();
    }
    const store = new KafkaOffsetStore({ bootstrapServers });
    try {
      assert.deepEqual(await store.read(group, [t]), [
        { topic: t, partition: 0, offset: 10 },
        { topic: t, partition: 1, offset: 10 },
      ]);
    } finally {
      await store.close();
    }
  });

  test("'fail': the context does not start, with OffsetOutOfRangeError", async () => {
    const { t, driver, resets } = await pipeline('ctx-fail', 'fail');
    await assert.rejects(driver.start(), isOutOfRange(t, 0, 2, 7, 10));
    assert.deepEqual(resets, []);
  });

  test("'latest': the listener hears the reset to the end, and the first batch holds only what came after", async () => {
    const { t, driver, out, resets } = await pipeline('ctx-latest', 'latest');
    await driver.start();
    try {
      assert.deepEqual(
        resets.map((e) => [e.partition, e.storedOffset, e.resetTo, e.recordsLost]),
        [[0, 2, 10, 8]],
      );
      await fill(t, { 1: 1 }, 10);
      await driver.advance();
      assert.deepEqual(out.last(), [...range('p1', 3, 11)]);
    } finally {
      await driver.stop();
    }
  });

  test('BatchInfo.inputs[0].metrics of the first batch counts the records lost, and the next batch none', async () => {
    const { t, driver, batches } = await pipeline('ctx-metrics', 'earliest');
    await driver.start();
    try {
      await driver.advance(2);
    } finally {
      await driver.stop();
    }
    assert.equal(batches.length, 2);
    assert.deepEqual(batches[0]!.inputs[0]!.metrics, {
      lag: [
        { topic: t, partition: 0, lag: 0 },
        { topic: t, partition: 1, lag: 0 },
      ],
      recordsLost: 5,
    });
    assert.equal(batches[1]!.inputs[0]!.metrics?.recordsLost, 0);
  });
});
