/**
 * Case 5 — idempotent MySQL/MariaDB output: Kafka records `name,orderid` are upserted into
 * `orders(name, orderid PRIMARY KEY)`. Exactly-once by idempotence: the offsets are saved after
 * the rows (here in Redis), so a crash between the two replays the batch, and replaying a batch
 * writes the same rows again, which changes nothing. For an order id seen several times, the last
 * record (in partition order) wins, on the first run as on any replay.
 *
 * Run it:
 *   npx sluice kafka start                                   # a local broker (or set KAFKA_BOOTSTRAP)
 *   npx sluice run examples/mysql-idempotent-orders.ts       # Ctrl-C stops it after the running batch
 *   # in another terminal, send orders (keyed by order id, so an order's records stay in order):
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-orders', ['alice,1', 'bob,2', 'carol,1']); await p.close();"
 *   mariadb -uroot test -e 'SELECT * FROM orders'           # (1, carol), (2, bob)
 *   # replay everything: the table does not change
 *   npx sluice offsets reset --store redis://127.0.0.1:6379 --group mysql-idempotent-orders --topic sluice-orders --yes
 *   npx sluice run examples/mysql-idempotent-orders.ts
 *
 * Environment (all optional):
 *   MYSQL_URL          the database (default SLUICE_MYSQL_URL, else mysql://root@127.0.0.1:3306/test)
 *   ORDERS_TABLE       the table, created if missing when the job starts (default orders)
 *   OFFSET_STORE       where the offsets are kept, a store spec (default redis://127.0.0.1:6379;
 *                      mysql://... works as well; see `sluice offsets --help`)
 *   PIPELINE_ID        the pipeline id, which is the offset group (default mysql-idempotent-orders)
 *   KAFKA_BOOTSTRAP    bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC        topic to read (default sluice-orders; created with KAFKA_PARTITIONS partitions)
 *   KAFKA_PARTITIONS   partitions of a topic the example creates (default 2)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *
 * Output, per batch: a `Time: <ms> ms — <n> records` header, `range <topic> <partition> <from> <until>`
 * lines and one `order <orderid> <name>` line per valid record. Malformed records are skipped and
 * counted: `skipped <n> malformed record(s) in the batch of <ms>`.
 */
import { definePipeline, type SinkContext } from 'sluice';
import { createDirectStream } from 'sluice/kafka';
import { MySqlSink } from 'sluice/mysql';
// The store spec parser of `sluice offsets --store` (not a package entry point yet).
import { createOffsetStore, parseStoreSpec } from '../src/cli/store-spec.js';

interface Order {
  readonly name: string;
  readonly orderid: number;
}

const table = process.env.ORDERS_TABLE ?? 'orders';
const store = createOffsetStore(parseStoreSpec(process.env.OFFSET_STORE ?? 'redis://127.0.0.1:6379'));
const topic = process.env.KAFKA_TOPIC ?? 'sluice-orders';
const partitions = Number(process.env.KAFKA_PARTITIONS ?? 2);

/** `name,orderid` → an order; throws (so the record is skipped and counted) on anything else. */
function parseOrder(line: string | null): Order {
  const fields = (line ?? '').split(',');
  const [name, id] = fields.map((f) => f.trim());
  if (fields.length !== 2 || !name || !/^\d{1,15}$/.test(id ?? '')) {
    throw new Error(`expected "name,orderid", got ${JSON.stringify(line)}`);
  }
  return { name, orderid: Number(id) };
}

/** The MySqlSink, which creates its table when the job starts (not when the pipeline is described). */
class OrdersSink extends MySqlSink<Order> {
  override async open(ctx: SinkContext): Promise<void> {
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${quoted(table)} (name VARCHAR(255) NOT NULL, orderid BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB`,
    );
    await super.open(ctx);
  }
}

/** `name` or `db.name`, backquoted (the sink has already checked it is a plain identifier). */
function quoted(name: string): string {
  return name
    .split('.')
    .map((p) => `\`${p}\``)
    .join('.');
}

export default definePipeline({
  pipelineId: process.env.PIPELINE_ID ?? 'mysql-idempotent-orders',
  batchInterval: Number(process.env.BATCH_INTERVAL_MS ?? 1000),
  context: { offsetStore: store },
  build(ctx) {
    ctx.addListener({
      onBatchCompleted(info) {
        const skipped = info.badRecords.reduce((n, c) => n + c.skipped, 0);
        if (skipped > 0)
          console.log(`skipped ${skipped} malformed record(s) in the batch of ${info.batchTime}\n`);
      },
      // The context does not close an offset store it was given: close it once the job has stopped.
      onContextStopped: () => void store.close(),
    });
    const orders = createDirectStream(ctx, {
      name: 'orders-topic',
      topics: [topic],
      startingOffsets: 'earliest',
      createTopics: { partitions },
    }).tryMap((r) => parseOrder(r.value), { name: 'parse-order', badRecords: { policy: 'skip' } });

    orders.writeTo(
      new OrdersSink({
        ...(process.env.MYSQL_URL ? { connection: process.env.MYSQL_URL } : {}),
        table,
        columns: ['name', 'orderid'],
        toRow: (o) => [o.name, o.orderid],
        mode: 'upsert',
        key: ['orderid'],
      }),
      { name: 'orders-table', guarantee: 'exactly-once' },
    );

    orders.foreachBatch(
      (batch, { time, offsetRanges }) => {
        const rule = '-------------------------------------------';
        const size = offsetRanges.reduce((n, r) => n + (r.untilOffset - r.fromOffset), 0);
        const lines = [rule, `Time: ${time} ms — ${size} records`, rule];
        for (const r of offsetRanges)
          lines.push(`range ${r.topic} ${r.partition} ${r.fromOffset} ${r.untilOffset}`);
        for (const o of batch.collect()) lines.push(`order ${o.orderid} ${o.name}`);
        console.log(`${lines.join('\n')}\n`);
      },
      { name: 'print-orders', guarantee: 'at-least-once' },
    );
  },
});
