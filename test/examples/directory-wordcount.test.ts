import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import {
  ChildRun,
  afterTests,
  parsePrintedBatches,
  sameCounts,
  sortedEntries,
  totalCounts,
  wordCounts,
} from './child-process.js';

const { runs, tempDir } = afterTests();

test('directory-wordcount example counts the words of each file moved into the watched directory, each file once (also across a restart), and exits 0 on SIGINT', async () => {
  const root = await tempDir('sluice-dir-example-');
  const watched = path.join(root, 'incoming');
  const staging = path.join(root, 'staging'); // same file system: the move is a rename
  await mkdir(watched);
  await mkdir(staging);
  // A file already there before the job starts is new to it too.
  const early = 'alpha beta\nalpha gamma\n';
  await writeFile(path.join(staging, 'early.txt'), early);
  await rename(path.join(staging, 'early.txt'), path.join(watched, 'early.txt'));

  const run = ChildRun.sluice(['run', 'examples/directory-wordcount.ts'], {
    WATCH_DIR: watched,
    BATCH_INTERVAL_MS: '500',
  });
  runs.push(run);
  await run.waitFor(
    (out) => sameCounts(totalCounts(out), wordCounts(early)),
    'the counts of early.txt',
    20_000,
  );
  assert.deepEqual(sortedEntries(totalCounts(run.stdout)), [
    ['alpha', 2],
    ['beta', 1],
    ['gamma', 1],
  ]);

  // Two more files, written elsewhere and moved in together: counted once each, in one or two batches.
  const batchesBefore = parsePrintedBatches(run.stdout).length;
  const one = 'delta alpha\n'.repeat(30);
  const two = 'epsilon delta\r\nzeta\r\n'.repeat(7) + 'last line without newline';
  await writeFile(path.join(staging, 'one.txt'), one);
  await writeFile(path.join(staging, 'two.log'), two);
  await rename(path.join(staging, 'one.txt'), path.join(watched, 'one.txt'));
  await rename(path.join(staging, 'two.log'), path.join(watched, 'two.log'));
  const expected = wordCounts(early + one + two);
  await run.waitFor((out) => sameCounts(totalCounts(out), expected), 'the counts of all three files', 15_000);
  assert.deepEqual(sortedEntries(totalCounts(run.stdout)), [
    ['alpha', 32],
    ['beta', 1],
    ['delta', 37],
    ['epsilon', 7],
    ['gamma', 1],
    ['last', 1],
    ['line', 1],
    ['newline', 1],
    ['without', 1],
    ['zeta', 7],
  ]);

  // Later batches keep printing (empty ones) and never count a file again.
  const printed = parsePrintedBatches(run.stdout).length;
  await run.waitFor((out) => parsePrintedBatches(out).length >= printed + 2, 'two more batches', 10_000);
  assert.ok(sameCounts(totalCounts(run.stdout), expected), run.output());
  assert.ok(parsePrintedBatches(run.stdout).slice(batchesBefore).length >= 2);

  const exit = await run.stop('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  // The names read are kept next to the files: a restarted job reads only the files new to it.
  assert.ok(existsSync(path.join(watched, '.sluice-read-files.json')));
  const again = ChildRun.sluice(['run', 'examples/directory-wordcount.ts'], {
    WATCH_DIR: watched,
    BATCH_INTERVAL_MS: '500',
  });
  runs.push(again);
  await again.waitFor(
    (out) => parsePrintedBatches(out).length >= 1,
    'the first batch after the restart',
    20_000,
  );
  const fresh = 'omega omega\n';
  await writeFile(path.join(staging, 'fresh.txt'), fresh);
  await rename(path.join(staging, 'fresh.txt'), path.join(watched, 'fresh.txt'));
  await again.waitFor((out) => totalCounts(out).size > 0, 'the counts of fresh.txt', 15_000);
  const printedAfterFresh = parsePrintedBatches(again.stdout).length;
  await again.waitFor((out) => parsePrintedBatches(out).length > printedAfterFresh, 'one more batch', 10_000);
  assert.deepEqual(sortedEntries(totalCounts(again.stdout)), [['omega', 2]], again.output());
  assert.deepEqual(await again.stop('SIGINT'), { code: 0, signal: null }, again.output());
});
