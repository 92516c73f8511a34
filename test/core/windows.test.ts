import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PipelineDefinitionError } from '../../src/core/errors.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { pairBatches, run } from './helpers.js';

// Inputs and expected outputs from Spark's WindowOperationsSuite (batch interval 1 s). Windowed
// streams produce a batch only at their slide times, so there may be fewer outputs than inputs.
// The big input is the same 6 s twice, and so is its windowed reduce.
const bigInputHalf = pairBatches('a=1', 'a=1 b=1', 'a=1 b=1 c=1', 'a=1 b=1', 'a=1', '');
const bigInput = [...bigInputHalf, ...bigInputHalf];
const bigReduceOutputHalf = pairBatches('a=1', 'a=2 b=1', 'a=2 b=2 c=1', 'a=2 b=2 c=1', 'a=2 b=1', 'a=1');
const bigReduceOutput = [...bigReduceOutputHalf, ...bigReduceOutputHalf];
// With the inverse function and no filter, keys stay at 0 once their values have left the window.
const bigReduceInvOutput = pairBatches(
  'a=1',
  'a=2 b=1',
  'a=2 b=2 c=1',
  'a=2 b=2 c=1',
  'a=2 b=1 c=0',
  'a=1 b=0 c=0',
  'a=1 b=0 c=0',
  'a=2 b=1 c=0',
  'a=2 b=2 c=1',
  'a=2 b=2 c=1',
  'a=2 b=1 c=0',
  'a=1 b=0 c=0',
);
const largerSlideInput = pairBatches('a=1', 'a=2', 'a=3', 'a=4', 'a=5', 'a=6', '', '');
const largerSlideReduceOutput = pairBatches('a=3', 'a=10', 'a=18', 'a=11');
const add = (a: number, b: number) => a + b;
const sub = (a: number, b: number) => a - b;

describe('window operations (Spark semantics)', () => {
  const nums = [[0], [1], [2], [3], [4], [5]];

  it('basic window: length 2 s, slide 1 s', async () => {
    assert.deepEqual(await run(nums, (s) => s.window(2000)), [[0], [0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
  });

  it('tumbling window: length 2 s, slide 2 s, output only at slide times', async () => {
    assert.deepEqual(await run(nums, (s) => s.window(2000, { slideMs: 2000 })), [
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
  });

  it('larger window: length 4 s, slide 2 s', async () => {
    assert.deepEqual(await run(nums, (s) => s.window(4000, { slideMs: 2000 }), { extraBatches: 2 }), [
      [0, 1],
      [0, 1, 2, 3],
      [2, 3, 4, 5],
      [4, 5],
    ]);
  });

  it('non-overlapping window: length 2 s, slide 3 s', async () => {
    assert.deepEqual(await run(nums, (s) => s.window(2000, { slideMs: 3000 })), [
      [1, 2],
      [4, 5],
    ]);
  });

  it('reduceByKeyAndWindow without inverse equals the naive window reduce', async () => {
    assert.deepEqual(await run(bigInput, (s) => s.reduceByKeyAndWindow(add, 2000)), bigReduceOutput);
  });

  it('reduceByKeyAndWindow with inverse keeps keys at 0, as Spark does', async () => {
    assert.deepEqual(
      await run(bigInput, (s) => s.reduceByKeyAndWindow(add, 2000, { inverse: sub })),
      bigReduceInvOutput,
    );
  });

  it('reduceByKeyAndWindow with inverse and a filter drops the keys the filter rejects', async () => {
    const out = await run(bigInput, (s) =>
      s.reduceByKeyAndWindow(add, 2000, { inverse: sub, filter: ([, v]) => v !== 0 }),
    );
    assert.deepEqual(out, bigReduceOutput);
  });

  it('reduceByKeyAndWindow with a slide larger than the interval, with and without inverse', async () => {
    const opts = { slideMs: 2000 };
    assert.deepEqual(
      await run(largerSlideInput, (s) => s.reduceByKeyAndWindow(add, 4000, opts)),
      largerSlideReduceOutput,
    );
    assert.deepEqual(
      await run(largerSlideInput, (s) => s.reduceByKeyAndWindow(add, 4000, { ...opts, inverse: sub })),
      largerSlideReduceOutput,
    );
  });

  it('groupByKeyAndWindow groups the values of the window', async () => {
    const out = await run(bigInput.slice(0, 5), (s) =>
      s.groupByKeyAndWindow(2000).mapValues((vs) => vs.length),
    );
    assert.deepEqual(out, bigReduceOutput.slice(0, 5));
  });

  it('countByValueAndWindow drops values whose count fell to 0', async () => {
    const out = await run([['a'], ['a', 'b'], [], [], ['c']], (s) => s.countByValueAndWindow(2000));
    assert.deepEqual(out, [
      [['a', 1]],
      [
        ['a', 2],
        ['b', 1],
      ],
      [
        ['a', 1],
        ['b', 1],
      ],
      [],
      [['c', 1]],
    ]);
  });

  it('countByWindow counts the window, and keeps emitting 0 once data has passed (reduce with inverse)', async () => {
    const out = await run([[], [1], [1, 2], [], [], [3]], (s) => s.countByWindow(2000));
    assert.deepEqual(out, [[], [1], [3], [2], [0], [1]]);
  });

  it('reduceByWindow with and without inverse give the same sums', async () => {
    const input = [[1], [2, 3], [4], [], [5]];
    const plain = await run(input, (s) => s.reduceByWindow(add, 2000));
    const inv = await run(input, (s) => s.reduceByWindow(add, 2000, { inverse: sub }));
    assert.deepEqual(plain, [[1], [6], [9], [4], [5]]);
    assert.deepEqual(inv, plain);
  });

  it('refuses a window length or slide that is not a multiple of the batch interval', () => {
    const driver = new TestDriver({ batchInterval: 1000 });
    const s = driver.input<number>().stream;
    assert.throws(() => s.window(1500), PipelineDefinitionError);
    assert.throws(() => s.window(2000, { slideMs: 500 }), /slide of a window over 'queue-1' is 500 ms/);
  });

  it('refuses to combine streams with different slides', () => {
    const driver = new TestDriver({ batchInterval: 1000 });
    const s = driver.input<number>().stream;
    assert.throws(() => s.union(s.window(2000, { slideMs: 2000 })), /different slides/);
  });

  it('a window keeps seeing every batch even when its output is on a slower slide', async () => {
    // The output is downstream of a 3 s slide; the 6 s window must still buffer every 1 s batch.
    const out = await run([[1], [2], [3], [4], [5], [6]], (s) =>
      s.window(6000, { slideMs: 3000 }).map((x) => x * 10),
    );
    assert.deepEqual(out, [
      [10, 20, 30],
      [10, 20, 30, 40, 50, 60],
    ]);
  });
});
