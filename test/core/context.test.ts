import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../../src/core/clock.js';
import type { BatchInfo } from '../../src/core/batch-protocol.js';
import { StreamingContext } from '../../src/core/context.js';
import {
  ContextStateError,
  InvalidOptionError,
  PipelineDefinitionError,
  SourceError,
} from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { QueueSource, queueStream } from '../../src/core/queue-source.js';
import type { InputPlan, Source } from '../../src/core/source.js';
import { TestDriver } from '../../src/core/testing/driver.js';

/** Resolves on the next macrotask, after pending promise work has run. */
const tick = () => new Promise((r) => setImmediate(r));

function manualContext(batchInterval = 1000) {
  const clock = new ManualClock(0);
  const ctx = new StreamingContext({ batchInterval, clock, logger: silentLogger });
  const done: BatchInfo[] = [];
  ctx.addListener({ onBatchCompleted: (i) => done.push(i), onBatchFailed: (i) => done.push(i) });
  return { clock, ctx, done };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('StreamingContext', () => {
  it('rejects a batch interval that is not a positive whole number, naming the option', () => {
    for (const bad of [0, -5, 1.5, Number.NaN, '1000']) {
      assert.throws(
        () => new StreamingContext({ batchInterval: bad as number }),
        (e: unknown) =>
          e instanceof InvalidOptionError && e.option === 'batchInterval' && /> 0/.test(e.message),
      );
    }
  });

  it('rejects an invalid pipeline id before anything starts', () => {
    assert.throws(
      () => new StreamingContext({ batchInterval: 1000, pipelineId: 'has space' }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'pipelineId',
    );
  });

  it('refuses to start a pipeline without an output operation', async () => {
    const { ctx } = manualContext();
    queueStream<number>(ctx).map((x) => x);
    await assert.rejects(ctx.start(), PipelineDefinitionError);
  });

  it('refuses new operators after start', async () => {
    const { ctx } = manualContext();
    const s = queueStream<number>(ctx);
    s.foreachBatch(() => {});
    await ctx.start();
    assert.throws(() => s.map((x) => x), ContextStateError);
    await ctx.stop();
  });

  it('runs one batch per interval at multiples of the interval after start', async () => {
    const { clock, ctx, done } = manualContext(1000);
    clock.setTime(2500);
    queueStream<number>(ctx).foreachBatch(() => {});
    await ctx.start();
    clock.setTime(2999);
    await tick();
    assert.equal(done.length, 0);
    clock.setTime(3000);
    await until(() => done.length === 1, 'first batch');
    clock.setTime(4000);
    await until(() => done.length === 2, 'second batch');
    assert.deepEqual(
      done.map((b) => b.batchTime),
      [3000, 4000],
    );
    await ctx.stop();
  });

  it('never overlaps batches: a long batch delays the next, whose scheduling delay records it', async () => {
    const { clock, ctx, done } = manualContext(1000);
    const queue = new QueueSource<number>();
    let running = 0;
    let maxRunning = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    queueStream(ctx, queue).foreachBatch(async (_b, info) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      if (info.time === 1000) {
        clock.setTime(3500); // the first batch takes 2.5 intervals
        await gate;
      }
      running--;
    });
    queue.push([1, 2, 3]);
    await ctx.start();
    clock.setTime(1000);
    await tick();
    release();
    await until(() => done.length === 3, 'three batches');
    await ctx.stop();
    assert.equal(maxRunning, 1);
    assert.deepEqual(
      done.map((b) => [b.batchTime, b.processingStartTime, b.schedulingDelay]),
      [
        [1000, 1000, 0],
        [2000, 3500, 1500],
        [3000, 3500, 500],
      ],
    );
    assert.equal(done[0]!.processingTime, 2500);
    assert.equal(done[0]!.numRecords, 3);
    assert.equal(done[1]!.numRecords, 0);
  });

  it('a graceful stop finishes the running batch, and its source commits it', async () => {
    const committed: number[] = [];
    const source = new QueueSource<number>();
    const recording: Source<number> = {
      kind: 'recording',
      describe: () => ({}),
      open: () => source.open(),
      plan: () => source.plan(),
      fetch: (p) => source.fetch(p),
      commit: async (p: InputPlan) => {
        committed.push((p.detail as number[]).length);
      },
      close: () => source.close(),
    };
    const { clock, ctx, done } = manualContext();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = false;
    ctx.stream(recording).foreachBatch(async () => {
      started = true;
      await gate;
    });
    source.push([1, 2]);
    await ctx.start();
    clock.setTime(1000);
    await until(() => started, 'batch start');
    const stopped = ctx.stop({ graceful: true });
    await tick();
    assert.equal(ctx.state, 'stopping');
    release();
    await stopped;
    assert.equal(ctx.state, 'stopped');
    assert.equal(done.length, 1);
    assert.equal(done[0]!.status, 'completed');
    assert.deepEqual(committed, [2]);
    await ctx.awaitTermination();
  });

  it('a failing source fails the batch without committing it and stops the context', async () => {
    let commits = 0;
    const failing: Source<number> = {
      kind: 'failing',
      describe: () => ({}),
      open: async () => {},
      plan: async () => ({ offsetRanges: [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: 5 }] }),
      fetch: async () => {
        throw new SourceError('failing', 'read failed', 'retry later');
      },
      commit: async () => {
        commits++;
      },
      close: async () => {},
    };
    const { clock, ctx, done } = manualContext();
    ctx.stream(failing).foreachBatch(() => {});
    await ctx.start();
    clock.setTime(1000);
    await assert.rejects(ctx.awaitTermination(), SourceError);
    assert.equal(commits, 0);
    assert.equal(done[0]!.status, 'failed');
    assert.equal(ctx.state, 'stopped');
  });

  it('a source that cannot open makes start() reject and closes the sources already opened', async () => {
    let closed = 0;
    const ok = new QueueSource<number>();
    const okSource: Source<number> = { ...bind(ok), close: async () => void closed++ };
    const bad: Source<number> = {
      ...bind(new QueueSource<number>()),
      open: async () => {
        throw new SourceError('bad', 'cannot connect', 'start the server');
      },
    };
    const { ctx } = manualContext();
    const stopped: unknown[] = [];
    ctx.addListener({ onContextStopped: (e) => void stopped.push(e) });
    ctx
      .stream(okSource)
      .union(ctx.stream(bad))
      .foreachBatch(() => {});
    await assert.rejects(ctx.start(), SourceError);
    assert.equal(closed, 1);
    assert.equal(stopped.length, 1, 'listeners hear that the context stopped, with the error');
    assert.ok(stopped[0] instanceof SourceError);
    assert.equal(ctx.state, 'stopped');
  });

  it('foreachBatch sees the offset ranges of the inputs its stream comes from', async () => {
    const ranged: Source<string> = {
      kind: 'ranged',
      describe: () => ({}),
      open: async () => {},
      plan: async (t) => ({
        offsetRanges: [{ topic: 'orders', partition: 0, fromOffset: t, untilOffset: t + 2 }],
      }),
      fetch: async () => [['x', 'y']],
      close: async () => {},
    };
    const { clock, ctx, done } = manualContext();
    const seen: unknown[] = [];
    const a = ctx.stream(ranged, { name: 'orders' });
    const b = queueStream<string>(ctx, {}, { name: 'other' });
    a.map((x) => x.toUpperCase()).foreachBatch((_b, info) => void seen.push(info.offsetRanges));
    b.foreachBatch((_b, info) => void seen.push(info.offsetRanges));
    await ctx.start();
    clock.setTime(1000);
    await until(() => done.length === 1, 'batch');
    await ctx.stop();
    assert.deepEqual(seen, [[{ topic: 'orders', partition: 0, fromOffset: 1000, untilOffset: 1002 }], []]);
    assert.deepEqual(
      done[0]!.inputs.map((i) => [i.name, i.numRecords]),
      [
        ['orders', 2],
        ['other', 0],
      ],
    );
  });

  it('describe shows every operator with its derived or given name, as text and JSON', () => {
    const { ctx } = manualContext();
    const lines = queueStream<string>(ctx, {}, { name: 'lines' });
    lines
      .flatMap((l) => l.split(' '))
      .mapToPair((w) => [w, 1])
      .reduceByKey((a, b) => a + b, { name: 'counts', numPartitions: 2 })
      .print(5);
    const text = ctx.describe();
    assert.match(text, /lines\s+queue/);
    assert.match(text, /flatMap-1\s+flatMap\s+<- lines/);
    assert.match(text, /counts\s+reduceByKey\s+<- mapToPair-1 \{"numPartitions":2\}/);
    assert.match(text, /print-1\s+print\s+<- counts \{"num":5\}\s+\[output\]/);
    const plan = JSON.parse(ctx.describe('json'));
    assert.equal(plan.batchInterval, 1000);
    assert.deepEqual(
      plan.nodes.map((n: { name: string }) => n.name),
      ['lines', 'flatMap-1', 'mapToPair-1', 'counts', 'print-1'],
    );
    assert.equal(ctx.plan().fingerprint, plan.fingerprint);
  });

  it('the plan fingerprint changes when the pipeline shape changes and not otherwise', () => {
    const build = (extra: boolean) => {
      const driver = new TestDriver();
      const s = driver.input<number>({ name: 'n' }).stream.map((x) => x + 1);
      (extra ? s.filter((x) => x > 0) : s).print();
      return driver.context.plan().fingerprint;
    };
    assert.equal(build(false), build(false));
    assert.notEqual(build(false), build(true));
  });

  it('stops gracefully on SIGTERM when asked to, finishing the running batch', async () => {
    const script = fileURLToPath(new URL('./fixtures/signal-job.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    for (let i = 0; i < 300 && !out.includes('batch-started'); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /batch-started/, 'the child started a batch within 15 s');
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    assert.match(out, /batch-started[\s\S]*batch-finished[\s\S]*terminated cleanly/);
  });
});

function bind<T>(q: QueueSource<T>): Source<T> {
  return {
    kind: q.kind,
    describe: () => q.describe(),
    open: () => q.open(),
    plan: () => q.plan(),
    fetch: (p) => q.fetch(p),
    close: () => q.close(),
  };
}
