/**
 * The same harness on outputs that are NOT exactly-once, to show that it sees the faults the
 * exactly-once modes avoid: a plain INSERT with the offsets saved after it (at-least-once)
 * duplicates the batches killed between the write and the offsets but never loses a record; with
 * the offsets saved first (at-most-once) the batches killed after the offsets are lost, and no
 * record is ever written twice.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SHORT_TIMEOUT_MS, shortCrashTest } from './short.js';

test(
  'at-least-once (rows, then offsets): SIGKILLs between the write and the offsets duplicate rows, and no record is lost',
  { timeout: SHORT_TIMEOUT_MS },
  async (t) => {
    const r = await shortCrashTest(t, 'at-least-once');
    assert.ok(r.duplicates > 0, 'duplicates after kills between the write and the offsets');
    assert.equal(r.missing, 0);
    assert.equal(r.outputRecords, r.records + r.duplicates);
  },
);

test(
  'at-most-once (offsets, then rows): SIGKILLs after the offset commit lose rows, and no record is written twice',
  { timeout: SHORT_TIMEOUT_MS },
  async (t) => {
    const r = await shortCrashTest(t, 'at-most-once');
    assert.ok(r.missing > 0, 'records lost by kills after the offsets');
    assert.equal(r.duplicates, 0);
    assert.equal(r.replayedBatches, 0, 'a batch is never read again once its offsets are saved');
    assert.equal(r.outputRecords, r.records - r.missing);
  },
);
