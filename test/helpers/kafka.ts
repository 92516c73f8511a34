/**
 * Kafka chores for tests (create/delete topics, produce, read back) through the project's client,
 * `@confluentinc/kafka-javascript` (KafkaJS-compatible API). Each call opens and closes its own
 * client; every wait is bounded.
 */
import { execFile } from 'node:child_process';
import Kafka from '@confluentinc/kafka-javascript';

const { Kafka: KafkaJS, logLevel } = Kafka.KafkaJS;

export interface TestRecord {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  partition?: number;
  headers?: Record<string, string | Buffer>;
  /**
   * Epoch milliseconds (CreateTime). The local broker checks retention every second: a timestamp older
   * than the topic's retention.ms (default 7 days) gets the record deleted within about a second.
   */
  timestamp?: number;
}

export interface ProducedRecord {
  topic: string;
  partition: number;
  offset: string;
}

export interface ConsumedRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | string | undefined>;
  timestamp: string;
}

function client(bootstrap: string): InstanceType<typeof KafkaJS> {
  return new KafkaJS({ kafkaJS: { brokers: bootstrap.split(','), logLevel: logLevel.ERROR } });
}

/** Creates a topic (replication factor 1) and waits until it is usable. `config`: topic configs, e.g. `{ 'retention.ms': 1000 }`. */
export async function createTopic(
  bootstrap: string,
  topic: string,
  partitions = 1,
  config: Record<string, string | number> = {},
): Promise<void> {
  const admin = client(bootstrap).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      timeout: 10_000,
      topics: [
        {
          topic,
          numPartitions: partitions,
          replicationFactor: 1,
          configEntries: Object.entries(config).map(([name, value]) => ({ name, value: String(value) })),
        },
      ],
    });
    // Wait (bounded) until every partition has a leader in the metadata.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const [meta] = await admin.fetchTopicMetadata({ topics: [topic], timeout: 5_000 }).catch(() => []);
      if (meta && meta.partitions.length === partitions && meta.partitions.every((p) => p.leader >= 0))
        return;
      if (Date.now() > deadline) throw new Error(`topic ${topic} has no leaders 10 s after it was created`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Deletes a topic (no error if it does not exist). */
export async function deleteTopic(bootstrap: string, topic: string): Promise<void> {
  const admin = client(bootstrap).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [topic], timeout: 10_000 }).catch((e: unknown) => {
      if (!/unknown topic|UNKNOWN_TOPIC/i.test(String((e as Error).message))) throw e;
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Produces the records and resolves when all are delivered (idempotent producer: acks=all, order
 * kept per partition), with the partition and offset of each record, in input order.
 */
export async function produce(
  bootstrap: string,
  topic: string,
  records: TestRecord[],
): Promise<ProducedRecord[]> {
  const producer = client(bootstrap).producer({
    'enable.idempotence': true,
    'linger.ms': 5,
    'message.timeout.ms': 15_000,
  });
  await producer.connect();
  try {
    // Each send() enqueues its record synchronously, so they go out in this order; librdkafka batches them.
    const sent = records.map((r) =>
      producer.send({
        topic,
        messages: [
          {
            key: r.key ?? null,
            value: r.value,
            ...(r.partition !== undefined ? { partition: r.partition } : {}),
            ...(r.headers ? { headers: r.headers } : {}),
            ...(r.timestamp !== undefined ? { timestamp: String(r.timestamp) } : {}),
          },
        ],
      }),
    );
    const results = await Promise.all(sent);
    return results.map(([meta]) => ({
      topic,
      partition: meta!.partition,
      offset: String(meta!.baseOffset ?? meta!.offset),
    }));
  } finally {
    await producer.disconnect();
  }
}

/**
 * Reads the first `count` records of `topic` (all partitions, from the beginning, ordered by
 * partition then offset within each partition as they arrive) within `timeoutMs` (default 20 s).
 * Uses a plain assignment: no consumer group, no rebalance, nothing committed.
 */
export async function consume(
  bootstrap: string,
  topic: string,
  count: number,
  timeoutMs = 20_000,
): Promise<ConsumedRecord[]> {
  const deadline = Date.now() + timeoutMs;
  const consumer = new Kafka.KafkaConsumer(
    {
      'bootstrap.servers': bootstrap,
      'group.id': 'sluice-test-reader', // required by librdkafka; never joined (assign, no subscribe)
      'enable.auto.commit': false,
      'enable.partition.eof': false,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  const call = <T>(f: (cb: (err: unknown, v: T) => void) => void): Promise<T> =>
    new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));
  await call((cb) => consumer.connect({ timeout: 10_000 }, cb));
  const got: ConsumedRecord[] = [];
  try {
    const meta = await call<Kafka.Metadata>((cb) => consumer.getMetadata({ topic, timeout: 10_000 }, cb));
    const partitions = meta.topics.find((t) => t.name === topic)?.partitions ?? [];
    if (partitions.length === 0) throw new Error(`topic ${topic} does not exist`);
    consumer.assign(partitions.map((p) => ({ topic, partition: p.id, offset: 0 })));
    while (got.length < count) {
      if (Date.now() >= deadline) {
        throw new Error(`read ${got.length} of ${count} record(s) from ${topic} within ${timeoutMs} ms`);
      }
      const batch = await call<Kafka.Message[]>((cb) =>
        consumer.consume(Math.min(500, count - got.length), cb),
      );
      for (const m of batch) {
        got.push({
          partition: m.partition,
          offset: String(m.offset),
          key: m.key === undefined || m.key === null ? null : Buffer.from(m.key),
          value: m.value,
          headers: Object.assign({}, ...(m.headers ?? [])) as ConsumedRecord['headers'],
          timestamp: String(m.timestamp ?? -1),
        });
      }
    }
    return got.slice(0, count);
  } finally {
    // Bounded: a disconnect that does not call back within 5 s is left to the process exit.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5_000);
      consumer.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** A record as `kcat -J` prints it. */
export interface KcatRecord {
  partition: number;
  offset: number;
  key: string | null;
  payload: string | null;
  headers?: string[];
}

/** Reads a whole topic with kcat (not Sluice), read_committed unless told, and exits at its end. */
export function kcat(
  bootstrap: string,
  topic: string,
  isolation: 'read_committed' | 'read_uncommitted' = 'read_committed',
): Promise<KcatRecord[]> {
  return new Promise((resolve, reject) => {
    execFile(
      'kcat',
      [
        '-C',
        '-b',
        bootstrap,
        '-t',
        topic,
        '-X',
        `isolation.level=${isolation}`,
        '-o',
        'beginning',
        '-e',
        '-q',
        '-J',
      ],
      { timeout: 30_000, maxBuffer: 64 * 2 ** 20 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`kcat ${topic} failed: ${err.message}\n${stderr}`));
        resolve(
          stdout
            .split('\n')
            .filter((l) => l.trim() !== '')
            .map((l) => JSON.parse(l) as KcatRecord),
        );
      },
    );
  });
}

