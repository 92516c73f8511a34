import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from './child-process.js';
import { checkRanges, parseEtlBatches, total, type EtlBatch } from './etl-output.js';
import {
  TIME_ZONE,
  checkDeadLetters,
  checkOutput,
  expected,
  kcat,
  records,
} from './kafka-etl-check.js';

/** Every printed batch is consistent with itself and continues where the previous one ended. */
function checkBatches(batches: EtlBatch[], topic: string, output: string): void {
  const next = new Map<number, number>();
  for (const b of batches) {
    const where = `batch ${b.time}\n${output}`;
    checkRanges(b, topic, where);
    for (const r of b.ranges) {
      if (next.has(r.partition)) assert.equal(r.from, next.get(r.partition), `contiguous: ${where}`);
      next.set(r.partition, r.until);
    }
    assert.equal(
      b.in,
      b.ranges.reduce((n, r) => n + r.size, 0),
      where,
    );
    assert.equal(b.in, b.out + b.dead, `every line is either output or a dead letter: ${where}`);
    assert.equal(
      b.reason !== undefined,
      b.dead > 0,
      `a sample reason exactly when there are dead letters: ${where}`,
    );
  }
}

const { runs, cleanups } = afterTests();
let bootstrap = '';

function names(prefix: string) {
  const base = uniqueName(prefix);
  const n = { input: `${base}-in`, output: `${base}-out`, dlq: `${base}-dlq`, pipeline: base };
  for (const topic of [n.input, n.output, n.dlq]) cleanups.push(() => deleteTopic(bootstrap, topic));
  return n;
}

function startEtl(n: ReturnType<typeof names>, extra: Record<string, string> = {}): ChildRun {
  const run = ChildRun.sluice(['run', 'examples/kafka-etl.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    ETL_INPUT_TOPIC: n.input,
    ETL_OUTPUT_TOPIC: n.output,
    ETL_DEAD_LETTER_TOPIC: n.dlq,
    ETL_TIME_ZONE: TIME_ZONE,
    // The process's own zone must play no part in the timestamps.
    TZ: 'America/Los_Angeles',
    PIPELINE_ID: n.pipeline,
    BATCH_INTERVAL_MS: '500',
    SLUICE_LOG_LEVEL: 'warn',
    ...extra,
  });
  runs.push(run);
  return run;
}

test('kafka-etl example: the output topic (read by kcat, read_committed) holds exactly the good lines once each, formatted in the configured zone; the dead-letter topic exactly the malformed ones with their reasons; printed counts match; SIGINT exits 0', async () => {
  bootstrap = await kafkaBootstrap();
  const n = names('example-etl');
  await createTopic(bootstrap, n.input, 3);
  await produce(bootstrap, n.input, records(0, 400));

  const run = startEtl(n, { MAX_RATE_PER_PARTITION: '100' });
  await run.waitFor(
    (out) => total(parseEtlBatches(out), 'in') >= 400,
    'the 400 lines produced before the start',
    60_000,
  );
  // More lines while it runs.
  await produce(bootstrap, n.input, records(400, 600));
  await run.waitFor((out) => total(parseEtlBatches(out), 'in') >= 600, 'all 600 lines', 30_000);
  const exit = await run.stop('SIGINT', 30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());

  const want = expected(0, 600);
  assert.ok(want.dead.length >= 80 && want.out.length >= 500, 'the input mixes good and malformed lines');
  const [outRecords, deadRecords] = [await kcat(bootstrap, n.output), await kcat(bootstrap, n.dlq)];
  checkOutput(outRecords, want.out, run.output());
  checkDeadLetters(deadRecords, want.dead, n.input, run.output());
  // Independent of the parser: line 0 happened at 2018-11-11 00:00:00 in Shanghai = 2018-11-10T16:00:00Z.
  assert.ok(
    outRecords.some(
      (r) =>
        r.payload ===
        '1761|1541865600000|58.121.55.126:36785|202.102.155.102:80|http://news.example.cn/watch?v=9&t=30',
    ),
    'line 0 is in the output with its Shanghai timestamp',
  );
  const reasons = new Set(want.dead.map((d) => d.reason.replace(/'.*'/, "'…'").replace(/: .*$/, '')));
  assert.ok(reasons.size >= 4, `several kinds of malformed lines: ${[...reasons].join('; ')}`);

  const batches = parseEtlBatches(run.stdout);
  checkBatches(batches, n.input, run.output());
  assert.ok(
    batches.filter((b) => b.in > 0).length >= 3,
    `the lines came in several batches\n${run.output()}`,
  );
  assert.equal(total(batches, 'in'), 600);
  assert.equal(total(batches, 'out'), want.out.length);
  assert.equal(total(batches, 'dead'), want.dead.length);
  for (const b of batches.filter((x) => x.reason !== undefined)) {
    assert.ok(
      want.dead.some((d) => d.reason === b.reason),
      `the sample reason ${b.reason} is one of the dead letters' reasons`,
    );
  }
  const stopped = /^Stopped: (\d+) batches, (\d+) in, (\d+) out, (\d+) dead letters\.$/m.exec(run.stdout);
  assert.ok(stopped, run.output());
  assert.deepEqual(stopped.slice(1).map(Number), [batches.length, 600, want.out.length, want.dead.length]);
});

test('kafka-etl example: a crash after the output is written but before the commit (CRASH_IN_BATCH) hides that batch from read_committed readers; the restart redoes it and every line ends up exactly once', async () => {
  bootstrap = await kafkaBootstrap();
  const n = names('example-etl-crash');
  await createTopic(bootstrap, n.input, 3);
  const lines = 1500;
  await produce(bootstrap, n.input, records(0, lines));
  const want = expected(0, lines);

  // About 150 lines per 500 ms batch; the 3rd batch with lines kills the process inside its transaction.
  const first = startEtl(n, { MAX_RATE_PER_PARTITION: '100', CRASH_IN_BATCH: '3' });
  const crashed = await first.waitForExit(60_000);
  assert.deepEqual(crashed, { code: null, signal: 'SIGKILL' }, first.output());
  assert.match(first.stdout, /^Crashing \(CRASH_IN_BATCH=3\): output written in the open transaction/m);
  const firstBatches = parseEtlBatches(first.stdout);
  assert.equal(
    firstBatches.filter((b) => b.in > 0).length,
    2,
    `two batches committed before the crash\n${first.output()}`,
  );
  const committedBefore = total(firstBatches, 'out');

  // The crashed batch's output is in the log (read_uncommitted sees it) but not committed.
  const uncommitted = await kcat(bootstrap, n.output, 'read_uncommitted');
  assert.ok(
    uncommitted.length > committedBefore,
    `the crashed batch wrote output (${uncommitted.length} records in the log, ${committedBefore} committed)\n${first.output()}`,
  );

  const second = startEtl(n, { MAX_RATE_PER_PARTITION: '2000' });
  await second.waitFor(
    (o) => total(parseEtlBatches(o), 'in') >= lines - total(firstBatches, 'in'),
    'the rest of the lines',
    60_000,
  );
  const exit = await second.stop('SIGINT', 30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, second.output());
  const both = `${first.output()}\n${second.output()}`;

  const [out, dead] = [await kcat(bootstrap, n.output), await kcat(bootstrap, n.dlq)];
  checkOutput(out, want.out, both);
  checkDeadLetters(dead, want.dead, n.input, both);
  // The aborted batch's records are still in the log: only the transaction keeps them from readers.
  const all = await kcat(bootstrap, n.output, 'read_uncommitted');
  assert.ok(all.length > want.out.length, `read_uncommitted sees the aborted records too (${all.length})`);

  // The second run resumed exactly where the last committed batch of the first ended.
  const secondBatches = parseEtlBatches(second.stdout);
  checkBatches(secondBatches, n.input, second.output());
  for (const r of secondBatches[0]!.ranges) {
    const last = firstBatches.at(-1)!.ranges.find((x) => x.partition === r.partition)!;
    assert.equal(r.from, last.until, `partition ${r.partition} resumes at the committed offset\n${both}`);
  }
  assert.equal(total(firstBatches, 'in') + total(secondBatches, 'in'), lines);
  assert.equal(total(firstBatches, 'out') + total(secondBatches, 'out'), want.out.length);
  assert.equal(total(firstBatches, 'dead') + total(secondBatches, 'dead'), want.dead.length);
});

test('kafka-etl example: an unknown ETL_TIME_ZONE stops it before it starts, with exit 1 and the zone named', async () => {
  bootstrap = await kafkaBootstrap();
  const n = names('example-etl-tz');
  const run = startEtl(n, { ETL_TIME_ZONE: 'Mars/Olympus_Mons' });
  const exit = await run.waitForExit(30_000);
  assert.deepEqual(exit, { code: 1, signal: null }, run.output());
  assert.match(run.stderr, /cannot start: .*Invalid option 'timeZone': got "Mars\/Olympus_Mons"/);
  assert.doesNotMatch(run.stdout, /^Batch /m);
});
