/**
 * Case 4 as real processes: `sluice run examples/offsets-resume.ts` with its offsets in Redis, in
 * ZooKeeper and in Kafka (the consumer group's commits); stopped with SIGINT, more records produced while it is down, restarted: it resumes
 * exactly at the stored offsets, re-reading nothing and skipping nothing. The store's layout is
 * checked with a plain client.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Kafka from '@confluentinc/kafka-javascript';
import { Redis } from 'ioredis';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, redisUrl, uniqueName, zookeeperConnect } from '../helpers/services.js';
import { nodeText, plainZooKeeper } from '../helpers/zookeeper.js';
import { ChildRun, afterTests, waitUntil } from './child-process.js';

interface PrintedBatch {
  time: number;
  records: number;
  ranges: { topic: string; partition: number; from: number; until: number }[];
  values: { partition: number; offset: number; value: string }[];
}

/** The example's output: `stored t p o` lines at start, then per batch a header, `range` and `record` lines. */
function parse(stdout: string): {
  stored: Map<number, number>;
  storedNone: boolean;
  batches: PrintedBatch[];
} {
  const stored = new Map<number, number>();
  let storedNone = false;
  const batches: PrintedBatch[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^stored \S+ (\d+) (\d+)$/.exec(line))) stored.set(Number(m[1]), Number(m[2]));
    else if (line === 'stored none') storedNone = true;
    else if ((m = /^Time: (\d+) ms — (\d+) records$/.exec(line)))
      batches.push({ time: Number(m[1]), records: Number(m[2]), ranges: [], values: [] });
    else if ((m = /^range (\S+) (\d+) (\d+) (\d+)$/.exec(line)))
      batches
        .at(-1)!
        .ranges.push({ topic: m[1]!, partition: Number(m[2]), from: Number(m[3]), until: Number(m[4]) });
    else if ((m = /^record \S+ (\d+) (\d+) (.*)$/.exec(line)))
      batches.at(-1)!.values.push({ partition: Number(m[1]), offset: Number(m[2]), value: m[3]! });
  }
  return { stored, storedNone, batches };
}

const printedValues = (stdout: string): string[] =>
  parse(stdout).batches.flatMap((b) => b.values.map((v) => v.value));

/** A plain client's view of the offsets the example stores: partition -> offset. */
type StoredView = () => Promise<Map<number, number>>;

const { runs, cleanups } = afterTests();

/**
 * Runs the example, produces 30 records (15 per partition) and waits until they are stored; stops it;
 * produces 11 more (6 + 5); restarts it and checks it reads exactly those 11, from the stored offsets.
 */
async function resumeScenario(
  offsetStore: string,
  view: (topic: string, group: string) => StoredView,
): Promise<void> {
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName('resume');
  const group = uniqueName('resume-job');
  cleanups.push(() => deleteTopic(bootstrap, topic));
  await createTopic(bootstrap, topic, 2);
  const stored = view(topic, group);
  const env = {
    KAFKA_BOOTSTRAP: bootstrap,
    KAFKA_TOPIC: topic,
    PIPELINE_ID: group,
    OFFSET_STORE: offsetStore,
    BATCH_INTERVAL_MS: '300',
  };
  const records = (prefix: string, n: number, partitionOf: (i: number) => number) =>
    Array.from({ length: n }, (_, i) => ({ value: `${prefix}-${i}`, partition: partitionOf(i) }));

  await produce(
    bootstrap,
    topic,
    records('first', 30, (i) => i % 2),
  );
  const first = ChildRun.sluice(['run', 'examples/offsets-resume.ts'], env);
  runs.push(first);
  await first.waitFor((out) => printedValues(out).length >= 30, 'the first 30 records', 60_000);
  await waitUntil('offsets 15/15 in the store', 15_000, stored, (m) => m.get(0) === 15 && m.get(1) === 15);
  assert.deepEqual(await first.stop('SIGINT'), { code: 0, signal: null }, first.output());
  const run1 = parse(first.stdout);
  assert.equal(run1.storedNone, true, `the first run found no stored offsets\n${first.output()}`);
  assert.deepEqual(
    printedValues(first.stdout).sort(),
    records('first', 30, () => 0)
      .map((r) => r.value)
      .sort(),
  );

  // While the job is down: 6 records on partition 0, 5 on partition 1.
  await produce(
    bootstrap,
    topic,
    records('second', 11, (i) => (i < 6 ? 0 : 1)),
  );
  assert.deepEqual(
    await stored(),
    new Map([
      [0, 15],
      [1, 15],
    ]),
    'a stopped job stores nothing',
  );

  const second = ChildRun.sluice(['run', 'examples/offsets-resume.ts'], env);
  runs.push(second);
  await second.waitFor(
    (out) => printedValues(out).length >= 11,
    'the 11 records produced while stopped',
    60_000,
  );
  await waitUntil('offsets 21/20 in the store', 15_000, stored, (m) => m.get(0) === 21 && m.get(1) === 20);
  // A few more batches: nothing more is read.
  const printed = parse(second.stdout).batches.length;
  await second.waitFor((out) => parse(out).batches.length >= printed + 2, 'two more batches', 10_000);
  assert.deepEqual(await second.stop('SIGINT'), { code: 0, signal: null }, second.output());

  const run2 = parse(second.stdout);
  assert.deepEqual(
    [...run2.stored].sort(),
    [
      [0, 15],
      [1, 15],
    ],
    `the restart found the stored offsets\n${second.output()}`,
  );
  // The ranges start at the stored offsets, are contiguous, and end at the log end: exactly the 11 new records.
  const next = new Map(run2.stored);
  for (const b of run2.batches) {
    assert.equal(
      b.records,
      b.ranges.reduce((n, r) => n + (r.until - r.from), 0),
      `batch ${b.time}`,
    );
    for (const r of b.ranges) {
      assert.equal(
        r.from,
        next.get(r.partition),
        `batch ${b.time}: ${topic}-${r.partition} starts where the last ended`,
      );
      next.set(r.partition, r.until);
    }
  }
  assert.deepEqual([...next].sort(), [
    [0, 21],
    [1, 20],
  ]);
  assert.equal(
    run2.batches.reduce((n, b) => n + b.records, 0),
    11,
    second.output(),
  );
  const seen = run2.batches.flatMap((b) => b.values);
  assert.deepEqual(
    seen.map((v) => v.value).sort(),
    records('second', 11, () => 0)
      .map((r) => r.value)
      .sort(),
    'exactly the records produced while stopped: none of the first run re-read, none skipped',
  );
  assert.deepEqual(
    seen.filter((v) => v.partition === 0).map((v) => v.offset),
    [15, 16, 17, 18, 19, 20],
  );
  assert.deepEqual(
    seen.filter((v) => v.partition === 1).map((v) => v.offset),
    [15, 16, 17, 18, 19],
  );
}

test('offsets-resume with offsets in Redis resumes exactly at the stored offsets after a stop, and stores them as HGET <topic> "<group>|<partition>"', async () => {
  const url = await redisUrl();
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  cleanups.push(async () => void redis.disconnect());
  let key = '';
  await resumeScenario(url, (topic, group) => {
    key = topic;
    return async () => {
      const out = new Map<number, number>();
      for (const p of [0, 1]) {
        const v = await redis.hget(topic, `${group}|${p}`);
        if (v !== null) out.set(p, Number(v));
      }
      return out;
    };
  });
  cleanups.push(async () => void (await redis.del(key)));
  // The whole hash: one field per partition of the group, decimal strings.
  const hash = await redis.hgetall(key);
  assert.deepEqual(
    Object.entries(hash)
      .map(([f, v]) => [f.replace(/^.*\|/, '|'), v])
      .sort(),
    [
      ['|0', '21'],
      ['|1', '20'],
    ],
  );
});

test('offsets-resume with offsets in ZooKeeper resumes exactly at the stored offsets after a stop, and stores them at /sluice/offsets/<topic>/<group>/<partition>', async () => {
  const connect = await zookeeperConnect();
  const zk = await plainZooKeeper();
  cleanups.push(async () => zk.close());
  const getData = (path: string) => nodeText(zk, path);
  let nodes = '';
  await resumeScenario(`zookeeper://${connect}`, (topic, group) => {
    nodes = `/sluice/offsets/${topic}/${group}`;
    return async () => {
      const out = new Map<number, number>();
      for (const p of [0, 1]) {
        const v = await getData(`${nodes}/${p}`);
        if (v !== undefined) out.set(p, Number(v));
      }
      return out;
    };
  });
  // The node's text is the next offset to read.
  assert.equal(await getData(`${nodes}/0`), '21');
  assert.equal(await getData(`${nodes}/1`), '20');
  const children = await new Promise<string[]>((resolve, reject) =>
    zk.getChildren(nodes, (e, c) => (e ? reject(e) : resolve(c))),
  );
  assert.deepEqual(children.sort(), ['0', '1']);
  cleanups.push(async () => {
    const { ZooKeeperOffsetStore } = await import('../../src/zookeeper/index.js');
    const store = new ZooKeeperOffsetStore({ connectString: connect });
    await store.delete(nodes.split('/')[4]!, [nodes.split('/')[3]!]).finally(() => store.close());
  });
});

test("offsets-resume with offsets in Kafka resumes exactly at the group's committed offsets after a stop, visible to any Kafka client as the group's offsets", async () => {
  const bootstrap = await kafkaBootstrap();
  const admin = new Kafka.KafkaJS.Kafka({
    kafkaJS: { brokers: bootstrap.split(','), logLevel: Kafka.KafkaJS.logLevel.ERROR },
  }).admin();
  await admin.connect();
  cleanups.push(async () => {
    if (groupId) await admin.deleteGroups([groupId]).catch(() => {});
    await admin.disconnect();
  });
  let groupId = '';
  let topicName = '';
  const committed = async () => {
    const [found] = await admin.fetchOffsets({ groupId, topics: [topicName], timeout: 10_000 });
    return new Map(
      (found?.partitions ?? [])
        .filter((p) => Number(p.offset) >= 0)
        .map((p) => [p.partition, Number(p.offset)]),
    );
  };
  await resumeScenario(`kafka://${bootstrap}`, (topic, group) => {
    [groupId, topicName] = [group, topic];
    return committed;
  });
  assert.deepEqual([...(await committed())].sort(), [
    [0, 21],
    [1, 20],
  ]);
});
