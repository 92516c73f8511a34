/**
 * `sluice checkpoint inspect|migrate` on checkpoints written by real pipelines (the test driver over
 * an in-memory log, with a CheckpointDirectory), through the command functions and the real CLI.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CheckpointDirectory } from '../../src/checkpoint/directory.js';
import { readManifest } from '../../src/checkpoint/files.js';
import {
  inspectCheckpointCommand,
  migrateCheckpointCommand,
  runCheckpointCommand,
  type CheckpointInspection,
} from '../../src/cli/checkpoint.js';
import type { DStream } from '../../src/core/dstream.js';
import { CheckpointIncompatibleError } from '../../src/core/errors.js';
import { InMemoryLog, InMemoryLogSource, type LogRecord } from '../../src/core/memory-log.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { ChildRun } from '../examples/child-process.js';

const root = await mkdtemp(path.join(tmpdir(), 'sluice-cli-checkpoint-'));
after(() => rm(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => path.join(root, `cp-${++dirs}`);

const BATCHES = [
  ['apple', 'fig'],
  ['apple', 'kiwi'],
  ['fig', 'apple'],
  ['plum', 'kiwi'],
];
function wordLog(): InMemoryLog<string> {
  const log = new InMemoryLog<string>();
  log.createTopic('words', 1);
  for (const b of BATCHES) log.append('words', 0, b);
  return log;
}

const countBy = (words: DStream<string>, key: (w: string) => string, name: string) =>
  words
    .mapToPair((w) => [key(w), 1] as [string, number])
    .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name });

/**
 * One run of the word-count pipeline on `dir`: `counts` per word, and (unless `withLengths` is false)
 * `lengths` per word length. Returns the last running counts.
 */
async function runPipeline(
  log: InMemoryLog<string>,
  dir: string,
  batches: number,
  opts: { withLengths?: boolean; stop?: boolean; fullEvery?: number } = {},
): Promise<Map<string, number>> {
  const driver = new TestDriver({
    checkpoint: new CheckpointDirectory({ dir }),
    pipelineId: 'wordcount',
    checkpointFullEvery: opts.fullEvery,
  });
  const words = driver.context
    .stream(new InMemoryLogSource(log, { topics: ['words'], maxRecordsPerPartition: 2 }), { name: 'words' })
    .map((r: LogRecord<string>) => r.value, { name: 'values' });
  const counts = driver.collect(
    countBy(words, (w) => w, 'counts'),
    { name: 'counts-out' },
  );
  if (opts.withLengths !== false)
    driver.collect(
      countBy(words, (w) => String(w.length), 'lengths'),
      { name: 'lengths-out' },
    );
  await driver.start();
  for (let i = 0; i < batches; i++) await driver.advance();
  if (opts.stop !== false) await driver.stop();
  return new Map(counts.last());
}

const wordCounts = (batches: string[][]) => {
  const m = new Map<string, number>();
  for (const w of batches.flat()) m.set(w, (m.get(w) ?? 0) + 1);
  return m;
};
const sortedMap = (m: Map<string, number>) => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

describe('sluice checkpoint inspect', () => {
  it('prints the pipeline, fingerprint, last batch, offsets, and each operator with its state files and bytes', async () => {
    const dir = freshDir();
    await runPipeline(wordLog(), dir, 3, { stop: false, fullEvery: 10 });
    const run = ChildRun.sluice(['checkpoint', 'inspect', dir]);
    assert.deepEqual(await run.waitForExit(30_000), { code: 0, signal: null }, run.output());
    const m = (await readManifest(dir))!;
    const out = run.stdout;
    assert.match(
      out,
      new RegExp(`^checkpoint ${dir} \\(manifest version 1, commit 3, updated \\S+\\)$`, 'm'),
    );
    assert.match(out, /^pipeline {5}wordcount$/m);
    assert.match(out, new RegExp(`^fingerprint  ${m.fingerprint}$`, 'm'));
    assert.match(out, /^last batch {3}3000 \(1970-01-01T00:00:03\.000Z\)$/m);
    assert.match(out, /^ {2}GROUP +TOPIC +PARTITION +OFFSET\n {2}wordcount +words +0 +6$/m);
    assert.match(out, /^ {2}counts +updateStateByKey +\d+ +state\/full-1000-1\.json \+ 2 delta\(s\)$/m);
    assert.match(out, /^ {2}lengths +updateStateByKey +\d+ +state\/full-1000-1\.json \+ 2 delta\(s\)$/m);
    assert.match(out, /^ {2}state\/delta-3000-3\.json +\d+ +delta$/m);
    assert.match(out, /^total \d+ bytes$/m);
    assert.equal(run.stderr, '');
  });

  it('--json prints the manifest, the operators and every file with its size and role', async () => {
    const dir = freshDir();
    const log = wordLog();
    await runPipeline(log, dir, 1); // full snapshot at 1000, then the final one of the stop
    await runPipeline(log, dir, 1, { stop: false });
    const result = await inspectCheckpointCommand(dir, { json: true });
    assert.equal(result.exitCode, 0);
    const info = JSON.parse(result.lines[0]!) as CheckpointInspection;
    assert.deepEqual(info.manifest, await readManifest(dir));
    // The second run's batch times depend on where the engine resumes: take them from the manifest.
    const current = info.manifest.state.full!;
    assert.notEqual(current, 'state/full-1000-2.json');
    assert.deepEqual(
      info.files.map((f) => [f.file, f.role]),
      [
        ['manifest.json', 'manifest'],
        ['state/full-1000-2.json', 'older full (kept)'],
        [current, 'full'],
      ],
    );
    assert.deepEqual(
      info.operators.map((o) => [o.name, o.files]),
      [
        ['counts', [current]],
        ['lengths', [current]],
      ],
    );
    assert.ok(info.operators.every((o) => o.bytes > 0));
    assert.equal(
      info.totalBytes,
      info.files.reduce((n, f) => n + f.bytes, 0),
    );
  });

  it('exits 2 for a directory without a checkpoint, and 1 with SLUICE_CHECKPOINT_CORRUPT for a manifest it cannot read', async () => {
    const errors: string[] = [];
    const io = { out: () => {}, err: (l: string) => errors.push(l) };
    const empty = freshDir();
    assert.equal(await runCheckpointCommand('inspect', () => inspectCheckpointCommand(empty), io), 2);
    assert.match(
      errors[0]!,
      /^sluice checkpoint inspect: SLUICE_INVALID_OPTION: .*with a manifest\.json \(none in /,
    );

    const dir = freshDir();
    await runPipeline(wordLog(), dir, 1);
    await writeFile(path.join(dir, 'manifest.json'), '{"version": 1, "pipel');
    assert.equal(await runCheckpointCommand('inspect', () => inspectCheckpointCommand(dir), io), 1);
    assert.match(
      errors[1]!,
      /^sluice checkpoint inspect: SLUICE_CHECKPOINT_CORRUPT: Checkpoint file .*manifest\.json is not JSON/,
    );
  });
});

describe('sluice checkpoint migrate', () => {
  it('runs the command the incompatible-checkpoint error names; the pipeline without that operator then resumes its counts', async () => {
    const dir = freshDir();
    const log = wordLog();
    const before = await runPipeline(log, dir, 2);
    assert.deepEqual(sortedMap(before), sortedMap(wordCounts(BATCHES.slice(0, 2))));

    let command = '';
    await assert.rejects(runPipeline(log, dir, 2, { withLengths: false }), (e: unknown) => {
      assert.ok(e instanceof CheckpointIncompatibleError);
      command = /`(sluice checkpoint migrate [^`]+)`/.exec(e.message)?.[1] ?? '';
      return true;
    });
    assert.equal(command, `sluice checkpoint migrate ${dir} --drop lengths`);
    const offsetsBefore = (await readManifest(dir))!.lastBatch.offsets;

    const run = ChildRun.sluice(command.split(' ').slice(1));
    assert.deepEqual(await run.waitForExit(30_000), { code: 0, signal: null }, run.output());
    assert.equal(
      run.stdout,
      [
        `dropped the state of lengths (updateStateByKey) in ${dir}`,
        'offsets kept: wordcount words-0=4',
        'operators with state: counts',
        '',
      ].join('\n'),
    );
    const m = (await readManifest(dir))!;
    assert.deepEqual(m.operators, [{ name: 'counts', kind: 'updateStateByKey' }]);
    assert.deepEqual(m.lastBatch.offsets, offsetsBefore);

    const after = await runPipeline(log, dir, 2, { withLengths: false });
    assert.deepEqual(sortedMap(after), sortedMap(wordCounts(BATCHES)), 'state kept, nothing read twice');
  });

  it('--reset-state drops every operator’s state but keeps the offsets: the pipeline counts only what comes after', async () => {
    const dir = freshDir();
    const log = wordLog();
    await runPipeline(log, dir, 2);
    const result = await migrateCheckpointCommand(dir, { resetState: true, json: true });
    const printed = JSON.parse(result.lines[0]!);
    assert.deepEqual(
      printed.dropped.map((o: { name: string }) => o.name),
      ['counts', 'lengths'],
    );
    assert.deepEqual(printed.operators, []);
    assert.deepEqual(printed.offsets, [{ group: 'wordcount', topic: 'words', partition: 0, offset: 4 }]);
    assert.equal((await new CheckpointDirectory({ dir }).loadCheckpoint('wordcount'))!.state.size, 0);
    const after = await runPipeline(log, dir, 2);
    assert.deepEqual(sortedMap(after), sortedMap(wordCounts(BATCHES.slice(2))));
  });

  it('refuses an operator the checkpoint does not have (exit 2, listing those it has) and changes nothing', async () => {
    const dir = freshDir();
    await runPipeline(wordLog(), dir, 1);
    const manifest = await readFile(path.join(dir, 'manifest.json'), 'utf8');
    const run = ChildRun.sluice(['checkpoint', 'migrate', dir, '--drop', 'counts', '--drop', 'totals']);
    assert.deepEqual(await run.waitForExit(30_000), { code: 2, signal: null }, run.output());
    assert.match(
      run.stderr,
      /^sluice checkpoint migrate: SLUICE_INVALID_OPTION: Invalid option '--drop': got "totals"\. Accepted: operators with state in the checkpoint: counts, lengths/,
    );
    assert.equal(await readFile(path.join(dir, 'manifest.json'), 'utf8'), manifest);
  });

  it('needs --drop or --reset-state, not both, and a checkpoint to change (exit 2)', async () => {
    const dir = freshDir();
    await runPipeline(wordLog(), dir, 1);
    const io = { out: () => {}, err: () => {} };
    assert.equal(await runCheckpointCommand('migrate', () => migrateCheckpointCommand(dir, {}), io), 2);
    assert.equal(
      await runCheckpointCommand(
        'migrate',
        () => migrateCheckpointCommand(dir, { drop: ['counts'], resetState: true }),
        io,
      ),
      2,
    );
    assert.equal(
      await runCheckpointCommand('migrate', () => migrateCheckpointCommand(freshDir(), { drop: ['x'] }), io),
      2,
    );
  });
});
