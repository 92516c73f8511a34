/**
 * Case 7 — online ETL, Kafka to Kafka, exactly-once. Access-log lines of 15 fields, each wrapped in
 * `<<<!>>>`, are read from an input topic and written to an output topic as
 * `userid|timestamp|clientIp:clientPort|serverIp:serverPort|url`, the timestamp in epoch ms of the
 * action time read in an EXPLICIT time zone (ETL_TIME_ZONE; the process's TZ plays no part).
 * Malformed lines (not 15 fields, a field without its markers, a bad time) go to a dead-letter
 * topic as they were read, with the reason in the `sluice.reason` header; they are counted per
 * batch and never stop the job.
 *
 * Exactly-once: each batch's output records, its dead letters and the input offsets are committed
 * in ONE Kafka transaction (a KafkaTransactionalStore, which is also the context's offset store).
 * A crash at any point leaves either all of a batch or none of it visible to read_committed
 * consumers, and a restart resumes from the offsets of the last committed batch (its transactional
 * producer fences any zombie of the previous run).
 *
 * Run it:
 *   npx sluice kafka start                     # a local broker on 127.0.0.1:9092 (or set KAFKA_BOOTSTRAP)
 *   npx sluice run examples/kafka-etl.ts       # Ctrl-C stops it after the running batch
 *   # in another terminal, send a good line and a malformed one:
 *   printf '%s\n' '<<<!>>>3111<<<!>>>,<<<!>>>238<<<!>>>,<<<!>>>20181111132902<<<!>>>,<<<!>>>58.223.1.112<<<!>>>,<<<!>>>202.102.92.18<<<!>>>,<<<!>>>59563<<<!>>>,<<<!>>>80<<<!>>>,<<<!>>>www.sogou.com<<<!>>>,<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>>http://www.sogou.com/web?q=1<<<!>>>,<<<!>>>1<<<!>>>' \
 *     'not an access log line' | kcat -P -b 127.0.0.1:9092 -t sluice-etl-access-log
 *   kcat -C -b 127.0.0.1:9092 -t sluice-etl-clean -X isolation.level=read_committed -e
 *   kcat -C -b 127.0.0.1:9092 -t sluice-etl-dead-letters -X isolation.level=read_committed -e -f '%h\t%s\n'
 *
 * Environment (all optional):
 *   KAFKA_BOOTSTRAP        bootstrap servers (default 127.0.0.1:9092)
 *   ETL_INPUT_TOPIC        input topic (default sluice-etl-access-log)
 *   ETL_OUTPUT_TOPIC       output topic (default sluice-etl-clean)
 *   ETL_DEAD_LETTER_TOPIC  dead-letter topic (default sluice-etl-dead-letters)
 *   ETL_TIME_ZONE          IANA time zone of the action times (default Asia/Shanghai)
 *   KAFKA_PARTITIONS       partitions of the topics the example creates when missing (default 3)
 *   STARTING_OFFSETS       earliest | latest: where the first run starts (default earliest); later
 *                          runs resume from the committed offsets
 *   BATCH_INTERVAL_MS      batch interval in ms (default 1000)
 *   MAX_RATE_PER_PARTITION records per second per partition a batch takes at most (default: no cap)
 *   PIPELINE_ID            the pipeline id: the consumer group and the transactional id's base
 *                          (default kafka-etl)
 *   CRASH_IN_BATCH         fault injection: the n-th batch with records kills the process (SIGKILL)
 *                          once its output and dead letters are written in the open transaction,
 *                          before the offsets and the commit. Run again without it: read_committed
 *                          consumers still see every line exactly once.
 *
 * Output, per batch (after its transaction committed):
 *   Batch 2018-11-11T05:29:03.000Z (1541914143000): 300 in, 297 out, 3 dead letters, processing 41 ms, scheduling delay 1 ms
 *     offsets sluice-etl-access-log 0 1200 1300 (100)
 *     ...
 *     output e.g.: 238|1541914142000|58.223.1.112:59563|202.102.92.18:80|http://www.sogou.com/web?q=1
 *     dead letter e.g.: expected 15 fields, got 14
 * and on stop: `Stopped: <b> batches, <n> in, <m> out, <k> dead letters.`
 */
import { definePipeline, rangeSize, type BatchInfo, type OffsetRange, type StreamingContext } from 'sluice';
import {
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  kafkaDeadLetterSink,
} from 'sluice/kafka';
import { AccessLogError, accessLogEtl, checkTimeZone } from './lib/access-log.js';

export interface AccessLogEtlOptions {
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly deadLetterTopic: string;
  /** IANA name, e.g. `Asia/Shanghai`. */
  readonly timeZone: string;
  /** The context's offset store: output, dead letters and offsets commit in its transactions. */
  readonly store: KafkaTransactionalStore;
  readonly bootstrapServers?: string;
  readonly startingOffsets?: 'earliest' | 'latest';
  /** Partitions of the topics created when missing (default 3). */
  readonly partitions?: number;
  readonly maxRatePerPartition?: number;
  /**
   * Fault injection (tests, demonstrations): the n-th batch with records kills its own process
   * (SIGKILL) after its output and dead letters were written in the transaction, before the
   * offsets and the commit.
   */
  readonly crashInBatch?: number;
}

/** What one committed batch did. */
export interface EtlBatchReport {
  readonly info: BatchInfo;
  readonly ranges: readonly OffsetRange[];
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly deadLetters: number;
  /** The reason of the batch's first dead letter. */
  readonly sampleReason: string | undefined;
  /** The batch's first output line. */
  readonly sampleOutput: string | undefined;
}

/**
 * Defines the ETL on `ctx` (whose offsetStore must be `options.store`): input topic ->
 * tryMap(parse + format) -> output topic, dead letters -> dead-letter topic, all in one
 * transaction per batch. Calls `onBatch` once per committed batch.
 */
export function buildAccessLogEtl(
  ctx: StreamingContext,
  options: AccessLogEtlOptions,
  onBatch: (report: EtlBatchReport) => void,
): void {
  const timeZone = checkTimeZone(options.timeZone);
  const etl = accessLogEtl({ timeZone });
  const createTopics = { partitions: options.partitions ?? 3 };
  const bootstrap = options.bootstrapServers ? { bootstrapServers: options.bootstrapServers } : {};
  const { store } = options;

  // Batches never overlap: what the operators see between onBatchStarted and the batch's end
  // belongs to that batch.
  let sampleReason: string | undefined;
  const outputs = new Map<number, { count: number; sample: string | undefined }>();

  const lines = createDirectStream(ctx, {
    name: 'access-log',
    topics: [options.inputTopic],
    startingOffsets: options.startingOffsets ?? 'earliest',
    createTopics,
    ...bootstrap,
    ...(options.maxRatePerPartition ? { maxRatePerPartition: options.maxRatePerPartition } : {}),
  });
  const clean = lines
    .tryMap(
      (record) => {
        try {
          return etl(record.value);
        } catch (e) {
          if (e instanceof AccessLogError) sampleReason ??= e.reason;
          throw e;
        }
      },
      {
        name: 'parse-access-log',
        badRecords: {
          policy: 'dead-letter',
          deadLetter: kafkaDeadLetterSink({
            topic: options.deadLetterTopic,
            transactional: store,
            createTopics,
            ...bootstrap,
          }),
        },
      },
    )
    .transform(
      (batch, { time }) => {
        outputs.set(time, { count: batch.size, sample: batch.take(1)[0] });
        return batch;
      },
      { name: 'count-out' },
    );
  clean.writeTo(
    new KafkaTransactionalSink<string>({
      topic: options.outputTopic,
      store,
      createTopics,
      ...bootstrap,
      // Keyed by user id: one user's records stay in order in one partition.
      toRecord: (line) => ({ key: line.slice(0, line.indexOf('|')), value: line }),
    }),
    { name: 'clean-access-log', guarantee: 'exactly-once' },
  );

  const crashIn = options.crashInBatch;
  if (crashIn !== undefined) {
    // In the same transaction, after the output and the dead letters (outputs run in the order
    // they were defined): everything is written, nothing is committed.
    let withRecords = 0;
    lines.foreachBatch(
      (batch) => {
        if (batch.size > 0 && ++withRecords === crashIn) {
          console.log(
            `Crashing (CRASH_IN_BATCH=${crashIn}): output written in the open transaction, offsets not committed`,
          );
          process.kill(process.pid, 'SIGKILL');
        }
      },
      { name: 'crash-injection', transaction: store, guarantee: 'exactly-once' },
    );
  }

  ctx.addListener({
    onBatchStarted() {
      sampleReason = undefined;
    },
    onBatchCompleted(info) {
      const out = outputs.get(info.batchTime);
      outputs.delete(info.batchTime);
      onBatch({
        info,
        ranges: info.inputs.flatMap((i) => i.offsetRanges),
        recordsIn: info.numRecords,
        recordsOut: out?.count ?? 0,
        deadLetters: info.badRecords.reduce((n, c) => n + c.deadLettered, 0),
        sampleReason,
        sampleOutput: out?.sample,
      });
    },
  });
}

/** The per-batch lines the example and the demo print. */
export function formatEtlBatch(r: EtlBatchReport): string {
  const { info } = r;
  const lines = [
    `Batch ${new Date(info.batchTime).toISOString()} (${info.batchTime}): ${r.recordsIn} in, ${r.recordsOut} out, ` +
      `${r.deadLetters} dead letters, processing ${info.processingTime} ms, scheduling delay ${info.schedulingDelay} ms`,
    ...r.ranges.map(
      (x) => `  offsets ${x.topic} ${x.partition} ${x.fromOffset} ${x.untilOffset} (${rangeSize(x)})`,
    ),
  ];
  if (r.sampleOutput !== undefined) lines.push(`  output e.g.: ${r.sampleOutput}`);
  if (r.sampleReason !== undefined) lines.push(`  dead letter e.g.: ${r.sampleReason}`);
  return lines.join('\n');
}

// ---- the pipeline file `sluice run` loads ----

const env = process.env;
const bootstrapServers = env.KAFKA_BOOTSTRAP?.trim() || undefined;
const store = new KafkaTransactionalStore(bootstrapServers ? { bootstrapServers } : {});

function positiveInt(name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${name} must be a whole number >= 1, got ${JSON.stringify(raw)}`);
  return n;
}

export default definePipeline({
  pipelineId: env.PIPELINE_ID ?? 'kafka-etl',
  batchInterval: positiveInt('BATCH_INTERVAL_MS') ?? 1000,
  context: { offsetStore: store },
  build(ctx) {
    const startingOffsets = env.STARTING_OFFSETS ?? 'earliest';
    if (startingOffsets !== 'earliest' && startingOffsets !== 'latest') {
      throw new Error(`STARTING_OFFSETS must be earliest or latest, got ${JSON.stringify(startingOffsets)}`);
    }
    const options: AccessLogEtlOptions = {
      inputTopic: env.ETL_INPUT_TOPIC ?? 'sluice-etl-access-log',
      outputTopic: env.ETL_OUTPUT_TOPIC ?? 'sluice-etl-clean',
      deadLetterTopic: env.ETL_DEAD_LETTER_TOPIC ?? 'sluice-etl-dead-letters',
      timeZone: env.ETL_TIME_ZONE ?? 'Asia/Shanghai',
      store,
      startingOffsets,
      partitions: positiveInt('KAFKA_PARTITIONS') ?? 3,
      maxRatePerPartition: positiveInt('MAX_RATE_PER_PARTITION'),
      crashInBatch: positiveInt('CRASH_IN_BATCH'),
      ...(bootstrapServers ? { bootstrapServers } : {}),
    };
    const totals = { batches: 0, in: 0, out: 0, dead: 0 };
    buildAccessLogEtl(ctx, options, (r) => {
      totals.batches++;
      totals.in += r.recordsIn;
      totals.out += r.recordsOut;
      totals.dead += r.deadLetters;
      console.log(formatEtlBatch(r));
    });
    let started = false;
    ctx.addListener({
      onBatchStarted() {
        if (started) return;
        started = true;
        // Printed once running (not by `sluice describe`, which builds the pipeline too).
        console.log(
          `ETL ${options.inputTopic} -> ${options.outputTopic} (dead letters: ${options.deadLetterTopic}), ` +
            `times in ${checkTimeZone(options.timeZone)}, exactly-once (Kafka transactions)`,
        );
      },
      onContextStopped() {
        console.log(
          `Stopped: ${totals.batches} batches, ${totals.in} in, ${totals.out} out, ${totals.dead} dead letters.`,
        );
        // The context does not close an offset store it was given.
        void store.close();
      },
    });
  },
});
