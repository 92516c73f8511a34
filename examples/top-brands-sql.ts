/**
 * Case 10 — top 3 brands per category by running sales, with SQL: each Kafka line `id brand
 * category` is one sale; `updateStateByKey` keeps the running total per (category, brand) in a
 * checkpoint directory (state and offsets commit together, so a restart neither loses nor
 * double-counts a sale); after every batch, DuckDB ranks the totals with
 * `row_number() over (partition by category order by sales desc)` and the top 3 of each category
 * are printed. Ties rank by brand name, so the output is deterministic.
 *
 * Run it:
 *   npx sluice kafka start                                   # a local broker (or set KAFKA_BOOTSTRAP)
 *   npx sluice run examples/top-brands-sql.ts                # Ctrl-C stops it after the running batch
 *   # in another terminal, send sales:
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-sales', ['1 apple phone', '2 samsung phone', '3 apple phone', '4 sony tv']); await p.close();"
 *   npx sluice checkpoint inspect /tmp/sluice-top-brands-checkpoint   # the running totals and offsets
 *
 * Environment (all optional):
 *   CHECKPOINT_DIR     the checkpoint directory (default /tmp/sluice-top-brands-checkpoint)
 *   TOP_N              brands shown per category (default 3)
 *   KAFKA_BOOTSTRAP    bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC        topic to read (default sluice-sales; created with KAFKA_PARTITIONS partitions)
 *   KAFKA_PARTITIONS   partitions of a topic the example creates (default 2)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *
 * Lines that are not three space-separated fields are skipped (and counted in the batch info).
 * Output, per batch (every batch: the ranking is of the running totals, not of the batch):
 *   -------------------------------------------
 *   Time: 1700000001000 ms — top 3 brands per category of 4 sales
 *   -------------------------------------------
 *   top phone 1 apple 2
 *   top phone 2 samsung 1
 *   top tv 1 sony 1
 * (`top <category> <rank> <brand> <sales>`).
 */
import { definePipeline } from 'sluice';
import { CheckpointDirectory } from 'sluice/checkpoint';
import { createDirectStream } from 'sluice/kafka';
import { SqlEngine, sqlTransform } from 'sluice/sql';

const checkpointDir = process.env.CHECKPOINT_DIR ?? '/tmp/sluice-top-brands-checkpoint';
const topN = Number(process.env.TOP_N ?? 3);
const topic = process.env.KAFKA_TOPIC ?? 'sluice-sales';
const partitions = Number(process.env.KAFKA_PARTITIONS ?? 2);
const batchInterval = Number(process.env.BATCH_INTERVAL_MS ?? 1000);

interface Sale {
  readonly id: string;
  readonly brand: string;
  readonly category: string;
}

/** A row of the ranking: what the query selects. */
interface TopRow {
  readonly category: string;
  readonly rank: number;
  readonly brand: string;
  readonly sales: number;
  /** All sales counted so far, over every category. */
  readonly total: number;
}

/** `id brand category` → a sale; throws (the line is skipped and counted) on anything else. */
function parseSale(line: string | null): Sale {
  const fields = (line ?? '').trim().split(/\s+/);
  if (fields.length !== 3 || fields[0] === '')
    throw new Error(`expected "id brand category", got ${JSON.stringify(line)}`);
  const [id, brand, category] = fields as [string, string, string];
  return { id, brand, category };
}

const TOP_N_SQL = `
select category, rn as rank, brand, sales, total
from (
  select *,
         row_number() over (partition by category order by sales desc, brand) as rn,
         sum(sales) over () as total
  from totals
)
where rn <= $1
order by category, rn`;

export default definePipeline({
  pipelineId: 'top-brands-sql',
  batchInterval,
  context: { checkpoint: new CheckpointDirectory({ dir: checkpointDir }) },
  build(ctx) {
    // One in-process DuckDB, opened at the first batch and closed when the job stops.
    const sql = new SqlEngine({ closeWith: ctx });

    const totals = createDirectStream(ctx, {
      name: 'sales',
      topics: [topic],
      startingOffsets: 'earliest',
      createTopics: { partitions },
    })
      .tryMap((r) => parseSale(r.value), { name: 'parse', badRecords: { policy: 'skip' } })
      .mapToPair((s) => [[s.category, s.brand] as [string, string], 1], { name: 'one-per-sale' })
      .updateStateByKey((sales: number[], total: number | undefined) => (total ?? 0) + sales.length, {
        name: 'totals',
      });

    const top = totals
      .map(([[category, brand], sales]) => ({ category, brand, sales }), { name: 'rows' })
      .transform(
        sqlTransform<TopRow>(sql, TOP_N_SQL, {
          table: 'totals',
          // The state is empty before the first sale: the schema lets the query run anyway.
          schema: { category: 'VARCHAR', brand: 'VARCHAR', sales: 'BIGINT' },
          params: [topN],
        }),
        { name: 'top-n' },
      );

    top.foreachBatch(
      (batch, { time }) => {
        const rows = batch.collect();
        const rule = '-------------------------------------------';
        const out = [
          rule,
          `Time: ${time} ms — top ${topN} brands per category of ${rows[0]?.total ?? 0} sales`,
          rule,
        ];
        for (const r of rows) out.push(`top ${r.category} ${r.rank} ${r.brand} ${r.sales}`);
        console.log(`${out.join('\n')}\n`);
      },
      { name: 'print-top' },
    );
  },
});
