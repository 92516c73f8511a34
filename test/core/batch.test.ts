import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batch } from '../../src/core/batch.js';

describe('Batch', () => {
  it('of spreads records round-robin and collect returns them partition after partition', () => {
    const b = Batch.of([1, 2, 3, 4, 5], 2);
    assert.deepEqual(b.partitions, [
      [1, 3, 5],
      [2, 4],
    ]);
    assert.deepEqual(b.collect(), [1, 3, 5, 2, 4]);
    assert.equal(b.size, 5);
  });

  it('take stops after n records across partitions', () => {
    assert.deepEqual(Batch.of([1, 2, 3, 4], 2).take(3), [1, 3, 2]);
  });

  it('joins accept reference data as a plain array of pairs', () => {
    const orders = Batch.of<[string, number]>([
      ['u1', 10],
      ['u2', 20],
    ]);
    const names: [string, string][] = [['u1', 'Ann']];
    assert.deepEqual(orders.leftOuterJoin(names).collect(), [
      ['u1', [10, 'Ann']],
      ['u2', [20, undefined]],
    ]);
  });

  it('reduce of an empty batch is empty, count of it is 0', () => {
    assert.deepEqual(
      Batch.empty<number>()
        .reduce((a, b) => a + b)
        .collect(),
      [],
    );
    assert.deepEqual(Batch.empty<number>().count().collect(), [0]);
  });

  it('isEmpty is true only without records', () => {
    assert.equal(new Batch([[], []]).isEmpty(), true);
    assert.equal(Batch.of([0]).isEmpty(), false);
  });
});
