import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ContextStateError } from '../../src/core/errors.js';
import type { State } from '../../src/core/stateful.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { feed, pairBatches, sorted } from './helpers.js';

// Inputs and expected outputs from Spark's BasicOperationsSuite and MapWithStateSuite.
const words = [['a'], ['a', 'b'], ['a', 'b', 'c'], ['a', 'b'], ['a'], []];
// The count of each word so far, after each batch of `words`.
const runningCounts = pairBatches(
  'a=1',
  'a=2 b=1',
  'a=3 b=2 c=1',
  'a=4 b=3 c=1',
  'a=5 b=3 c=1',
  'a=5 b=3 c=1',
);

describe('updateStateByKey', () => {
  it('keeps a running count per key across batches, as Spark', async () => {
    const driver = new TestDriver();
    const input = driver.input<string>();
    const out = driver.collect(
      input.stream
        .mapToPair((w) => [w, 1])
        .updateStateByKey((vs: number[], s: number | undefined) => vs.reduce((a, b) => a + b, 0) + (s ?? 0)),
    );
    await driver.start();
    await feed(driver, input, words);
    await driver.stop();
    assert.deepEqual(out.all().map(sorted), runningCounts);
  });

  it('removes a key when the function returns undefined, and starts from the initial state', async () => {
    const driver = new TestDriver();
    const input = driver.input<[string, number]>();
    const out = driver.collect(
      input.stream.updateStateByKey(
        (vs: number[], s: number | undefined) => (vs.length === 0 ? undefined : (s ?? 0) + vs.length),
        {
          initialState: [['z', 10]],
        },
      ),
    );
    await driver.start();
    input.push([
      ['z', 1],
      ['y', 1],
    ]);
    await driver.advance();
    input.push([['y', 1]]);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(out.all().map(sorted), [
      [
        ['y', 1],
        ['z', 11],
      ],
      [['y', 2]],
    ]);
  });
});

describe('mapWithState', () => {
  it('emits the running count per record and snapshots every key’s state, as Spark', async () => {
    const driver = new TestDriver();
    const input = driver.input<string>();
    const mapped = input.stream
      .mapToPair((w) => [w, 1])
      .mapWithState({
        fn: (_key: string, value: number | undefined, state: State<number>) => {
          const sum = (value ?? 0) + (state.getOption() ?? 0);
          state.update(sum);
          return sum;
        },
      });
    const out = driver.collect(mapped);
    const snaps = driver.collect(mapped.stateSnapshots());
    await driver.start();
    await feed(driver, input, [[], ...words, []].slice(0, 7));
    await driver.stop();
    assert.deepEqual(out.all().map(sorted), [[], [1], [1, 2], [1, 2, 3], [3, 4], [5], []]);
    assert.deepEqual(snaps.all().map(sorted), [[], ...runningCounts]);
  });

  it('times out keys idle longer than the timeout with one last call, then removes them', async () => {
    const driver = new TestDriver({ batchInterval: 1000 });
    const input = driver.input<[string, number]>();
    const calls: string[] = [];
    const mapped = input.stream.mapWithState({
      timeoutMs: 2000,
      fn: (key: string, value: number | undefined, state: State<number>) => {
        if (state.isTimingOut()) {
          calls.push(`timeout ${key}=${state.get()}`);
          assert.throws(() => state.update(0), ContextStateError);
          return `${key} expired`;
        }
        state.update((state.getOption() ?? 0) + value!);
        return undefined;
      },
    });
    const out = driver.collect(mapped);
    const snaps = driver.collect(mapped.stateSnapshots());
    await driver.start();
    input.push([
      ['a', 1],
      ['b', 1],
    ]); // t=1000: both updated
    await driver.advance();
    input.push([['b', 1]]); // t=2000: b updated
    await driver.advance();
    await driver.advance(); // t=3000: threshold 1000, nobody older
    await driver.advance(); // t=4000: threshold 2000: a (1000) times out
    await driver.advance(); // t=5000: threshold 3000: b (2000) times out
    await driver.stop();
    assert.deepEqual(calls, ['timeout a=1', 'timeout b=2']);
    assert.deepEqual(out.all(), [[], [], [], ['a expired'], ['b expired']]);
    assert.deepEqual(snaps.all().map(sorted), [
      [
        ['a', 1],
        ['b', 1],
      ],
      [
        ['a', 1],
        ['b', 2],
      ],
      [
        ['a', 1],
        ['b', 2],
      ],
      [['b', 2]],
      [],
    ]);
  });

  it('state.remove drops the key and initial state is visible to the first batch', async () => {
    const driver = new TestDriver();
    const input = driver.input<[string, string]>();
    const mapped = input.stream.mapWithState({
      initialState: [['k', 'init']],
      fn: (key: string, value: string | undefined, state: State<string>) => {
        const before = state.getOption();
        if (value === 'del') state.remove();
        else state.update(value!);
        return `${key}:${before}`;
      },
    });
    const out = driver.collect(mapped);
    const snaps = driver.collect(mapped.stateSnapshots());
    await driver.start();
    input.push([['k', 'x']]);
    await driver.advance();
    input.push([['k', 'del']]);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(out.all(), [['k:init'], ['k:x']]);
    assert.deepEqual(snaps.all(), [[['k', 'x']], []]);
  });
});

describe('updateStateByKey (edge cases)', () => {
  it('calls the function once per key per batch, also for a key it removes', async () => {
    const calls: string[] = [];
    const driver = new TestDriver();
    const input = driver.input<[string, number]>();
    driver.collect(
      input.stream.updateStateByKey((vs: number[], s: number | undefined) => {
        calls.push(`${vs.join('+')}|${s}`);
        return vs.includes(0) ? undefined : (s ?? 0) + vs.length;
      }),
    );
    await driver.start();
    input.push([['k', 1]]);
    await driver.advance();
    input.push([['k', 0]]);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(calls, ['1|undefined', '0|1']);
  });
});
