import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemoryCheckpointStore } from '../../src/core/state.js';
import { StreamingContext } from '../../src/core/context.js';
import { queueStream } from '../../src/core/queue-source.js';
import type { DStream } from '../../src/core/dstream.js';
import { CheckpointIncompatibleError, PipelineDefinitionError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { InMemoryLog, InMemoryLogSource, type LogRecord } from '../../src/core/memory-log.js';
import { InMemoryOffsetStore } from '../../src/core/offsets.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { InMemoryTransactionalSink, InMemoryTransactionalStore } from '../../src/core/memory-sink.js';
import { stateStoreConformance } from '../conformance/state-store.js';
import { advanceBatches } from '../helpers/driver.js';
import type { StateStore } from '../../src/core/state.js';

// The conformance suites open "new instances on the same place": views of one shared store.
const checkpointShared = new InMemoryCheckpointStore();
const transactionalShared = new InMemoryTransactionalStore();
function shared<S extends StateStore>(s: S): S {
  return new Proxy(s, {
    get: (t, p) => {
      if (p === 'close') return async () => {};
      const v = Reflect.get(t, p) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

const TOPIC = 'words';
const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

function wordLog(batches: string[][]): InMemoryLog<string> {
  const log = new InMemoryLog<string>();
  log.createTopic(TOPIC, 1);
  for (const b of batches) log.append(TOPIC, 0, b);
  return log;
}

type Build = (words: DStream<string>) => DStream<[string, number]>;
const runningCount: Build = (words) =>
  words
    .mapToPair((w) => [w, 1])
    .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'counts' });

/** One "process": resumes from `store`, runs `batches` intervals reading `perBatch` records each, returns the last state. */
async function runProcess(
  log: InMemoryLog<string>,
  store: InMemoryCheckpointStore,
  batches: number,
  opts: { perBatch?: number; build?: Build; failAtBatch?: number; fullEvery?: number } = {},
): Promise<{ last: [string, number][]; error?: Error }> {
  const driver = new TestDriver({ checkpoint: store, pipelineId: 'wc', checkpointFullEvery: opts.fullEvery });
  const words = driver.context
    .stream(new InMemoryLogSource(log, { topics: [TOPIC], maxRecordsPerPartition: opts.perBatch ?? 2 }), {
      name: 'words',
    })
    .map((r: LogRecord<string>) => r.value, { name: 'values' });
  let n = 0;
  const counts = (opts.build ?? runningCount)(words);
  const out = driver.collect(
    counts.transform((b) => {
      if (++n === opts.failAtBatch) throw new Error('crash in the output');
      return b;
    }),
    { name: 'out' },
  );
  await driver.start();
  const error = await advanceBatches(driver, batches);
  await driver.stop();
  return { last: sorted(out.last()), error };
}

describe('checkpoints', () => {
  it('a restarted pipeline continues its running counts from the checkpoint, nothing counted twice', async () => {
    const log = wordLog([
      ['a', 'b'],
      ['a', 'c'],
      ['a', 'b'],
    ]);
    const store = new InMemoryCheckpointStore();
    assert.deepEqual((await runProcess(log, store, 2)).last, [
      ['a', 2],
      ['b', 1],
      ['c', 1],
    ]);
    assert.deepEqual((await runProcess(log, store, 1)).last, [
      ['a', 3],
      ['b', 2],
      ['c', 1],
    ]);
  });

  it('a batch that fails is replayed after the restart and counted once', async () => {
    const log = wordLog([
      ['a', 'b'],
      ['a', 'c'],
      ['a', 'b'],
    ]);
    const store = new InMemoryCheckpointStore();
    const crashed = await runProcess(log, store, 3, { failAtBatch: 2 });
    assert.ok(crashed.error);
    assert.deepEqual((await runProcess(log, store, 2)).last, [
      ['a', 3],
      ['b', 2],
      ['c', 1],
    ]);
  });

  it('state written as deltas between full snapshots restores to the same state', async () => {
    const batches = Array.from({ length: 9 }, (_, i) => [`k${i % 4}`, `k${(i * 3) % 5}`]);
    const log = wordLog(batches);
    const store = new InMemoryCheckpointStore();
    // fullEvery 4 with 5 batches: full, delta, delta, delta, full... then a crash loses nothing.
    await runProcess(log, store, 5, { fullEvery: 4, failAtBatch: 6 });
    assert.equal((await store.loadCheckpoint('wc'))!.meta.batchTime, 5000);
    const resumed = await runProcess(log, store, 4, { fullEvery: 4 });
    const expected = new Map<string, number>();
    for (const w of batches.flat()) expected.set(w, (expected.get(w) ?? 0) + 1);
    assert.deepEqual(resumed.last, sorted([...expected]));
  });

  it('keeps deltas between full snapshots and compacts on a graceful stop', async () => {
    const log = wordLog(Array.from({ length: 6 }, (_, i) => [`w${i}`]));
    const store = new InMemoryCheckpointStore();
    const driver = new TestDriver({ checkpoint: store, pipelineId: 'wc', checkpointFullEvery: 10 });
    const words = driver.context.stream(
      new InMemoryLogSource(log, { topics: [TOPIC], maxRecordsPerPartition: 1 }),
    );
    driver.collect(runningCount(words.map((r: LogRecord<string>) => r.value)));
    await driver.start();
    await driver.advance(4);
    const mid = (await store.loadCheckpoint('wc'))!;
    assert.equal(mid.state.get('counts')!.deltas.length, 3, 'one full snapshot, then three deltas');
    assert.equal(mid.meta.batchTime, 4000);
    await driver.stop();
    const after = (await store.loadCheckpoint('wc'))!;
    assert.equal(after.state.get('counts')!.deltas.length, 0, 'the final checkpoint is full');
    assert.deepEqual(after.meta.operators, [{ name: 'counts', kind: 'updateStateByKey' }]);
  });

  it('a pipeline that keeps its stateful operator names resumes even if other operators changed', async () => {
    const log = wordLog([['a'], ['a'], ['b']]);
    const store = new InMemoryCheckpointStore();
    await runProcess(log, store, 2);
    const changed: Build = (words) =>
      runningCount(words.filter((w) => w.length > 0).map((w) => w.toLowerCase()));
    assert.deepEqual((await runProcess(log, store, 1, { build: changed })).last, [
      ['a', 2],
      ['b', 1],
    ]);
  });

  it('a renamed stateful operator stops the start with the differences and the ways forward', async () => {
    const log = wordLog([['a']]);
    const store = new InMemoryCheckpointStore();
    await runProcess(log, store, 1);
    const renamed: Build = (words) =>
      words
        .mapToPair((w) => [w, 1])
        .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'totals' });
    await assert.rejects(runProcess(log, store, 1, { build: renamed }), (e: unknown) => {
      assert.ok(e instanceof CheckpointIncompatibleError);
      assert.deepEqual(
        e.differences.map((d) => [d.operator, d.change]),
        [['counts', 'removed-or-renamed']],
      );
      assert.match(e.message, /sluice checkpoint migrate .* --drop counts/);
      assert.match(e.message, /start fresh/);
      return true;
    });
  });

  it('a stateful operator whose kind changed is refused', async () => {
    const log = wordLog([['a']]);
    const store = new InMemoryCheckpointStore();
    await runProcess(log, store, 1);
    const asWindow: Build = (words) => words.mapToPair((w) => [w, 1]).window(2000, { name: 'counts' });
    await assert.rejects(
      runProcess(log, store, 1, { build: asWindow }),
      /'counts' was updateStateByKey, is now window/,
    );
  });

  it('refuses stateful operators without a checkpoint', async () => {
    const ctx = new StreamingContext({ batchInterval: 1000, logger: silentLogger });
    queueStream<[string, number]>(ctx)
      .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length)
      .print();
    await assert.rejects(
      ctx.start(),
      (e: unknown) => e instanceof PipelineDefinitionError && /no checkpoint/.test(e.message),
    );
  });

  it('refuses offsets kept apart from the state', async () => {
    const driver = new TestDriver({
      checkpoint: new InMemoryCheckpointStore(),
      offsetStore: new InMemoryOffsetStore(),
    });
    runningCount(
      driver.context
        .stream(new InMemoryLogSource(wordLog([]), { topics: [TOPIC] }))
        .map((r: LogRecord<string>) => r.value),
    ).print();
    await assert.rejects(driver.start(), /State and offsets must commit together/);
  });
});

describe('checkpoints of windows', () => {
  const windowed: Build = (words) =>
    words
      .mapToPair((w) => [w, 1])
      .reduceByKeyAndWindow((a, b) => a + b, 3000, { inverse: (a, b) => a - b, name: 'win' });
  const plainWindow: Build = (words) =>
    words
      .mapToPair((w) => [w, 1])
      .window(3000, { name: 'win' })
      .reduceByKey((a, b) => a + b);
  const input = [['a'], ['a', 'b'], ['b'], ['c'], ['a'], ['c', 'c']];

  for (const [label, build] of [
    ['reduceByKeyAndWindow with inverse', windowed],
    ['window', plainWindow],
  ] as const) {
    it(`${label}: a crash and restart from deltas gives the same windows as an uninterrupted run`, async () => {
      const straight = await runProcess(wordLog(input), new InMemoryCheckpointStore(), 6, {
        perBatch: 1,
        build,
      });
      const log = wordLog(input);
      const store = new InMemoryCheckpointStore();
      // Batches 1-3 commit (one full, then deltas); batch 4 crashes in the output and is redone.
      const crashed = await runProcess(log, store, 6, { perBatch: 1, build, failAtBatch: 4, fullEvery: 10 });
      assert.ok(crashed.error);
      assert.equal((await store.loadCheckpoint('wc'))!.state.get('win')!.deltas.length, 2);
      const resumed = await runProcess(log, store, 3, { perBatch: 1, build });
      assert.deepEqual(resumed.last, straight.last);
    });
  }

  it('the restarted pipeline continues with the batch after the checkpoint', async () => {
    const log = wordLog([['a'], ['b'], ['c']]);
    const store = new InMemoryCheckpointStore();
    await runProcess(log, store, 2, { perBatch: 1 });
    const driver = new TestDriver({ checkpoint: store, pipelineId: 'wc' });
    const times: number[] = [];
    runningCount(
      driver.context
        .stream(new InMemoryLogSource(log, { topics: [TOPIC], maxRecordsPerPartition: 1 }))
        .map((r: LogRecord<string>) => r.value),
    ).foreachBatch((_b, ctx) => void times.push(ctx.time));
    await driver.start();
    await driver.advance();
    await driver.stop();
    assert.deepEqual(times, [3000]);
  });
});

describe('state in the output’s transaction', () => {
  it('rows, offsets and state commit in one transaction: a crash inside it leaves none, the restart counts once', async () => {
    const log = wordLog([['a'], ['a', 'b'], ['b']]);
    const store = new InMemoryTransactionalStore();
    const sink = new InMemoryTransactionalSink<[string, number]>(store, { key: ([w]) => w });
    const run = async (crashAt?: number) => {
      const driver = new TestDriver({ checkpoint: store, pipelineId: 'wc' });
      let n = 0;
      const counts = runningCount(
        driver.context
          .stream(new InMemoryLogSource(log, { topics: [TOPIC], maxRecordsPerPartition: 2 }))
          .map((r: LogRecord<string>) => r.value),
      );
      counts.writeTo({
        ...Object.create(null),
        kind: 'memory',
        idempotent: false,
        store,
        describe: () => ({}),
        open: async () => {},
        close: async () => {},
        write: (b: any, c: any) => sink.write(b, c),
        writeInTransaction: async (tx: any, b: any) => {
          await sink.writeInTransaction(tx, b);
          if (++n === crashAt) throw new Error('crash inside the transaction');
        },
      } as any);
      assert.equal(driver.context.commitPlan().offsets, 'in-transaction');
      await driver.start();
      let error: unknown;
      try {
        await driver.advance(2);
      } catch (e) {
        error = e;
      }
      await driver.stop();
      return error;
    };
    assert.ok(await run(2)); // batch 1 commits ['a','a'], batch 2 (['b']) crashes inside the transaction
    assert.deepEqual(sorted(sink.records), [['a', 2]]);
    assert.equal((await store.loadCheckpoint('wc'))!.meta.batchTime, 1000);
    assert.equal(await run(), undefined);
    assert.deepEqual(sorted(sink.records), [
      ['a', 2],
      ['b', 2],
    ]);
  });
});

stateStoreConformance('InMemoryCheckpointStore', () => shared(checkpointShared));
stateStoreConformance('InMemoryTransactionalStore', () => shared(transactionalShared));
