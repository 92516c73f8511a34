/**
 * Case 4 — offsets kept in Redis, in ZooKeeper, in Kafka (or in any offset store): stop the job, produce
 * more, restart it, and it resumes exactly where it stopped. It prints, per batch, the offset ranges
 * it read and every record; at start, the offsets it found in the store.
 *
 * Run it:
 *   npx sluice kafka start                                       # a local broker (or set KAFKA_BOOTSTRAP)
 *   OFFSET_STORE=redis://127.0.0.1:6379 npx sluice run examples/offsets-resume.ts
 *   # in another terminal, send 10 lines; then Ctrl-C the job, send 5 more, and run it again:
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-offsets-resume', Array.from({ length: 10 }, (_, i) => 'line ' + i)); await p.close();"
 *   # what the store holds:
 *   npx sluice offsets show --store redis://127.0.0.1:6379 --group offsets-resume --topic sluice-offsets-resume
 *   redis-cli HGETALL sluice-offsets-resume                     # fields "offsets-resume|<partition>"
 *   # with OFFSET_STORE=zookeeper://127.0.0.1:2181: get /sluice/offsets/sluice-offsets-resume/offsets-resume/0
 *   # with OFFSET_STORE=kafka://127.0.0.1:9092: kafka-consumer-groups.sh --describe --group offsets-resume
 *
 * Environment (all optional):
 *   OFFSET_STORE       a store spec (default redis://127.0.0.1:6379): redis://host:port[?keyPrefix=p],
 *                      zookeeper://host:port[/root], kafka://host:port (the group's commits),
 *                      postgres://..., mysql://..., checkpoint:<dir> (see `sluice offsets --help`)
 *   PIPELINE_ID        the pipeline id, which is the offset group (default offsets-resume)
 *   KAFKA_BOOTSTRAP    bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC        topic to read (default sluice-offsets-resume; created with KAFKA_PARTITIONS
 *                      partitions if it does not exist)
 *   KAFKA_PARTITIONS   partitions of a topic the example creates (default 2)
 *   BATCH_INTERVAL_MS  batch interval in ms (default 1000)
 *
 * Output: with the first batch, `stored <topic> <partition> <offset>` per position the store held at
 * start (or `stored none`); then per batch:
 *   -------------------------------------------
 *   Time: 1700000001000 ms — 3 records
 *   -------------------------------------------
 *   range sluice-offsets-resume 0 10 12
 *   range sluice-offsets-resume 1 5 6
 *   record sluice-offsets-resume 0 10 line 20
 *   ...
 * A batch's offsets are saved after it is printed (at-least-once): a graceful stop (Ctrl-C)
 * finishes the running batch, so the next run starts exactly after the last batch printed.
 */
import { definePipeline } from 'sluice';
import { createDirectStream } from 'sluice/kafka';
// The store spec parser of `sluice offsets --store` (not a package entry point yet).
import { createOffsetStore, describeStoreSpec, parseStoreSpec } from '../src/cli/store-spec.js';

const spec = parseStoreSpec(process.env.OFFSET_STORE ?? 'redis://127.0.0.1:6379');
const store = createOffsetStore(spec);
const pipelineId = process.env.PIPELINE_ID ?? 'offsets-resume';
const topic = process.env.KAFKA_TOPIC ?? 'sluice-offsets-resume';
const partitions = Number(process.env.KAFKA_PARTITIONS ?? 2);
const batchInterval = Number(process.env.BATCH_INTERVAL_MS ?? 1000);

export default definePipeline({
  pipelineId,
  batchInterval,
  context: { offsetStore: store },
  build(ctx) {
    // The context does not close an offset store it was given: close it once the job has stopped.
    ctx.addListener({ onContextStopped: () => void store.close() });
    // What the store held when the job started (read at the first batch: `sluice describe` connects to nothing).
    let startPrinted = false;
    const printStart = async () => {
      if (startPrinted) return;
      startPrinted = true;
      const stored = await store.read(pipelineId, [topic]);
      console.log(`offsets of group ${pipelineId} in ${describeStoreSpec(spec)} at start:`);
      for (const o of stored) console.log(`stored ${o.topic} ${o.partition} ${o.offset}`);
      if (stored.length === 0) console.log('stored none');
    };

    createDirectStream(ctx, {
      name: 'records',
      topics: [topic],
      // Only where the store holds nothing: stored offsets take precedence.
      startingOffsets: 'earliest',
      createTopics: { partitions },
    }).foreachBatch(
      async (batch, { time, offsetRanges }) => {
        await printStart();
        const rule = '-------------------------------------------';
        const lines = [rule, `Time: ${time} ms — ${batch.size} records`, rule];
        for (const r of offsetRanges)
          lines.push(`range ${r.topic} ${r.partition} ${r.fromOffset} ${r.untilOffset}`);
        for (const r of batch.collect())
          lines.push(`record ${r.topic} ${r.partition} ${r.offset} ${r.value}`);
        console.log(`${lines.join('\n')}\n`);
      },
      { name: 'print-batch', guarantee: 'at-least-once' },
    );
  },
});
