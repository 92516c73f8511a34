/**
 * Kafka's own performance tools (Java, from the broker's jars in .sluice/kafka/lib), used by the
 * benchmarks as the reference: ProducerPerformance to pre-fill topics, ConsumerPerformance as the
 * ceiling a consumer on this machine can reach.
 *
 *   node --import tsx bench/consumer-perf.ts <topic> <records>   # prints ConsumerPerformance's result
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureKafka } from '../src/services/kafka.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ConsumerPerformanceResult {
  /** Records/s over the whole run (group join included), the tool's `nMsg.sec`. */
  readonly nMsgSec: number;
  /** Records/s once fetching, the tool's `fetch.nMsg.sec`. */
  readonly fetchNMsgSec: number;
  readonly mbSec: number;
  readonly records: number;
}

/** The directory of the Kafka jars (env SLUICE_KAFKA_LIB or .sluice/kafka/lib). */
export function kafkaLib(): string {
  return process.env.SLUICE_KAFKA_LIB ?? path.join(ROOT, '.sluice', 'kafka', 'lib');
}

/** The Kafka version of the jars, from kafka-clients-<version>.jar. */
export function kafkaVersion(): string {
  const lib = kafkaLib();
  const jar = existsSync(lib) ? readdirSync(lib).find((f) => /^kafka-clients-.*\.jar$/.test(f)) : undefined;
  return jar ? jar.replace(/^kafka-clients-|\.jar$/g, '') : 'unknown';
}

/** Runs a Kafka tool's main class and resolves with its standard output. */
export function runKafkaTool(mainClass: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'java',
      ['-Xms512m', '-Xmx1g', '-Dlog4j2.level=WARN', '-cp', `${kafkaLib()}/*`, mainClass, ...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${mainClass} failed: ${err.message}\n${stderr.slice(-2000)}`));
        else resolve(stdout);
      },
    );
  });
}

/** Writes `records` records of `recordSize` random bytes to `topic` as fast as the producer can (acks=1). */
export async function runProducerPerformance(bootstrapServers: string, topic: string, records: number, recordSize: number): Promise<void> {
  await runKafkaTool(
    'org.apache.kafka.tools.ProducerPerformance',
    [
      '--topic',
      topic,
      '--num-records',
      String(records),
      '--record-size',
      String(recordSize),
      '--throughput',
      '-1',
      '--producer-props',
      `bootstrap.servers=${bootstrapServers}`,
      'acks=1',
      'linger.ms=5',
      'batch.size=262144',
    ],
    10 * 60_000,
  );
}

/** Kafka's ConsumerPerformance reading `records` records of `topic` (a fresh group, from the start). */
export async function runConsumerPerformance(bootstrapServers: string, topic: string, records: number): Promise<ConsumerPerformanceResult> {
  const out = await runKafkaTool(
    'org.apache.kafka.tools.ConsumerPerformance',
    ['--bootstrap-server', bootstrapServers, '--topic', topic, '--num-records', String(records), '--group', `sluice-bench-cp-${Date.now()}`, '--timeout', '60000'],
    5 * 60_000,
  );
  return parseConsumerPerformance(out);
}

/** Parses the CSV header + row ConsumerPerformance prints. */
export function parseConsumerPerformance(out: string): ConsumerPerformanceResult {
  const lines = out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const h = lines.findIndex((l) => l.startsWith('start.time'));
  if (h < 0 || !lines[h + 1]) throw new Error(`no CSV in ConsumerPerformance's output:\n${out.slice(-2000)}`);
  const header = lines[h]!.split(',').map((s) => s.trim());
  const row = lines[h + 1]!.split(',').map((s) => s.trim());
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`ConsumerPerformance printed no ${name} column: ${lines[h]}`);
    return Number(row[i]);
  };
  return {
    nMsgSec: Math.round(col('nMsg.sec')),
    fetchNMsgSec: Math.round(col('fetch.nMsg.sec')),
    mbSec: Math.round(col('MB.sec') * 1000) / 1000,
    records: col('data.consumed.in.nMsg'),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [topic, records] = process.argv.slice(2);
  if (!topic || !records) {
    console.error('usage: node --import tsx bench/consumer-perf.ts <topic> <records>');
    process.exit(2);
  }
  ensureKafka()
    .then(({ bootstrapServers }) => runConsumerPerformance(bootstrapServers, topic, Number(records)))
    .then(
      (r) => {
        console.log(JSON.stringify(r));
        process.exit(0);
      },
      (e: unknown) => {
        console.error(e);
        process.exit(1);
      },
    );
}
