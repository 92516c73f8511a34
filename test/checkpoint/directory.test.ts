import assert from 'node:assert/strict';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CheckpointDirectory, CheckpointPipelineMismatchError } from '../../src/checkpoint/directory.js';
import { CheckpointCorruptError, readManifest, type CheckpointManifest } from '../../src/checkpoint/files.js';
import type { StateUpdate } from '../../src/core/state.js';
import { decodeStateValue, encodeStateValue } from '../../src/core/state-codec.js';
import type { DStream } from '../../src/core/dstream.js';
import {
  CheckpointIncompatibleError,
  InvalidOptionError,
  OffsetConflictError,
} from '../../src/core/errors.js';
import { InMemoryLog, InMemoryLogSource, type LogRecord } from '../../src/core/memory-log.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import {
  GROUP,
  PARTITIONS,
  PIPELINE,
  TOPIC,
  expectedRecent,
  expectedTally,
  sortedEntries,
} from './fixtures/state-model.js';
import { COUNTS_OPERATORS as OPS, checkpointMeta, fullUpdate } from '../helpers/checkpoint.js';
import { killWhileWriting, runWriter as runFixture, tempRoot, within } from './helpers.js';

const { root, freshDir } = await tempRoot('sluice-checkpoint-dir-');

const conformanceDir = freshDir();
offsetStoreConformance('CheckpointDirectory', () => new CheckpointDirectory({ dir: conformanceDir }));

const meta = (batchTime: number, operators = OPS, pipelineId = 'wc') =>
  checkpointMeta(pipelineId, batchTime, operators, 'fp-1');
const deltaUpdate = (
  deltas: Record<string, { set: [unknown, unknown][]; removed: unknown[] }>,
  full: Record<string, unknown> = {},
): StateUpdate => ({ full: new Map(Object.entries(full)), deltas: new Map(Object.entries(deltas)) });
const range = (fromOffset: number, untilOffset: number, partition = 0) => ({
  topic: 'words',
  partition,
  fromOffset,
  untilOffset,
});

const readJson = async (file: string) => JSON.parse(await readFile(file, 'utf8'));
const stateFiles = async (dir: string) => (await readdir(path.join(dir, 'state'))).sort();

describe('CheckpointDirectory', () => {
  it('commits a readable manifest with offsets and operators, and one state file per commit: a full snapshot, then deltas on it', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [range(0, 3)], meta(1000), fullUpdate({ counts: [['a', 2]] }));
    await store.commitBatch(
      'wc',
      [range(3, 5)],
      meta(2000),
      deltaUpdate({ counts: { set: [['b', 1]], removed: ['a'] } }),
    );

    const manifest = await readJson(path.join(dir, 'manifest.json'));
    assert.match(manifest.updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(manifest, {
      version: 1,
      pipelineId: 'wc',
      fingerprint: 'fp-1',
      operators: OPS,
      commit: 2,
      lastBatch: { time: 2000, offsets: [{ group: 'wc', topic: 'words', partition: 0, offset: 5 }] },
      state: { full: 'state/full-1000-1.json', deltas: ['state/delta-2000-2.json'] },
      updatedAt: manifest.updatedAt,
    });
    assert.match(
      await readFile(path.join(dir, 'manifest.json'), 'utf8'),
      /\n {6}\{ "group": "wc", "topic": "words", "partition": 0, "offset": 5 \}\n/,
      'flat objects on one line each',
    );
    assert.deepEqual(await stateFiles(dir), ['delta-2000-2.json', 'full-1000-1.json']);
    assert.deepEqual(await readJson(path.join(dir, 'state', 'full-1000-1.json')), {
      version: 1,
      type: 'full',
      pipelineId: 'wc',
      batchTime: 1000,
      commit: 1,
      offsets: [{ group: 'wc', topic: 'words', partition: 0, offset: 3 }],
      operators: { counts: { kind: 'updateStateByKey', full: [['a', 2]] } },
    });
    assert.deepEqual((await readJson(path.join(dir, 'state', 'delta-2000-2.json'))).operators, {
      counts: { kind: 'updateStateByKey', delta: { set: [['b', 1]], removed: ['a'] } },
    });

    const cp = await new CheckpointDirectory({ dir }).loadCheckpoint('wc');
    assert.deepEqual(cp, {
      meta: meta(2000),
      state: new Map([['counts', { full: [['a', 2]], deltas: [{ set: [['b', 1]], removed: ['a'] }] }]]),
    });
    assert.deepEqual(await store.read('wc', ['words']), [{ topic: 'words', partition: 0, offset: 5 }]);
  });

  it('keeps the whole state of operators without deltas in a delta commit, and restores it in commit order', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    const ops = [...OPS, { name: 'last-2s', kind: 'window' }];
    await store.commitBatch('wc', [], meta(1000, ops), fullUpdate({ counts: [['a', 1]], 'last-2s': [1] }));
    await store.commitBatch(
      'wc',
      [],
      meta(2000, ops),
      deltaUpdate({ counts: { set: [['a', 2]], removed: [] } }, { 'last-2s': [1, 2] }),
    );
    await store.commitBatch(
      'wc',
      [],
      meta(3000, ops),
      deltaUpdate({ counts: { set: [['c', 1]], removed: [] } }, { 'last-2s': [2, 3] }),
    );
    const cp = (await store.loadCheckpoint('wc'))!;
    assert.deepEqual(cp.state.get('last-2s'), { full: [2, 3], deltas: [] });
    assert.deepEqual(cp.state.get('counts'), {
      full: [['a', 1]],
      deltas: [
        { set: [['a', 2]], removed: [] },
        { set: [['c', 1]], removed: [] },
      ],
    });
  });

  it('keeps `keepFull` full snapshots and removes older ones and the deltas behind a new full snapshot', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir, keepFull: 2 });
    let t = 0;
    const full = () => store.commitBatch('wc', [], meta((t += 1000)), fullUpdate({ counts: [['t', t]] }));
    const delta = () =>
      store.commitBatch(
        'wc',
        [],
        meta((t += 1000)),
        deltaUpdate({ counts: { set: [['t', t]], removed: [] } }),
      );
    await full();
    await delta();
    await delta();
    assert.deepEqual(await stateFiles(dir), ['delta-2000-2.json', 'delta-3000-3.json', 'full-1000-1.json']);
    await full();
    assert.deepEqual(await stateFiles(dir), ['full-1000-1.json', 'full-4000-4.json'], 'deltas behind it go');
    await delta();
    await full();
    assert.deepEqual(
      await stateFiles(dir),
      ['full-4000-4.json', 'full-6000-6.json'],
      'two full snapshots kept',
    );
    const m = (await readManifest(dir))!;
    assert.deepEqual(m.state, { full: 'state/full-6000-6.json', deltas: [] });

    const one = freshDir();
    const single = new CheckpointDirectory({ dir: one, keepFull: 1 });
    await single.commitBatch('wc', [], meta(1000), fullUpdate({ counts: [] }));
    await single.commitBatch('wc', [], meta(2000), fullUpdate({ counts: [] }));
    assert.deepEqual(await stateFiles(one), ['full-2000-2.json']);
  });

  it('an idle batch (no key changed) writes no state file, only the manifest with its time and offsets', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [range(0, 1)], meta(1000), fullUpdate({ counts: [['a', 1]] }));
    await store.commitBatch(
      'wc',
      [range(1, 1)],
      meta(2000),
      deltaUpdate({ counts: { set: [], removed: [] } }),
    );
    assert.deepEqual(await stateFiles(dir), ['full-1000-1.json']);
    const m = (await readManifest(dir))!;
    assert.deepEqual(m.state, { full: 'state/full-1000-1.json', deltas: [] });
    assert.equal(m.lastBatch.time, 2000);
    assert.equal(m.commit, 2);
    assert.deepEqual((await store.loadCheckpoint('wc'))!.state.get('counts'), {
      full: [['a', 1]],
      deltas: [],
    });
  });

  it('re-committing the same batch time (the final checkpoint of a graceful stop) writes a new file, never the referenced one', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [range(0, 1)], meta(1000), fullUpdate({ counts: [['a', 1]] }));
    await store.commitBatch('wc', [], meta(1000), fullUpdate({ counts: [['a', 1]] }));
    const m = (await readManifest(dir))!;
    assert.equal(m.state.full, 'state/full-1000-2.json');
    assert.equal(m.lastBatch.time, 1000);
    assert.deepEqual(m.lastBatch.offsets, [{ group: 'wc', topic: 'words', partition: 0, offset: 1 }]);
  });

  it('refuses a replayed batch with OffsetConflictError and changes neither the manifest nor the state files', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch(
      'wc',
      [range(0, 10), range(0, 4, 1)],
      meta(1000),
      fullUpdate({ counts: [['a', 1]] }),
    );
    const before = await readFile(path.join(dir, 'manifest.json'), 'utf8');
    const files = await stateFiles(dir);
    await assert.rejects(
      store.commitBatch(
        'wc',
        [range(10, 12), range(0, 4, 1)],
        meta(2000),
        deltaUpdate({ counts: { set: [['a', 2]], removed: [] } }),
      ),
      (e: unknown) =>
        e instanceof OffsetConflictError && e.partition === 1 && e.expected === 0 && e.stored === 4,
    );
    assert.equal(await readFile(path.join(dir, 'manifest.json'), 'utf8'), before);
    assert.deepEqual(await stateFiles(dir), files);
    // Offsets of another group do not count against this one.
    await store.commitBatch('wc', [range(10, 12)], meta(2000), fullUpdate({ counts: [['a', 2]] }));
    await store.write('other', [range(0, 7)], { compareAndSet: true });
    assert.deepEqual(await store.read('other', ['words']), [{ topic: 'words', partition: 0, offset: 7 }]);
  });

  it('serialises the commits of many instances on one directory: exactly one commit of each batch wins', async () => {
    const dir = freshDir();
    const stores = Array.from({ length: 4 }, () => new CheckpointDirectory({ dir }));
    stores.push(new CheckpointDirectory({ dir: path.relative(process.cwd(), dir) }));
    let offset = 0;
    for (let batch = 1; batch <= 10; batch++) {
      const results = await Promise.allSettled(
        stores.map((s, i) =>
          s.commitBatch(
            'wc',
            [range(offset, offset + 1 + i)],
            meta(batch * 1000),
            fullUpdate({ counts: [[i, batch]] }),
          ),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, `batch ${batch}`);
      for (const r of results)
        if (r.status === 'rejected') assert.ok(r.reason instanceof OffsetConflictError);
      offset += 1 + won[0]!;
      const cp = (await stores[0]!.loadCheckpoint('wc'))!;
      assert.deepEqual(cp.state.get('counts')!.full, [[won[0], batch]]);
    }
    assert.deepEqual(await stores[0]!.read('wc', ['words']), [{ topic: 'words', partition: 0, offset }]);
  });

  it('offset writes without state keep the state references and the last batch time', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [range(0, 5)], meta(1000), fullUpdate({ counts: [['a', 1]] }));
    await store.set('wc', [{ topic: 'words', partition: 0, offset: 3 }]);
    await store.write('wc', [range(3, 4, 0), range(0, 2, 1)], { compareAndSet: true });
    await store.delete('wc', ['nothing-here']);
    const m = (await readManifest(dir))!;
    assert.deepEqual(m.state, { full: 'state/full-1000-1.json', deltas: [] });
    assert.equal(m.lastBatch.time, 1000);
    assert.deepEqual(m.lastBatch.offsets, [
      { group: 'wc', topic: 'words', partition: 0, offset: 4 },
      { group: 'wc', topic: 'words', partition: 1, offset: 2 },
    ]);
    assert.deepEqual((await store.loadCheckpoint('wc'))!.state.get('counts')!.full, [['a', 1]]);
  });

  it('a directory with offsets only (no state commit yet) loads no checkpoint', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    assert.equal(await store.loadCheckpoint('wc'), undefined, 'empty directory');
    await store.write('wc', [range(0, 5)]);
    assert.equal(await store.loadCheckpoint('wc'), undefined);
    assert.equal((await readManifest(dir))!.pipelineId, null);
  });

  it('on first use removes temporary files and the state files no manifest references', async () => {
    const dir = freshDir();
    const first = new CheckpointDirectory({ dir });
    await first.commitBatch('wc', [range(0, 1)], meta(1000), fullUpdate({ counts: [['a', 1]] }));
    await first.commitBatch(
      'wc',
      [range(1, 2)],
      meta(2000),
      deltaUpdate({ counts: { set: [['a', 2]], removed: [] } }),
    );
    // What a commit killed before its manifest rename leaves, and interrupted atomic writes.
    await writeFile(path.join(dir, 'state', 'delta-3000-3.json'), '{"version":1,"type":"del');
    await writeFile(path.join(dir, 'state', '.full-3000-3.json.tmp-123-deadbeef'), '{');
    await writeFile(path.join(dir, '.manifest.json.tmp-123-deadbeef'), '{"version":1');
    await writeFile(path.join(dir, 'state', 'notes.txt'), 'not ours');
    // A new process opens the directory.
    const cp = await new CheckpointDirectory({ dir }).loadCheckpoint('wc');
    assert.equal(cp!.meta.batchTime, 2000);
    assert.deepEqual(await readdir(dir), ['manifest.json', 'state']);
    assert.deepEqual(await stateFiles(dir), ['delta-2000-2.json', 'full-1000-1.json', 'notes.txt']);
  });

  it('refuses a manifest or state file it cannot read, with CheckpointCorruptError, and overwrites nothing', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [range(0, 1)], meta(1000), fullUpdate({ counts: [['a', 1]] }));
    const manifest = path.join(dir, 'manifest.json');
    const good = await readFile(manifest, 'utf8');
    const refused = (pattern: RegExp) => (e: unknown) =>
      e instanceof CheckpointCorruptError && pattern.test(e.message);

    await writeFile(manifest, '{"version":1,"pipel');
    await assert.rejects(store.loadCheckpoint('wc'), refused(/is not JSON/));
    await assert.rejects(
      store.commitBatch('wc', [range(1, 2)], meta(2000), fullUpdate({ counts: [] })),
      refused(/is not JSON/),
    );
    await assert.rejects(store.read('wc', ['words']), refused(/is not JSON/));
    assert.equal(await readFile(manifest, 'utf8'), '{"version":1,"pipel');

    await writeFile(manifest, good.replace('"version": 1', '"version": 2'));
    await assert.rejects(store.loadCheckpoint('wc'), refused(/has version 2; this Sluice reads version 1/));

    await writeFile(manifest, good);
    await rm(path.join(dir, 'state', 'full-1000-1.json'));
    await assert.rejects(
      store.loadCheckpoint('wc'),
      refused(/full-1000-1\.json is missing \(the manifest references/),
    );
  });

  it('refuses the checkpoint of another pipeline with CheckpointPipelineMismatchError', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [], meta(1000), fullUpdate({ counts: [] }));
    const mismatch = (e: unknown) =>
      e instanceof CheckpointPipelineMismatchError && e.stored === 'wc' && e.pipelineId === 'other';
    await assert.rejects(store.loadCheckpoint('other'), mismatch);
    await assert.rejects(
      store.commitBatch('wc', [], meta(2000, OPS, 'other'), fullUpdate({ counts: [] })),
      mismatch,
    );
  });

  it('round-trips state values JSON cannot hold: bigint, undefined, NaN, Map, Set, Date, Buffer, Uint8Array, a $sluice key', async () => {
    const value = {
      big: 2n ** 70n,
      none: undefined,
      list: [undefined, NaN, Infinity, -Infinity, null],
      map: new Map<unknown, unknown>([[['k', 1], new Set(['a'])]]),
      when: new Date(1_700_000_000_123),
      bytes: Buffer.from([0, 1, 255]),
      raw: new Uint8Array([7, 8]),
      tricky: { $sluice: 'Date', value: 1 },
      ['__proto__']: 'own',
    };
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await store.commitBatch('wc', [], meta(1000), fullUpdate({ counts: value }));
    const restored = (await store.loadCheckpoint('wc'))!.state.get('counts')!.full;
    assert.deepEqual(restored, value);
    assert.ok(Buffer.isBuffer((restored as typeof value).bytes));
    assert.deepEqual(decodeStateValue(JSON.parse(JSON.stringify(encodeStateValue({ a: [1, 'x'] })))), {
      a: [1, 'x'],
    });
  });

  it('refuses state it cannot store (a function), naming the operator and where, and commits nothing', async () => {
    const dir = freshDir();
    const store = new CheckpointDirectory({ dir });
    await assert.rejects(
      store.commitBatch('wc', [range(0, 1)], meta(1000), fullUpdate({ counts: [['a', { f: () => 1 }]] })),
      /Cannot checkpoint the state of operator 'counts': a function at \$\[0\]\[1\]\.f/,
    );
    assert.equal(await readManifest(dir), undefined);
  });

  it('rejects invalid options with InvalidOptionError naming the option', () => {
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option;
    assert.throws(() => new CheckpointDirectory({} as never), named('dir'));
    assert.throws(() => new CheckpointDirectory({ dir: ' ' }), named('dir'));
    assert.throws(() => new CheckpointDirectory(undefined as never), named('options'));
    assert.throws(() => new CheckpointDirectory({ dir: root, keepFull: 0 }), named('keepFull'));
    assert.throws(() => new CheckpointDirectory({ dir: root, keepFull: 1.5 }), named('keepFull'));
    const store = new CheckpointDirectory({ dir: root });
    assert.equal(store.kind, 'checkpoint-dir');
    assert.equal(store.stateful, true);
    assert.deepEqual(store.capabilities, { compareAndSet: true });
    assert.deepEqual(store.describe(), { dir: root, keepFull: 2 });
  });
});

// ---- Through the engine -----------------------------------------------------------------------

type Build = (words: DStream<string>) => DStream<[string, number]>;
const runningCount: Build = (words) =>
  words
    .mapToPair((w) => [w, 1])
    .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'counts' });
const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

/** One "process": a new CheckpointDirectory on `dir`, `batches` intervals of `perBatch` records each. */
async function runProcess(
  log: InMemoryLog<string>,
  dir: string,
  batches: number,
  opts: { build?: Build; fullEvery?: number; stop?: boolean } = {},
): Promise<{ last: [string, number][]; driver: TestDriver }> {
  const driver = new TestDriver({
    checkpoint: new CheckpointDirectory({ dir }),
    pipelineId: 'wc',
    checkpointFullEvery: opts.fullEvery,
  });
  const words = driver.context
    .stream(new InMemoryLogSource(log, { topics: ['words'], maxRecordsPerPartition: 2 }), { name: 'words' })
    .map((r: LogRecord<string>) => r.value, { name: 'values' });
  const out = driver.collect((opts.build ?? runningCount)(words), { name: 'out' });
  await driver.start();
  for (let i = 0; i < batches; i++) await driver.advance();
  if (opts.stop !== false) await driver.stop();
  return { last: sorted(out.last()), driver };
}

function wordLog(batches: string[][]): InMemoryLog<string> {
  const log = new InMemoryLog<string>();
  log.createTopic('words', 1);
  for (const b of batches) log.append('words', 0, b);
  return log;
}

describe('CheckpointDirectory as the checkpoint of a pipeline', () => {
  it('a pipeline that crashed (no final checkpoint) resumes from its full snapshot and deltas, nothing counted twice', async () => {
    const batches = Array.from({ length: 8 }, (_, i) => [`k${i % 3}`, `k${(i * 2) % 5}`]);
    const log = wordLog(batches);
    const dir = freshDir();
    // Never stopped, as if killed after 3 batches: a full snapshot and two deltas.
    await runProcess(log, dir, 3, { fullEvery: 10, stop: false });
    const m = (await readManifest(dir))!;
    assert.equal(m.lastBatch.time, 3000);
    assert.equal(m.state.deltas.length, 2);
    const resumed = await runProcess(log, dir, 5, { fullEvery: 10 });
    const expected = new Map<string, number>();
    for (const w of batches.flat()) expected.set(w, (expected.get(w) ?? 0) + 1);
    assert.deepEqual(resumed.last, sorted([...expected]));
  });

  it('restores deltas written between full snapshots, and a graceful stop leaves one full snapshot', async () => {
    const log = wordLog(Array.from({ length: 6 }, (_, i) => [`w${i % 4}`, 'x']));
    const dir = freshDir();
    const { driver } = await runProcess(log, dir, 3, { fullEvery: 10, stop: false });
    const mid = (await readManifest(dir))!;
    assert.equal(mid.state.deltas.length, 2);
    assert.equal(mid.lastBatch.time, 3000);
    await driver.stop();
    const after = (await readManifest(dir))!;
    assert.equal(after.state.deltas.length, 0, 'the final checkpoint is full');
    assert.deepEqual(after.operators, [{ name: 'counts', kind: 'updateStateByKey' }]);
    assert.deepEqual(
      await readdir(path.join(dir, 'state')).then((n) => n.filter((f) => f.startsWith('delta'))),
      [],
    );
    assert.deepEqual((await runProcess(log, dir, 3)).last, [
      ['w0', 2],
      ['w1', 2],
      ['w2', 1],
      ['w3', 1],
      ['x', 6],
    ]);
  });

  it('a renamed stateful operator stops the start with the migrate command for this directory', async () => {
    const log = wordLog([['a']]);
    const dir = freshDir();
    await runProcess(log, dir, 1);
    const renamed: Build = (words) =>
      words
        .mapToPair((w) => [w, 1])
        .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'totals' });
    await assert.rejects(runProcess(log, dir, 1, { build: renamed }), (e: unknown) => {
      assert.ok(e instanceof CheckpointIncompatibleError);
      assert.ok(e.message.includes(`sluice checkpoint migrate ${dir} --drop counts`), e.message);
      return true;
    });
  });
});

// ---- SIGKILL ----------------------------------------------------------------------------------

const runWriter = (dir: string, commits?: number) =>
  runFixture('checkpoint-writer.ts', [dir, ...(commits === undefined ? [] : [String(commits)])]);

/** Everything a loaded checkpoint must satisfy after commit `n`; returns `n`. */
async function checkDirectory(dir: string): Promise<number | undefined> {
  const m: CheckpointManifest | undefined = await readManifest(dir);
  if (!m) return undefined;
  for (const rel of [m.state.full, ...m.state.deltas]) {
    assert.ok(rel, 'a full snapshot is referenced');
    const file = await readJson(path.join(dir, rel));
    assert.equal(file.commit, Number(/-(\d+)\.json$/.exec(rel)![1]), `${rel} is the file of its commit`);
  }
  const n = m.lastBatch.time! / 1000;
  assert.equal(m.commit >= n, true);
  assert.deepEqual(
    m.lastBatch.offsets,
    Array.from({ length: PARTITIONS }, (_, p) => ({ group: GROUP, topic: TOPIC, partition: p, offset: n })),
  );
  const cp = (await new CheckpointDirectory({ dir }).loadCheckpoint(PIPELINE))!;
  const stored = cp.state.get('tally')!;
  const tally = new Map(stored.full as [string, unknown][]);
  for (const d of stored.deltas) {
    for (const [k, v] of d.set) tally.set(k as string, v);
    for (const k of d.removed) tally.delete(k as string);
  }
  assert.deepEqual(sortedEntries(tally), sortedEntries(expectedTally(n)), `state of commit ${n}`);
  assert.deepEqual(cp.state.get('recent')!.full, expectedRecent(n));
  return n;
}

describe('CheckpointDirectory under SIGKILL', () => {
  it('survives SIGKILL at random moments of a commit loop: the manifest parses, its files exist, state and offsets are one commit, the last or the next', async (t) => {
    const dir = freshDir();
    let expected = 0;
    let leftovers = 0;
    const kills = 12;
    for (let kill = 0; kill < kills; kill++) {
      const acked = await killWhileWriting(
        runWriter(dir),
        kill,
        expected,
        `run ${kill} resumes at the last commit`,
        200,
      );
      const names = [...(await readdir(dir)), ...(await readdir(path.join(dir, 'state')).catch(() => []))];
      leftovers += names.filter((n) => n.includes('.tmp-')).length;
      const stored = (await checkDirectory(dir)) ?? 0;
      assert.ok(
        stored === acked || stored === acked + 1,
        `stored commit ${stored}, last acknowledged ${acked}`,
      );
      expected = stored;
    }
    assert.ok(expected > kills, `the writers committed only ${expected} times`);
    // A clean run removes what the killed ones left and carries on from the stored commit.
    const last = runWriter(dir, 4);
    assert.equal(await within(last.started, 30_000, 'last writer start'), expected);
    const { code, stderr } = await within(last.exited, 30_000, 'last writer exit');
    assert.equal(code, 0, stderr);
    assert.equal(await checkDirectory(dir), expected + 4);
    assert.deepEqual(await readdir(dir), ['manifest.json', 'state']);
    const m = (await readManifest(dir))!;
    const referenced = new Set([m.state.full, ...m.state.deltas].map((r) => path.basename(r!)));
    const files = await readdir(path.join(dir, 'state'));
    assert.ok(
      files.every((f) => /^(full|delta)-\d+-\d+\.json$/.test(f)),
      files.join(', '),
    );
    assert.ok(
      files.filter((f) => !referenced.has(f)).every((f) => f.startsWith('full-')),
      files.join(', '),
    );
    assert.ok(files.filter((f) => f.startsWith('full-')).length <= 2, files.join(', '));
    t.diagnostic(
      `${kills} kills, ${expected} commits survived, ${leftovers} temporary file(s) seen after kills`,
    );
  });
});
