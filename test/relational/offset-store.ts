import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { InvalidOptionError, OffsetConflictError } from '../../src/core/errors.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import type { SqlFixture, Store } from './fixture.js';

export const range = (topic: string, partition: number, fromOffset: number, untilOffset: number) => ({
  topic,
  partition,
  fromOffset,
  untilOffset,
});

type Open<Pool, Conn> = (options?: { table?: string; createTable?: boolean }) => Store<Pool, Conn>;

/**
 * The offset store against one real server. `databaseTests` adds the database's own tests to the
 * suite; its `open` opens a store on the shared table, closed after the tests.
 */
export function offsetStoreTests<Pool, Conn>(
  f: SqlFixture<Pool, Conn>,
  databaseTests: (open: Open<Pool, Conn>) => void = () => {},
): void {
  const table = f.uniqueTable('offsets');
  const opened: Store<Pool, Conn>[] = [];
  const open = (options: { table?: string; createTable?: boolean } = {}) => {
    const s = f.newStore({ connection: f.url, table, ...options });
    opened.push(s);
    return s;
  };
  after(async () => {
    for (const s of opened) await s.close();
    await f.dropTables(table);
  });

  offsetStoreConformance(f.storeName, () => f.newStore({ connection: f.url, table }));

  describe(f.storeName, () => {
    it('of eight instances committing the same first batch of a partition, exactly one wins', async () => {
      const topic = f.uniqueTable('t');
      const stores = Array.from({ length: 8 }, () => open());
      const results = await Promise.allSettled(
        stores.map((s, i) =>
          s.write('g', [range(topic, 0, 0, 10 + i), range(topic, 1, 0, 20 + i)], { compareAndSet: true }),
        ),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1);
      for (const r of results)
        if (r.status === 'rejected') assert.ok(r.reason instanceof OffsetConflictError, String(r.reason));
      assert.deepEqual(await stores[0]!.read('g', [topic]), [
        { topic, partition: 0, offset: 10 + won[0]! },
        { topic, partition: 1, offset: 20 + won[0]! },
      ]);
    });

    it('of eight instances committing the same next batch of a stored partition, exactly one wins', async () => {
      const topic = f.uniqueTable('t');
      const stores = Array.from({ length: 8 }, () => open());
      await stores[0]!.write('g', [range(topic, 0, 0, 5)]);
      const results = await Promise.allSettled(
        stores.map((s, i) => s.write('g', [range(topic, 0, 5, 10 + i)], { compareAndSet: true })),
      );
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1);
      for (const r of results) {
        if (r.status === 'rejected') {
          assert.ok(
            r.reason instanceof OffsetConflictError && r.reason.stored === 10 + won[0]!,
            String(r.reason),
          );
        }
      }
    });

    it('transaction commits what fn wrote together with the offsets and returns fn’s result', async () => {
      const s = open();
      const topic = f.uniqueTable('t');
      const n = await s.transaction('g', [range(topic, 0, 0, 3)], async (tx) => {
        const rows = await f.queryIn(tx, 'SELECT 41 + 1 AS n');
        return Number(rows[0]!.n);
      });
      assert.equal(n, 42);
      assert.deepEqual(await s.read('g', [topic]), [{ topic, partition: 0, offset: 3 }]);
    });

    it('transaction rolls back what fn wrote when the offsets conflict', async () => {
      const s = open();
      const topic = f.uniqueTable('t');
      const scratch = f.uniqueTable('scratch');
      const pool = await f.plainPool();
      try {
        await f.query(pool, f.ddl.scratch(scratch));
        await s.set('g', [{ topic, partition: 0, offset: 7 }]);
        await assert.rejects(
          s.transaction('g', [range(topic, 0, 0, 3)], (tx) =>
            f.execute(tx, `INSERT INTO ${scratch} VALUES ('x')`),
          ),
          (e: unknown) => e instanceof OffsetConflictError && e.expected === 0 && e.stored === 7,
        );
        assert.equal((await f.query(pool, `SELECT * FROM ${scratch}`)).length, 0);
        assert.deepEqual(await s.read('g', [topic]), [{ topic, partition: 0, offset: 7 }]);
      } finally {
        await f.query(pool, `DROP TABLE IF EXISTS ${scratch}`);
        await f.endPool(pool);
      }
    });

    it('creates its table on first use, and with createTable: false leaves it to the user', async () => {
      const own = f.uniqueTable('offsets_own');
      const pool = await f.plainPool();
      try {
        const exists = () => f.tableExists(pool, own);
        await assert.rejects(
          open({ table: own, createTable: false }).read('g', ['t']),
          f.errors.missingTable,
        );
        assert.equal(await exists(), false);
        assert.deepEqual(await open({ table: own }).read('g', ['t']), []);
        assert.equal(await exists(), true);
      } finally {
        await f.query(pool, `DROP TABLE IF EXISTS ${own}`);
        await f.endPool(pool);
      }
    });

    it('refuses a table name that is not a plain identifier, naming the option', () => {
      for (const bad of ['offsets; DROP TABLE x', 'a-b', '"quoted"', '`quoted`', '', 'a.b.c', '1abc']) {
        assert.throws(
          () => f.newStore({ connection: f.url, table: bad }),
          (e: unknown) => e instanceof InvalidOptionError && e.option === 'table',
          bad,
        );
      }
    });

    it('describe shows where the offsets are but never the password', async () => {
      const withUrl = f.newStore({
        connection: `${f.scheme}://app:s3cr%3Aet@db.example:6543/prod`,
        table: `${f.qualifier}.offs`,
      });
      const withConfig = f.newStore({
        connection: { host: 'h', user: 'u', password: 's3cr:et', database: 'd' },
      });
      try {
        assert.deepEqual(withUrl.describe(), {
          host: 'db.example',
          port: 6543,
          database: 'prod',
          user: 'app',
          table: `${f.qualifier}.offs`,
        });
        assert.doesNotMatch(JSON.stringify(withConfig.describe()), /s3cr/);
      } finally {
        await withUrl.close();
        await withConfig.close();
      }
    });

    databaseTests(open);
  });
}
