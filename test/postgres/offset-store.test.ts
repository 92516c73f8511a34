import assert from 'node:assert/strict';
import { it } from 'node:test';
import { offsetStoreTests, range } from '../relational/offset-store.js';
import { plainPool, postgresFixture, uniqueTable } from './helpers.js';

offsetStoreTests(await postgresFixture(), (open) => {
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
});
