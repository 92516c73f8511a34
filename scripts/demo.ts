/**
 * The Sluice demo — what `npm start` runs after `scripts/setup.sh`: case 7's online ETL, Kafka to
 * Kafka, exactly-once, end to end.
 *
 * 1. Makes sure a Kafka broker answers: the cluster KAFKA_BOOTSTRAP points at, else the local
 *    development broker on 127.0.0.1:9092 (started detached if it is not running; stop it with
 *    `npx sluice kafka stop`).
 * 2. Creates the input, output and dead-letter topics (3 partitions each) if they do not exist.
 * 3. Produces access-log lines continuously — a few hundred per second, 15 fields each wrapped in
 *    `<<<!>>>`, action times = now in the demo's time zone, about 3 % of them malformed (14 or 16
 *    fields, a bad month or day, a field without its markers) — through ONE long-lived producer.
 * 4. Runs the ETL of examples/kafka-etl.ts with a 1 s batch interval: each line becomes
 *    `userid|timestamp|clientIp:clientPort|serverIp:serverPort|url` (timestamp in epoch ms) on the
 *    output topic; malformed lines go to the dead-letter topic with the reason; a batch's output,
 *    dead letters and input offsets commit in one Kafka transaction. Per batch it prints: its time,
 *    each partition's offset range, records in, records out, dead letters (with a sample reason),
 *    the processing time and scheduling delay.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops it gracefully: the running batch finishes and commits, the
 * producer flushes and closes, exit code 0. A second Ctrl-C exits at once. A later run resumes from
 * the committed offsets. Read the results with any Kafka client, e.g.
 *   kcat -C -b 127.0.0.1:9092 -t sluice-demo-access-log-clean -X isolation.level=read_committed -e
 *   kcat -C -b 127.0.0.1:9092 -t sluice-demo-access-log-dead-letters -X isolation.level=read_committed -e -f '%h\n%s\n\n'
 *
 * Environment (all optional):
 *   KAFKA_BOOTSTRAP                use this cluster instead of the local broker
 *   SLUICE_DEMO_TOPIC              input topic (default sluice-demo-access-log); the output and
 *                                  dead-letter topics are named after it (-clean, -dead-letters)
 *   SLUICE_DEMO_TIME_ZONE          IANA time zone of the action times (default Asia/Shanghai)
 *   SLUICE_DEMO_RATE               lines produced per second (default 300)
 *   SLUICE_DEMO_MALFORMED_PERCENT  share of malformed lines, 0-100 (default 3)
 *   SLUICE_DEMO_BATCHES            stop by itself after this many batches (default: run until Ctrl-C)
 *   SLUICE_LOG_LEVEL               level of the engine's JSON logs on stderr (default warn)
 */
import { StreamingContext, createLogger } from '../src/index.js';
import { KafkaAdmin, KafkaTextProducer, KafkaTransactionalStore } from '../src/kafka/index.js';
import { ensureKafka } from '../src/services/kafka.js';
import {
  MARKER,
  SAMPLE_MALFORMATIONS,
  checkTimeZone,
  sampleAccessLogLine,
  type SampleMalformation,
} from '../examples/lib/access-log.js';
import { buildAccessLogEtl, formatEtlBatch } from '../examples/kafka-etl.js';

const INPUT = process.env.SLUICE_DEMO_TOPIC ?? 'sluice-demo-access-log';
const OUTPUT = `${INPUT}-clean`;
const DEAD_LETTERS = `${INPUT}-dead-letters`;
const PARTITIONS = 3;
const RATE = positiveInt('SLUICE_DEMO_RATE', 300);
const MALFORMED_PERCENT = percent('SLUICE_DEMO_MALFORMED_PERCENT', 3);
const MAX_BATCHES = process.env.SLUICE_DEMO_BATCHES ? positiveInt('SLUICE_DEMO_BATCHES', 0) : undefined;
const BATCH_INTERVAL = 1000;
const TICK_MS = 100;

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

function percent(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    console.error(`${name} must be a number from 0 to 100, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

let TIME_ZONE: string;
try {
  TIME_ZONE = checkTimeZone(process.env.SLUICE_DEMO_TIME_ZONE ?? 'Asia/Shanghai');
} catch (e) {
  console.error(`SLUICE_DEMO_TIME_ZONE: ${(e as Error).message}`);
  process.exit(2);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `yyyyMMddHHmmss` of an instant in the demo's zone. */
const wallClock = new Intl.DateTimeFormat('en-US', {
  timeZone: TIME_ZONE,
  hourCycle: 'h23',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
function localTime(ms: number): string {
  const p = Object.fromEntries(wallClock.formatToParts(ms).map((x) => [x.type, x.value]));
  return `${p.year}${p.month}${p.day}${p.hour}${p.minute}${p.second}`;
}

/**
 * Sends about `rate` access-log lines per second in small sends every 100 ms, until stopped, through
 * one producer for the whole run. Good lines carry the current time; malformed ones are broken in
 * each of the ways the parser knows, in turn.
 */
class AccessLogGenerator {
  produced = 0;
  malformed = 0;
  #n = 0;
  #broken = 0;
  #stopped = false;
  #loop: Promise<void> | undefined;
  constructor(
    private readonly producer: KafkaTextProducer,
    private readonly rate: number,
  ) {}

  start(): void {
    this.#loop = this.#run();
  }

  #line(): { value: string; partition: number; malformed: boolean } {
    const n = this.#n++;
    const broken: SampleMalformation | undefined =
      Math.random() * 100 < MALFORMED_PERCENT
        ? SAMPLE_MALFORMATIONS[this.#broken++ % SAMPLE_MALFORMATIONS.length]
        : undefined;
    let value = sampleAccessLogLine(n, broken);
    // The sample's action time (field 2, the first 14-digit field) becomes now.
    if (!broken) value = value.replace(/<<<!>>>\d{14}<<<!>>>/, `${MARKER}${localTime(Date.now())}${MARKER}`);
    return { value, partition: n % PARTITIONS, malformed: broken !== undefined };
  }

  async #run(): Promise<void> {
    const perTick = Math.max(1, Math.round((this.rate * TICK_MS) / 1000));
    let next = Date.now();
    while (!this.#stopped) {
      const lines = Array.from({ length: perTick }, () => this.#line());
      try {
        this.produced += await this.producer.send(INPUT, lines);
        this.malformed += lines.filter((l) => l.malformed).length;
      } catch (e) {
        console.error(`producing access-log lines failed (retrying in 1 s): ${(e as Error).message}`);
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

async function main(): Promise<number> {
  const kafka = await ensureKafka();
  const where = process.env.KAFKA_BOOTSTRAP?.trim()
    ? 'KAFKA_BOOTSTRAP'
    : kafka.reused
      ? 'already running'
      : 'started now; `npx sluice kafka stop` stops it';
  console.log(`Kafka at ${kafka.bootstrapServers} (${where})`);

  const admin = KafkaAdmin.create(kafka.bootstrapServers);
  try {
    const topics = await admin.ensureTopics([INPUT, OUTPUT, DEAD_LETTERS], { partitions: PARTITIONS });
    console.log(
      `Topics: input ${INPUT} (${topics.get(INPUT)!.length} partitions), output ${OUTPUT}, dead letters ${DEAD_LETTERS}`,
    );
  } finally {
    admin.close();
  }

  const producer = await KafkaTextProducer.connect({ bootstrapServers: kafka.bootstrapServers });
  const lines = new AccessLogGenerator(producer, RATE);
  const store = new KafkaTransactionalStore({ bootstrapServers: kafka.bootstrapServers });

  const ctx = new StreamingContext({
    batchInterval: BATCH_INTERVAL,
    // The consumer group and the transactional id: a later run resumes from its commits.
    pipelineId: `${INPUT}-etl`,
    offsetStore: store,
    logger: createLogger({ level: process.env.SLUICE_LOG_LEVEL ?? 'warn' }),
  });

  let stopping: string | undefined;
  const stop = (reason: string): void => {
    if (stopping !== undefined) return;
    stopping = reason;
    console.log(`Stopping (${reason}): finishing the running batch...`);
    void ctx.stop({ graceful: true });
  };
  const totals = { batches: 0, in: 0, out: 0, dead: 0 };
  buildAccessLogEtl(
    ctx,
    {
      inputTopic: INPUT,
      outputTopic: OUTPUT,
      deadLetterTopic: DEAD_LETTERS,
      timeZone: TIME_ZONE,
      store,
      bootstrapServers: kafka.bootstrapServers,
      startingOffsets: 'latest',
      partitions: PARTITIONS,
    },
    (r) => {
      totals.batches++;
      totals.in += r.recordsIn;
      totals.out += r.recordsOut;
      totals.dead += r.deadLetters;
      console.log(formatEtlBatch(r));
      if (MAX_BATCHES !== undefined && totals.batches >= MAX_BATCHES) stop(`${MAX_BATCHES} batches done`);
    },
  );

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      console.error(`${signal} again: exiting at once`);
      process.exit(130);
    }
    stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failure: unknown;
  try {
    await ctx.start();
    lines.start();
    console.log(
      `Producing ~${RATE} access-log lines/s (~${MALFORMED_PERCENT} % malformed) to ${INPUT}; ETL every ` +
        `${BATCH_INTERVAL / 1000} s, times in ${TIME_ZONE}, exactly-once (Kafka transactions)` +
        (MAX_BATCHES !== undefined ? ` for ${MAX_BATCHES} batches` : '; Ctrl-C to stop'),
    );
    await ctx.awaitTermination();
  } catch (e) {
    failure = e;
  }
  await lines.stop();
  await store.close();
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  if (failure !== undefined) {
    const code = (failure as { code?: unknown }).code;
    console.error(
      `The demo failed: ${typeof code === 'string' ? `${code}: ` : ''}${(failure as Error).message ?? String(failure)}`,
    );
    return 1;
  }
  console.log(
    `Stopped: ${totals.batches} batches, ${totals.in} in, ${totals.out} out, ${totals.dead} dead letters; ` +
      `${lines.produced} lines produced (${lines.malformed} malformed).`,
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Everything was closed above; should a client library still hold a handle, do not hang on it.
    setTimeout(() => process.exit(code), 3000).unref();
  },
  (e: unknown) => {
    const code = (e as { code?: unknown }).code;
    console.error(
      `The demo could not start: ${typeof code === 'string' ? `${code}: ` : ''}${(e as Error).message ?? String(e)}`,
    );
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 3000).unref();
  },
);
