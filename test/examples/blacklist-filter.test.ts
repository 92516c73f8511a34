/**
 * Case 8 as a real process: `sluice run examples/blacklist-filter.ts` reads access-log lines from
 * Kafka and drops those whose IP is in a blacklist file. The test changes the file while the job
 * runs: lines of the newly blacklisted IP are dropped from the batches after the change, and its
 * earlier lines were printed.
 */
import assert from 'node:assert/strict';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from './child-process.js';

interface KeptBatch {
  time: number;
  kept: number;
  total: number;
  version: number;
  lines: string[];
}

/** The example's output: `blacklist v<n> at <ms>: ips` lines, and per batch a header and the kept lines. */
function parse(stdout: string): { versions: Map<number, { at: number; ips: string }>; batches: KeptBatch[] } {
  const versions = new Map<number, { at: number; ips: string }>();
  const batches: KeptBatch[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^blacklist v(\d+) at (\d+): (.*)$/.exec(line))) {
      versions.set(Number(m[1]), { at: Number(m[2]), ips: m[3]! });
    } else if ((m = /^Time: (\d+) ms — kept (\d+) of (\d+) lines \(blacklist v(\d+)\)$/.exec(line))) {
      batches.push({
        time: Number(m[1]),
        kept: Number(m[2]),
        total: Number(m[3]),
        version: Number(m[4]),
        lines: [],
      });
    } else if (line.includes('##')) {
      batches.at(-1)!.lines.push(line);
    }
  }
  return { versions, batches };
}

const A = '10.0.0.1';
const B = '10.0.0.2';
const C = '10.0.0.3';

/** `n` lines of `ip` in `round`, each unique by its request path; spread over the two partitions. */
function lines(round: number, ip: string, n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) =>
      `${ip}##2024-05-01T10:0${round}:${String(i).padStart(2, '0')}Z##GET /r${round}/${ip}/${i}##200##${100 + i}`,
  );
}

const { runs, cleanups, tempDir } = afterTests();

test('blacklist-filter drops the lines of a newly blacklisted IP from the next batches on, keeps its earlier lines, and exits 0 on SIGINT', async () => {
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName('example-blacklist');
  await createTopic(bootstrap, topic, 2);
  cleanups.push(() => deleteTopic(bootstrap, topic));
  const dir = await tempDir('sluice-blacklist-');
  const file = path.join(dir, 'blacklist.txt');
  /** Replaces the file in one rename, so the job never reads half of it. */
  const writeBlacklist = async (ips: string[]) => {
    await writeFile(`${file}.tmp`, `# blacklisted IPs\n${ips.join('\n')}\n`);
    await rename(`${file}.tmp`, file);
  };
  await writeBlacklist([C]);

  const send = (ls: string[]) =>
    produce(
      bootstrap,
      topic,
      ls.map((value, i) => ({ value, partition: i % 2 })),
    );
  const round1 = [...lines(1, A, 4), ...lines(1, B, 4), ...lines(1, C, 3)];
  await send(round1);

  const run = ChildRun.sluice(['run', 'examples/blacklist-filter.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    KAFKA_TOPIC: topic,
    BLACKLIST_FILE: file,
    BATCH_INTERVAL_MS: '500',
  });
  runs.push(run);
  const printed = () => parse(run.stdout).batches.flatMap((b) => b.lines);
  await run.waitFor(() => printed().length >= 8, "round 1's 8 lines of A and B", 30_000);

  // Blacklist B as well, and wait until a batch has read the new file: every later batch uses it.
  await writeBlacklist([C, B]);
  await run.waitFor(
    () => parse(run.stdout).versions.has(2),
    'the job to read the new blacklist (v2)',
    10_000,
  );
  const round2 = [...lines(2, A, 4), ...lines(2, B, 4), ...lines(2, C, 3)];
  await send(round2);
  await run.waitFor(() => lines(2, A, 4).every((l) => printed().includes(l)), "round 2's lines of A", 20_000);
  const seen = parse(run.stdout).batches.length;
  await run.waitFor(() => parse(run.stdout).batches.length >= seen + 2, 'two more batches', 10_000);

  const exit = await run.stop('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());

  const { versions, batches } = parse(run.stdout);
  assert.deepEqual(
    [...versions.values()].map((v) => v.ips),
    [C, `${B}, ${C}`],
    run.output(),
  );
  const all = batches.flatMap((b) => b.lines);
  // Before the change: A and B kept, C (blacklisted from the start) dropped.
  for (const l of [...lines(1, A, 4), ...lines(1, B, 4)])
    assert.ok(all.includes(l), `kept: ${l}\n${run.output()}`);
  // After: only A. B's new lines, and C's, were never printed.
  for (const l of lines(2, A, 4)) assert.ok(all.includes(l), `kept: ${l}\n${run.output()}`);
  for (const l of [...lines(1, C, 3), ...lines(2, B, 4), ...lines(2, C, 3)]) {
    assert.ok(!all.includes(l), `dropped: ${l}\n${run.output()}`);
  }
  assert.equal(all.length, new Set(all).size, 'each line printed once');
  assert.equal(all.length, 12);
  // Every batch read the blacklist version its header names, and the counts add up: the 22 lines
  // produced were all read, 12 kept.
  const v2 = versions.get(2)!.at;
  for (const b of batches) {
    assert.equal(b.kept, b.lines.length, `batch ${b.time}`);
    assert.equal(b.version, b.time >= v2 ? 2 : 1, `batch ${b.time}`);
    if (b.version === 2)
      assert.ok(
        b.lines.every((l) => l.startsWith(`${A}##`)),
        `batch ${b.time} keeps only A`,
      );
  }
  assert.equal(
    batches.reduce((n, b) => n + b.total, 0),
    round1.length + round2.length,
  );
});
