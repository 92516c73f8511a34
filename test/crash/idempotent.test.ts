/**
 * Exactly-once by idempotence: the output is an upsert keyed by the record id and the offsets are
 * written after it, in another store. A SIGKILL after the write and before the offsets makes the
 * restart write the batch again, which overwrites itself: each input record ends up once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Mode } from './modes.js';
import { SHORT, SHORT_TIMEOUT_MS, shortCrashTest } from './short.js';

const cases: [name: string, mode: Mode][] = [
  [
    `PostgreSQL upsert with offsets in Redis: after ${SHORT.kills} SIGKILLs, batches written again overwrite themselves and every one of the ${SHORT.records}+ input records is in the table once`,
    'pg-upsert',
  ],
  [
    `Redis HSET with offsets in PostgreSQL: after ${SHORT.kills} SIGKILLs, batches written again overwrite themselves and every one of the ${SHORT.records}+ input records is in the hash once`,
    'redis-idempotent',
  ],
];

for (const [name, mode] of cases) {
  test(name, { timeout: SHORT_TIMEOUT_MS }, async (t) => {
    const r = await shortCrashTest(t, mode);
    assert.ok(r.replayedBatches > 0, 'a kill after the write made the restart write a batch again');
    assert.equal(r.outputRecords, r.records);
    assert.equal(r.missing, 0);
  });
}
