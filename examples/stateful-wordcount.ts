/**
 * Cases 9 and 11 — a running word count across batches (updateStateByKey) that survives a crash:
 * its state and its Kafka offsets are committed together, each batch, to a checkpoint directory, so
 * a job killed with SIGKILL at any moment restarts from its last committed batch and its counts go
 * on without losing or double-counting a word.
 *
 * Run it:
 *   npx sluice kafka start                               # a local broker (or set KAFKA_BOOTSTRAP)
 *   CHECKPOINT_DIR=/tmp/wordcount npx sluice run --supervise examples/stateful-wordcount.ts
 *   # in another terminal, send some words:
 *   node --import tsx -e "const { sharedProducer } = await import('sluice/kafka'); const p = await sharedProducer();
 *     await p.send('sluice-stateful-wordcount', ['to be or not to be', 'be quick']); await p.close();"
 *   # kill -9 the job (its pid is on the supervisor's "started" line): the supervisor restarts it
 *   # and the counts continue. What the checkpoint holds:
 *   npx sluice checkpoint inspect /tmp/wordcount
 *
 * Environment (all optional):
 *   CHECKPOINT_DIR         the checkpoint directory (default .sluice/checkpoints/stateful-wordcount)
 *   CHECKPOINT_FULL_EVERY  a full snapshot every N batches, the changed words in between (default 10)
 *   PIPELINE_ID            the pipeline id, which is also the offset group (default stateful-wordcount)
 *   KAFKA_BOOTSTRAP        bootstrap servers (default 127.0.0.1:9092)
 *   KAFKA_TOPIC            topic of text lines (default sluice-stateful-wordcount; created with
 *                          KAFKA_PARTITIONS partitions, default 2, if it does not exist)
 *   BATCH_INTERVAL_MS      batch interval in ms (default 1000)
 *
 * Output: one JSON line per batch that read records (and for the first batch of each run), e.g.
 *   {"time":1700000001000,"records":8,"ranges":[{"topic":"t","partition":0,"from":0,"until":5},...],
 *    "counts":{"be":3,"not":1,"or":1,"quick":1,"to":2}}
 * where `counts` is the running count of every word in the records before each range's `until`:
 * the whole state after the batch. A batch replayed after a crash prints the same line again.
 */
import { definePipeline } from 'sluice';
import { CheckpointDirectory } from 'sluice/checkpoint';
import { createDirectStream } from 'sluice/kafka';

const env = process.env;
const topic = env.KAFKA_TOPIC ?? 'sluice-stateful-wordcount';
const checkpoint = new CheckpointDirectory({
  dir: env.CHECKPOINT_DIR ?? '.sluice/checkpoints/stateful-wordcount',
});

export default definePipeline({
  pipelineId: env.PIPELINE_ID ?? 'stateful-wordcount',
  batchInterval: Number(env.BATCH_INTERVAL_MS ?? 1000),
  // The checkpoint keeps the offsets too: no offsetStore, so state and offsets commit as one.
  context: { checkpoint, checkpointFullEvery: Number(env.CHECKPOINT_FULL_EVERY ?? 10) },
  build(ctx) {
    let first = true;
    createDirectStream(ctx, {
      name: 'lines',
      topics: [topic],
      // Only where the checkpoint holds no offset: a restart resumes at the checkpoint's.
      startingOffsets: 'earliest',
      createTopics: { partitions: Number(env.KAFKA_PARTITIONS ?? 2) },
    })
      .flatMap((r) => (r.value ?? '').split(/\s+/).filter((w) => w !== ''), { name: 'words' })
      .mapToPair((w) => [w, 1] as [string, number], { name: 'ones' })
      .updateStateByKey((ones: number[], total: number | undefined) => (total ?? 0) + ones.length, {
        name: 'counts',
      })
      .foreachBatch(
        (batch, { time, offsetRanges }) => {
          const records = offsetRanges.reduce((n, r) => n + r.untilOffset - r.fromOffset, 0);
          if (records === 0 && !first) return;
          first = false;
          const counts = Object.fromEntries([...batch.collect()].sort(([a], [b]) => (a < b ? -1 : 1)));
          const ranges = offsetRanges.map((r) => ({
            topic: r.topic,
            partition: r.partition,
            from: r.fromOffset,
            until: r.untilOffset,
          }));
          console.log(JSON.stringify({ time, records, ranges, counts }));
        },
        // The line is the whole state after the batch: printing it again changes nothing.
        { name: 'print-counts', idempotent: true },
      );
  },
});
