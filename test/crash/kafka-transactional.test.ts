/**
 * Exactly-once Kafka to Kafka: the output records of a batch and its input offsets commit in one
 * Kafka transaction. A SIGKILL before the commit leaves an open transaction that the restarted
 * job's producer (same transactional.id) aborts; a read_committed reader (kcat) sees each input
 * record exactly once, while a read_uncommitted one also sees the aborted attempts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SHORT, SHORT_TIMEOUT_MS, shortCrashTest } from './short.js';

test(
  `Kafka transactions: after ${SHORT.kills} SIGKILLs and restarts, a read_committed reader of the output topic sees every one of the ${SHORT.records}+ input records exactly once`,
  { timeout: SHORT_TIMEOUT_MS },
  async (t) => {
    const r = await shortCrashTest(t, 'kafka-transactional');
    assert.equal(r.outputRecords, r.records);
    assert.deepEqual([r.duplicates, r.missing], [0, 0]);
    // The kill paused mid-write (half the batch sent in the open transaction) left records behind
    // that only a read_uncommitted reader sees.
    const aborted = Number(/(\d+) more, from transactions the kills aborted/.exec(r.note ?? '')?.[1]);
    assert.ok(aborted > 0, r.note);
  },
);
