import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { InvalidOptionError, OffsetConflictError } from '../../src/core/errors.js';
import { PostgresOffsetStore } from '../../src/postgres/index.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import { dropTables, plainPool, postgresUrl, uniqueTable } from './helpers.js';

const url = await postgresUrl();
const table = uniqueTable('offsets');
const opened: PostgresOffsetStore[] = [];
const open = (options: { table?: string; createTable?: boolean } = {}) => {
  const s = new PostgresOffsetStore({ connection: url, table, ...options });
  opened.push(s);
  return s;
};
after(async () => {
  for (const s of opened) await s.close();
  await dropTables(table);
});

offsetStoreConformance('PostgresOffsetStore', () => new PostgresOffsetStore({ connection: url, table }));

describe('PostgresOffsetStore', () => {
  const range = (topic: string, partition: number, fromOffset: number, untilOffset: number) => ({
    topic,
    partition,
    fromOffset,
    untilOffset,
  });

  it('of eight instances committing the same first batch of a partition, exactly one wins', async () => {
    const topic = uniqueTable('t');
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
    const topic = uniqueTable('t');
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
    const topic = uniqueTable('t');
    const n = await s.transaction('g', [range(topic, 0, 0, 3)], async (tx) => {
      const { rows } = await tx.query<{ n: number }>('SELECT 41 + 1 AS n');
      return rows[0]!.n;
    });
    assert.equal(n, 42);
    assert.deepEqual(await s.read('g', [topic]), [{ topic, partition: 0, offset: 3 }]);
  });

  it('transaction rolls back what fn wrote when the offsets conflict', async () => {
    const s = open();
    const topic = uniqueTable('t');
    const scratch = uniqueTable('scratch');
    const pool = await plainPool();
    try {
      await pool.query(`CREATE TABLE ${scratch} (v text)`);
      await s.set('g', [{ topic, partition: 0, offset: 7 }]);
      await assert.rejects(
        s.transaction('g', [range(topic, 0, 0, 3)], (tx) => tx.query(`INSERT INTO ${scratch} VALUES ('x')`)),
        (e: unknown) => e instanceof OffsetConflictError && e.expected === 0 && e.stored === 7,
      );
      assert.equal((await pool.query(`SELECT * FROM ${scratch}`)).rowCount, 0);
      assert.deepEqual(await s.read('g', [topic]), [{ topic, partition: 0, offset: 7 }]);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${scratch}`);
      await pool.end();
    }
  });

  it('creates its table on first use, and with createTable: false leaves it to the user', async () => {
    const own = uniqueTable('offsets_own');
    const pool = await plainPool();
    try {
      const exists = async () => (await pool.query('SELECT to_regclass($1) AS t', [own])).rows[0].t !== null;
      await assert.rejects(open({ table: own, createTable: false }).read('g', ['t']), /does not exist/);
      assert.equal(await exists(), false);
      assert.deepEqual(await open({ table: own }).read('g', ['t']), []);
      assert.equal(await exists(), true);
    } finally {
      await pool.query(`DROP TABLE IF EXISTS ${own}`);
      await pool.end();
    }
  });

  it('keeps working after the server closes one of its idle connections', async () => {
    const s = open();
    const topic = uniqueTable('t');
    await s.write('g', [range(topic, 0, 0, 1)]);
    const pid = (await s.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const pool = await plainPool();
    try {
      await pool.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await pool.end();
    }
    await new Promise((r) => setTimeout(r, 100)); // the idle client's error arrives on the pool
    assert.deepEqual(await s.read('g', [topic]), [{ topic, partition: 0, offset: 1 }]);
  });

  it('refuses a table name that is not a plain identifier, naming the option', () => {
    for (const bad of ['offsets; DROP TABLE x', 'a-b', '"quoted"', '', 'a.b.c', '1abc']) {
      assert.throws(
        () => new PostgresOffsetStore({ connection: url, table: bad }),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'table',
        bad,
      );
    }
  });

  it('describe shows where the offsets are but never the password', async () => {
    const withUrl = new PostgresOffsetStore({
      connection: 'postgres://app:s3cr%3Aet@db.example:6543/prod',
      table: 'public.offs',
    });
    const withConfig = new PostgresOffsetStore({
      connection: { host: 'h', user: 'u', password: 's3cr:et', database: 'd' },
    });
    try {
      assert.deepEqual(withUrl.describe(), {
        host: 'db.example',
        port: 6543,
        database: 'prod',
        user: 'app',
        table: 'public.offs',
      });
      assert.doesNotMatch(JSON.stringify(withConfig.describe()), /s3cr/);
    } finally {
      await withUrl.close();
      await withConfig.close();
    }
  });
});
