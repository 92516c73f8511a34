/**
 * Exactly-once by transaction: the rows of a batch and its offsets commit in one database
 * transaction, so a SIGKILL anywhere — before, during or after the rows, or at random — leaves
 * either both or neither, and the restarted job writes each input record exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Mode } from './modes.js';
import { SHORT, SHORT_TIMEOUT_MS, shortCrashTest } from './short.js';

const cases: [name: string, mode: Mode][] = [
  [
    `PostgreSQL rows and offsets in one transaction: after ${SHORT.kills} SIGKILLs and restarts, every one of the ${SHORT.records}+ input records is in the table exactly once`,
    'pg-transactional',
  ],
  [
    `MariaDB rows and offsets in one transaction: after ${SHORT.kills} SIGKILLs and restarts, every one of the ${SHORT.records}+ input records is in the table exactly once`,
    'mysql-transactional',
  ],
];

for (const [name, mode] of cases) {
  test(name, { timeout: SHORT_TIMEOUT_MS }, async (t) => {
    const r = await shortCrashTest(t, mode);
    assert.equal(r.outputRecords, r.records);
    assert.deepEqual([r.duplicates, r.missing], [0, 0]);
  });
}
