import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Batch } from '../../src/core/batch.js';
import { OffsetConflictError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { isTransactionalSink, type Sink } from '../../src/core/sink.js';
import type { BatchContext } from '../../src/core/batch.js';

/**
 * What a sink's conformance run needs: a fresh sink writing to a fresh destination, a way to
 * read the destination back independently of the sink, and records to write.
 */
export interface SinkFixture<T> {
  /** A new sink on a destination no other test uses (e.g. a new table or topic). */
  sink: Sink<T>;
  /** What the destination holds now, in any order, read without the sink. */
  readBack: () => Promise<T[]>;
  /** `n` distinct records; calling it twice with the same `seed` gives the same records. */
  records: (n: number, seed: string) => T[];
  /** Releases what the fixture made. */
  cleanup?: () => Promise<void>;
}

const canon = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();

/**
 * The sink conformance suite. Every sink runs it against its real server:
 *
 * ```ts
 * sinkConformance('PostgresSink (upsert)', async () => ({ sink, readBack, records }));
 * ```
 */
export function sinkConformance<T>(label: string, fixture: () => Promise<SinkFixture<T>>): void {
  describe(`${label} (sink conformance)`, () => {
    const made: SinkFixture<T>[] = [];
    const open = async () => {
      const f = await fixture();
      made.push(f);
      await f.sink.open({
        pipelineId: 'conformance',
        name: 'out',
        logger: silentLogger,
        signal: new AbortController().signal,
      });
      return f;
    };
    after(async () => {
      for (const f of made) {
        await f.sink.close();
        await f.cleanup?.();
      }
    });
    const ctx = (time: number): BatchContext => ({ time, offsetRanges: [] });

    it('writes every record of a batch spread over several partitions', async () => {
      const f = await open();
      const recs = f.records(25, 'a');
      await f.sink.write(Batch.of(recs, 3), ctx(1000));
      assert.deepEqual(canon(await f.readBack()), canon(recs));
    });

    it('accepts an empty batch and writes nothing', async () => {
      const f = await open();
      await f.sink.write(new Batch<T>([[], []]), ctx(1000));
      assert.deepEqual(await f.readBack(), []);
    });

    it('declares idempotence truthfully: a replayed batch changes nothing, or is written twice', async () => {
      const f = await open();
      const recs = f.records(10, 'b');
      await f.sink.write(Batch.of(recs, 2), ctx(1000));
      await f.sink.write(Batch.of(f.records(10, 'b'), 2), ctx(1000));
      const back = await f.readBack();
      if (f.sink.idempotent) assert.deepEqual(canon(back), canon(recs));
      else assert.deepEqual(canon(back), canon([...recs, ...recs]));
    });

    it('a transactional sink commits its records and the offsets together, or neither', async (t) => {
      const f = await open();
      const sink = f.sink;
      if (!isTransactionalSink(sink)) {
        assert.equal(typeof (sink as { writeInTransaction?: unknown }).writeInTransaction, 'undefined');
        return;
      }
      const group = `g-${randomUUID().slice(0, 8)}`;
      const topic = `t-${randomUUID().slice(0, 8)}`;
      const first = f.records(5, 'c');
      const r1 = [{ topic, partition: 0, fromOffset: 0, untilOffset: 5 }];
      await sink.store.transaction(group, r1, (tx) =>
        sink.writeInTransaction(tx, Batch.of(first), ctx(1000)),
      );
      assert.deepEqual(canon(await f.readBack()), canon(first));
      assert.deepEqual(await sink.store.read(group, [topic]), [{ topic, partition: 0, offset: 5 }]);

      await t.test('a failure after the write rolls the records back and keeps the offsets', async () => {
        const failing = sink.store.transaction(
          group,
          [{ topic, partition: 0, fromOffset: 5, untilOffset: 9 }],
          async (tx) => {
            await sink.writeInTransaction(tx, Batch.of(f.records(4, 'd')), ctx(2000));
            throw new Error('crash between output and offsets');
          },
        );
        await assert.rejects(failing, /crash between output and offsets/);
        assert.deepEqual(canon(await f.readBack()), canon(first));
        assert.deepEqual(await sink.store.read(group, [topic]), [{ topic, partition: 0, offset: 5 }]);
      });

      await t.test('a replayed batch conflicts on the offsets and its records are not kept', async () => {
        const replay = sink.store.transaction(group, r1, (tx) =>
          sink.writeInTransaction(tx, Batch.of(f.records(5, 'e')), ctx(1000)),
        );
        await assert.rejects(replay, OffsetConflictError);
        assert.deepEqual(canon(await f.readBack()), canon(first));
      });
    });
  });
}
