import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { OffsetConflictError } from '../../src/core/errors.js';
import type { OffsetStore, OffsetRange } from '../../src/core/offsets.js';

/**
 * The offset store conformance suite. Every store runs it against its real server:
 *
 * ```ts
 * offsetStoreConformance('PostgresOffsetStore', () => new PostgresOffsetStore({ ... }));
 * ```
 *
 * `open` must return a NEW store instance connected to the same place each time it is called:
 * durability is checked by reading through a second instance.
 */
export function offsetStoreConformance(
  label: string,
  open: () => Promise<OffsetStore> | OffsetStore,
  expected: { compareAndSet: boolean } = { compareAndSet: true },
): void {
  describe(`${label} (offset store conformance)`, () => {
    const stores: OffsetStore[] = [];
    const store = async () => {
      const s = await open();
      stores.push(s);
      return s;
    };
    after(async () => {
      for (const s of stores) await s.close();
    });
    // Unique names so runs and stores sharing a server never see each other's offsets.
    const fresh = () => {
      const id = randomUUID().slice(0, 8);
      return { group: `g-${id}`, topic: `t-${id}`, other: `u-${id}` };
    };
    const range = (
      topic: string,
      partition: number,
      fromOffset: number,
      untilOffset: number,
    ): OffsetRange => ({
      topic,
      partition,
      fromOffset,
      untilOffset,
    });

    it('reads nothing for a group that never stored offsets', async () => {
      const s = await store();
      const { group, topic } = fresh();
      assert.deepEqual(await s.read(group, [topic]), []);
    });

    it('stores each range’s untilOffset as the next position, per partition', async () => {
      const s = await store();
      const { group, topic } = fresh();
      await s.write(group, [range(topic, 0, 0, 10), range(topic, 1, 5, 7)]);
      assert.deepEqual(await s.read(group, [topic]), [
        { topic, partition: 0, offset: 10 },
        { topic, partition: 1, offset: 7 },
      ]);
      await s.write(group, [range(topic, 0, 10, 25)]);
      assert.deepEqual(await s.read(group, [topic]), [
        { topic, partition: 0, offset: 25 },
        { topic, partition: 1, offset: 7 },
      ]);
    });

    it('keeps groups and topics apart', async () => {
      const s = await store();
      const a = fresh();
      const b = fresh();
      await s.write(a.group, [range(a.topic, 0, 0, 3), range(a.other, 0, 0, 4)]);
      await s.write(b.group, [range(a.topic, 0, 0, 9)]);
      assert.deepEqual(await s.read(a.group, [a.topic]), [{ topic: a.topic, partition: 0, offset: 3 }]);
      assert.deepEqual(await s.read(a.group, [a.other]), [{ topic: a.other, partition: 0, offset: 4 }]);
      assert.deepEqual(await s.read(b.group, [a.topic]), [{ topic: a.topic, partition: 0, offset: 9 }]);
      assert.deepEqual(
        (await s.read(a.group, [a.topic, a.other])).map((o) => o.topic).sort(),
        [a.topic, a.other].sort(),
      );
    });

    it('keeps offsets beyond 2^32 exactly', async () => {
      const s = await store();
      const { group, topic } = fresh();
      const big = 2 ** 40 + 3;
      await s.write(group, [range(topic, 0, big - 3, big)]);
      assert.deepEqual(await s.read(group, [topic]), [{ topic, partition: 0, offset: big }]);
    });

    it('offsets written through one instance are read by a new instance', async () => {
      const { group, topic } = fresh();
      await (await store()).write(group, [range(topic, 2, 0, 42)]);
      assert.deepEqual(await (await store()).read(group, [topic]), [{ topic, partition: 2, offset: 42 }]);
    });

    it('set overrides positions unconditionally and delete forgets them', async () => {
      const s = await store();
      const { group, topic, other } = fresh();
      await s.write(group, [range(topic, 0, 0, 50), range(other, 0, 0, 5)]);
      await s.set(group, [{ topic, partition: 0, offset: 7 }]);
      assert.deepEqual(await s.read(group, [topic]), [{ topic, partition: 0, offset: 7 }]);
      await s.delete(group, [topic]);
      assert.deepEqual(await s.read(group, [topic]), []);
      assert.deepEqual(await s.read(group, [other]), [{ topic: other, partition: 0, offset: 5 }]);
    });

    it(`declares compareAndSet: ${expected.compareAndSet}`, async () => {
      assert.equal((await store()).capabilities.compareAndSet, expected.compareAndSet);
    });

    if (!expected.compareAndSet) return;

    it('compare-and-set applies a batch that starts where the stored position is, or where nothing is stored', async () => {
      const s = await store();
      const { group, topic } = fresh();
      await s.write(group, [range(topic, 0, 0, 10)], { compareAndSet: true });
      await s.write(group, [range(topic, 0, 10, 20), range(topic, 1, 0, 4)], { compareAndSet: true });
      assert.deepEqual(await s.read(group, [topic]), [
        { topic, partition: 0, offset: 20 },
        { topic, partition: 1, offset: 4 },
      ]);
    });

    it('compare-and-set refuses a replayed batch with OffsetConflictError and stores none of its ranges', async () => {
      const s = await store();
      const { group, topic } = fresh();
      await s.write(group, [range(topic, 0, 0, 10), range(topic, 1, 0, 10)]);
      await assert.rejects(
        s.write(group, [range(topic, 0, 10, 15), range(topic, 1, 0, 10)], { compareAndSet: true }),
        (e: unknown) =>
          e instanceof OffsetConflictError &&
          e.topic === topic &&
          e.partition === 1 &&
          e.expected === 0 &&
          e.stored === 10,
      );
      assert.deepEqual(await s.read(group, [topic]), [
        { topic, partition: 0, offset: 10 },
        { topic, partition: 1, offset: 10 },
      ]);
    });

    it('of two instances committing the same batch with compare-and-set, exactly one wins', async () => {
      const a = await store();
      const b = await store();
      const { group, topic } = fresh();
      await a.write(group, [range(topic, 0, 0, 5)]);
      const results = await Promise.allSettled([
        a.write(group, [range(topic, 0, 5, 9)], { compareAndSet: true }),
        b.write(group, [range(topic, 0, 5, 12)], { compareAndSet: true }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.ok((lost[0] as PromiseRejectedResult).reason instanceof OffsetConflictError);
      const [stored] = await a.read(group, [topic]);
      assert.ok(stored!.offset === 9 || stored!.offset === 12);
    });
  });
}
