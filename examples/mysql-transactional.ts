/**
 * Case 6 — transactional MySQL/MariaDB output: Kafka records `name,id` become rows, and each
 * batch's rows and the topic's offsets are written in ONE transaction. The offsets live in a table
 * of the same database (a MySqlOffsetStore, also the context's offset store), so a failure anywhere
 * between the rows and the commit leaves neither: a restart reads the batch again from the offsets
 * of the last committed batch and writes each row exactly once. Each row also records where it
 * came from (partition, offset).
 *
 * Run it:
 *   npx sluice kafka start                                   # a local broker (or set KAFKA_BOOTSTRAP)
 *   npx sluice run examples/mysql-transactional.ts           # Ctrl-C stops it after the running batch
 *   # in another terminal:
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-transactional', Array.from({ length: 10 }, (_, i) => 'name' + i + ',' + i)); await p.close();"
 *   mariadb -uroot test -e 'SELECT COUNT(*) FROM transactional_rows; SELECT * FROM sluice_offsets'
 *   # a failure between the rows and the commit: the job exits 1, nothing of the batch is kept
 *   FAIL_AFTER_ROWS=1 npx sluice run examples/mysql-transactional.ts   # after producing more records
 *
 * Environment (all optional):
 *   MYSQL_URL          the database (default SLUICE_MYSQL_URL, else mysql://root@127.0.0.1:3306/test)
 *   ROWS_TABLE         the rows table, created if missing when the job starts (default transactional_rows)
 *   OFFSETS_TABLE      the offsets table, created if missing (default sluice_offsets)
 *   FAIL_AFTER_ROWS    inject a failure: the batch in which the rows table reaches this many rows
 *                      throws after writing its rows, inside the transaction, before the offsets
 *                      and the commit
 *   PIPELINE_ID        the pipeline id, which is the offset group (default mysql-transactional)
 *   KAFKA_BOOTSTRAP    bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC        topic to read (default sluice-transactional; created with KAFKA_PARTITIONS partitions)
 *   KAFKA_PARTITIONS   partitions of a topic the example creates (default 2)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *
 * Output: `committed <time> <n> records[, <k> malformed skipped]` then `range <topic> <partition>
 * <from> <until>` lines for each batch once its transaction committed; `failed <time>: <error>` for
 * a batch that did not.
 */
import type mysql from 'mysql2/promise';
import { definePipeline, type SinkContext } from 'sluice';
import { createDirectStream } from 'sluice/kafka';
import { MySqlOffsetStore, MySqlSink } from 'sluice/mysql';

interface Row {
  readonly name: string;
  readonly id: number;
  readonly partition: number;
  readonly offset: number;
}

const rowsTable = process.env.ROWS_TABLE ?? 'transactional_rows';
const failAfterRows = process.env.FAIL_AFTER_ROWS ? Number(process.env.FAIL_AFTER_ROWS) : undefined;
const topic = process.env.KAFKA_TOPIC ?? 'sluice-transactional';
const partitions = Number(process.env.KAFKA_PARTITIONS ?? 2);
if (failAfterRows !== undefined && !(Number.isInteger(failAfterRows) && failAfterRows > 0)) {
  throw new Error(`FAIL_AFTER_ROWS must be a whole number > 0, got ${process.env.FAIL_AFTER_ROWS}`);
}

// One store: the context keeps its offsets there and the sink writes in its transactions.
const store = new MySqlOffsetStore({
  ...(process.env.MYSQL_URL ? { connection: process.env.MYSQL_URL } : {}),
  table: process.env.OFFSETS_TABLE ?? 'sluice_offsets',
});

/** `name,id` (and where it was read) → a row; throws (so the record is skipped and counted) on anything else. */
function parseRow(r: { value: string | null; partition: number; offset: number }): Row {
  const fields = (r.value ?? '').split(',');
  const [name, id] = fields.map((f) => f.trim());
  if (fields.length !== 2 || !name || !/^\d{1,15}$/.test(id ?? '')) {
    throw new Error(`expected "name,id", got ${JSON.stringify(r.value)}`);
  }
  return { name, id: Number(id), partition: r.partition, offset: r.offset };
}

/** The MySqlSink, which creates its table when the job starts (not when the pipeline is described). */
class RowsSink extends MySqlSink<Row> {
  override async open(ctx: SinkContext): Promise<void> {
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${quoted(rowsTable)} (
         row_id BIGINT AUTO_INCREMENT PRIMARY KEY,
         name VARCHAR(255) NOT NULL,
         id BIGINT NOT NULL,
         kafka_partition INT NOT NULL,
         kafka_offset BIGINT NOT NULL
       ) ENGINE=InnoDB`,
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
  pipelineId: process.env.PIPELINE_ID ?? 'mysql-transactional',
  batchInterval: Number(process.env.BATCH_INTERVAL_MS ?? 1000),
  context: { offsetStore: store },
  build(ctx) {
    ctx.addListener({
      onBatchCompleted(info) {
        const ranges = info.inputs.flatMap((i) => i.offsetRanges);
        const skipped = info.badRecords.reduce((n, c) => n + c.skipped, 0);
        const lines = [
          `committed ${info.batchTime} ${info.numRecords} records${skipped ? `, ${skipped} malformed skipped` : ''}`,
        ];
        for (const r of ranges)
          lines.push(`range ${r.topic} ${r.partition} ${r.fromOffset} ${r.untilOffset}`);
        console.log(lines.join('\n'));
      },
      onBatchFailed(info) {
        console.log(`failed ${info.batchTime}: ${info.error?.message ?? 'unknown error'}`);
      },
      // The context does not close an offset store it was given: close it once the job has stopped.
      onContextStopped: () => void store.close(),
    });

    const rows = createDirectStream(ctx, {
      name: 'rows-topic',
      topics: [topic],
      startingOffsets: 'earliest',
      createTopics: { partitions },
    }).tryMap(parseRow, { name: 'parse-row', badRecords: { policy: 'skip' } });

    // mode 'insert' is not idempotent: exactly-once comes from the store's transaction.
    rows.writeTo(
      new RowsSink({
        store,
        table: rowsTable,
        columns: ['name', 'id', 'kafka_partition', 'kafka_offset'],
        toRow: (r) => [r.name, r.id, r.partition, r.offset],
        mode: 'insert',
      }),
      { name: 'rows-table', guarantee: 'exactly-once' },
    );

    if (failAfterRows !== undefined) {
      // Runs in the same transaction, after the sink: the rows are written, the offsets and the
      // commit are not yet.
      rows.foreachBatch(
        async (_batch, { transaction }) => {
          const [[count]] = await transaction.query<mysql.RowDataPacket[]>(
            `SELECT COUNT(*) AS n FROM ${quoted(rowsTable)}`,
          );
          const n = Number(count?.n);
          if (n >= failAfterRows) {
            console.log(`injecting a failure: ${n} rows in the open transaction, offsets not written`);
            throw new Error(
              `injected failure (FAIL_AFTER_ROWS=${failAfterRows}): ${n} rows written, not committed`,
            );
          }
        },
        { name: 'inject-failure', transaction: store, guarantee: 'exactly-once' },
      );
    }
  },
});
