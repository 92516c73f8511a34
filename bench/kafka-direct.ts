/**
 * Kafka direct stream throughput: how much of the client's speed the engine keeps.
 *
 * On one pre-filled 3-partition topic (>= 1,000,000 records of 100 bytes, written once by Kafka's
 * ProducerPerformance and reused by later runs) it measures, in the same run:
 *   (a) engine  — a Sluice pipeline: createDirectStream(earliest, bytes values) -> count() ->
 *                 foreachBatch summing the counts, until every record is counted;
 *   (b) raw     — a bare consume loop with the same client (@confluentinc/kafka-javascript) and
 *                 exactly the same consumer settings and consume call;
 *   (c) ceiling — Kafka's own ConsumerPerformance (Java client) on the same topic.
 * Timings of (a) and (b) exclude connecting: (a) runs from the start of the first batch to the
 * moment the last count is summed, (b) from the first consume call to the last record. Each is run
 * `rounds` times, interleaved, after a full GC each; the best run is reported (all runs are kept in
 * the JSON, with the CPU time per record of the process).
 *
 * Results are appended to bench/results/kafka-direct.jsonl (one JSON object per run) and
 * bench/results/kafka-direct.md.
 *
 *   node --import tsx bench/kafka-direct.ts            # 1,000,000 records, 3 rounds
 *   BENCH_RECORDS=2000000 BENCH_ROUNDS=5 node --import tsx bench/kafka-direct.ts
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StreamingContext } from '../src/core/context.js';
import { silentLogger } from '../src/core/logger.js';
import { KafkaAdmin, createDirectStream, librdkafkaVersion } from '../src/kafka/index.js';
import {
  CONSUME_BATCH,
  DIRECT_TOPIC_CONFIG,
  directConsumerConfig,
  tuneDirectConsumer,
} from '../src/kafka/direct-source.js';
import { KafkaConsumer, call, type RdKafkaConsumer, type RdMessage } from '../src/kafka/rdkafka.js';
import { ensureKafka } from '../src/services/kafka.js';
import { kafkaVersion, runConsumerPerformance, runProducerPerformance } from './consumer-perf.js';

const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');
const PARTITIONS = 3;
const RECORD_SIZE = 100;

export interface KafkaDirectBenchOptions {
  /** Records the topic must hold (default env BENCH_RECORDS or 1,000,000). */
  readonly records?: number;
  /** Runs of (a) and (b) each; the best is reported (default env BENCH_ROUNDS or 3). */
  readonly rounds?: number;
  /** Default: the shared local broker (ensureKafka, or KAFKA_BOOTSTRAP). */
  readonly bootstrapServers?: string;
  /** Append the result to bench/results (default true). */
  readonly write?: boolean;
  /** Progress lines (default: to stderr). */
  readonly log?: (line: string) => void;
}

export interface Throughput {
  /** Best run. */
  readonly recordsPerSec: number;
  /** Median run. */
  readonly medianRecordsPerSec: number;
  readonly seconds: number;
  /** records/s of every run, in order. */
  readonly runs: number[];
  /** CPU time of this process (all its threads) per record, microseconds, in every run. */
  readonly cpuMicrosPerRecord: number[];
}

export interface KafkaDirectBenchResult {
  readonly bench: 'kafka-direct';
  readonly date: string;
  readonly machine: {
    readonly cpuModel: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly node: string;
    readonly platform: string;
  };
  readonly client: { readonly package: string; readonly librdkafka: string };
  readonly kafka: string;
  readonly topic: string;
  readonly partitions: number;
  readonly records: number;
  readonly recordSize: number;
  /** (a) the Sluice pipeline. */
  readonly engine: Throughput & { readonly batches: number[] };
  /** (b) the raw consume loop, same client and settings. */
  readonly raw: Throughput;
  /** (c) Kafka's ConsumerPerformance: nMsg.sec (whole run) and fetch.nMsg.sec (after the group join). */
  readonly consumerPerformance:
    | { readonly nMsgSec: number; readonly fetchNMsgSec: number; readonly mbSec: number }
    | { readonly error: string };
  /** engine / raw, best runs. */
  readonly ratioEngineToRaw: number;
  /** engine / raw, median runs. */
  readonly medianRatioEngineToRaw: number;
  /** Load averages (1 min) before and after: the machine may be shared; high values mean noisy numbers. */
  readonly loadAverage: { readonly before: number; readonly after: number };
}

export async function runKafkaDirectBench(
  options: KafkaDirectBenchOptions = {},
): Promise<KafkaDirectBenchResult> {
  const wanted = options.records ?? Number(process.env.BENCH_RECORDS ?? 1_000_000);
  const rounds = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 3);
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const bootstrapServers = options.bootstrapServers ?? (await ensureKafka()).bootstrapServers;
  const topic = `sluice-bench-direct-${PARTITIONS}p-${RECORD_SIZE}b-${wanted}`;

  const admin = KafkaAdmin.create(bootstrapServers, { policy: { attempts: 3, timeoutMs: 10_000 } });
  let records: number;
  let starts: Map<string, number>;
  try {
    ({ records, starts } = await prefill(admin, bootstrapServers, topic, wanted, log));
  } finally {
    admin.close();
  }
  log(`topic ${topic}: ${records} records of ${RECORD_SIZE} bytes in ${PARTITIONS} partitions`);

  const cp = await consumerPerformance(bootstrapServers, topic, records, log);

  const loadBefore = os.loadavg()[0]!;
  const rawRuns: number[] = [];
  const rawCpu: number[] = [];
  const engineRuns: number[] = [];
  const engineCpu: number[] = [];
  const engineBatches: number[] = [];
  // Interleaved, so that both paths see the same machine.
  for (let round = 1; round <= rounds; round++) {
    collectGarbage();
    const raw = await rawLoop(bootstrapServers, topic, starts, records);
    rawRuns.push(records / raw.seconds);
    rawCpu.push(round3((raw.cpuSeconds * 1e6) / records));
    log(
      `round ${round}: raw    ${fmt(records / raw.seconds)} records/s (${raw.seconds.toFixed(2)} s, ${raw.cpuSeconds.toFixed(2)} s CPU)`,
    );
    collectGarbage();
    const engine = await enginePipeline(bootstrapServers, topic, records);
    engineRuns.push(records / engine.seconds);
    engineCpu.push(round3((engine.cpuSeconds * 1e6) / records));
    engineBatches.push(engine.batches);
    log(
      `round ${round}: engine ${fmt(records / engine.seconds)} records/s (${engine.seconds.toFixed(2)} s, ${engine.cpuSeconds.toFixed(2)} s CPU, ${engine.batches} batch(es))`,
    );
  }
  const best = (runs: number[]) => Math.max(...runs);
  const engineBest = best(engineRuns);
  const rawBest = best(rawRuns);
  const cpus = os.cpus();
  const result: KafkaDirectBenchResult = {
    bench: 'kafka-direct',
    date: new Date().toISOString(),
    machine: {
      cpuModel: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    },
    client: { package: '@confluentinc/kafka-javascript', librdkafka: librdkafkaVersion },
    kafka: kafkaVersion(),
    topic,
    partitions: PARTITIONS,
    records,
    recordSize: RECORD_SIZE,
    engine: {
      recordsPerSec: Math.round(engineBest),
      medianRecordsPerSec: Math.round(median(engineRuns)),
      seconds: round3(records / engineBest),
      runs: engineRuns.map(Math.round),
      cpuMicrosPerRecord: engineCpu,
      batches: engineBatches,
    },
    raw: {
      recordsPerSec: Math.round(rawBest),
      medianRecordsPerSec: Math.round(median(rawRuns)),
      seconds: round3(records / rawBest),
      runs: rawRuns.map(Math.round),
      cpuMicrosPerRecord: rawCpu,
    },
    consumerPerformance: cp,
    ratioEngineToRaw: Math.round((engineBest / rawBest) * 1000) / 1000,
    medianRatioEngineToRaw: Math.round((median(engineRuns) / median(rawRuns)) * 1000) / 1000,
    loadAverage: {
      before: Math.round(loadBefore * 100) / 100,
      after: Math.round(os.loadavg()[0]! * 100) / 100,
    },
  };
  if (options.write ?? true) writeResult(result);
  return result;
}

/** Makes sure the topic holds >= `wanted` records (ProducerPerformance fills what is missing). */
async function prefill(
  admin: KafkaAdmin,
  bootstrapServers: string,
  topic: string,
  wanted: number,
  log: (l: string) => void,
): Promise<{ records: number; starts: Map<string, number> }> {
  await admin.ensureTopics([topic], { partitions: PARTITIONS, replicationFactor: 1 });
  const tps = Array.from({ length: PARTITIONS }, (_, partition) => ({ topic, partition }));
  const count = async () => {
    const [low, high] = [await admin.listOffsets(tps, 'earliest'), await admin.listOffsets(tps, 'latest')];
    let n = 0;
    for (const [k, end] of high) n += end - low.get(k)!;
    return { n, low };
  };
  let { n } = await count();
  if (n < wanted) {
    const missing = wanted - n;
    log(`pre-filling ${topic} with ${missing} records (Kafka ProducerPerformance)...`);
    await runProducerPerformance(bootstrapServers, topic, missing, RECORD_SIZE);
    n = (await count()).n;
    if (n < wanted) throw new Error(`${topic} holds ${n} records after pre-filling, expected ${wanted}`);
  } else {
    log(`reusing ${topic} (${n} records)`);
  }
  const { low } = await count();
  return { records: n, starts: low };
}

/** (b) The raw loop: same client, same consumer settings and consume call as the source. */
async function rawLoop(
  bootstrapServers: string,
  topic: string,
  starts: Map<string, number>,
  records: number,
): Promise<{ seconds: number; cpuSeconds: number }> {
  const consumer: RdKafkaConsumer = new KafkaConsumer(
    directConsumerConfig({
      cluster: bootstrapServers,
      groupId: `sluice-bench-raw-${Date.now()}`,
      clientId: 'sluice-bench-raw',
      isolationLevel: 'read_committed',
    }) as never,
    { ...DIRECT_TOPIC_CONFIG },
  );
  await call((cb) => consumer.connect({ timeout: 10_000, topic }, cb as never));
  try {
    tuneDirectConsumer(consumer);
    consumer.assign(
      Array.from({ length: PARTITIONS }, (_, partition) => ({
        topic,
        partition,
        offset: starts.get(`${topic}:${partition}`)!,
      })),
    );
    const started = performance.now();
    const cpu = process.cpuUsage();
    let n = 0;
    let bytes = 0;
    while (n < records) {
      const msgs = await call<RdMessage[]>((cb) => consumer.consume(CONSUME_BATCH, cb));
      for (let i = 0; i < msgs.length; i++) bytes += msgs[i]!.size;
      n += msgs.length;
    }
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    if (bytes === 0) throw new Error('no bytes read');
    return { seconds, cpuSeconds: (used.user + used.system) / 1e6 };
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}

/** (a) The Sluice pipeline. */
async function enginePipeline(
  bootstrapServers: string,
  topic: string,
  records: number,
): Promise<{ seconds: number; cpuSeconds: number; batches: number }> {
  const ctx = new StreamingContext({
    batchInterval: 200,
    pipelineId: `sluice-bench-engine-${Date.now()}`,
    logger: silentLogger,
  });
  let firstBatch: number | undefined;
  let cpu: NodeJS.CpuUsage | undefined;
  let batches = 0;
  ctx.addListener({
    onBatchStarted: () => {
      firstBatch ??= performance.now();
      cpu ??= process.cpuUsage();
      batches++;
    },
  });
  let total = 0;
  let finished!: (r: { end: number; cpu: NodeJS.CpuUsage }) => void;
  const done = new Promise<{ end: number; cpu: NodeJS.CpuUsage }>((resolve) => (finished = resolve));
  createDirectStream(ctx, {
    name: 'bench',
    topics: [topic],
    bootstrapServers,
    startingOffsets: 'earliest',
    valueDeserializer: 'bytes',
  })
    .count()
    .foreachBatch((batch) => {
      for (const n of batch.collect()) total += n;
      if (total >= records) finished({ end: performance.now(), cpu: process.cpuUsage(cpu) });
    });
  await ctx.start();
  const failed = ctx.awaitTermination().then(() => {
    throw new Error(`the pipeline stopped after ${total} of ${records} records`);
  });
  try {
    const { end, cpu: used } = await Promise.race([done, failed]);
    if (total !== records) throw new Error(`counted ${total} records, expected ${records}`);
    return { seconds: (end - firstBatch!) / 1000, cpuSeconds: (used.user + used.system) / 1e6, batches };
  } finally {
    await ctx.stop();
  }
}

/** (c) Kafka's ConsumerPerformance (Java client). */
async function consumerPerformance(
  bootstrapServers: string,
  topic: string,
  records: number,
  log: (l: string) => void,
): Promise<KafkaDirectBenchResult['consumerPerformance']> {
  try {
    const r = await runConsumerPerformance(bootstrapServers, topic, records);
    log(`ConsumerPerformance: ${fmt(r.nMsgSec)} records/s (fetch only: ${fmt(r.fetchNMsgSec)})`);
    return { nMsgSec: r.nMsgSec, fetchNMsgSec: r.fetchNMsgSec, mbSec: r.mbSec };
  } catch (e) {
    log(`ConsumerPerformance failed: ${(e as Error).message}`);
    return { error: (e as Error).message };
  }
}

/** A full GC before each run, so that no run pays for sweeping the previous run's garbage. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

function writeResult(r: KafkaDirectBenchResult): void {
  mkdirSync(RESULTS, { recursive: true });
  appendFileSync(path.join(RESULTS, 'kafka-direct.jsonl'), `${JSON.stringify(r)}\n`);
  appendFileSync(path.join(RESULTS, 'kafka-direct.md'), toMarkdown(r));
}

export function toMarkdown(r: KafkaDirectBenchResult): string {
  const cp =
    'error' in r.consumerPerformance
      ? `failed: ${r.consumerPerformance.error.split('\n')[0]}`
      : `${fmt(r.consumerPerformance.nMsgSec)} (fetch only ${fmt(r.consumerPerformance.fetchNMsgSec)})`;
  return [
    `## Kafka direct stream — ${r.date}`,
    '',
    `${r.records.toLocaleString('en-US')} records of ${r.recordSize} bytes, ${r.partitions} partitions, Kafka ${r.kafka}, librdkafka ${r.client.librdkafka}; ` +
      `${r.machine.cpuModel}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}. Best of ${r.engine.runs.length} runs.`,
    '',
    '| path | records/s best | median | all runs | CPU µs/record |',
    '| --- | ---: | ---: | --- | --- |',
    `| (a) Sluice: createDirectStream → count → foreachBatch | ${fmt(r.engine.recordsPerSec)} | ${fmt(r.engine.medianRecordsPerSec)} | ${r.engine.runs.map(fmt).join(', ')} | ${r.engine.cpuMicrosPerRecord.join(', ')} |`,
    `| (b) raw consume loop, same client and settings | ${fmt(r.raw.recordsPerSec)} | ${fmt(r.raw.medianRecordsPerSec)} | ${r.raw.runs.map(fmt).join(', ')} | ${r.raw.cpuMicrosPerRecord.join(', ')} |`,
    `| (c) Kafka ConsumerPerformance (Java) | ${cp} | | | |`,
    '',
    `engine / raw = **${(r.ratioEngineToRaw * 100).toFixed(1)} %** best, ${(r.medianRatioEngineToRaw * 100).toFixed(1)} % median ` +
      `(load average ${r.loadAverage.before} before, ${r.loadAverage.after} after)`,
    '',
    '',
  ].join('\n');
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  runKafkaDirectBench().then(
    (r) => {
      process.stdout.write(toMarkdown(r));
      process.exit(0);
    },
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
