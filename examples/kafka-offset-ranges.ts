/**
 * Case 3 — a Kafka direct stream printing each batch's offset ranges and record count (Spark's
 * `HasOffsetRanges` example): one range per topic-partition, `topic partition from until`, where
 * `from` is inclusive and `until` exclusive.
 *
 * Run it:
 *   npx sluice kafka start                           # a local broker on 127.0.0.1:9092 (or set KAFKA_BOOTSTRAP)
 *   npx sluice run examples/kafka-offset-ranges.ts   # Ctrl-C stops it after the running batch
 *   # in another terminal, send 100 lines to the topic:
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-offset-ranges', Array.from({ length: 100 }, (_, i) => 'line ' + i)); await p.close();"
 *
 * Environment (all optional):
 *   KAFKA_BOOTSTRAP    bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC        topic to read (default sluice-offset-ranges; created with KAFKA_PARTITIONS
 *                      partitions if it does not exist)
 *   KAFKA_PARTITIONS   partitions of a topic the example creates (default 3)
 *   STARTING_OFFSETS   earliest | latest: where the first batch starts (default earliest)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *
 * Output, per batch:
 *   -------------------------------------------
 *   Time: 1700000001000 ms — 42 records
 *   -------------------------------------------
 *   sluice-offset-ranges 0 100 115
 *   sluice-offset-ranges 1 96 110
 *   sluice-offset-ranges 2 98 111
 */
import { definePipeline } from 'sluice';
import { createDirectStream } from 'sluice/kafka';

const topic = process.env.KAFKA_TOPIC ?? 'sluice-offset-ranges';
const partitions = Number(process.env.KAFKA_PARTITIONS ?? 3);
const startingOffsets = process.env.STARTING_OFFSETS === 'latest' ? 'latest' : 'earliest';
const batchInterval = Number(process.env.BATCH_INTERVAL_MS ?? 1000);

export default definePipeline({
  pipelineId: 'kafka-offset-ranges',
  batchInterval,
  build(ctx) {
    createDirectStream(ctx, {
      name: 'records',
      topics: [topic],
      startingOffsets,
      createTopics: { partitions },
    }).foreachBatch(
      (batch, { time, offsetRanges }) => {
        const rule = '-------------------------------------------';
        const lines = [rule, `Time: ${time} ms — ${batch.size} records`, rule];
        for (const r of offsetRanges)
          lines.push(`${r.topic} ${r.partition} ${r.fromOffset} ${r.untilOffset}`);
        console.log(`${lines.join('\n')}\n`);
      },
      { name: 'print-offset-ranges' },
    );
  },
});
