/**
 * Rate control of the Kafka direct source against the real broker: maxRatePerPartition,
 * maxRecordsPerBatch and backpressure cap each plan's ranges, a backlog is worked off over several
 * batches, and the plan reports the rate in force and the lag left behind. No assertion depends on
 * how fast anything runs: batch sizes follow from the caps alone (manual clock, or the PID
 * estimator fed with chosen figures).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SystemClock } from '../../src/core/clock.js';
import type { BatchInfo } from '../../src/core/batch-protocol.js';
import { StreamingContext } from '../../src/core/context.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { InputPlan, SourceContext } from '../../src/core/source.js';
import { TestDriver } from '../../src/core/testing/index.js';
import { KafkaDirectSource, createDirectStream, type KafkaDirectOptions } from '../../src/kafka/index.js';
import { KafkaOffsetStore } from '../../src/kafka/offset-store.js';
import { createTopic, deleteTopic, produce, type TestRecord } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

let bootstrapServers: string;
const sources: KafkaDirectSource[] = [];
const topics: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
});

after(async () => {
  for (const s of sources) await s.close();
  for (const t of topics) await deleteTopic(bootstrapServers, t);
});

/** A topic of 3 partitions holding `perPartition` records in each. */
async function backlog(prefix: string, perPartition: number): Promise<string> {
  const name = uniqueName(`rate-${prefix}`);
  topics.push(name);
  await createTopic(bootstrapServers, name, 3);
  const records: TestRecord[] = [];
  for (let i = 0; i < perPartition * 3; i++) records.push({ value: `r${i}`, partition: i % 3 });
  await produce(bootstrapServers, name, records);
  return name;
}

function context(batchInterval = 1000): SourceContext {
  return {
    pipelineId: 'rate-test',
    name: 'input',
    clock: new SystemClock(),
    batchInterval,
    logger: silentLogger,
    signal: new AbortController().signal,
    storedOffsets: async () => [],
    reportBadRecord: (_letter: unknown, error: unknown) => {
      throw error;
    },
    reportOffsetReset: () => {},
    reportRebalance: () => {},
    membership: 'single',
    instanceId: 'test-instance',
  } as unknown as SourceContext;
}

async function open(
  options: Omit<KafkaDirectOptions, 'bootstrapServers'>,
  batchInterval = 1000,
): Promise<KafkaDirectSource> {
  const source = new KafkaDirectSource({ bootstrapServers, ...options });
  sources.push(source);
  await source.open(context(batchInterval));
  return source;
}

function sizes(plan: InputPlan): number[] {
  return plan.offsetRanges.map((r) => r.untilOffset - r.fromOffset);
}

function lags(plan: InputPlan): number[] {
  return (plan.metrics?.lag ?? []).map((l) => l.lag);
}

describe('rate options', () => {
  const cases: Array<[string, Partial<KafkaDirectOptions>, string]> = [
    ['a zero maxRatePerPartition', { maxRatePerPartition: 0 }, 'maxRatePerPartition'],
    ['a negative maxRecordsPerBatch', { maxRecordsPerBatch: -5 }, 'maxRecordsPerBatch'],
    ['a string backpressure', { backpressure: 'on' as never }, 'backpressure'],
    ['a zero initial rate', { backpressure: { initialRate: 0 } }, 'backpressure.initialRate'],
    ['a negative PID gain', { backpressure: { proportional: -1 } }, 'backpressure.proportional'],
    ['an unknown backpressure key', { backpressure: { initalRate: 10 } as never }, 'backpressure.initalRate'],
    ['an unknown offsetOutOfRange policy', { offsetOutOfRange: 'skip' as never }, 'offsetOutOfRange'],
  ];
  for (const [what, options, option] of cases) {
    test(`refuses ${what} with InvalidOptionError naming '${option}'`, () => {
      assert.throws(
        () => new KafkaDirectSource({ topics: ['t'], ...options }),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
      );
    });
  }

  test('describe() shows the rate options and the offsetOutOfRange policy', () => {
    const d = new KafkaDirectSource({
      topics: ['t'],
      maxRatePerPartition: 10,
      backpressure: { initialRate: 5 },
    }).describe();
    assert.equal(d.maxRatePerPartition, 10);
    assert.deepEqual(d.backpressure, { initialRate: 5 });
    assert.equal(d.offsetOutOfRange, 'fail');
    assert.equal(d.maxRecordsPerBatch, undefined);
  });
});

describe('maxRatePerPartition and maxRecordsPerBatch', () => {
  test('maxRatePerPartition=100 with a 1 s interval: every batch takes exactly 100 per partition until the 3000-record backlog is gone', async () => {
    const t = await backlog('per-partition', 1000);
    const source = await open({ topics: [t], startingOffsets: 'earliest', maxRatePerPartition: 100 });
    for (let batch = 1; batch <= 10; batch++) {
      const plan = await source.plan(batch * 1000);
      assert.deepEqual(sizes(plan), [100, 100, 100], `batch ${batch}`);
      assert.deepEqual(
        plan.offsetRanges.map((r) => r.fromOffset),
        [0, 1, 2].map(() => (batch - 1) * 100),
      );
      assert.deepEqual(
        lags(plan),
        [0, 1, 2].map(() => 1000 - batch * 100),
        `the lag shrinks by 100 per partition (batch ${batch})`,
      );
      assert.equal(plan.metrics?.rateLimit, 300, 'records/s over the 3 partitions');
      const records = await source.fetch(plan);
      assert.deepEqual(
        records.map((p) => p.length),
        [100, 100, 100],
      );
      await source.commit(plan);
    }
    const drained = await source.plan(11_000);
    assert.deepEqual(sizes(drained), [0, 0, 0]);
    assert.deepEqual(lags(drained), [0, 0, 0]);
  });

  test('maxRecordsPerBatch caps the whole batch, shared in proportion to each partition lag', async () => {
    const t = await backlog('per-batch', 1000);
    const source = await open({ topics: [t], startingOffsets: 'earliest', maxRecordsPerBatch: 150 });
    const first = await source.plan(1000);
    assert.deepEqual(sizes(first), [50, 50, 50]);
    assert.equal(first.metrics?.rateLimit, 150);
    assert.deepEqual(lags(first), [950, 950, 950]);
    // Unequal lags: partition 0 gets 300 more records.
    await produce(
      bootstrapServers,
      t,
      Array.from({ length: 300 }, (_, i) => ({ value: `extra${i}`, partition: 0 })),
    );
    const second = await source.plan(2000);
    const s = sizes(second);
    assert.equal(s[0]! + s[1]! + s[2]!, 150);
    assert.ok(
      s[0]! > s[1]! && s[1] === s[2],
      `the partition with the most lag takes the most: ${s.join(', ')}`,
    );
    assert.deepEqual(
      (await source.fetch(second)).map((p) => p.length),
      s,
    );
  });

  test('with both caps, the lower one wins', async () => {
    const t = await backlog('both', 200);
    const source = await open(
      { topics: [t], startingOffsets: 'earliest', maxRatePerPartition: 40, maxRecordsPerBatch: 150 },
      1000,
    );
    const plan = await source.plan(1000);
    assert.deepEqual(sizes(plan), [40, 40, 40]);
    assert.equal(plan.metrics?.rateLimit, 120);
  });

  test('the per-partition cap follows the batch interval: 100/s over 500 ms is 50 records', async () => {
    const t = await backlog('interval', 200);
    const source = await open({ topics: [t], startingOffsets: 'earliest', maxRatePerPartition: 100 }, 500);
    assert.deepEqual(sizes(await source.plan(500)), [50, 50, 50]);
  });

  test('without rate options a plan takes everything and reports no rate limit', async () => {
    const t = await backlog('none', 100);
    const source = await open({ topics: [t], startingOffsets: 'earliest' });
    const plan = await source.plan(1000);
    assert.deepEqual(sizes(plan), [100, 100, 100]);
    assert.equal(plan.metrics?.rateLimit, undefined);
    assert.deepEqual(lags(plan), [0, 0, 0]);
    assert.equal(plan.metrics?.recordsLost, 0);
  });
});

describe('backpressure', () => {
  test('initialRate caps the first batches; the estimator, fed by onBatchCompleted, then sets the rate', async () => {
    const t = await backlog('initial', 1000);
    const source = await open({
      topics: [t],
      startingOffsets: 'earliest',
      backpressure: { initialRate: 30 },
    });
    const first = await source.plan(1000);
    assert.deepEqual(sizes(first), [10, 10, 10], '30 records/s over 3 partitions for 1 s');
    assert.equal(first.metrics?.rateLimit, 30);
    await source.fetch(first);
    await source.commit(first);
    // The first measurement only primes the estimator (as Spark's PIDRateEstimator).
    source.onBatchCompleted({ batchTime: 1000, numRecords: 30, processingTime: 100, schedulingDelay: 0 });
    const second = await source.plan(2000);
    assert.deepEqual(sizes(second), [10, 10, 10]);
    await source.fetch(second);
    await source.commit(second);
    // 30 records in 100 ms: processing sustains 300 records/s, and nothing is queued: the rate goes to 300.
    source.onBatchCompleted({ batchTime: 2000, numRecords: 30, processingTime: 100, schedulingDelay: 0 });
    const third = await source.plan(3000);
    assert.equal(third.metrics?.rateLimit, 300);
    assert.deepEqual(sizes(third), [100, 100, 100]);
    assert.deepEqual(lags(third), [880, 880, 880]);
  });

  test('the estimate never goes above maxRatePerPartition, and minRate is its floor', async () => {
    const t = await backlog('bounds', 1000);
    const source = await open({
      topics: [t],
      startingOffsets: 'earliest',
      maxRatePerPartition: 50,
      backpressure: { initialRate: 30, minRate: 6 },
    });
    source.onBatchCompleted({ batchTime: 1000, numRecords: 30, processingTime: 10, schedulingDelay: 0 });
    source.onBatchCompleted({ batchTime: 2000, numRecords: 30, processingTime: 10, schedulingDelay: 0 });
    const fast = await source.plan(3000);
    assert.deepEqual(sizes(fast), [50, 50, 50], 'an estimate of 3000/s is capped at 50 per partition');
    assert.equal(fast.metrics?.rateLimit, 150);
    // A batch that took 100 s for 30 records with a long queue: the estimate falls to minRate.
    source.onBatchCompleted({
      batchTime: 3000,
      numRecords: 30,
      processingTime: 100_000,
      schedulingDelay: 60_000,
    });
    const slow = await source.plan(4000);
    assert.equal(slow.metrics?.rateLimit, 6);
    assert.deepEqual(sizes(slow), [2, 2, 2]);
  });

  test('backpressure: true without initialRate leaves the first batch to maxRatePerPartition', async () => {
    const t = await backlog('no-initial', 300);
    const source = await open({
      topics: [t],
      startingOffsets: 'earliest',
      maxRatePerPartition: 70,
      backpressure: true,
    });
    assert.deepEqual(sizes(await source.plan(1000)), [70, 70, 70]);
  });

  test('initialRate applies again to the first batch after a restart from stored positions', async () => {
    const t = await backlog('restart', 1000);
    const first = await open({ topics: [t], startingOffsets: 'earliest', backpressure: { initialRate: 30 } });
    for (let i = 1; i <= 2; i++) {
      const plan = await first.plan(i * 1000);
      await first.fetch(plan);
      await first.commit(plan);
      first.onBatchCompleted({ batchTime: i * 1000, numRecords: 30, processingTime: 10, schedulingDelay: 0 });
    }
    const fast = await first.plan(3000);
    assert.ok(sizes(fast)[0]! > 10, 'the rate went up before the restart');
    const saved = first.committedPositions();
    await first.close();

    const restarted = new KafkaDirectSource({
      bootstrapServers,
      topics: [t],
      backpressure: { initialRate: 30 },
    });
    sources.push(restarted);
    await restarted.startAt(saved);
    await restarted.open(context());
    const plan = await restarted.plan(4000);
    assert.deepEqual(
      plan.offsetRanges.map((r) => r.fromOffset),
      [20, 20, 20],
    );
    assert.deepEqual(sizes(plan), [10, 10, 10], 'the backlog of 980 per partition does not become one batch');
  });
});

describe('rate control in a StreamingContext', () => {
  test('maxRatePerPartition=100, 1 s interval, 3 partitions x 1000 records: 300 records per batch, 100 per partition range', async () => {
    const t = await backlog('driver', 1000);
    const driver = new TestDriver({ batchInterval: 1000, pipelineId: uniqueName('rate-driver') });
    const stream = createDirectStream(driver.context, {
      name: 'in',
      topics: [t],
      bootstrapServers,
      startingOffsets: 'earliest',
      maxRatePerPartition: 100,
    });
    const out = driver.collect(stream.map((r) => r.value));
    await driver.start();
    try {
      for (let batch = 1; batch <= 10; batch++) {
        const info = await driver.advance();
        assert.equal(info.numRecords, 300, `batch ${batch}`);
        assert.deepEqual(
          info.inputs[0]!.offsetRanges.map((r) => [r.fromOffset, r.untilOffset]),
          [0, 1, 2].map(() => [(batch - 1) * 100, batch * 100]),
        );
        assert.equal(out.last().length, 300);
      }
      assert.equal((await driver.advance()).numRecords, 0, 'the backlog is gone');
    } finally {
      await driver.stop();
    }
  });

  test('BatchInfo.inputs[0].metrics carries the rate limit in force and the lag, which shrinks batch by batch', async () => {
    const t = await backlog('metrics', 1000);
    const driver = new TestDriver({ batchInterval: 1000, pipelineId: uniqueName('rate-metrics') });
    createDirectStream(driver.context, {
      name: 'in',
      topics: [t],
      bootstrapServers,
      startingOffsets: 'earliest',
      maxRatePerPartition: 100,
    }).foreachBatch(() => {});
    const infos: BatchInfo[] = [];
    await driver.start();
    try {
      for (let batch = 1; batch <= 3; batch++) infos.push(await driver.advance());
    } finally {
      await driver.stop();
    }
    for (const [i, info] of infos.entries()) {
      assert.deepEqual(info.inputs[0]!.metrics, {
        rateLimit: 300,
        lag: [0, 1, 2].map((partition) => ({ topic: t, partition, lag: 1000 - (i + 1) * 100 })),
        recordsLost: 0,
      });
    }
  });

  test('backpressure: the engine feeds the estimator; the first batch after each start is capped by initialRate', async () => {
    const t = await backlog('engine', 3000);
    const group = uniqueName('rate-engine');
    // Runs a context until `batches` batches completed (bounded), and returns their infos.
    const run = async (batches: number): Promise<BatchInfo[]> => {
      const ctx = new StreamingContext({ batchInterval: 200, pipelineId: group, logger: silentLogger });
      // maxRatePerPartition bounds what a run can take (200 per partition per batch), so a backlog is left for the restart.
      createDirectStream(ctx, {
        topics: [t],
        bootstrapServers,
        maxRatePerPartition: 1000,
        backpressure: { initialRate: 150 },
      }).foreachBatch(() => {});
      const infos: BatchInfo[] = [];
      let enough!: () => void;
      const done = new Promise<void>((resolve) => (enough = resolve));
      ctx.addListener({
        onBatchCompleted: (info) => {
          infos.push(info);
          if (infos.length >= batches) enough();
        },
        onBatchFailed: () => enough(),
      });
      await ctx.start();
      const timer = setTimeout(enough, 30_000);
      await done;
      clearTimeout(timer);
      await ctx.stop();
      await ctx.awaitTermination();
      return infos;
    };
    // The group starts at the beginning (its commits in Kafka are the default offset store).
    const store = new KafkaOffsetStore({ bootstrapServers });
    try {
      await store.set(
        group,
        [0, 1, 2].map((partition) => ({ topic: t, partition, offset: 0 })),
      );
    } finally {
      await store.close();
    }
    const first = await run(5);
    assert.ok(first.length >= 5, `ran ${first.length} batches`);
    assert.ok(first.every((b) => b.status === 'completed'));
    // 150 records/s over 200 ms: 30 records, 10 per partition.
    assert.equal(first[0]!.numRecords, 30);
    assert.ok(
      first.slice(2).some((b) => b.numRecords !== 30),
      `the estimator moved the rate: ${first.map((b) => b.numRecords).join(', ')}`,
    );
    const again = await run(1);
    assert.equal(again[0]!.numRecords, 30, 'capped again after the restart');
  });
});
