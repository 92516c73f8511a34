import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from './child-process.js';

interface PrintedRanges {
  time: number;
  records: number;
  ranges: { topic: string; partition: number; from: number; until: number }[];
}

/** The example's output: `Time: <ms> ms — <n> records` headers, each followed by `topic partition from until` lines. */
function parseRanges(stdout: string): PrintedRanges[] {
  const out: PrintedRanges[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    const header = /^Time: (\d+) ms — (\d+) records$/.exec(line);
    const range = /^(\S+) (\d+) (\d+) (\d+)$/.exec(line);
    if (header) out.push({ time: Number(header[1]), records: Number(header[2]), ranges: [] });
    else if (range && out.length > 0) {
      out.at(-1)!.ranges.push({
        topic: range[1]!,
        partition: Number(range[2]),
        from: Number(range[3]),
        until: Number(range[4]),
      });
    }
  }
  return out;
}

const recordsIn = (batches: PrintedRanges[]): number => batches.reduce((n, b) => n + b.records, 0);

const { runs, cleanups } = afterTests();

test('kafka-offset-ranges example prints offset ranges that cover exactly the produced records of a 3-partition topic, and exits 0 on SIGINT', async () => {
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName('example-offset-ranges');
  cleanups.push(() => deleteTopic(bootstrap, topic));
  await createTopic(bootstrap, topic, 3);
  // 90 records before the job starts (read from the earliest offsets), 60 more while it runs.
  const batch = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ value: `record ${from + i}`, partition: (from + i) % 3 }));
  await produce(bootstrap, topic, batch(0, 90));

  const run = ChildRun.sluice(['run', 'examples/kafka-offset-ranges.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    KAFKA_TOPIC: topic,
    BATCH_INTERVAL_MS: '500',
  });
  runs.push(run);
  await run.waitFor(
    (out) => recordsIn(parseRanges(out)) >= 90,
    'the 90 records produced before the start',
    30_000,
  );
  await produce(bootstrap, topic, batch(90, 60));
  await run.waitFor((out) => recordsIn(parseRanges(out)) >= 150, 'all 150 records', 20_000);
  // Two more batches: nothing more is read once the topic has no new records.
  const printed = parseRanges(run.stdout).length;
  await run.waitFor((out) => parseRanges(out).length >= printed + 2, 'two more batches', 10_000);

  const exit = await run.stop('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());

  const batches = parseRanges(run.stdout);
  assert.equal(recordsIn(batches), 150, run.output());
  assert.ok(
    batches.filter((b) => b.records > 0).length >= 2,
    `the records arrive in at least two batches\n${run.output()}`,
  );
  const next = new Map<number, number>([
    [0, 0],
    [1, 0],
    [2, 0],
  ]);
  for (const b of batches) {
    // One range per partition of the topic, every batch; the record count is the sum of the range sizes.
    assert.deepEqual(
      b.ranges.map((r) => [r.topic, r.partition]),
      [
        [topic, 0],
        [topic, 1],
        [topic, 2],
      ],
      `batch ${b.time}`,
    );
    assert.equal(
      b.records,
      b.ranges.reduce((n, r) => n + (r.until - r.from), 0),
      `batch ${b.time}`,
    );
    // Contiguous: each range starts where the previous batch's range of that partition ended.
    for (const r of b.ranges) {
      assert.equal(
        r.from,
        next.get(r.partition),
        `batch ${b.time} partition ${r.partition} starts where the last ended`,
      );
      assert.ok(r.until >= r.from);
      next.set(r.partition, r.until);
    }
  }
  assert.deepEqual(
    [...next],
    [
      [0, 50],
      [1, 50],
      [2, 50],
    ],
  );
});
