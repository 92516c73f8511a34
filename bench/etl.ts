/**
 * Case 7's online ETL end to end: how fast Sluice moves access-log lines from a Kafka topic to
 * their destination (the malformed ones to dead letters, with their reason) under each guarantee,
 * against the consume-transform-produce loop a Node user writes today.
 *
 * One pre-filled 3-partition input topic (BENCH_ETL_RECORDS lines, default 300,000, 1 % malformed,
 * written once and reused), then, interleaved over BENCH_ETL_ROUNDS rounds (default 3), each path
 * reads all of it with a fresh group into fresh outputs:
 *   (a) Sluice exactly-once with Kafka transactions: output, dead letters and input offsets in one
 *       Kafka transaction per batch (KafkaTransactionalStore, KafkaTransactionalSink, transactional
 *       kafkaDeadLetterSink);
 *   (b) Sluice at-least-once: KafkaSink and kafkaDeadLetterSink, then the group's offsets;
 *   (c) Sluice exactly-once into PostgreSQL (when a server is available; BENCH_ETL_POSTGRES=0 skips):
 *       rows, dead letters and offsets in one PostgreSQL transaction per batch, and upserts keyed
 *       by the input position with the offsets in the Kafka group after them;
 *   (d) the hand-written loop: one consumer and one producer of the same client
 *       (@confluentinc/kafka-javascript, its KafkaJS-style API), eachBatch -> parse -> send the
 *       batch's output and dead letters -> await the acks -> commit the batch's offsets
 *       (at-least-once). Max batch size 10,000 (the client's default of 32 would commit every 32
 *       records); the producer has Sluice's sink settings (idempotent, linger 5 ms).
 * Sluice's pipelines are the same for every path: direct stream (batches every 200 ms of at most
 * 50,000 lines) -> tryMap(parse + format, dead letters) -> writeTo(output). Every path does the
 * same work per line: parse, format, write; dead letters carry their reason in a header/column.
 * Times run from the first record handled (Sluice: the first batch's start; the loop: its first
 * eachBatch call) to the last offset committed. Connecting is excluded: the hand-written loop's
 * group join, and for (a) the transactional producer's initTransactions, done before the start
 * with an empty transaction (otherwise inside the first batch). A full GC before each run. The best round is reported, all are kept. Each run is checked: the
 * outputs hold at least (at-least-once) or exactly (PostgreSQL) the expected numbers of records.
 *
 * Results are appended to bench/results/etl.jsonl and etl.md (machine and date included).
 *
 *   node --expose-gc --import tsx bench/etl.ts
 *   BENCH_ETL_RECORDS=500000 BENCH_ETL_ROUNDS=3 node --expose-gc --import tsx bench/etl.ts
 *   BENCH_ETL_PATHS=sluice-kafka-transactions,hand-written BENCH_ETL_WRITE=0 ...   # some paths, no results
 */
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pathToFileURL } from 'node:url';
import Kafka from '@confluentinc/kafka-javascript';
import pg from 'pg';
import type { DeadLetter } from '../src/core/bad-records.js';
import { StreamingContext } from '../src/core/context.js';
import { silentLogger } from '../src/core/logger.js';
import type { OffsetStore } from '../src/core/offsets.js';
import type { Guarantee, Sink } from '../src/core/sink.js';
import {
  SAMPLE_MALFORMATIONS,
  accessLogEtl,
  sampleAccessLogLine,
  type SampleMalformation,
} from '../examples/lib/access-log.js';
import {
  KafkaAdmin,
  KafkaSink,
  KafkaTextProducer,
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  kafkaDeadLetterSink,
  librdkafkaVersion,
} from '../src/kafka/index.js';
import { tpKey } from '../src/kafka/admin.js';
import { PostgresOffsetStore, PostgresSink } from '../src/postgres/index.js';
import { ensurePostgres } from '../src/services/databases.js';
import { ensureKafka } from '../src/services/kafka.js';
import { median, writeResult } from './report.js';

const { Kafka: KafkaJS, logLevel } = Kafka.KafkaJS;

const PARTITIONS = 3;
const TIME_ZONE = 'Asia/Shanghai';
/** One line in MALFORMED_EVERY is malformed (cycling through the kinds). */
const MALFORMED_EVERY = 100;
/** Bump when the generated lines change, so an old pre-filled topic is not reused. */
const DATA_VERSION = 1;
/** Sluice's batches: 200 ms apart, at most this many lines each (a backlog is worked off batch after batch). */
const BATCH_INTERVAL = 200;
const MAX_RECORDS_PER_BATCH = 50_000;

export interface EtlBenchOptions {
  readonly records?: number;
  readonly rounds?: number;
  readonly bootstrapServers?: string;
  readonly write?: boolean;
  readonly log?: (line: string) => void;
}

/** One path's measurement. */
export interface PathRun {
  readonly seconds: number;
  readonly recordsPerSec: number;
  readonly cpuSeconds: number;
  readonly out: number;
  readonly deadLetters: number;
  readonly batches?: number;
}

export function malformationOf(i: number): SampleMalformation | undefined {
  if (i % MALFORMED_EVERY !== MALFORMED_EVERY - 1) return undefined;
  return SAMPLE_MALFORMATIONS[Math.floor(i / MALFORMED_EVERY) % SAMPLE_MALFORMATIONS.length];
}

function kafkaJs(bootstrap: string) {
  return new KafkaJS({ kafkaJS: { brokers: bootstrap.split(','), logLevel: logLevel.ERROR } });
}

export async function deleteTopics(bootstrap: string, topics: string[]): Promise<void> {
  if (!topics.length) return;
  const admin = kafkaJs(bootstrap).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics, timeout: 30_000 }).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}

async function counts(admin: KafkaAdmin, topic: string, partitions = PARTITIONS): Promise<number> {
  const tps = Array.from({ length: partitions }, (_, partition) => ({ topic, partition }));
  const b = await admin.bounds(tps, 'read_committed');
  let n = 0;
  for (const tp of tps) {
    const x = b.get(tpKey(tp.topic, tp.partition))!;
    n += x.end - x.logStart;
  }
  return n;
}

/**
 * The records of the output and dead-letter topics as read_committed consumers see them. A
 * transaction's commit returns before its markers are written, so the last stable offset may lag
 * a moment behind: wait (bounded, 15 s) until the expected numbers are readable.
 */
async function settledCounts(
  admin: KafkaAdmin,
  output: string,
  dlq: string,
  out: number,
  dead: number,
): Promise<[number, number]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const n: [number, number] = [await counts(admin, output), await counts(admin, dlq)];
    if ((n[0] >= out && n[1] >= dead) || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Makes sure `topic` holds exactly the `records` generated lines, line i in partition
 * i % partitions (re-creates it otherwise).
 */
export async function prefill(
  admin: KafkaAdmin,
  bootstrap: string,
  topic: string,
  records: number,
  log: (l: string) => void,
  partitions = PARTITIONS,
): Promise<void> {
  const existing = (await admin.describeTopics([topic])).get(topic);
  if (existing) {
    const n = await counts(admin, topic, partitions);
    if (n === records) {
      log(`reusing ${topic} (${n} lines)`);
      return;
    }
    log(`${topic} holds ${n} lines, expected ${records}: re-creating it`);
    await deleteTopics(bootstrap, [topic]);
    await waitUntilGone(admin, topic);
  }
  await admin.createTopics([topic], { partitions, replicationFactor: 1 });
  log(`pre-filling ${topic} with ${records} access-log lines...`);
  const producer = await KafkaTextProducer.connect({ bootstrapServers: bootstrap });
  try {
    const chunk = 10_000;
    for (let from = 0; from < records; from += chunk) {
      const batch = [];
      for (let i = from; i < Math.min(records, from + chunk); i++) {
        batch.push({ value: sampleAccessLogLine(i, malformationOf(i)), partition: i % partitions });
      }
      await producer.send(topic, batch);
    }
  } finally {
    await producer.close();
  }
  const n = await counts(admin, topic, partitions);
  if (n !== records) throw new Error(`${topic} holds ${n} lines after pre-filling, expected ${records}`);
}

async function waitUntilGone(admin: KafkaAdmin, topic: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await admin.describeTopics([topic])).get(topic)) {
    if (Date.now() > deadline) throw new Error(`topic ${topic} still exists 30 s after it was deleted`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * (d) The hand-written loop: the KafkaJS-style API of the same client, as its docs show it: one
 * consumer in a group, one producer; per batch: transform, send, await the acks, commit.
 */
async function handWritten(
  bootstrap: string,
  input: string,
  output: string,
  deadLetterTopic: string,
  records: number,
): Promise<PathRun> {
  const kafka = kafkaJs(bootstrap);
  const etl = accessLogEtl({ timeZone: TIME_ZONE });
  const consumer = kafka.consumer({
    kafkaJS: { groupId: `sluice-bench-etl-raw-${Date.now()}`, fromBeginning: true, autoCommit: false },
    'js.consumer.max.batch.size': 10_000,
  });
  // The same producer settings as Sluice's sinks: idempotent, linger 5 ms.
  const producer = kafka.producer({ 'enable.idempotence': true, 'linger.ms': 5 } as never);
  await Promise.all([consumer.connect(), producer.connect()]);
  let handled = 0;
  let out = 0;
  let dead = 0;
  let started: number | undefined;
  let cpu: NodeJS.CpuUsage | undefined;
  let finish!: (r: { end: number; cpu: NodeJS.CpuUsage }) => void;
  let fail!: (e: unknown) => void;
  const done = new Promise<{ end: number; cpu: NodeJS.CpuUsage }>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  try {
    await consumer.subscribe({ topics: [input] });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        try {
          started ??= performance.now();
          cpu ??= process.cpuUsage();
          const good: { value: string }[] = [];
          const bad: { value: Buffer | null; headers: Record<string, string> }[] = [];
          for (const m of batch.messages) {
            try {
              good.push({ value: etl(m.value === null ? null : m.value.toString('utf8')) });
            } catch (e) {
              bad.push({
                value: m.value,
                headers: {
                  'sluice.reason': (e as Error).message,
                  'sluice.topic': batch.topic,
                  'sluice.partition': String(batch.partition),
                  'sluice.offset': m.offset,
                },
              });
            }
          }
          const topicMessages = [{ topic: output, messages: good }];
          if (bad.length) topicMessages.push({ topic: deadLetterTopic, messages: bad as never });
          await producer.sendBatch({ topicMessages });
          await consumer.commitOffsets([
            {
              topic: batch.topic,
              partition: batch.partition,
              offset: String(Number(batch.lastOffset()) + 1),
            },
          ]);
          out += good.length;
          dead += bad.length;
          handled += batch.messages.length;
          if (handled >= records) finish({ end: performance.now(), cpu: process.cpuUsage(cpu) });
        } catch (e) {
          fail(e);
          throw e;
        }
      },
    });
    const r = await withTimeout(
      done,
      600_000,
      `the hand-written loop handled ${handled} of ${records} lines`,
    );
    const seconds = (r.end - started!) / 1000;
    return {
      seconds,
      recordsPerSec: records / seconds,
      cpuSeconds: (r.cpu.user + r.cpu.system) / 1e6,
      out,
      deadLetters: dead,
    };
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A full GC before each run, so that no run pays for sweeping the previous run's garbage. */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) return gc();
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** One output row of the PostgreSQL paths: where the line came from, and the ETL's output line. */
interface Row {
  readonly partition: number;
  readonly offset: number;
  readonly line: string;
}

interface SluicePlan {
  /** Default: the input's (the group's commits in Kafka). */
  readonly offsetStore?: OffsetStore;
  /** What tryMap makes of a good line: the output line, or a row with its input position. */
  readonly shape: 'line' | 'row';
  readonly output: Sink<any>;
  readonly deadLetters: Sink<DeadLetter>;
  readonly guarantee: Guarantee;
  /** Connects what would otherwise connect inside the first batch (the transactional producer). */
  readonly warmUp?: (group: string) => Promise<void>;
  readonly close?: () => Promise<void>;
}

/**
 * (a)-(c): a Sluice pipeline, the same operators for every guarantee. Timed from the first batch's
 * start to the end of the batch that completes the input.
 */
async function sluicePath(
  bootstrap: string,
  input: string,
  records: number,
  plan: SluicePlan,
): Promise<PathRun> {
  const etl = accessLogEtl({ timeZone: TIME_ZONE });
  const pipelineId = `sluice-bench-etl-${Date.now()}`;
  await plan.warmUp?.(pipelineId);
  const ctx = new StreamingContext({
    batchInterval: BATCH_INTERVAL,
    pipelineId,
    logger: silentLogger,
    ...(plan.offsetStore ? { offsetStore: plan.offsetStore } : {}),
  });
  let started: number | undefined;
  let cpu: NodeJS.CpuUsage | undefined;
  let handled = 0;
  let out = 0;
  let dead = 0;
  let batches = 0;
  let finish!: (r: { end: number; cpu: NodeJS.CpuUsage }) => void;
  const done = new Promise<{ end: number; cpu: NodeJS.CpuUsage }>((resolve) => (finish = resolve));
  ctx.addListener({
    onBatchStarted() {
      started ??= performance.now();
      cpu ??= process.cpuUsage();
    },
    onBatchCompleted(info) {
      if (process.env.BENCH_ETL_VERBOSE === '1') {
        process.stderr.write(
          `  batch ${info.batchTime}: ${info.numRecords} lines, delay ${info.schedulingDelay} ms, processing ${info.processingTime} ms, outputs ${info.outputs.map((o) => `${o.name} ${o.durationMs} ms`).join(', ')}\n`,
        );
      }
      if (info.numRecords === 0) return;
      batches++;
      handled += info.numRecords;
      dead += info.badRecords.reduce((n, c) => n + c.deadLettered, 0);
      if (handled >= records) finish({ end: performance.now(), cpu: process.cpuUsage(cpu) });
    },
  });
  const parse = (r: { value: string | null; partition: number; offset: number }): string | Row =>
    plan.shape === 'line' ? etl(r.value) : { partition: r.partition, offset: r.offset, line: etl(r.value) };
  createDirectStream(ctx, {
    name: 'access-log',
    topics: [input],
    bootstrapServers: bootstrap,
    startingOffsets: 'earliest',
    maxRecordsPerBatch: MAX_RECORDS_PER_BATCH,
  })
    .tryMap(parse, {
      name: 'parse-access-log',
      badRecords: { policy: 'dead-letter', deadLetter: plan.deadLetters, guarantee: plan.guarantee },
    })
    .transform(
      (batch) => {
        out += batch.size;
        return batch;
      },
      { name: 'count-out' },
    )
    .writeTo(plan.output, { name: 'output', guarantee: plan.guarantee });
  try {
    await ctx.start();
    const failed = ctx.awaitTermination().then(() => {
      throw new Error(`the pipeline stopped after ${handled} of ${records} lines`);
    });
    const r = await withTimeout(
      Promise.race([done, failed]),
      600_000,
      `Sluice handled ${handled} of ${records} lines`,
    );
    const seconds = (r.end - started!) / 1000;
    return {
      seconds,
      recordsPerSec: records / seconds,
      cpuSeconds: (r.cpu.user + r.cpu.system) / 1e6,
      out,
      deadLetters: dead,
      batches,
    };
  } finally {
    await ctx.stop();
    await plan.close?.();
  }
}

function kafkaTransactionsPlan(bootstrap: string, output: string, dlq: string): SluicePlan {
  const store = new KafkaTransactionalStore({ bootstrapServers: bootstrap });
  return {
    offsetStore: store,
    shape: 'line',
    output: new KafkaTransactionalSink<string>({ topic: output, store, bootstrapServers: bootstrap }),
    deadLetters: kafkaDeadLetterSink({ topic: dlq, transactional: store, bootstrapServers: bootstrap }),
    guarantee: 'exactly-once',
    // initTransactions: an empty transaction, no offsets.
    warmUp: (group) => store.transaction(group, [], async () => {}),
    close: () => store.close(),
  };
}

function kafkaAtLeastOncePlan(bootstrap: string, output: string, dlq: string): SluicePlan {
  return {
    shape: 'line',
    output: new KafkaSink<string>({ topic: output, bootstrapServers: bootstrap }),
    deadLetters: kafkaDeadLetterSink({ topic: dlq, bootstrapServers: bootstrap }),
    guarantee: 'at-least-once',
  };
}

const ROW_COLUMNS = ['src_partition', 'src_offset', 'line'];
const DEAD_COLUMNS = ['src_partition', 'src_offset', 'reason', 'value'];
const POSITION = ['src_partition', 'src_offset'];

async function createPgTables(pool: pg.Pool, rows: string, dead: string): Promise<void> {
  await pool.query(
    `CREATE TABLE ${rows} (src_partition int NOT NULL, src_offset bigint NOT NULL, line text NOT NULL, PRIMARY KEY (src_partition, src_offset))`,
  );
  await pool.query(
    `CREATE TABLE ${dead} (src_partition int NOT NULL, src_offset bigint NOT NULL, reason text NOT NULL, value text, PRIMARY KEY (src_partition, src_offset))`,
  );
}

/**
 * (c) PostgreSQL: rows, dead letters and offsets in ONE PostgreSQL transaction per batch
 * (`transaction`), or upserts keyed by the input position with the offsets in the Kafka group
 * after them (`idempotent`).
 */
function postgresPlan(
  pool: pg.Pool,
  rows: string,
  dead: string,
  how: 'transaction' | 'idempotent',
): SluicePlan {
  const toRow = (r: Row) => [r.partition, r.offset, r.line];
  const deadRow = (l: DeadLetter) => [
    l.partition,
    l.offset,
    l.reason,
    l.value == null ? null : String(l.value),
  ];
  if (how === 'transaction') {
    const store = new PostgresOffsetStore({ pool, table: `${rows}_offsets` });
    return {
      offsetStore: store,
      shape: 'row',
      output: new PostgresSink<Row>({ store, table: rows, columns: ROW_COLUMNS, toRow, mode: 'insert' }),
      deadLetters: new PostgresSink<DeadLetter>({
        store,
        table: dead,
        columns: DEAD_COLUMNS,
        toRow: deadRow,
        mode: 'insert',
      }),
      guarantee: 'exactly-once',
      close: () => store.close(),
    };
  }
  return {
    shape: 'row',
    output: new PostgresSink<Row>({
      pool,
      table: rows,
      columns: ROW_COLUMNS,
      toRow,
      mode: 'upsert',
      key: POSITION,
    }),
    deadLetters: new PostgresSink<DeadLetter>({
      pool,
      table: dead,
      columns: DEAD_COLUMNS,
      toRow: deadRow,
      mode: 'upsert',
      key: POSITION,
    }),
    guarantee: 'exactly-once',
  };
}

/** A pool on the local PostgreSQL (ensurePostgres), or undefined (the PostgreSQL paths are skipped). */
async function postgresPool(log: (l: string) => void): Promise<pg.Pool | undefined> {
  if (process.env.BENCH_ETL_POSTGRES === '0') return undefined;
  try {
    const { url } = await ensurePostgres();
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    pool.on('error', () => {});
    await pool.query('SELECT 1');
    return pool;
  } catch (e) {
    log(`PostgreSQL paths skipped: ${(e as Error).message}`);
    return undefined;
  }
}

async function rowCount(pool: pg.Pool, table: string): Promise<number> {
  const r = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(r.rows[0]!.n);
}

type PathName =
  | 'sluice-kafka-transactions'
  | 'sluice-at-least-once'
  | 'sluice-postgres-transaction'
  | 'sluice-postgres-idempotent'
  | 'hand-written';

interface PathSpec {
  readonly name: PathName;
  readonly label: string;
  readonly guarantee: Guarantee;
  readonly into: 'kafka' | 'postgres';
  readonly run: (input: string, output: string, dlq: string) => Promise<PathRun>;
}

export async function runEtlBench(options: EtlBenchOptions = {}) {
  const records = options.records ?? Number(process.env.BENCH_ETL_RECORDS ?? 300_000);
  const rounds = options.rounds ?? Number(process.env.BENCH_ETL_ROUNDS ?? 3);
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!Number.isInteger(records) || records < 1000)
    throw new Error(`BENCH_ETL_RECORDS must be a whole number >= 1000, got ${records}`);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new Error(`BENCH_ETL_ROUNDS must be a whole number >= 1, got ${rounds}`);
  const bootstrap = options.bootstrapServers ?? (await ensureKafka()).bootstrapServers;
  const input = `sluice-bench-etl-${PARTITIONS}p-v${DATA_VERSION}-${records}`;
  let expectedDead = 0;
  for (let i = 0; i < records; i++) if (malformationOf(i)) expectedDead++;
  const expectedOut = records - expectedDead;

  const admin = KafkaAdmin.create(bootstrap, { policy: { attempts: 3, timeoutMs: 10_000 } });
  const pool = await postgresPool(log);
  const paths: PathSpec[] = [
    {
      name: 'sluice-kafka-transactions',
      label: '(a) Sluice → Kafka, transactions: output + dead letters + offsets',
      guarantee: 'exactly-once',
      into: 'kafka',
      run: (i, o, d) => sluicePath(bootstrap, i, records, kafkaTransactionsPlan(bootstrap, o, d)),
    },
    {
      name: 'sluice-at-least-once',
      label: '(b) Sluice → Kafka, KafkaSink then group commit',
      guarantee: 'at-least-once',
      into: 'kafka',
      run: (i, o, d) => sluicePath(bootstrap, i, records, kafkaAtLeastOncePlan(bootstrap, o, d)),
    },
  ];
  if (pool) {
    paths.push(
      {
        name: 'sluice-postgres-transaction',
        label: '(c) Sluice → PostgreSQL, rows + dead letters + offsets in one transaction',
        guarantee: 'exactly-once',
        into: 'postgres',
        run: (i, o, d) => sluicePath(bootstrap, i, records, postgresPlan(pool, o, d, 'transaction')),
      },
      {
        name: 'sluice-postgres-idempotent',
        label: '(c) Sluice → PostgreSQL, upserts by input position, then group commit',
        guarantee: 'exactly-once',
        into: 'postgres',
        run: (i, o, d) => sluicePath(bootstrap, i, records, postgresPlan(pool, o, d, 'idempotent')),
      },
    );
  }
  paths.push({
    name: 'hand-written',
    label: '(d) hand-written loop → Kafka: KafkaJS-style consumer + producer, commit after produce',
    guarantee: 'at-least-once',
    into: 'kafka',
    run: (i, o, d) => handWritten(bootstrap, i, o, d, records),
  });

  const only = process.env.BENCH_ETL_PATHS?.split(',').map((x) => x.trim());
  if (only) {
    const known = paths.map((p) => p.name as string);
    const unknown = only.filter((x) => !known.includes(x));
    if (unknown.length)
      throw new Error(`BENCH_ETL_PATHS: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`);
    for (let i = paths.length - 1; i >= 0; i--) if (!only.includes(paths[i]!.name)) paths.splice(i, 1);
  }
  const runs = new Map<PathName, PathRun[]>();
  const failures: { path: PathName; round: number; error: string }[] = [];
  const loadBefore = os.loadavg()[0]!;
  try {
    await prefill(admin, bootstrap, input, records, log);
    log(`input ${input}: ${records} lines (${expectedDead} malformed) in ${PARTITIONS} partitions`);
    for (let round = 1; round <= rounds; round++) {
      for (const p of paths) {
        const stamp = `${Date.now()}`;
        const kafka = p.into === 'kafka';
        const output = kafka ? `sluice-bench-etl-out-${p.name}-${stamp}` : `bench_etl_rows_${stamp}`;
        const dlq = kafka ? `sluice-bench-etl-dlq-${p.name}-${stamp}` : `bench_etl_dead_${stamp}`;
        if (kafka) await admin.createTopics([output, dlq], { partitions: PARTITIONS, replicationFactor: 1 });
        else await createPgTables(pool!, output, dlq);
        try {
          collectGarbage();
          const r = await p.run(input, output, dlq).catch((e: unknown) => {
            throw new Error(`${p.name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
          });
          const [outN, deadN] = kafka
            ? await settledCounts(admin, output, dlq, expectedOut, expectedDead)
            : [await rowCount(pool!, output), await rowCount(pool!, dlq)];
          if (r.out !== expectedOut || r.deadLetters !== expectedDead) {
            throw new Error(
              `${p.name}: ${r.out} out and ${r.deadLetters} dead letters, expected ${expectedOut} and ${expectedDead}`,
            );
          }
          // Kafka offsets count transaction markers too: at least. The tables: exactly.
          const short = outN < expectedOut || deadN < expectedDead;
          if (short || (!kafka && (outN !== expectedOut || deadN !== expectedDead))) {
            throw new Error(
              `${p.name}: the outputs hold ${outN} lines and ${deadN} dead letters, expected ${expectedOut} and ${expectedDead}`,
            );
          }
          log(
            `round ${round}: ${p.name.padEnd(28)} ${fmt(r.recordsPerSec).padStart(8)} lines/s ` +
              `(${r.seconds.toFixed(2)} s, ${r.cpuSeconds.toFixed(2)} s CPU${r.batches ? `, ${r.batches} batches` : ''})`,
          );
          runs.set(p.name, [...(runs.get(p.name) ?? []), r]);
        } catch (e) {
          // One failed run does not void the others: it is reported (and makes the bench exit 1).
          const message = (e as Error).message;
          log(`round ${round}: ${p.name} FAILED: ${message}`);
          failures.push({ path: p.name, round, error: message });
        } finally {
          if (kafka) await deleteTopics(bootstrap, [output, dlq]);
          else await pool!.query(`DROP TABLE IF EXISTS ${output}, ${dlq}, ${output}_offsets`);
        }
      }
    }
  } finally {
    admin.close();
    await pool?.end();
  }

  const summary = paths.map((p) => {
    const rs = runs.get(p.name) ?? [];
    const rates = rs.map((r) => r.recordsPerSec);
    return {
      path: p.name,
      label: p.label,
      guarantee: p.guarantee,
      recordsPerSec: rates.length ? Math.round(Math.max(...rates)) : 0,
      medianRecordsPerSec: rates.length ? Math.round(median(rates)) : 0,
      runs: rates.map(Math.round),
      cpuMicrosPerRecord: rs.map((r) => Math.round(((r.cpuSeconds * 1e6) / records) * 100) / 100),
      batches: rs.map((r) => r.batches ?? null),
    };
  });
  const base = summary.find((s) => s.path === 'hand-written') ?? summary[0]!;
  const result = {
    bench: 'etl',
    client: { package: '@confluentinc/kafka-javascript', librdkafka: librdkafkaVersion },
    input,
    partitions: PARTITIONS,
    records,
    malformed: expectedDead,
    timeZone: TIME_ZONE,
    rounds,
    sluice: { batchIntervalMs: BATCH_INTERVAL, maxRecordsPerBatch: MAX_RECORDS_PER_BATCH },
    paths: summary.map((s) => ({
      ...s,
      ratioToHandWritten: ratio(s.recordsPerSec, base.recordsPerSec),
      medianRatioToHandWritten: ratio(s.medianRecordsPerSec, base.medianRecordsPerSec),
    })),
    loadAverage: { before: round2(loadBefore), after: round2(os.loadavg()[0]!) },
    failures,
  };
  if (options.write ?? true) {
    writeResult(
      'etl',
      `Online ETL (case 7): ${records.toLocaleString('en-US')} access-log lines (${expectedDead} malformed), ` +
        `${PARTITIONS} partitions, best of ${rounds}; load average ${result.loadAverage.before} before, ${result.loadAverage.after} after`,
      result,
      [
        [
          'path',
          'guarantee',
          'lines/s best',
          'median',
          'all runs',
          'CPU µs/line',
          'best vs (d)',
          'median vs (d)',
        ],
        ...result.paths.map((s) => [
          s.label,
          s.guarantee,
          fmt(s.recordsPerSec),
          fmt(s.medianRecordsPerSec),
          s.runs.map(fmt).join(', '),
          s.cpuMicrosPerRecord.join(', '),
          pct(s.ratioToHandWritten),
          pct(s.medianRatioToHandWritten),
        ]),
        ...failures.map((f) => [
          `FAILED: ${f.path}, round ${f.round}`,
          f.error.replace(/[|\n]/g, ' '),
          '',
          '',
          '',
          '',
          '',
          '',
        ]),
      ],
    );
  }
  return result;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function ratio(a: number, b: number): number | null {
  return a > 0 && b > 0 ? Math.round((a / b) * 1000) / 1000 : null;
}

function pct(r: number | null): string {
  return r === null ? '-' : `${(r * 100).toFixed(0)} %`;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  runEtlBench({ write: process.env.BENCH_ETL_WRITE !== '0' }).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.exit(r.failures.length ? 1 : 0);
    },
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
