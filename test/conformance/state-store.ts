import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { CheckpointMeta, StateStore, StateUpdate } from '../../src/core/state.js';
import { OffsetConflictError } from '../../src/core/errors.js';
import { isTransactionalStore } from '../../src/core/transactional-store.js';
import { checkpointIds, checkpointMeta, deltaUpdate, fullUpdate } from '../helpers/checkpoint.js';

/**
 * The state store conformance suite (checkpoints: operator state committed with the offsets).
 * Every state store runs it against its real server or file system; it runs the offset store
 * suite separately. `open(place)` must return a NEW instance on the same place each call with the
 * same `place` (e.g. a directory per place for stores that hold one pipeline).
 */
export function stateStoreConformance(
  label: string,
  open: (place: string) => Promise<StateStore> | StateStore,
): void {
  describe(`${label} (state store conformance)`, () => {
    const stores: StateStore[] = [];
    const store = async (place: string) => {
      const s = await open(place);
      stores.push(s);
      return s;
    };
    after(async () => {
      for (const s of stores) await s.close();
    });
    const ids = checkpointIds;
    const meta = checkpointMeta;
    const full = fullUpdate;
    const delta = deltaUpdate;

    it('has no checkpoint for a pipeline that never committed', async () => {
      const { pipeline } = ids();
      assert.equal(await (await store(pipeline)).loadCheckpoint(pipeline), undefined);
    });

    it('commits a full snapshot with the offsets, read back by a new instance', async () => {
      const { pipeline, group, topic } = ids();
      const snapshot = [
        ['a', 1],
        ['b', 2],
      ];
      await (
        await store(pipeline)
      ).commitBatch(
        group,
        [{ topic, partition: 0, fromOffset: 0, untilOffset: 5 }],
        meta(pipeline, 1000),
        full({ counts: snapshot }),
      );
      const s = await store(pipeline);
      const cp = await s.loadCheckpoint(pipeline);
      assert.deepEqual(cp!.meta, meta(pipeline, 1000));
      assert.deepEqual(cp!.state.get('counts'), { full: snapshot, deltas: [] });
      assert.deepEqual(await s.read(group, [topic]), [{ topic, partition: 0, offset: 5 }]);
    });

    it('keeps deltas in commit order on top of the last full snapshot, and a new full snapshot replaces them', async () => {
      const { pipeline, group } = ids();
      const s = await store(pipeline);
      await s.commitBatch(group, [], meta(pipeline, 1000), full({ counts: [['a', 1]] }));
      await s.commitBatch(group, [], meta(pipeline, 2000), delta('counts', [['a', 2]]));
      await s.commitBatch(group, [], meta(pipeline, 3000), delta('counts', [['b', 1]], ['a']));
      const cp = await (await store(pipeline)).loadCheckpoint(pipeline);
      assert.equal(cp!.meta.batchTime, 3000);
      assert.deepEqual(cp!.state.get('counts'), {
        full: [['a', 1]],
        deltas: [
          { set: [['a', 2]], removed: [] },
          { set: [['b', 1]], removed: ['a'] },
        ],
      });
      await s.commitBatch(group, [], meta(pipeline, 4000), full({ counts: [['b', 1]] }));
      assert.deepEqual((await (await store(pipeline)).loadCheckpoint(pipeline))!.state.get('counts'), {
        full: [['b', 1]],
        deltas: [],
      });
    });

    it('keeps state of several operators apart, and values of any JSON shape exactly', async () => {
      const { pipeline, group } = ids();
      const s = await store(pipeline);
      const ops = [
        { name: 'counts', kind: 'updateStateByKey' },
        { name: 'win', kind: 'window' },
      ];
      const win = [{ time: 1000, partitions: [[{ k: 'x', n: 2 ** 40, s: 'quote\'"; drop', u: null }]] }];
      await s.commitBatch(group, [], meta(pipeline, 1000, ops), full({ counts: [[{ c: 'k' }, 3]], win }));
      const cp = await (await store(pipeline)).loadCheckpoint(pipeline);
      assert.deepEqual(cp!.state.get('counts')!.full, [[{ c: 'k' }, 3]]);
      assert.deepEqual(cp!.state.get('win')!.full, win);
    });

    it('refuses a replayed batch with OffsetConflictError and keeps the previous checkpoint whole', async () => {
      const { pipeline, group, topic } = ids();
      const s = await store(pipeline);
      const r1 = [{ topic, partition: 0, fromOffset: 0, untilOffset: 5 }];
      await s.commitBatch(group, r1, meta(pipeline, 1000), full({ counts: [['a', 1]] }));
      await assert.rejects(
        s.commitBatch(group, r1, meta(pipeline, 2000), delta('counts', [['a', 99]])),
        OffsetConflictError,
      );
      const cp = await (await store(pipeline)).loadCheckpoint(pipeline);
      assert.equal(cp!.meta.batchTime, 1000);
      assert.deepEqual(cp!.state.get('counts'), { full: [['a', 1]], deltas: [] });
      assert.deepEqual(await s.read(group, [topic]), [{ topic, partition: 0, offset: 5 }]);
    });

    it('a transactional state store commits state with the transaction, or not at all', async () => {
      const { pipeline, group, topic } = ids();
      const s = await store(pipeline);
      if (!isTransactionalStore(s)) {
        assert.equal((s as { transactional?: unknown }).transactional, undefined);
        return;
      }
      const ranges = [{ topic, partition: 0, fromOffset: 0, untilOffset: 3 }];
      const tx = s.transaction as (
        g: string,
        r: typeof ranges,
        fn: () => Promise<void>,
        cp?: { meta: CheckpointMeta; update: StateUpdate },
      ) => Promise<void>;
      await assert.rejects(
        tx.call(
          s,
          group,
          ranges,
          async () => {
            throw new Error('output failed');
          },
          { meta: meta(pipeline, 1000), update: full({ counts: [['a', 1]] }) },
        ),
        /output failed/,
      );
      assert.equal(await s.loadCheckpoint(pipeline), undefined);
      await tx.call(s, group, ranges, async () => {}, {
        meta: meta(pipeline, 1000),
        update: full({ counts: [['a', 1]] }),
      });
      assert.deepEqual((await s.loadCheckpoint(pipeline))!.state.get('counts')!.full, [['a', 1]]);
      assert.deepEqual(await s.read(group, [topic]), [{ topic, partition: 0, offset: 3 }]);
    });
  });
}
