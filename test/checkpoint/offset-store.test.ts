import assert from 'node:assert/strict';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CheckpointDirOffsetStore } from '../../src/checkpoint/offset-store.js';
import { InvalidOptionError, OffsetConflictError } from '../../src/core/errors.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import { killWhileWriting, runWriter as runFixture, tempRoot, within } from './helpers.js';

const { root, freshDir } = await tempRoot('sluice-checkpoint-offsets-');

const conformanceDir = freshDir();
offsetStoreConformance(
  'CheckpointDirOffsetStore',
  () => new CheckpointDirOffsetStore({ dir: conformanceDir }),
);

const runWriter = (dir: string, group: string, topic: string, partitions: number, writes?: number) =>
  runFixture('offset-writer.ts', [
    dir,
    group,
    topic,
    String(partitions),
    ...(writes === undefined ? [] : [String(writes)]),
  ]);

describe('CheckpointDirOffsetStore', () => {
  it('writes one readable JSON file per group: version, group, updatedAt and sorted offsets', async () => {
    const dir = freshDir();
    const store = new CheckpointDirOffsetStore({ dir });
    await store.write('billing', [
      { topic: 'orders', partition: 3, fromOffset: 0, untilOffset: 1042 },
      { topic: 'clicks', partition: 0, fromOffset: 0, untilOffset: 7 },
    ]);
    const file = path.join(dir, 'offsets', 'billing.json');
    assert.equal(store.file('billing'), file);
    const content = JSON.parse(await readFile(file, 'utf8'));
    assert.match(content.updatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(content, {
      version: 1,
      group: 'billing',
      updatedAt: content.updatedAt,
      offsets: [
        { topic: 'clicks', partition: 0, offset: 7 },
        { topic: 'orders', partition: 3, offset: 1042 },
      ],
    });
  });

  it('gives groups whose names are not file names a file of their own each', async () => {
    const dir = freshDir();
    const store = new CheckpointDirOffsetStore({ dir });
    const groups = ['a/b', '..', '.hidden', 'a%2Fb', 'x'.repeat(300), `${'x'.repeat(300)}y`, 'día|1'];
    for (const [i, g] of groups.entries())
      await store.write(g, [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: i + 1 }]);
    for (const [i, g] of groups.entries())
      assert.deepEqual(await store.read(g, ['t']), [{ topic: 't', partition: 0, offset: i + 1 }]);
    const names = await readdir(path.join(dir, 'offsets'));
    assert.equal(names.length, groups.length);
    assert.ok(
      names.every((n) => !n.startsWith('.') && n.endsWith('.json') && n.length <= 205),
      names.join(', '),
    );
  });

  it('serialises compare-and-set writes of many instances in one process: exactly one wins each batch', async () => {
    const dir = freshDir();
    const stores = Array.from({ length: 5 }, () => new CheckpointDirOffsetStore({ dir }));
    // Another spelling of the same directory must share the lock.
    stores.push(new CheckpointDirOffsetStore({ dir: path.relative(process.cwd(), dir) }));
    let offset = 0;
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.allSettled(
        stores.map((s, i) =>
          s.write('g', [{ topic: 't', partition: 0, fromOffset: offset, untilOffset: offset + 1 + i }], {
            compareAndSet: true,
          }),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, `batch ${batch}`);
      for (const r of results)
        if (r.status === 'rejected') assert.ok(r.reason instanceof OffsetConflictError);
      offset += 1 + won[0]!;
    }
    assert.deepEqual(await stores[0]!.read('g', ['t']), [{ topic: 't', partition: 0, offset }]);
  });

  it('survives SIGKILL at random moments of a write loop: the file always parses and holds the last or the next commit, whole', async (t) => {
    const dir = freshDir();
    const store = new CheckpointDirOffsetStore({ dir });
    const file = store.file('job');
    const partitions = 4;
    let expected = 0;
    let tempFilesSeen = 0;
    for (let kill = 0; kill < 12; kill++) {
      const acked = await killWhileWriting(
        runWriter(dir, 'job', 'events', partitions),
        kill,
        expected,
        `run ${kill} resumes where the previous one stopped`,
        150,
      );

      const raw = await readFile(file, 'utf8').catch(() => undefined);
      if (raw === undefined) {
        assert.equal(acked, 0, 'no file although a commit resolved');
        continue;
      }
      const content = JSON.parse(raw) as {
        version: number;
        group: string;
        offsets: { topic: string; partition: number; offset: number }[];
      };
      assert.equal(content.version, 1);
      assert.equal(content.group, 'job');
      assert.equal(content.offsets.length, partitions, raw);
      const values = new Set(content.offsets.map((o) => o.offset));
      assert.equal(values.size, 1, `partitions disagree: ${raw}`);
      const stored = [...values][0]!;
      assert.ok(stored === acked || stored === acked + 1, `stored ${stored}, last acknowledged ${acked}`);
      assert.deepEqual(
        (await store.read('job', ['events'])).map((o) => o.offset),
        Array(partitions).fill(stored),
      );
      tempFilesSeen += (await readdir(path.dirname(file))).filter((n) => n.includes('.tmp-')).length;
      expected = stored;
    }
    assert.ok(expected > 0, 'the writers committed nothing');
    // A clean run removes what the killed ones left and carries on from the stored position.
    const last = runWriter(dir, 'job', 'events', partitions, 3);
    assert.equal(await within(last.started, 30_000, 'last writer start'), expected);
    const { code, stderr } = await within(last.exited, 30_000, 'last writer exit');
    assert.equal(code, 0, stderr);
    assert.deepEqual(await readdir(path.dirname(file)), ['job.json']);
    assert.deepEqual(
      (await store.read('job', ['events'])).map((o) => o.offset),
      Array(partitions).fill(expected + 3),
    );
    t.diagnostic(
      `12 kills, ${expected} commits survived, ${tempFilesSeen} temporary file(s) seen after kills`,
    );
  });

  it('removes temporary files an interrupted write left, on its next write', async () => {
    const dir = freshDir();
    const store = new CheckpointDirOffsetStore({ dir });
    await mkdir(path.join(dir, 'offsets'), { recursive: true });
    await writeFile(path.join(dir, 'offsets', '.g.json.tmp-1-deadbeef'), '{"version":1,"gro');
    await store.write('g', [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: 1 }]);
    assert.deepEqual(await readdir(path.join(dir, 'offsets')), ['g.json']);
  });

  it('refuses a file that is not its format instead of overwriting it', async () => {
    const dir = freshDir();
    const store = new CheckpointDirOffsetStore({ dir });
    await mkdir(path.join(dir, 'offsets'), { recursive: true });
    await writeFile(store.file('g'), '{"version":2}');
    await assert.rejects(store.read('g', ['t']), /version 2/);
    await assert.rejects(store.set('g', [{ topic: 't', partition: 0, offset: 1 }]), /version 2/);
    await writeFile(store.file('g'), JSON.stringify({ version: 1, group: 'G', offsets: [] }));
    await assert.rejects(store.read('g', ['t']), /belongs to group "G"/);
    assert.equal(
      await readFile(store.file('g'), 'utf8'),
      JSON.stringify({ version: 1, group: 'G', offsets: [] }),
    );
  });

  it('delete removes the file once the group has no offsets left', async () => {
    const dir = freshDir();
    const store = new CheckpointDirOffsetStore({ dir });
    await store.set('g', [
      { topic: 'a', partition: 0, offset: 1 },
      { topic: 'b', partition: 0, offset: 2 },
    ]);
    await store.delete('g', ['a']);
    assert.deepEqual(await store.read('g', ['a', 'b']), [{ topic: 'b', partition: 0, offset: 2 }]);
    await store.delete('g', ['b']);
    assert.deepEqual(await readdir(path.join(dir, 'offsets')), []);
  });

  it('refuses offsets a JSON number could not hold exactly', async () => {
    const store = new CheckpointDirOffsetStore({ dir: freshDir() });
    await assert.rejects(
      store.write('g', [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: 2 ** 53 }]),
      RangeError,
    );
    await assert.rejects(
      store.set('g', [{ topic: 't', partition: 0.5, offset: 1 }]),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'partition',
    );
    assert.deepEqual(await store.read('g', ['t']), []);
  });

  it('rejects invalid options with InvalidOptionError naming the option', () => {
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option;
    assert.throws(() => new CheckpointDirOffsetStore({} as never), named('dir'));
    assert.throws(() => new CheckpointDirOffsetStore({ dir: '  ' }), named('dir'));
    assert.throws(() => new CheckpointDirOffsetStore({ dir: 42 as unknown as string }), named('dir'));
    assert.throws(() => new CheckpointDirOffsetStore(undefined as never), named('options'));
    assert.throws(() => new CheckpointDirOffsetStore({ dir: root }).file(''), named('group'));
  });
});
