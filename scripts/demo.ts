/**
 * The Sluice demo — what `npm start` runs after `scripts/setup.sh`.
 *
 * 1. Makes sure a Kafka broker answers: the cluster KAFKA_BOOTSTRAP points at, else the local
 *    development broker on 127.0.0.1:9092 (started detached if it is not running; stop it with
 *    `npx sluice kafka stop`).
 * 2. Creates a 3-partition topic (`sluice-demo-text`) if it does not exist.
 * 3. Produces sample text continuously — a few hundred lines per second of words from a small
 *    vocabulary — through ONE long-lived producer.
 * 4. Runs a Kafka word count with a 1 s batch interval and prints, per batch: its time, each
 *    partition's offset range, the record count, the processing time and scheduling delay, and the
 *    top 5 words.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops it gracefully: the running batch finishes, the producer flushes
 * and closes, exit code 0. A second Ctrl-C exits at once.
 *
 * Environment (all optional):
 *   KAFKA_BOOTSTRAP        use this cluster instead of the local broker
 *   SLUICE_DEMO_TOPIC      topic (default sluice-demo-text)
 *   SLUICE_DEMO_RATE       lines produced per second (default 300)
 *   SLUICE_DEMO_BATCHES    stop by itself after this many batches (default: run until Ctrl-C)
 *   SLUICE_LOG_LEVEL       level of the engine's JSON logs on stderr (default warn)
 */
import { StreamingContext, createLogger, rangeSize, type BatchInfo } from '../src/index.js';
import { KafkaAdmin, KafkaTextProducer, createDirectStream } from '../src/kafka/index.js';
import { ensureKafka } from '../src/services/kafka.js';

const TOPIC = process.env.SLUICE_DEMO_TOPIC ?? 'sluice-demo-text';
const PARTITIONS = 3;
const RATE = positiveInt('SLUICE_DEMO_RATE', 300);
const MAX_BATCHES = process.env.SLUICE_DEMO_BATCHES ? positiveInt('SLUICE_DEMO_BATCHES', 0) : undefined;
const BATCH_INTERVAL = 1000;
const TICK_MS = 100;

/** Words with weights, so that the top 5 is stable enough to read but still moves. */
const VOCABULARY: [string, number][] = [
  ['stream', 12],
  ['batch', 10],
  ['kafka', 9],
  ['offset', 8],
  ['partition', 7],
  ['record', 6],
  ['window', 5],
  ['state', 5],
  ['checkpoint', 4],
  ['sluice', 4],
  ['spark', 3],
  ['node', 3],
  ['exactly', 2],
  ['once', 2],
  ['latency', 2],
  ['delay', 1],
  ['commit', 1],
  ['replay', 1],
];
const TOTAL_WEIGHT = VOCABULARY.reduce((n, [, w]) => n + w, 0);

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name} must be a whole number >= 1, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

function randomWord(): string {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const [word, weight] of VOCABULARY) {
    r -= weight;
    if (r < 0) return word;
  }
  return VOCABULARY[0]![0];
}

function randomLine(): string {
  const n = 3 + Math.floor(Math.random() * 6);
  return Array.from({ length: n }, randomWord).join(' ');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends about `rate` lines per second in small sends every 100 ms, until stopped. One producer for the whole run. */
class SampleText {
  produced = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;
  constructor(
    private readonly producer: KafkaTextProducer,
    private readonly rate: number,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    const perTick = Math.max(1, Math.round((this.rate * TICK_MS) / 1000));
    let next = Date.now();
    while (!this.#stopped) {
      try {
        this.produced += await this.producer.send(TOPIC, Array.from({ length: perTick }, randomLine));
      } catch (e) {
        console.error(`producing sample text failed (retrying in 1 s): ${(e as Error).message}`);
        await sleep(1000);
      }
      next += TICK_MS;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now(); // fell behind: do not try to catch up in a burst
    }
  }

  /** Stops after the send in flight, then flushes and closes the producer. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await this.producer.close(10_000);
  }
}

function formatBatch(info: BatchInfo, top: [string, number][] | undefined): string {
  const ranges = info.inputs.flatMap((i) => i.offsetRanges);
  const lines = [
    `Batch ${new Date(info.batchTime).toISOString()} (${info.batchTime}): ${info.numRecords} records, ` +
      `processing ${info.processingTime} ms, scheduling delay ${info.schedulingDelay} ms`,
    ...ranges.map(
      (r) => `  offsets ${r.topic} ${r.partition} ${r.fromOffset} ${r.untilOffset} (${rangeSize(r)})`,
    ),
    `  top 5: ${top && top.length > 0 ? top.map(([w, n]) => `${w} ${n}`).join(', ') : '(no records)'}`,
  ];
  return lines.join('\n');
}

async function main(): Promise<number> {
  const kafka = await ensureKafka();
  const where = process.env.KAFKA_BOOTSTRAP?.trim()
    ? 'KAFKA_BOOTSTRAP'
    : kafka.reused
      ? 'already running'
      : 'started now; `npx sluice kafka stop` stops it';
  console.log(`Kafka at ${kafka.bootstrapServers} (${where})`);

  const admin = KafkaAdmin.create(kafka.bootstrapServers);
  let partitions: number[];
  try {
    partitions = (await admin.ensureTopics([TOPIC], { partitions: PARTITIONS })).get(TOPIC)!;
  } finally {
    admin.close();
  }
  console.log(`Topic ${TOPIC}: ${partitions.length} partitions`);

  const producer = await KafkaTextProducer.connect({ bootstrapServers: kafka.bootstrapServers });
  const text = new SampleText(producer, RATE);

  const ctx = new StreamingContext({
    batchInterval: BATCH_INTERVAL,
    pipelineId: 'sluice-demo',
    logger: createLogger({ level: process.env.SLUICE_LOG_LEVEL ?? 'warn' }),
  });
  const topWords = new Map<number, [string, number][]>();
  createDirectStream(ctx, {
    name: 'text',
    topics: [TOPIC],
    bootstrapServers: kafka.bootstrapServers,
    startingOffsets: 'latest',
  })
    .flatMap((record) => (record.value ?? '').split(' ').filter((w) => w !== ''), { name: 'words' })
    .countByValue({ name: 'word-counts' })
    .foreachBatch(
      (counts, { time }) => {
        topWords.set(
          time,
          counts
            .collect()
            .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
            .slice(0, 5),
        );
      },
      { name: 'top-words' },
    );

  let stopping: string | undefined;
  const stop = (reason: string): void => {
    if (stopping !== undefined) return;
    stopping = reason;
    console.log(`Stopping (${reason}): finishing the running batch...`);
    void ctx.stop({ graceful: true });
  };
  let batches = 0;
  ctx.addListener({
    onBatchCompleted(info) {
      batches++;
      console.log(formatBatch(info, topWords.get(info.batchTime)));
      topWords.delete(info.batchTime);
      if (MAX_BATCHES !== undefined && batches >= MAX_BATCHES) stop(`${MAX_BATCHES} batches done`);
    },
  });

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      console.error(`${signal} again: exiting at once`);
      process.exit(130);
    }
    stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  text.start();
  console.log(
    `Producing ~${RATE} lines/s to ${TOPIC}; word count every ${BATCH_INTERVAL / 1000} s` +
      (MAX_BATCHES !== undefined ? ` for ${MAX_BATCHES} batches` : '; Ctrl-C to stop'),
  );
  let failure: unknown;
  try {
    await ctx.start();
    await ctx.awaitTermination();
  } catch (e) {
    failure = e;
  }
  await text.stop();
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  if (failure !== undefined) {
    const code = (failure as { code?: unknown }).code;
    console.error(
      `The demo failed: ${typeof code === 'string' ? `${code}: ` : ''}${(failure as Error).message ?? String(failure)}`,
    );
    return 1;
  }
  const processed = ctx.batches.reduce((n, b) => n + b.numRecords, 0);
  console.log(`Stopped: ${batches} batches, ${processed} records counted, ${text.produced} lines produced.`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const code = (e as { code?: unknown }).code;
    console.error(
      `The demo could not start: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message ?? String(e)}`,
    );
    process.exitCode = 1;
  },
);
