/**
 * One instance of the scaling benchmark's job (bench/scaling.ts starts 1 or 2 of these): case 7's
 * ETL, Kafka to Kafka with Kafka transactions, in group membership. It writes one JSON line per
 * event on stdout for the parent to measure with:
 *   {"ev":"owned","t":<ms>,"owned":["topic-0",...]}          after each rebalance
 *   {"ev":"batch","start":<ms>,"end":<ms>,"n":<lines>,"parts":["topic-0",...]}  each batch with lines
 * Env: BENCH_TOPIC, BENCH_GROUP, BENCH_OUTPUT, BENCH_DLQ, KAFKA_BOOTSTRAP, SLUICE_INSTANCE_ID.
 * Stops gracefully on SIGTERM.
 */
import { StreamingContext } from '../src/core/context.js';
import { silentLogger } from '../src/core/logger.js';
import { accessLogEtl } from '../examples/lib/access-log.js';
import {
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  kafkaDeadLetterSink,
} from '../src/kafka/index.js';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const bootstrapServers = env('KAFKA_BOOTSTRAP');
const topic = env('BENCH_TOPIC');
const write = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

const etl = accessLogEtl({ timeZone: 'Asia/Shanghai' });
const store = new KafkaTransactionalStore({ bootstrapServers });
const ctx = new StreamingContext({
  batchInterval: 200,
  pipelineId: env('BENCH_GROUP'),
  membership: 'group',
  offsetStore: store,
  logger: silentLogger,
});
ctx.addListener({
  onRebalance: (e) => write({ ev: 'owned', t: Date.now(), owned: e.owned.map((p) => `${p.topic}-${p.partition}`) }),
  onBatchCompleted(info) {
    if (info.numRecords === 0) return;
    const parts = info.inputs.flatMap((i) =>
      i.offsetRanges.filter((r) => r.untilOffset > r.fromOffset).map((r) => `${r.topic}-${r.partition}`),
    );
    write({ ev: 'batch', start: info.processingStartTime, end: info.processingEndTime, n: info.numRecords, parts });
  },
});
createDirectStream(ctx, {
  name: 'access-log',
  topics: [topic],
  bootstrapServers,
  startingOffsets: 'earliest',
  maxRecordsPerBatch: 50_000,
})
  .tryMap((r) => etl(r.value), {
    name: 'parse-access-log',
    badRecords: {
      policy: 'dead-letter',
      deadLetter: kafkaDeadLetterSink({ topic: env('BENCH_DLQ'), transactional: store, bootstrapServers }),
      guarantee: 'exactly-once',
    },
  })
  .writeTo(new KafkaTransactionalSink<string>({ topic: env('BENCH_OUTPUT'), store, bootstrapServers }), {
    name: 'output',
    guarantee: 'exactly-once',
  });

process.on('SIGTERM', () => {
  void ctx
    .stop()
    .then(() => store.close())
    .then(() => process.exit(0));
});
await ctx.start();
write({ ev: 'started', t: Date.now() });
