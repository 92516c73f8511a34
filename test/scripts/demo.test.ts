import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { deleteTopic } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from '../examples/child-process.js';
import { checkRanges, parseEtlBatches, total, type EtlBatch } from '../examples/etl-output.js';

/** The demo's batches, as examples/kafka-etl.ts prints them. */
function parseDemo(stdout: string): EtlBatch[] {
  // Each block is printed with one write; still, keep only blocks that have all their ranges.
  return parseEtlBatches(stdout).filter((b) => b.ranges.length === 3);
}

const OUTPUT_LINE = /^(\d+)\|(\d{13})\|\d+\.\d+\.\d+\.\d+:\d+\|\d+\.\d+\.\d+\.\d+:\d+\|http:\/\/\S+$/;
const REASON =
  /^(expected 15 fields, got \d+|field \d+ is not wrapped in <<<!>>>: '.*'|bad time '.*' \(field 2\): .+)$/;

function checkBatches(batches: EtlBatch[], topic: string, output: string): void {
  for (const b of batches) {
    const where = `batch ${b.time}\n${output}`;
    assert.equal(b.time % 1000, 0, `batch time is a multiple of the 1 s interval: ${where}`);
    checkRanges(b, topic, where);
    assert.equal(
      b.in,
      b.ranges.reduce((n, r) => n + r.size, 0),
      `records in = the sum of the ranges: ${where}`,
    );
    assert.equal(b.in, b.out + b.dead, `every line is either output or a dead letter: ${where}`);
    assert.ok(b.processingMs >= 0 && b.schedulingDelayMs >= 0, where);
    assert.equal(b.output !== undefined, b.out > 0, where);
    assert.equal(b.reason !== undefined, b.dead > 0, where);
    if (b.output !== undefined) {
      const m = OUTPUT_LINE.exec(b.output);
      assert.ok(m, `the output sample is userid|timestamp|ip:port|ip:port|url: ${where}`);
      // The generator writes the current wall time in Asia/Shanghai: read back in that zone it is
      // close to the batch time, whatever the process's TZ (a wrong zone is hours off).
      assert.ok(
        Math.abs(Number(m[2]) - b.time) < 3600_000,
        `timestamp ${m[2]} is the time of production: ${where}`,
      );
    }
    if (b.reason !== undefined) assert.match(b.reason, REASON, where);
  }
  // Consecutive batches continue each partition where the previous one ended.
  for (let i = 1; i < batches.length; i++) {
    for (const r of batches[i]!.ranges) {
      const prev = batches[i - 1]!.ranges.find((p) => p.partition === r.partition)!;
      assert.equal(
        r.from,
        prev.until,
        `partition ${r.partition} of batch ${batches[i]!.time} starts where it ended\n${output}`,
      );
    }
  }
}

/** Counts a topic's records with kcat (read_committed), not with Sluice. */
function kcatCount(bootstrap: string, topic: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      'kcat',
      ['-C', '-b', bootstrap, '-t', topic, '-X', 'isolation.level=read_committed', '-e', '-q', '-f', 'x\n'],
      { timeout: 30_000, maxBuffer: 16 * 2 ** 20 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`kcat ${topic}: ${err.message}\n${stderr}`))
          : resolve(stdout.split('\n').length - 1),
    );
  });
}

const { runs, cleanups } = afterTests();
let bootstrap = '';

function startDemo(env: Record<string, string> = {}): { run: ChildRun; topic: string } {
  const topic = uniqueName('demo-access-log');
  for (const t of [topic, `${topic}-clean`, `${topic}-dead-letters`])
    cleanups.push(() => deleteTopic(bootstrap, t));
  const run = ChildRun.node(['--import', 'tsx', 'scripts/demo.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    SLUICE_DEMO_TOPIC: topic,
    // The demo's time zone is its own setting; the process's zone must not matter.
    TZ: 'America/Los_Angeles',
    // Enough malformed lines that every batch with records has some.
    SLUICE_DEMO_MALFORMED_PERCENT: '10',
    ...env,
  });
  runs.push(run);
  return { run, topic };
}

test('the demo produces access-log lines and prints per batch its offset ranges, records in and out, dead letters with a reason and timings; the topics hold what it printed; SIGINT stops it with exit 0', async () => {
  bootstrap = await kafkaBootstrap();
  const { run, topic } = startDemo();
  await run.waitFor(
    (out) => parseDemo(out).filter((b) => b.in > 0).length >= 3,
    '3 batches with records',
    60_000,
  );
  assert.match(
    run.stdout,
    new RegExp(
      `^Topics: input ${topic} \\(3 partitions\\), output ${topic}-clean, dead letters ${topic}-dead-letters$`,
      'm',
    ),
  );

  const exit = await run.stop('SIGINT', 30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  const batches = parseDemo(run.stdout);
  checkBatches(batches, topic, run.output());
  assert.ok(batches.filter((b) => b.in > 0).length >= 3, run.output());
  assert.ok(total(batches, 'dead') > 0, `some lines were dead-lettered\n${run.output()}`);
  assert.match(run.stdout, /^Stopping \(SIGINT\): finishing the running batch\.\.\.$/m);
  const summary =
    /^Stopped: (\d+) batches, (\d+) in, (\d+) out, (\d+) dead letters; (\d+) lines produced \((\d+) malformed\)\.$/m.exec(
      run.stdout,
    );
  assert.ok(summary, run.output());
  const [batchCount, recordsIn, recordsOut, dead, produced, malformed] = summary.slice(1).map(Number);
  assert.equal(batchCount, batches.length, 'every batch was printed, the last one included');
  assert.equal(recordsIn, total(batches, 'in'));
  assert.equal(recordsOut, total(batches, 'out'));
  assert.equal(dead, total(batches, 'dead'));
  assert.ok(produced! >= recordsIn!, 'it read no more lines than were produced');
  assert.ok(malformed! >= dead!, 'no more dead letters than malformed lines produced');
  // What the batches committed is what a read_committed consumer finds in the topics.
  assert.equal(await kcatCount(bootstrap, `${topic}-clean`), recordsOut, run.output());
  assert.equal(await kcatCount(bootstrap, `${topic}-dead-letters`), dead, run.output());
});

test('the demo stops by itself with exit 0 after SLUICE_DEMO_BATCHES batches', async () => {
  bootstrap = await kafkaBootstrap();
  const { run, topic } = startDemo({ SLUICE_DEMO_BATCHES: '3' });
  const exit = await run.waitForExit(60_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  const batches = parseDemo(run.stdout);
  assert.equal(batches.length, 3, run.output());
  checkBatches(batches, topic, run.output());
  assert.match(
    run.stdout,
    /^Stopped: 3 batches, \d+ in, \d+ out, \d+ dead letters; \d+ lines produced \(\d+ malformed\)\.$/m,
  );
});
