/**
 * Exactly-once by transaction: the rows of a batch and its offsets commit in one database
 * transaction, so a SIGKILL anywhere — before, during or after the rows, or at random — leaves
 * either both or neither, and the restarted job writes each input record exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SHORT, SHORT_TIMEOUT_MS, shortCrashTest } from './short.js';

test(
  `PostgreSQL rows and offsets in one transaction: after ${SHORT.kills} SIGKILLs and restarts, every one of the ${SHORT.records}+ input records is in the table exactly once`,
  { timeout: SHORT_TIMEOUT_MS },
  async (t) => {
    const r = await shortCrashTest(t, 'pg-transactional');
    assert.equal(r.outputRecords, r.records);
    assert.deepEqual([r.duplicates, r.missing], [0, 0]);
  },
);

test(
  `MariaDB rows and offsets in one transaction: after ${SHORT.kills} SIGKILLs and restarts, every one of the ${SHORT.records}+ input records is in the table exactly once`,
  { timeout: SHORT_TIMEOUT_MS },
  async (t) => {
    const r = await shortCrashTest(t, 'mysql-transactional');
    assert.equal(r.outputRecords, r.records);
    assert.deepEqual([r.duplicates, r.missing], [0, 0]);
  },
);
