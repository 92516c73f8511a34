import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Batch } from '../../src/core/batch.js';
import type { OperatorState } from '../../src/core/state.js';
import type { DStream } from '../../src/core/dstream.js';
import { InMemoryLog, InMemoryLogSource, type LogRecord } from '../../src/core/memory-log.js';
import type { TransactionalSink } from '../../src/core/sink.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { advanceBatches } from '../helpers/driver.js';
import type { Sink, SqlFixture, Store } from './fixture.js';

const TOPIC = 'words';
// Two partitions of ten words; two records per partition per batch: five batches of four words.
const PARTITIONS = [
  ['a', 'b', 'a', 'c', 'b', 'a', 'd', 'a', 'c', 'b'],
  ['b', 'b', 'c', 'a', 'e', 'a', 'b', 'c', 'd', 'd'],
];
const PER_BATCH = 2;
const BATCHES = 5;

function wordLog(): InMemoryLog<string> {
  const log = new InMemoryLog<string>();
  log.createTopic(TOPIC, PARTITIONS.length);
  PARTITIONS.forEach((words, p) => log.append(TOPIC, p, words));
  return log;
}

/** The words of batches 1..n (batch i reads records [2(i-1), 2i) of each partition). */
const wordsUpTo = (n: number) => PARTITIONS.flatMap((words) => words.slice(0, n * PER_BATCH));
function countsOf(words: string[]): [string, number][] {
  const m = new Map<string, number>();
  for (const w of words) m.set(w, (m.get(w) ?? 0) + 1);
  return [...m].sort(([a], [b]) => (a < b ? -1 : 1));
}
/** Each batch up to n writes every key's running count, at its batch time. */
const historyUpTo = (n: number) =>
  Array.from({ length: n }, (_, i) => countsOf(wordsUpTo(i + 1)).map(([w, c]) => [(i + 1) * 1000, w, c]))
    .flat()
    .sort(byJson);
function byJson(a: unknown, b: unknown): number {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The keyed state a checkpoint restores to: the full snapshot of [key, value] pairs, then each delta. */
function restored(stored: OperatorState | undefined): [string, number][] {
  const m = new Map((stored?.full ?? []) as [string, number][]);
  for (const d of stored?.deltas ?? []) {
    for (const [k, v] of d.set) m.set(k as string, v as number);
    for (const k of d.removed) m.delete(k as string);
  }
  return [...m].sort(([a], [b]) => (a < b ? -1 : 1));
}

/** Wraps a sink so that its n-th write inside the transaction throws after writing its rows. */
function crashingAt<T, Conn>(
  sink: Sink<T, unknown, Conn>,
  crashAt: number | undefined,
): TransactionalSink<T, Conn> {
  let n = 0;
  return {
    kind: sink.kind,
    // An upsert is idempotent, which the engine would write before and apart from the offsets;
    // declared not idempotent, it writes in the transaction of the offsets and the state.
    idempotent: false,
    store: sink.store,
    describe: () => sink.describe(),
    open: (ctx) => sink.open(ctx),
    close: () => sink.close(),
    write: (batch, ctx) => sink.write(batch, ctx),
    writeInTransaction: async (tx, batch, ctx) => {
      await sink.writeInTransaction(tx, batch, ctx);
      if (++n === crashAt) throw new Error('crash inside the transaction');
    },
  };
}

function words(driver: TestDriver, log: InMemoryLog<string>): DStream<string> {
  return driver.context
    .stream(new InMemoryLogSource(log, { topics: [TOPIC], maxRecordsPerPartition: PER_BATCH }), {
      name: 'words',
    })
    .map((r: LogRecord<string>) => r.value, { name: 'values' });
}

const timed = <T extends readonly unknown[]>(b: Batch<T>, time: number) =>
  b.map((r) => [time, ...r] as const);

/**
 * End to end: a stateful pipeline whose output is a transactional sink on the same offset store
 * that is its checkpoint, so each batch's rows, offsets and operator state commit in one
 * transaction of the database.
 */
export function statefulTransactionTests<Pool, Conn>(f: SqlFixture<Pool, Conn>): void {
  const offsets = f.uniqueTable('stx_offsets');
  const countsTable = f.uniqueTable('stx_counts');
  const historyTable = f.uniqueTable('stx_history');
  const windowsTable = f.uniqueTable('stx_windows');
  const q = f.quote;
  let pool: Pool;

  before(async () => {
    pool = await f.plainPool();
    await f.query(pool, f.ddl.counts(countsTable));
    await f.query(pool, f.ddl.history(historyTable));
    await f.query(pool, f.ddl.windows(windowsTable));
  });
  after(async () => {
    await f.endPool(pool);
    await f.dropTables(
      countsTable,
      historyTable,
      windowsTable,
      offsets,
      `${offsets}_checkpoints`,
      `${offsets}_state`,
    );
  });

  /**
   * One process: a new store and driver on the same tables, resuming from the checkpoint; runs up
   * to `batches` batches (stopping at the first failure) and returns the error, if any.
   */
  async function runCounts(pipelineId: string, log: InMemoryLog<string>, batches: number, crashAt?: number) {
    const store = f.newStore({ connection: f.url, table: offsets });
    const driver = new TestDriver({ checkpoint: store, pipelineId, checkpointFullEvery: 2 });
    const counts = words(driver, log)
      .mapToPair((w): [string, number] => [w, 1], { name: 'ones' })
      .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'counts' });
    counts
      .transform((b, ctx) => timed(b, ctx.time), { name: 'timed' })
      .writeTo(
        f.newSink<readonly [number, string, number]>({
          store,
          table: historyTable,
          columns: ['batch_time', 'word', 'n'],
          toRow: (r) => r,
          mode: 'insert',
        }),
        { name: 'history' },
      );
    const upsert = f.newSink<[string, number]>({
      store,
      table: countsTable,
      columns: ['word', 'n'],
      toRow: (r) => r,
      mode: 'upsert',
      key: ['word'],
    });
    counts.writeTo(crashingAt(upsert, crashAt), { name: 'counts-table' });
    return runDriver(driver, store, batches);
  }

  async function runDriver(driver: TestDriver, store: Store<Pool, Conn>, batches: number) {
    assert.equal(driver.context.commitPlan().offsets, 'in-transaction');
    await driver.start();
    try {
      return await advanceBatches(driver, batches);
    } finally {
      await driver.stop();
      await store.close();
    }
  }

  async function tableRows(sql: string, params: unknown[] = []): Promise<unknown[][]> {
    const rows = await f.queryArrays(pool, sql, params);
    return rows.map((r) => r.map((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v)));
  }

  async function checkpointOf(pipelineId: string) {
    const store = f.newStore({ connection: f.url, table: offsets });
    try {
      return {
        checkpoint: await store.loadCheckpoint(pipelineId),
        offsets: await store.read(pipelineId, [TOPIC]),
        stateRows: await tableRows(
          `SELECT operator, seq, kind FROM ${q}${offsets}_state${q} WHERE pipeline_id = ${f.param(1)} ORDER BY operator, seq`,
          [pipelineId],
        ),
      };
    } finally {
      await store.close();
    }
  }

  describe(`${f.database}: state in the output’s transaction`, () => {
    it('a running count commits its rows, offsets and state in one transaction; a crash inside it leaves nothing of that batch, and the restart ends with the exact counts', async () => {
      const pipelineId = `wc-${randomUUID().slice(0, 8)}`;
      const log = wordLog();

      // Batches 1 and 2 commit; batch 3 writes its rows to both tables, then fails in the transaction.
      const crash = await runCounts(pipelineId, log, BATCHES, 3);
      assert.match(String(crash), /crash inside the transaction/);
      assert.deepEqual(
        await tableRows(`SELECT word, n FROM ${countsTable} ORDER BY word`),
        countsOf(wordsUpTo(2)),
      );
      assert.deepEqual(
        (await tableRows(`SELECT batch_time, word, n FROM ${historyTable}`)).sort(byJson),
        historyUpTo(2),
      );
      const afterCrash = await checkpointOf(pipelineId);
      assert.deepEqual(afterCrash.offsets, [
        { topic: TOPIC, partition: 0, offset: 4 },
        { topic: TOPIC, partition: 1, offset: 4 },
      ]);
      assert.equal(afterCrash.checkpoint!.meta.batchTime, 2000);
      assert.deepEqual(restored(afterCrash.checkpoint!.state.get('counts')), countsOf(wordsUpTo(2)));
      // checkpointFullEvery 2: batch 1 full, batch 2 a delta on top of it.
      assert.deepEqual(afterCrash.stateRows, [
        ['counts', 0, 'full'],
        ['counts', 1, 'delta'],
      ]);

      // A new process (new store instance, new driver) resumes at batch 3 and runs to the end.
      assert.equal(await runCounts(pipelineId, log, BATCHES - 2), undefined);
      const all = countsOf(wordsUpTo(BATCHES));
      assert.deepEqual(all, countsOf(PARTITIONS.flat()));
      assert.deepEqual(await tableRows(`SELECT word, n FROM ${countsTable} ORDER BY word`), all);
      assert.deepEqual(
        (await tableRows(`SELECT batch_time, word, n FROM ${historyTable}`)).sort(byJson),
        historyUpTo(BATCHES),
      );
      const end = await checkpointOf(pipelineId);
      assert.deepEqual(end.offsets, [
        { topic: TOPIC, partition: 0, offset: 10 },
        { topic: TOPIC, partition: 1, offset: 10 },
      ]);
      assert.equal(end.checkpoint!.meta.batchTime, BATCHES * 1000);
      assert.deepEqual(restored(end.checkpoint!.state.get('counts')), all);
      // Batch 3 full (the first commit after a start), 4 a delta, 5 full again: the deltas are gone.
      assert.deepEqual(end.stateRows, [['counts', 0, 'full']]);
    });

    it('windows and mapWithState restored from the database after a crash in the transaction write what an uninterrupted run writes', async () => {
      type Row = readonly [string, string, number];
      const build = (driver: TestDriver, log: InMemoryLog<string>): DStream<Row> => {
        const ws = words(driver, log);
        const pairs = ws.mapToPair((w): [string, number] => [w, 1], { name: 'ones' });
        const win = pairs
          .reduceByKeyAndWindow((a, b) => a + b, 3000, {
            inverse: (a, b) => a - b,
            filter: ([, n]) => n !== 0,
            name: 'win3',
          })
          .map(([w, n]): Row => ['win3', w, n], { name: 'win3-rows' });
        const last2 = ws
          .window(2000, { name: 'last2' })
          .countByValue({ name: 'last2-counts' })
          .map(([w, n]): Row => ['last2', w, n], { name: 'last2-rows' });
        const seen = pairs
          .mapWithState<string, number, number, Row>(
            {
              fn: (w, v, state) => {
                const n = (state.getOption() ?? 0) + (v ?? 0);
                state.update(n);
                return ['seen', w, n];
              },
            },
            { name: 'seen' },
          )
          .map((r): Row => r, { name: 'seen-rows' });
        return win.union([last2, seen], { name: 'rows' });
      };

      // The reference: the same pipeline in memory, never interrupted.
      const reference = new TestDriver({ pipelineId: 'reference' });
      const out = reference.collect(
        build(reference, wordLog()).transform((b, ctx) => timed(b, ctx.time)),
        { name: 'out' },
      );
      await reference.start();
      await reference.advance(BATCHES);
      await reference.stop();
      const expected = out
        .all()
        .flat()
        .map((r) => [...r])
        .sort(byJson);
      assert.ok(expected.some((r) => r[1] === 'win3') && expected.some((r) => r[1] === 'last2'));

      const pipelineId = `win-${randomUUID().slice(0, 8)}`;
      const log = wordLog();
      const run = async (batches: number, crashAt?: number) => {
        const store = f.newStore({ connection: f.url, table: offsets });
        const driver = new TestDriver({ checkpoint: store, pipelineId, checkpointFullEvery: 2 });
        const sink = f.newSink<readonly [number, string, string, number]>({
          store,
          table: windowsTable,
          columns: ['pipeline', 'batch_time', 'kind', 'word', 'n'],
          toRow: (r) => [pipelineId, ...r],
          mode: 'insert',
        });
        build(driver, log)
          .transform((b, ctx) => timed(b, ctx.time), { name: 'timed' })
          .writeTo(crashingAt(sink, crashAt), { name: 'table' });
        return runDriver(driver, store, batches);
      };
      const select = `SELECT batch_time, kind, word, n FROM ${windowsTable} WHERE pipeline = ${f.param(1)}`;

      assert.match(String(await run(BATCHES, 3)), /crash inside the transaction/);
      assert.deepEqual(
        (await tableRows(select, [pipelineId])).sort(byJson),
        expected.filter((r) => (r[0] as number) <= 2000),
      );
      const afterCrash = await checkpointOf(pipelineId);
      assert.equal(afterCrash.checkpoint!.meta.batchTime, 2000);
      assert.deepEqual([...afterCrash.checkpoint!.state.keys()].sort(), ['last2', 'seen', 'win3']);

      assert.equal(await run(BATCHES - 2), undefined);
      assert.deepEqual((await tableRows(select, [pipelineId])).sort(byJson), expected);
    });
  });
}
