/**
 * Cases 9 and 11 as real processes: `sluice run --supervise examples/stateful-wordcount.ts` reads a
 * 2-partition topic while words keep being produced; its pipeline child is SIGKILLed five times at
 * random moments (during start-up as well as mid-stream) and restarted by the supervisor from its
 * CheckpointDirectory. Every line it ever printed must hold exactly the counts of the words before
 * its offsets, and the last one the counts of everything produced: no loss, no double counting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readManifest } from '../../src/checkpoint/files.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from './child-process.js';

interface Printed {
  time: number;
  records: number;
  ranges: { topic: string; partition: number; from: number; until: number }[];
  counts: Record<string, number>;
}

const VOCABULARY = ['apple', 'fig', 'kiwi', 'plum', 'pear', 'lime', 'date', 'sloe', 'yuzu', 'quince'];
const PARTITIONS = 2;

/** The complete lines printed so far, parsed (every stdout line of the example is one JSON object). */
function printed(stdout: string): Printed[] {
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Printed);
}

const { runs, cleanups, tempDir } = afterTests();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined,
  run: ChildRun,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (run.exitInfo) throw new Error(`the supervisor exited before ${what}\n${run.output()}`);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${run.output()}`);
    await sleep(50);
  }
}

/** The pipeline children the supervisor started: run number and pid, in order. */
const started = (stderr: string) =>
  [...stderr.matchAll(/started \S+ \(run (\d+), pid (\d+)\)/g)].map((m) => ({
    run: Number(m[1]),
    pid: Number(m[2]),
  }));

test('case 11: SIGKILLed five times mid-stream under --supervise, the running word counts stay exact: nothing lost, nothing counted twice', async (t) => {
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName('example-stateful-wordcount');
  await createTopic(bootstrap, topic, PARTITIONS);
  cleanups.push(() => deleteTopic(bootstrap, topic));
  const dir = await tempDir('sluice-stateful-wordcount-');

  /** Every produced line by partition and offset. */
  const lines = new Map<string, string>();
  let line = 0;
  const produceLines = async (n: number) => {
    const values = Array.from({ length: n }, () => {
      const words = Array.from(
        { length: 1 + Math.floor(Math.random() * 4) },
        () => VOCABULARY[Math.floor(Math.random() * VOCABULARY.length)]!,
      );
      return words.join(' ');
    });
    const acks = await produce(
      bootstrap,
      topic,
      values.map((value) => ({ value, partition: line++ % PARTITIONS })),
    );
    acks.forEach((a, i) => lines.set(`${a.partition}:${a.offset}`, values[i]!));
  };
  /** Word counts of the produced lines below `untils[partition]`. */
  const countsBelow = (untils: Map<number, number>): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const [key, text] of lines) {
      const [p, o] = key.split(':').map(Number) as [number, number];
      if (o >= (untils.get(p) ?? 0)) continue;
      for (const w of text.split(' ')) counts[w] = (counts[w] ?? 0) + 1;
    }
    return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1)));
  };

  await produceLines(200);
  const run = ChildRun.sluice(
    ['run', '--supervise', '--backoff-ms', '100', 'examples/stateful-wordcount.ts'],
    {
      KAFKA_BOOTSTRAP: bootstrap,
      KAFKA_TOPIC: topic,
      CHECKPOINT_DIR: dir,
      CHECKPOINT_FULL_EVERY: '3',
      BATCH_INTERVAL_MS: '200',
      SLUICE_LOG_LEVEL: 'warn',
    },
  );
  runs.push(run);

  // Words keep coming while the job is killed and restarted.
  let producing = true;
  const producer = (async () => {
    while (producing) {
      await produceLines(20);
      await sleep(50);
    }
  })();

  const KILLS = 5;
  const moments: string[] = [];
  try {
    for (let kill = 1; kill <= KILLS; kill++) {
      const child = await until(
        `pipeline run ${kill}`,
        60_000,
        () => started(run.stderr).find((s) => s.run === kill),
        run,
      );
      const linesBefore = printed(run.stdout).length;
      if (kill % 2 === 0) {
        // Anywhere in its life, start-up (loading the checkpoint, connecting) included.
        const wait = Math.floor(Math.random() * 1500);
        await sleep(wait);
        moments.push(`${wait} ms after start`);
      } else {
        // Mid-stream: once it has printed a batch, at a random moment of the batches that follow.
        await until(
          `a batch of run ${kill}`,
          60_000,
          () => (printed(run.stdout).length > linesBefore ? true : undefined),
          run,
        );
        const wait = Math.floor(Math.random() * 1200);
        await sleep(wait);
        moments.push(`${wait} ms after its first batch`);
      }
      process.kill(child.pid, 'SIGKILL');
      await until(
        `the report of kill ${kill}`,
        30_000,
        () => (run.stderr.includes(`restart ${kill} (`) ? true : undefined),
        run,
      );
    }
  } finally {
    producing = false;
    await producer;
  }
  await produceLines(30);

  // The last run reads everything produced.
  const ends = new Map<number, number>();
  for (const key of lines.keys()) {
    const [p, o] = key.split(':').map(Number) as [number, number];
    ends.set(p, Math.max(ends.get(p) ?? 0, o + 1));
  }
  const last = await until(
    'a batch that reaches the end of every partition',
    90_000,
    () => printed(run.stdout).find((b) => b.ranges.every((r) => r.until === ends.get(r.partition))),
    run,
  );
  assert.deepEqual(last.counts, countsBelow(ends), 'the final counts are the counts of everything produced');

  // Every line printed by any of the six runs holds the exact counts up to its offsets.
  const all = printed(run.stdout);
  for (const b of all) {
    assert.equal(b.ranges.length, PARTITIONS);
    const untils = new Map(b.ranges.map((r) => [r.partition, r.until]));
    assert.deepEqual(b.counts, countsBelow(untils), `the batch of ${b.time}: ${JSON.stringify(b.ranges)}`);
  }
  assert.equal(started(run.stderr).length, KILLS + 1);
  for (let kill = 1; kill <= KILLS; kill++) {
    assert.match(run.stderr, new RegExp(`failed \\(signal SIGKILL\\); restart ${kill} \\(\\d+ in a row\\)`));
  }

  const exit = await run.stop('SIGINT', 30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(
    run.stderr,
    new RegExp(`stopped \\(exit code 0\\) after ${KILLS} restart\\(s\\); last error: signal SIGKILL`),
  );
  const manifest = (await readManifest(dir))!;
  assert.deepEqual(
    manifest.lastBatch.offsets.map((o) => [o.partition, o.offset]),
    [...ends].sort(([a], [b]) => a - b),
  );
  assert.equal(manifest.state.deltas.length, 0, 'the graceful stop left a full snapshot');
  t.diagnostic(
    `${lines.size} lines produced, ${all.length} batches printed, kills at: ${moments.join('; ')}`,
  );
});
