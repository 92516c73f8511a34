import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, SystemClock } from '../../src/core/clock.js';

describe('ManualClock', () => {
  it('wakes sleepers in time order only when the time is reached', async () => {
    const clock = new ManualClock(0);
    const woke: number[] = [];
    void clock.sleepUntil(200).then(() => woke.push(200));
    void clock.sleepUntil(100).then(() => woke.push(100));
    clock.advance(99);
    await Promise.resolve();
    assert.deepEqual(woke, []);
    clock.advance(150);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(woke, [100, 200]);
    assert.equal(clock.waiting, 0);
  });

  it('resolves at once for a time already past and refuses to go back', async () => {
    const clock = new ManualClock(50);
    await clock.sleepUntil(10);
    assert.throws(() => clock.setTime(40), RangeError);
  });

  it('rejects a sleep when its signal aborts and forgets the sleeper', async () => {
    const clock = new ManualClock(0);
    const ac = new AbortController();
    const sleep = clock.sleepUntil(1000, ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(sleep, /stop/);
    assert.equal(clock.waiting, 0);
  });
});

describe('SystemClock', () => {
  it('never wakes before the requested time', async () => {
    const clock = new SystemClock();
    const target = clock.now() + 30;
    await clock.sleepUntil(target);
    assert.ok(clock.now() >= target);
  });

  it('rejects when aborted', async () => {
    const ac = new AbortController();
    const sleep = new SystemClock().sleepUntil(Date.now() + 60_000, ac.signal);
    ac.abort(new Error('stopped'));
    await assert.rejects(sleep, /stopped/);
  });
});
