/**
 * Checks the key-value offset stores (Redis, ZooKeeper) make alike beyond the conformance suite
 * (test/conformance/offset-store.ts), each on a store the test opened and closes.
 */
import assert from 'node:assert/strict';
import { OffsetConflictError } from '../../src/core/errors.js';
import type { OffsetStore } from '../../src/core/offsets.js';
import { uniqueName } from './services.js';

/**
 * A compare-and-set write across two topics whose second range conflicts (group `g`) stores
 * neither range; returns the two topics.
 */
export async function compareAndSetAcrossTopics(store: OffsetStore): Promise<[string, string]> {
  const [t1, t2] = [uniqueName('t'), uniqueName('t')];
  await store.write('g', [{ topic: t2, partition: 0, fromOffset: 0, untilOffset: 8 }]);
  await assert.rejects(
    store.write(
      'g',
      [
        { topic: t1, partition: 0, fromOffset: 0, untilOffset: 4 },
        { topic: t2, partition: 0, fromOffset: 3, untilOffset: 9 },
      ],
      { compareAndSet: true },
    ),
    (e: unknown) => e instanceof OffsetConflictError && e.topic === t2 && e.expected === 3 && e.stored === 8,
  );
  assert.deepEqual(await store.read('g', [t1, t2]), [{ topic: t2, partition: 0, offset: 8 }]);
  return [t1, t2];
}

/** Writing an offset above 2^53 - 1, or setting the `fraction`al one, fails with RangeError and stores nothing. */
export async function refusesInexactOffsets(store: OffsetStore, fraction: number): Promise<void> {
  const topic = uniqueName('t');
  await assert.rejects(
    store.write('g', [{ topic, partition: 0, fromOffset: 0, untilOffset: 2 ** 53 }]),
    RangeError,
  );
  await assert.rejects(store.set('g', [{ topic, partition: 0, offset: fraction }]), RangeError);
  assert.deepEqual(await store.read('g', [topic]), []);
}
