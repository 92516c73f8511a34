import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Batch } from '../../src/core/batch.js';
import { OffsetConflictError, OperatorError, PipelineDefinitionError } from '../../src/core/errors.js';
import { InMemoryLog, InMemoryLogSource, type LogRecord } from '../../src/core/memory-log.js';
import {
  InMemorySink,
  InMemoryTransactionalSink,
  InMemoryTransactionalStore,
} from '../../src/core/memory-sink.js';
import { InMemoryOffsetStore, type OffsetStore } from '../../src/core/offsets.js';
import type { Sink } from '../../src/core/sink.js';
import { QueueSource } from '../../src/core/queue-source.js';
import type { Source } from '../../src/core/source.js';
import { TestDriver } from '../../src/core/testing/driver.js';

const TOPIC = 'orders';

function logWith(values: string[], partitions = 2): InMemoryLog<string> {
  const log = new InMemoryLog<string>();
  log.createTopic(TOPIC, partitions);
  values.forEach((v, i) => log.append(TOPIC, i % partitions, [v]));
  return log;
}

/** A sink that fails its nth write, as a crash in the middle of the output would. */
class FailingSink<T> implements Sink<T> {
  readonly kind: string;
  writes = 0;
  constructor(
    readonly inner: Sink<T>,
    readonly failOnWrite: number,
  ) {
    this.kind = inner.kind;
  }
  get idempotent() {
    return this.inner.idempotent;
  }
  describe() {
    return this.inner.describe();
  }
  open() {
    return Promise.resolve();
  }
  async write(batch: Batch<T>, ctx: Parameters<Sink<T>['write']>[1]) {
    if (++this.writes === this.failOnWrite) throw new Error('crash during the output write');
    await this.inner.write(batch, ctx);
  }
  close() {
    return Promise.resolve();
  }
}

/** Runs one "process": a driver over the log from the stored offsets, `batches` intervals or until a batch fails. */
async function runProcess(
  log: InMemoryLog<string>,
  store: OffsetStore,
  attach: (records: ReturnType<TestDriver['context']['stream']>) => void,
  batches: number,
  maxPerPartition = 2,
): Promise<Error | undefined> {
  const driver = new TestDriver({ batchInterval: 1000, offsetStore: store, pipelineId: 'etl' });
  const source = new InMemoryLogSource(log, { topics: [TOPIC], maxRecordsPerPartition: maxPerPartition });
  attach(driver.context.stream(source, { name: 'orders' }) as never);
  await driver.start();
  try {
    for (let i = 0; i < batches; i++) await driver.advance();
  } catch (e) {
    return e as Error;
  } finally {
    await driver.stop();
  }
  return undefined;
}

describe('delivery guarantees', () => {
  it('defaults to exactly-once for an idempotent output, and saves offsets after it', async () => {
    const log = logWith(['a', 'b', 'c', 'd']);
    const store = new InMemoryOffsetStore();
    const sink = new InMemorySink<string>({ key: (v) => v });
    const driver = new TestDriver({ offsetStore: store, pipelineId: 'p' });
    const s = driver.context.stream(new InMemoryLogSource(log, { topics: [TOPIC] }));
    s.map((r: LogRecord<string>) => r.value).writeTo(sink, { name: 'upsert' });
    assert.deepEqual(driver.context.commitPlan(), {
      offsetStore: 'memory',
      offsets: 'after-outputs',
      outputs: [{ name: 'upsert', guarantee: 'exactly-once', how: 'idempotent writes, then offsets' }],
      transactionalOutputs: [],
    });
    await driver.start();
    await driver.advance();
    await driver.stop();
    assert.deepEqual(sink.records.sort(), ['a', 'b', 'c', 'd']);
    assert.deepEqual(await store.read('p', [TOPIC]), [
      { topic: TOPIC, partition: 0, offset: 2 },
      { topic: TOPIC, partition: 1, offset: 2 },
    ]);
  });

  it('refuses exactly-once for an appending output with a non-transactional store, saying why and what works', async () => {
    const driver = new TestDriver({ offsetStore: new InMemoryOffsetStore() });
    driver.context
      .stream(new InMemoryLogSource(logWith([]), { topics: [TOPIC] }))
      .writeTo(new InMemorySink(), { name: 'append', guarantee: 'exactly-once' });
    await assert.rejects(driver.start(), (e: unknown) => {
      assert.ok(e instanceof PipelineDefinitionError);
      assert.match(e.message, /'append' \(memory\) cannot be exactly-once: it is neither idempotent nor/);
      assert.match(e.message, /idempotent/);
      assert.match(e.message, /at-least-once/);
      return true;
    });
  });

  it('defaults an appending output to at-least-once', () => {
    const driver = new TestDriver({ offsetStore: new InMemoryOffsetStore() });
    driver.context
      .stream(new InMemoryLogSource(logWith([]), { topics: [TOPIC] }))
      .writeTo(new InMemorySink(), { name: 'a' });
    assert.equal(driver.context.commitPlan().outputs[0]!.guarantee, 'at-least-once');
  });

  it('refuses a transactional output whose store is not the offset store, naming both', async () => {
    const driver = new TestDriver({ offsetStore: new InMemoryOffsetStore() });
    const other = new InMemoryTransactionalStore();
    driver.context
      .stream(new InMemoryLogSource(logWith([]), { topics: [TOPIC] }))
      .writeTo(new InMemoryTransactionalSink(other), { name: 'tx', guarantee: 'exactly-once' });
    await assert.rejects(
      driver.start(),
      /commits in a memory-transactional transaction but the offsets are kept in memory[\s\S]*offsetStore/,
    );
  });

  it('runs every transactional output in one transaction with the offsets; a failure in the second undoes the first', async () => {
    const store = new InMemoryTransactionalStore();
    const one = new InMemoryTransactionalSink<LogRecord<string>>(store);
    let failTwo = true;
    const twoInner = new InMemoryTransactionalSink<LogRecord<string>>(store);
    const two = Object.assign(Object.create(twoInner), {
      writeInTransaction: async (tx: any, b: any) => {
        if (failTwo) throw new Error('second output failed');
        await twoInner.writeInTransaction(tx, b);
      },
    });
    const log = logWith(['a', 'b']);
    const attach = (s: any) => {
      s.writeTo(one, { name: 'one' });
      s.writeTo(two, { name: 'two' });
    };
    assert.ok(await runProcess(log, store, attach, 1));
    assert.deepEqual(one.records, []);
    assert.deepEqual(await store.read('etl', [TOPIC]), []);
    failTwo = false;
    assert.equal(await runProcess(log, store, attach, 1), undefined);
    assert.equal(one.records.length, 2);
    assert.equal(twoInner.records.length, 2);
    assert.equal((await store.read('etl', [TOPIC])).length, 2);
  });

  it('refuses mixing at-most-once with another guarantee in one pipeline', async () => {
    const driver = new TestDriver({ offsetStore: new InMemoryOffsetStore() });
    const s = driver.context.stream(new InMemoryLogSource(logWith([]), { topics: [TOPIC] }));
    s.writeTo(new InMemorySink(), { name: 'fast', guarantee: 'at-most-once' });
    s.writeTo(new InMemorySink(), { name: 'safe', guarantee: 'at-least-once' });
    await assert.rejects(driver.start(), /'fast' is at-most-once but 'safe' is not/);
  });

  it('refuses at-least-once from an input that cannot be replayed', async () => {
    const driver = new TestDriver();
    driver.input<string>({ replayable: false, name: 'socket-like' }).stream.writeTo(new InMemorySink(), {
      guarantee: 'at-least-once',
    });
    await assert.rejects(driver.start(), /input 'socket-like' cannot be read again after a crash/);
  });

  it('refuses exactly-once through a transaction for an input that saves its own position after the batch', async () => {
    const store = new InMemoryTransactionalStore();
    const driver = new TestDriver({ offsetStore: store });
    const queue = new QueueSource<string>();
    // A replayable input without offsets that records its position in commit(), as a directory does.
    const readSet = Object.assign(queue, { commit: async () => {} });
    driver.context
      .stream(readSet, { name: 'files' })
      .writeTo(new InMemoryTransactionalSink<string>(store), { name: 'rows', guarantee: 'exactly-once' });
    await assert.rejects(driver.start(), (e: unknown) => {
      assert.ok(e instanceof PipelineDefinitionError);
      assert.match(
        e.message,
        /'rows' \(memory\) cannot be exactly-once: input 'files' keeps its position outside/,
      );
      return true;
    });
  });

  it('allows exactly-once through an idempotent output for an input that saves its own position', async () => {
    const driver = new TestDriver({ offsetStore: new InMemoryOffsetStore() });
    const readSet = Object.assign(new QueueSource<string>(), { commit: async () => {} });
    driver.context
      .stream(readSet, { name: 'files' })
      .writeTo(new InMemorySink<string>({ key: (v) => v }), { name: 'rows', guarantee: 'exactly-once' });
    await driver.start();
    assert.equal(driver.context.commitPlan().outputs[0]!.guarantee, 'exactly-once');
    await driver.stop();
  });

  it('commits the transactional output and the offsets together; a failure in it leaves neither', async () => {
    const log = logWith(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
    const store = new InMemoryTransactionalStore();
    const sink = new InMemoryTransactionalSink<string>(store);
    const err = await runProcess(
      log,
      store,
      (s) =>
        (s as any)
          .map((r: LogRecord<string>) => {
            if (r.value === 'c') throw new Error('bad record');
            return r.value;
          })
          .writeTo(sink),
      3,
      1,
    );
    assert.ok(err instanceof OperatorError);
    assert.deepEqual(sink.records.sort(), ['a', 'b']);
    assert.deepEqual(await store.read('etl', [TOPIC]), [
      { topic: TOPIC, partition: 0, offset: 1 },
      { topic: TOPIC, partition: 1, offset: 1 },
    ]);
  });

  it('exactly-once through a transactional output survives crashes mid-write: no loss, no duplicate', async () => {
    const values = Array.from({ length: 40 }, (_, i) => `r${i}`);
    const log = logWith(values, 3);
    const store = new InMemoryTransactionalStore();
    const sink = new InMemoryTransactionalSink<string>(store);
    let restarts = 0;
    for (let attempt = 0; attempt < 50; attempt++) {
      let n = 0;
      const err = await runProcess(
        log,
        store,
        (s) =>
          (s as any).writeTo({
            ...Object.create(null),
            kind: sink.kind,
            idempotent: false,
            store,
            describe: () => ({}),
            open: async () => {},
            close: async () => {},
            write: (b: any, c: any) => sink.write(b, c),
            writeInTransaction: async (tx: any, b: Batch<LogRecord<string>>) => {
              await sink.writeInTransaction(
                tx,
                b.map((r) => r.value),
              );
              if (++n === 2 + (attempt % 3)) throw new Error('crash between output and offsets');
            },
          }),
        10,
      );
      if (!err) break;
      restarts++;
    }
    assert.ok(restarts >= 3, `crashed ${restarts} times`);
    assert.deepEqual(sink.records.sort(), [...values].sort());
  });

  it('at-least-once duplicates after a crash between output and offsets but loses nothing', async () => {
    const values = Array.from({ length: 12 }, (_, i) => `r${i}`);
    const log = logWith(values, 2);
    const store = new InMemoryOffsetStore();
    const sink = new InMemorySink<string>();
    // Crashes after its 2nd write succeeded but before the offsets were saved.
    let writes = 0;
    const crashAfterWrite: Sink<LogRecord<string>> = {
      kind: 'memory',
      idempotent: false,
      describe: () => ({}),
      open: async () => {},
      close: async () => {},
      write: async (b, c) => {
        await sink.write(
          b.map((r) => r.value),
          c,
        );
        if (++writes === 2) throw new Error('crash after write');
      },
    };
    assert.ok(
      await runProcess(
        log,
        store,
        (s) => (s as any).writeTo(crashAfterWrite, { guarantee: 'at-least-once' }),
        10,
      ),
    );
    await runProcess(
      log,
      store,
      (s) => (s as any).writeTo(crashAfterWrite, { guarantee: 'at-least-once' }),
      10,
    );
    const got = sink.records;
    assert.deepEqual([...new Set(got)].sort(), [...values].sort(), 'nothing lost');
    assert.ok(got.length > values.length, 'some records written twice');
  });

  it('at-most-once loses the batch of a crash but never duplicates', async () => {
    const values = Array.from({ length: 12 }, (_, i) => `r${i}`);
    const log = logWith(values, 2);
    const store = new InMemoryOffsetStore();
    const sink = new InMemorySink<string>();
    const failing = new FailingSink<string>(sink, 2);
    const attach = (s: any) =>
      s.map((r: LogRecord<string>) => r.value).writeTo(failing, { guarantee: 'at-most-once' });
    assert.ok(await runProcess(log, store, attach, 10));
    await runProcess(log, store, attach, 10);
    const got = sink.records;
    assert.equal(new Set(got).size, got.length, 'no duplicates');
    assert.ok(got.length < values.length, 'the crashed batch is lost');
  });

  it('a second instance committing the same batch fails with OffsetConflictError and its rows are rolled back', async () => {
    const log = logWith(['a', 'b']);
    const store = new InMemoryTransactionalStore();
    const sink = new InMemoryTransactionalSink<string>(store);
    const attach = (s: any) => s.map((r: LogRecord<string>) => r.value).writeTo(sink);
    // Both instances start from the same (absent) offsets; the zombie commits last.
    const a = new TestDriver({ offsetStore: store, pipelineId: 'etl' });
    const b = new TestDriver({ offsetStore: store, pipelineId: 'etl' });
    for (const d of [a, b]) attach(d.context.stream(new InMemoryLogSource(log, { topics: [TOPIC] })));
    await a.start();
    await b.start();
    await a.advance();
    await assert.rejects(b.advance(), OffsetConflictError);
    await a.stop();
    await b.stop();
    assert.deepEqual(sink.records.sort(), ['a', 'b']);
  });

  it('resumes from the stored offsets after a restart', async () => {
    const log = logWith(['a', 'b', 'c', 'd']);
    const store = new InMemoryOffsetStore();
    const sink = new InMemorySink<string>({ key: (v) => v });
    const attach = (s: any) => s.map((r: LogRecord<string>) => r.value).writeTo(sink);
    await runProcess(log, store, attach, 1, 1);
    assert.deepEqual(sink.records.sort(), ['a', 'b']);
    log.append(TOPIC, 0, ['e']);
    const seen: string[] = [];
    await runProcess(
      log,
      store,
      (s: any) =>
        s
          .map((r: LogRecord<string>) => r.value)
          .foreachBatch((b: Batch<string>) => void seen.push(...b.collect())),
      5,
    );
    assert.deepEqual(seen.sort(), ['c', 'd', 'e']);
  });

  it('foreachBatch with a transaction runs inside the offset store’s transaction', async () => {
    const log = logWith(['a', 'b', 'c']);
    const store = new InMemoryTransactionalStore();
    const staged: string[] = [];
    const driver = new TestDriver({ offsetStore: store, pipelineId: 'p' });
    driver.context.stream(new InMemoryLogSource(log, { topics: [TOPIC] })).foreachBatch(
      (b, ctx) => {
        ctx.transaction.stage(() => staged.push(...b.collect().map((r) => r.value)));
      },
      { transaction: store, name: 'custom' },
    );
    assert.equal(driver.context.commitPlan().outputs[0]!.guarantee, 'exactly-once');
    assert.equal(driver.context.commitPlan().offsets, 'in-transaction');
    await driver.start();
    await driver.advance();
    await driver.stop();
    assert.deepEqual(staged.sort(), ['a', 'b', 'c']);
    assert.equal((await store.read('p', [TOPIC])).length, 2);
  });
});

describe('offset resets', () => {
  it('a batch that starts at a reset position commits with a compare-and-set store (the store is moved first)', async () => {
    const store = new InMemoryOffsetStore();
    await store.set('p', [{ topic: 't', partition: 0, offset: 3 }]);
    let report!: (e: Parameters<Parameters<Source<number>['open']>[0]['reportOffsetReset']>[0]) => void;
    let from = 3;
    const source: Source<number> = {
      kind: 'resetting',
      replayable: true,
      offsetGroup: (id) => id,
      describe: () => ({}),
      open: async (ctx) => {
        report = ctx.reportOffsetReset;
      },
      plan: async () => {
        if (from === 3) {
          // Offsets 3-9 were deleted by retention: the source moves to the log start.
          report({
            topic: 't',
            partition: 0,
            storedOffset: 3,
            logStartOffset: 10,
            endOffset: 12,
            resetTo: 10,
            policy: 'earliest',
            recordsLost: 7,
          });
          from = 10;
        }
        const r = { topic: 't', partition: 0, fromOffset: from, untilOffset: 12 };
        from = 12;
        return { offsetRanges: [r], metrics: { recordsLost: 7 } };
      },
      fetch: async () => [[10, 11]],
      close: async () => {},
    };
    const resets: unknown[] = [];
    const driver = new TestDriver({ offsetStore: store, pipelineId: 'p' });
    driver.context.addListener({ onOffsetReset: (e) => void resets.push(e) });
    driver.collect(driver.context.stream(source, { name: 'in' }));
    await driver.start();
    const info = await driver.advance();
    await driver.stop();
    assert.equal(info.status, 'completed');
    assert.deepEqual(await store.read('p', ['t']), [{ topic: 't', partition: 0, offset: 12 }]);
    assert.equal(resets.length, 1);
    assert.equal(info.inputs[0]!.metrics?.recordsLost, 7);
  });
});
