import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { deleteTopic } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun } from '../examples/child-process.js';

interface DemoBatch {
  time: number;
  records: number;
  processingMs: number;
  schedulingDelayMs: number;
  ranges: { topic: string; partition: number; from: number; until: number; size: number }[];
  top: [string, number][] | undefined;
}

const VOCABULARY = new Set(
  'stream batch kafka offset partition record window state checkpoint sluice spark node exactly once latency delay commit replay'.split(
    ' ',
  ),
);

/** The demo's per-batch blocks: a `Batch <iso> (<ms>): ...` line, `offsets` lines and a `top 5:` line. */
function parseDemo(stdout: string): DemoBatch[] {
  const out: DemoBatch[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    const head =
      /^Batch \S+ \((\d+)\): (\d+) records, processing (\d+) ms, scheduling delay (-?\d+) ms$/.exec(line);
    const range = /^ {2}offsets (\S+) (\d+) (\d+) (\d+) \((\d+)\)$/.exec(line);
    const top = /^ {2}top 5: (.*)$/.exec(line);
    if (head) {
      out.push({
        time: Number(head[1]),
        records: Number(head[2]),
        processingMs: Number(head[3]),
        schedulingDelayMs: Number(head[4]),
        ranges: [],
        top: undefined,
      });
    } else if (range && out.length > 0) {
      const [, topic, p, from, until, size] = range;
      out
        .at(-1)!
        .ranges.push({
          topic: topic!,
          partition: Number(p),
          from: Number(from),
          until: Number(until),
          size: Number(size),
        });
    } else if (top && out.length > 0) {
      out.at(-1)!.top =
        top[1] === '(no records)'
          ? []
          : top[1]!.split(', ').map((entry) => {
              const [w, n] = entry.split(' ');
              return [w!, Number(n)] as [string, number];
            });
    }
  }
  // The last block may still be being printed: keep only blocks with their top-5 line.
  return out.filter((b) => b.top !== undefined);
}

function checkBatches(batches: DemoBatch[], topic: string, output: string): void {
  for (const b of batches) {
    const where = `batch ${b.time}\n${output}`;
    assert.equal(b.time % 1000, 0, `batch time is a multiple of the 1 s interval: ${where}`);
    assert.deepEqual(
      b.ranges.map((r) => [r.topic, r.partition]),
      [
        [topic, 0],
        [topic, 1],
        [topic, 2],
      ],
      where,
    );
    for (const r of b.ranges) assert.equal(r.size, r.until - r.from, where);
    assert.equal(
      b.records,
      b.ranges.reduce((n, r) => n + r.size, 0),
      where,
    );
    assert.ok(b.processingMs >= 0 && b.schedulingDelayMs >= 0, where);
    if (b.records > 0) {
      assert.equal(b.top!.length, 5, where);
      for (const [w] of b.top!)
        assert.ok(VOCABULARY.has(w), `top word ${w} is from the vocabulary: ${where}`);
      const counts = b.top!.map(([, n]) => n);
      assert.deepEqual(
        counts,
        [...counts].sort((x, y) => y - x),
        `top 5 sorted by count: ${where}`,
      );
      // Lines have 3 to 8 words: the 5 most frequent words cannot add up to more than 8 per record.
      assert.ok(counts.at(-1)! > 0 && counts.reduce((n, c) => n + c, 0) <= 8 * b.records, where);
    }
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

const runs: ChildRun[] = [];
const topics: string[] = [];
let bootstrap = '';
after(async () => {
  for (const r of runs) await r.kill();
  for (const t of topics) await deleteTopic(bootstrap, t).catch(() => {});
});

test('the demo produces text and prints per-batch offset ranges, counts, timings and top 5 words; SIGINT stops it with exit 0', async () => {
  bootstrap = await kafkaBootstrap();
  const topic = uniqueName('demo-text');
  topics.push(topic);
  const run = ChildRun.node(['--import', 'tsx', 'scripts/demo.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    SLUICE_DEMO_TOPIC: topic,
  });
  runs.push(run);
  await run.waitFor(
    (out) => parseDemo(out).filter((b) => b.records > 0).length >= 3,
    '3 batches with records',
    40_000,
  );
  assert.match(run.stdout, new RegExp(`^Topic ${topic}: 3 partitions$`, 'm'));

  const exit = await run.stop('SIGINT', 30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  const batches = parseDemo(run.stdout);
  checkBatches(batches, topic, run.output());
  assert.ok(batches.filter((b) => b.records > 0).length >= 3, run.output());
  assert.match(run.stdout, /^Stopping \(SIGINT\): finishing the running batch\.\.\.$/m);
  const summary = /^Stopped: (\d+) batches, (\d+) records counted, (\d+) lines produced\.$/m.exec(run.stdout);
  assert.ok(summary, run.output());
  assert.equal(Number(summary[1]), batches.length, 'every batch was printed, the last one included');
  assert.equal(
    Number(summary[2]),
    batches.reduce((n, b) => n + b.records, 0),
  );
  assert.ok(Number(summary[3]) >= Number(summary[2]), 'it counted no more lines than were produced');
});

test('the demo stops by itself with exit 0 after SLUICE_DEMO_BATCHES batches', async () => {
  bootstrap = await kafkaBootstrap();
  const topic = uniqueName('demo-text');
  topics.push(topic);
  const run = ChildRun.node(['--import', 'tsx', 'scripts/demo.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    SLUICE_DEMO_TOPIC: topic,
    SLUICE_DEMO_BATCHES: '3',
  });
  runs.push(run);
  const exit = await run.waitForExit(40_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  const batches = parseDemo(run.stdout);
  assert.equal(batches.length, 3, run.output());
  checkBatches(batches, topic, run.output());
  assert.match(run.stdout, /^Stopped: 3 batches, \d+ records counted, \d+ lines produced\.$/m);
});
