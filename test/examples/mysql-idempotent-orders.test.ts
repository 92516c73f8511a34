/**
 * Case 5 as real processes: `sluice run examples/mysql-idempotent-orders.ts` upserts `name,orderid`
 * records into a MariaDB table keyed by orderid, offsets in Redis. Replaying every batch (the
 * offsets reset with `sluice offsets reset`) leaves the table exactly as it was.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, mysqlUrl, redisUrl, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests, waitUntil } from './child-process.js';

const { runs, cleanups } = afterTests();

/** `order <id> <name>` lines the example printed. */
const printedOrders = (stdout: string): string[] =>
  stdout
    .slice(0, stdout.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l.startsWith('order '));

test('mysql-idempotent-orders upserts by orderid (last record wins), and replaying every batch after `sluice offsets reset` rewrites the same rows: same rows, same count', async () => {
  const bootstrap = await kafkaBootstrap();
  const dbUrl = await mysqlUrl();
  const offsetStore = await redisUrl();
  const topic = uniqueName('orders');
  const group = uniqueName('orders-job');
  const table = `orders_${uniqueName('t').replace(/[^a-z0-9]+/g, '_')}`;
  const pool = mysql.createPool({ uri: dbUrl, connectionLimit: 1 });
  const redis = new Redis(offsetStore, { lazyConnect: true, maxRetriesPerRequest: 2 });
  cleanups.push(async () => {
    await pool.query(`DROP TABLE IF EXISTS \`${table}\``);
    await pool.end();
  });
  cleanups.push(async () => {
    await redis.del(topic);
    redis.disconnect();
  });
  cleanups.push(() => deleteTopic(bootstrap, topic));
  await createTopic(bootstrap, topic, 2);

  // 20 orders, order 3 twice and order 7 three times (last: dave), and one malformed record. An
  // order's records go to one partition (orderid % 2), so their order is kept.
  const lines: [string, number][] = [];
  for (let id = 1; id <= 20; id++) lines.push([`customer${id},${id}`, id % 2]);
  lines.push(['alice,3', 1], ['bob,7', 1], ['not an order', 0], ['carol,7', 1], ['dave,7', 1]);
  await produce(
    bootstrap,
    topic,
    lines.map(([value, partition]) => ({ value, partition })),
  );
  const ends = { 0: lines.filter(([, p]) => p === 0).length, 1: lines.filter(([, p]) => p === 1).length };
  const expected = new Map<number, string>();
  for (let id = 1; id <= 20; id++) expected.set(id, `customer${id}`);
  expected.set(3, 'alice').set(7, 'dave');

  const storedOffsets = async () => ({
    0: Number(await redis.hget(topic, `${group}|0`)),
    1: Number(await redis.hget(topic, `${group}|1`)),
  });
  const tableRows = async () => {
    const [rows] = await pool.query<mysql.RowDataPacket[]>(
      `SELECT orderid, name FROM \`${table}\` ORDER BY orderid`,
    );
    return rows.map((r) => [Number(r.orderid), String(r.name)] as const);
  };
  const env = {
    KAFKA_BOOTSTRAP: bootstrap,
    KAFKA_TOPIC: topic,
    MYSQL_URL: dbUrl,
    ORDERS_TABLE: table,
    OFFSET_STORE: offsetStore,
    PIPELINE_ID: group,
    BATCH_INTERVAL_MS: '300',
  };
  const runUntilCaughtUp = async (label: string): Promise<ChildRun> => {
    const run = ChildRun.sluice(['run', 'examples/mysql-idempotent-orders.ts'], env);
    runs.push(run);
    await run.waitFor((out) => printedOrders(out).length >= 24, `${label}: the 24 valid records`, 60_000);
    await waitUntil(
      `${label}: the offsets at the end of the topic`,
      15_000,
      storedOffsets,
      (o) => o[0] === ends[0] && o[1] === ends[1],
    );
    assert.deepEqual(await run.stop('SIGINT'), { code: 0, signal: null }, run.output());
    return run;
  };

  const first = await runUntilCaughtUp('first run');
  const written = await tableRows();
  assert.deepEqual(
    written,
    [...expected].sort(([a], [b]) => a - b),
  );
  assert.equal(printedOrders(first.stdout).length, 24, first.output());
  assert.equal(
    [...first.stdout.matchAll(/^skipped (\d+) malformed record\(s\) in the batch of \d+$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    ),
    1,
    `the malformed record is skipped and counted\n${first.output()}`,
  );

  // Replay everything: forget the offsets with the CLI, then run again from the earliest offsets.
  const reset = ChildRun.sluice([
    'offsets',
    'reset',
    '--store',
    offsetStore,
    '--group',
    group,
    '--topic',
    topic,
    '--yes',
  ]);
  await reset.waitForExit(30_000);
  assert.equal(reset.exitInfo?.code, 0, reset.output());
  assert.match(reset.stdout, new RegExp(`^forgot 2 offset\\(s\\) of group ${group} `, 'm'));
  assert.equal(await redis.hlen(topic), 0);

  // One row removed behind the job's back: the replay must write it again (it really rewrites).
  await pool.query(`DELETE FROM \`${table}\` WHERE orderid = 5`);

  const second = await runUntilCaughtUp('replay');
  assert.deepEqual(
    printedOrders(second.stdout).sort(),
    printedOrders(first.stdout).sort(),
    'the replay read every record again',
  );
  assert.deepEqual(await tableRows(), written, 'same rows, same count after the replay');
});
