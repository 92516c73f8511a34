/**
 * Case 6 as real processes: `sluice run examples/mysql-transactional.ts` writes `name,id` rows and
 * the topic's offsets in one MariaDB transaction. A failure injected after the rows are written and
 * before the commit (FAIL_AFTER_ROWS) makes the job exit 1 leaving neither the rows nor new
 * offsets; a restart without it writes each row exactly once and stores the end offsets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mysql from 'mysql2/promise';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, mysqlUrl, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests, waitUntil } from './child-process.js';

const { runs, cleanups } = afterTests();

test('mysql-transactional: a failure after the rows and before the commit exits 1 and leaves neither rows nor offsets; the restart writes each row exactly once and stores the end offsets', async () => {
  const bootstrap = await kafkaBootstrap();
  const dbUrl = await mysqlUrl();
  const topic = uniqueName('tx-rows');
  const group = uniqueName('tx-job');
  const suffix = uniqueName('t').replace(/[^a-z0-9]+/g, '_');
  const rowsTable = `tx_rows_${suffix}`;
  const offsetsTable = `tx_offsets_${suffix}`;
  const pool = mysql.createPool({ uri: dbUrl, connectionLimit: 1 });
  cleanups.push(async () => {
    await pool.query(`DROP TABLE IF EXISTS \`${rowsTable}\`, \`${offsetsTable}\``);
    await pool.end();
  });
  cleanups.push(() => deleteTopic(bootstrap, topic));
  await createTopic(bootstrap, topic, 2);

  const records = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      value: `name${from + i},${from + i}`,
      partition: (from + i) % 2,
    }));
  const offsets = async () => {
    const [rows] = await pool
      .query<mysql.RowDataPacket[]>(
        `SELECT \`partition\`, next_offset FROM \`${offsetsTable}\` WHERE group_id = ? AND topic = ? ORDER BY \`partition\``,
        [group, topic],
      )
      // Until the job has created it, no table means no offsets.
      .catch((e: { code?: string }) => (e.code === 'ER_NO_SUCH_TABLE' ? [[]] : Promise.reject(e)));
    return rows.map((r) => [Number(r.partition), Number(r.next_offset)]);
  };
  const rows = async () => {
    const [result] = await pool.query<mysql.RowDataPacket[]>(
      `SELECT id, name, kafka_partition, kafka_offset FROM \`${rowsTable}\` ORDER BY id`,
    );
    return result.map((r) => ({
      id: Number(r.id),
      name: String(r.name),
      partition: Number(r.kafka_partition),
      offset: Number(r.kafka_offset),
    }));
  };
  const env = {
    KAFKA_BOOTSTRAP: bootstrap,
    KAFKA_TOPIC: topic,
    MYSQL_URL: dbUrl,
    ROWS_TABLE: rowsTable,
    OFFSETS_TABLE: offsetsTable,
    PIPELINE_ID: group,
    BATCH_INTERVAL_MS: '300',
  };
  const start = (extra: Record<string, string> = {}) => {
    const run = ChildRun.sluice(['run', 'examples/mysql-transactional.ts'], { ...env, ...extra });
    runs.push(run);
    return run;
  };

  // 1. Ten records (ids 0-9, five per partition), committed.
  await produce(bootstrap, topic, records(0, 10));
  const first = start();
  await first.waitFor(
    (out) => /^committed \d+ 10 records$/m.test(out),
    'the batch of the 10 rows, committed',
    60_000,
  );
  await waitUntil(
    'offsets 5/5 in the offsets table',
    5_000,
    offsets,
    (o) => JSON.stringify(o) === '[[0,5],[1,5]]',
  );
  assert.deepEqual(await first.stop('SIGINT'), { code: 0, signal: null }, first.output());
  assert.equal((await rows()).length, 10);

  // 2. Ten more while stopped (ids 10-19); the restart fails after writing them, before the commit.
  await produce(bootstrap, topic, records(10, 10));
  const failing = start({ FAIL_AFTER_ROWS: '11' });
  const exit = await failing.waitForExit(60_000);
  assert.deepEqual(exit, { code: 1, signal: null }, failing.output());
  assert.match(
    failing.stdout,
    /^injecting a failure: 20 rows in the open transaction, offsets not written$/m,
    'the rows of the batch were written inside the transaction when it failed',
  );
  assert.match(failing.stdout, /^failed \d+: .*injected failure \(FAIL_AFTER_ROWS=11\)/m);
  assert.doesNotMatch(failing.stdout, /^committed /m, failing.output());
  assert.match(failing.stderr, /the pipeline failed: SLUICE_OPERATOR_FAILED: .*injected failure/);
  assert.deepEqual(
    (await rows()).map((r) => r.id),
    Array.from({ length: 10 }, (_, i) => i),
    'no row of the failed batch is in the table',
  );
  assert.deepEqual(
    await offsets(),
    [
      [0, 5],
      [1, 5],
    ],
    'the offsets did not move',
  );

  // 3. Restart without the failure: the batch is read again and committed once.
  const last = start();
  await last.waitFor(
    (out) => /^committed \d+ 10 records$/m.test(out),
    'the batch of the 10 rows, committed',
    60_000,
  );
  await waitUntil(
    'offsets 10/10 in the offsets table',
    5_000,
    offsets,
    (o) => JSON.stringify(o) === '[[0,10],[1,10]]',
  );
  const batches = (out: string) => (out.match(/^committed /gm) ?? []).length;
  const committed = batches(last.stdout);
  await last.waitFor((out) => batches(out) >= committed + 2, 'two more batches', 10_000);
  assert.deepEqual(await last.stop('SIGINT'), { code: 0, signal: null }, last.output());
  // Its first committed batch starts at the offsets the failed run left.
  assert.match(
    last.stdout,
    new RegExp(`^committed \\d+ 10 records\\nrange ${topic} 0 5 10\\nrange ${topic} 1 5 10$`, 'm'),
  );

  const all = await rows();
  assert.deepEqual(
    all.map((r) => r.id),
    Array.from({ length: 20 }, (_, i) => i),
    'each id exactly once',
  );
  for (const r of all) {
    assert.equal(r.name, `name${r.id}`);
    assert.equal(r.partition, r.id % 2);
    assert.equal(r.offset, Math.floor(r.id / 2), `id ${r.id} comes from its own offset`);
  }
  assert.deepEqual(
    await offsets(),
    [
      [0, 10],
      [1, 10],
    ],
    'the offsets are the end offsets of the topic',
  );
});
