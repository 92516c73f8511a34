import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { InvalidOptionError, OffsetConflictError } from '../../src/core/errors.js';
import { stateStoreConformance } from '../conformance/state-store.js';
import {
  COUNTS_OPERATORS as counts,
  checkpointIds as ids,
  checkpointMeta as meta,
  deltaUpdate as delta,
  fullUpdate as full,
} from '../helpers/checkpoint.js';
import type { SqlFixture, Store } from './fixture.js';

/** The offset store as a state store: its checkpoint tables, against one real server. */
export function stateStoreTests<Pool, Conn>(f: SqlFixture<Pool, Conn>): void {
  const table = f.uniqueTable('cp');
  const created: string[] = [table, `${table}_checkpoints`, `${table}_state`];
  const opened: Store<Pool, Conn>[] = [];
  const open = (options: { table?: string; createTable?: boolean } = {}) => {
    const s = f.newStore({ connection: f.url, table, ...options });
    opened.push(s);
    return s;
  };
  const q = f.quote;
  after(async () => {
    for (const s of opened) await s.close();
    await f.dropTables(...created);
  });

  // Every place is the same table: pipelines are told apart by their (unique) ids.
  stateStoreConformance(f.storeName, () => f.newStore({ connection: f.url, table }));

  describe(`${f.storeName} as a state store`, () => {
    const stateRows = async (pipeline: string) => {
      const pool = await f.plainPool();
      try {
        const rows = await f.query(
          pool,
          `SELECT operator, seq, kind, data FROM ${q}${table}_state${q} WHERE pipeline_id = ${f.param(1)} ORDER BY operator, seq`,
          [pipeline],
        );
        return rows.map((r) => ({
          operator: r.operator as string,
          seq: r.seq as number,
          kind: r.kind as string,
          data: f.readJson(r.data),
        }));
      } finally {
        await f.endPool(pool);
      }
    };

    it('keeps a full snapshot as one row at seq 0, each delta as the next seq, and the next full snapshot replaces them all', async () => {
      const { pipeline, group } = ids();
      const s = open();
      await s.commitBatch(group, [], meta(pipeline, 1000), full({ counts: [['a', 1]] }));
      await s.commitBatch(group, [], meta(pipeline, 2000), delta('counts', [['a', 2]]));
      await s.commitBatch(group, [], meta(pipeline, 3000), delta('counts', [['b', 1]], ['a']));
      assert.deepEqual(await stateRows(pipeline), [
        { operator: 'counts', seq: 0, kind: 'full', data: [['a', 1]] },
        { operator: 'counts', seq: 1, kind: 'delta', data: { set: [['a', 2]], removed: [] } },
        { operator: 'counts', seq: 2, kind: 'delta', data: { set: [['b', 1]], removed: ['a'] } },
      ]);
      await s.commitBatch(group, [], meta(pipeline, 4000), full({ counts: [['b', 1]] }));
      assert.deepEqual(await stateRows(pipeline), [
        { operator: 'counts', seq: 0, kind: 'full', data: [['b', 1]] },
      ]);
      const pool = await f.plainPool();
      try {
        const rows = await f.query(
          pool,
          `SELECT meta FROM ${q}${table}_checkpoints${q} WHERE pipeline_id = ${f.param(1)}`,
          [pipeline],
        );
        assert.deepEqual(
          rows.map((r) => f.readJson(r.meta)),
          [meta(pipeline, 4000)],
        );
      } finally {
        await f.endPool(pool);
      }
    });

    it('gives back state values plain JSON cannot hold: undefined, bigint, NaN, Date, Map, Set, bytes, U+0000 and lone surrogates', async () => {
      const { pipeline, group } = ids();
      const value = [
        ['nul\u0000key', { missing: undefined, big: 2n ** 70n, nan: NaN, inf: -Infinity }],
        ['lone\ud800', new Date(1234567890123)],
        [{ $sluice: 'not a tag' }, new Map<unknown, unknown>([[1, new Set(['x'])]])],
        ['bytes', Buffer.from([0, 1, 255])],
      ];
      await open().commitBatch(group, [], meta(pipeline, 1000), full({ counts: value }));
      await open().commitBatch(
        group,
        [],
        meta(pipeline, 2000),
        delta('counts', [['d', new Uint8Array([7])]], ['nul\u0000key']),
      );
      const cp = await open().loadCheckpoint(pipeline);
      assert.deepEqual(cp!.state.get('counts'), {
        full: value,
        deltas: [{ set: [['d', new Uint8Array([7])]], removed: ['nul\u0000key'] }],
      });
    });

    it('drops the state of operators the pipeline no longer has, and a delta with no snapshot under it', async () => {
      const { pipeline, group } = ids();
      const s = open();
      const two = [...counts, { name: 'win', kind: 'window' }];
      await s.commitBatch(group, [], meta(pipeline, 1000, two), full({ counts: [['a', 1]], win: [] }));
      await s.commitBatch(group, [], meta(pipeline, 2000, [...counts, { name: 'late', kind: 'x' }]), {
        full: new Map(),
        deltas: new Map([
          ['counts', { set: [['a', 2]], removed: [] }],
          ['late', { set: [['z', 1]], removed: [] }],
        ]),
      });
      assert.deepEqual(
        (await stateRows(pipeline)).map((r) => [r.operator, r.seq, r.kind]),
        [
          ['counts', 0, 'full'],
          ['counts', 1, 'delta'],
        ],
      );
      const cp = await open().loadCheckpoint(pipeline);
      assert.deepEqual([...cp!.state.keys()], ['counts']);
    });

    it('of eight instances committing the same batch with their own state, exactly one wins and the checkpoint holds its state', async () => {
      const { pipeline, group, topic } = ids();
      const stores = Array.from({ length: 8 }, () => open());
      await stores[0]!.commitBatch(
        group,
        [{ topic, partition: 0, fromOffset: 0, untilOffset: 5 }],
        meta(pipeline, 1000),
        full({ counts: [['a', 0]] }),
      );
      const results = await Promise.allSettled(
        stores.map((s, i) =>
          s.commitBatch(
            group,
            [{ topic, partition: 0, fromOffset: 5, untilOffset: 10 }],
            meta(pipeline, 2000),
            delta('counts', [['a', i]]),
          ),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1);
      for (const r of results)
        if (r.status === 'rejected') assert.ok(r.reason instanceof OffsetConflictError, String(r.reason));
      const cp = await open().loadCheckpoint(pipeline);
      assert.deepEqual(cp!.state.get('counts'), {
        full: [['a', 0]],
        deltas: [{ set: [['a', won[0]]], removed: [] }],
      });
      assert.deepEqual(await open().read(group, [topic]), [{ topic, partition: 0, offset: 10 }]);
    });

    it('a transaction whose offsets conflict commits neither what fn wrote nor the state', async () => {
      const { pipeline, group, topic } = ids();
      const s = open();
      const scratch = f.uniqueTable('scratch');
      const pool = await f.plainPool();
      try {
        await f.query(pool, f.ddl.scratch(scratch));
        await s.commitBatch(
          group,
          [{ topic, partition: 0, fromOffset: 0, untilOffset: 7 }],
          meta(pipeline, 1000),
          full({ counts: [['a', 1]] }),
        );
        await assert.rejects(
          s.transaction(
            group,
            [{ topic, partition: 0, fromOffset: 0, untilOffset: 3 }],
            (tx) => f.execute(tx, `INSERT INTO ${scratch} VALUES ('x')`),
            { meta: meta(pipeline, 2000), update: full({ counts: [['a', 99]] }) },
          ),
          (e: unknown) => e instanceof OffsetConflictError && e.stored === 7,
        );
        assert.equal((await f.query(pool, `SELECT * FROM ${scratch}`)).length, 0);
        const cp = await s.loadCheckpoint(pipeline);
        assert.equal(cp!.meta.batchTime, 1000);
        assert.deepEqual(cp!.state.get('counts'), { full: [['a', 1]], deltas: [] });
      } finally {
        await f.query(pool, `DROP TABLE IF EXISTS ${scratch}`);
        await f.endPool(pool);
      }
    });

    it('creates its checkpoint tables at the first checkpoint, and with createTable: false leaves them to the user', async () => {
      const own = f.uniqueTable('cp_own');
      created.push(own, `${own}_checkpoints`, `${own}_state`);
      const pool = await f.plainPool();
      const exists = (t: string) => f.tableExists(pool, t);
      try {
        const { pipeline } = ids();
        await assert.rejects(
          open({ table: own, createTable: false }).loadCheckpoint(pipeline),
          f.errors.missingTable,
        );
        assert.equal(await exists(`${own}_state`), false);
        await f.createStateTables(pool, own);
        assert.equal(await open({ table: own, createTable: false }).loadCheckpoint(pipeline), undefined);
        assert.deepEqual(
          [await exists(own), await exists(`${own}_checkpoints`), await exists(`${own}_state`)],
          [false, true, true],
        );
        // Reading offsets does not create the checkpoint tables; loading a checkpoint does.
        const other = f.uniqueTable('cp_lazy');
        created.push(other, `${other}_checkpoints`, `${other}_state`);
        await open({ table: other }).read('g', ['t']);
        assert.equal(await exists(`${other}_checkpoints`), false);
        assert.equal(await open({ table: other }).loadCheckpoint(pipeline), undefined);
        assert.equal(await exists(`${other}_checkpoints`), true);
      } finally {
        await f.endPool(pool);
      }
    });

    it('refuses to keep state under an offsets table name too long for its derived tables, and still keeps offsets there', async () => {
      const long = f.uniqueTable('long').padEnd(60, 'x');
      created.push(long);
      const s = open({ table: long });
      const { pipeline, group, topic } = ids();
      await assert.rejects(
        s.commitBatch(group, [], meta(pipeline, 1000), full({ counts: [] })),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'table',
      );
      await assert.rejects(
        s.loadCheckpoint(pipeline),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'table',
      );
      await s.write(group, [{ topic, partition: 0, fromOffset: 0, untilOffset: 2 }], { compareAndSet: true });
      assert.deepEqual(await s.read(group, [topic]), [{ topic, partition: 0, offset: 2 }]);
    });
  });
}
