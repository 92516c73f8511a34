/**
 * Kafka transactions against the real broker: KafkaTransactionalStore + KafkaTransactionalSink put
 * a batch's records and its offsets in one transaction. What is visible is checked with readers
 * that are not Sluice's: `kcat -X isolation.level=read_committed` and a plain librdkafka consumer
 * for the group's committed offsets.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import Kafka from '@confluentinc/kafka-javascript';
import { Batch } from '../../src/core/batch.js';
import { StreamingContext } from '../../src/core/context.js';
import {
  BrokerUnreachableError,
  InvalidOptionError,
  OffsetConflictError,
  OperatorError,
} from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import {
  KafkaAdmin,
  KafkaProducerFencedError,
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  type KafkaTransaction,
} from '../../src/kafka/index.js';
import { sinkConformance } from '../conformance/sink.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import type { OffsetRange } from '../../src/core/offsets.js';

const run = promisify(execFile);
const bootstrapServers = await kafkaBootstrap();
const topics = new Map<string, Promise<void>>();
const closers: (() => Promise<void>)[] = [];

after(async () => {
  for (const c of closers) await c();
  for (const t of topics.keys()) await deleteTopic(bootstrapServers, t);
});

function ensureTopic(name: string, partitions = 1): Promise<void> {
  let p = topics.get(name);
  if (!p) {
    p = createTopic(bootstrapServers, name, partitions);
    topics.set(name, p);
  }
  return p;
}

async function topic(prefix: string, partitions = 1): Promise<string> {
  const name = uniqueName(`tx-${prefix}`);
  await ensureTopic(name, partitions);
  return name;
}

function store(
  options: ConstructorParameters<typeof KafkaTransactionalStore>[0] = {},
): KafkaTransactionalStore {
  const s = new KafkaTransactionalStore({ bootstrapServers, ...options });
  closers.push(() => s.close());
  return s;
}

/** Waits (bounded) until no transaction is open on `t`: the last stable offset reached the high watermark. */
async function settled(t: string): Promise<void> {
  const admin = KafkaAdmin.create(bootstrapServers);
  try {
    const parts = (await admin.describeTopics([t])).get(t)!.map((partition) => ({ topic: t, partition }));
    const deadline = Date.now() + 15_000;
    for (;;) {
      const lso = await admin.listOffsets(parts, 'latest', 'read_committed');
      const hw = await admin.listOffsets(parts, 'latest', 'read_uncommitted');
      if ([...hw].every(([k, v]) => lso.get(k) === v)) return;
      if (Date.now() > deadline) throw new Error(`a transaction stayed open on ${t}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    admin.close();
  }
}

/** `key=value` of every record of `t` that `kcat` reads with the given isolation level, from the start to the end. */
async function kcat(
  t: string,
  isolation: 'read_committed' | 'read_uncommitted' = 'read_committed',
): Promise<string[]> {
  const { stdout } = await run(
    'kcat',
    [
      '-C',
      '-b',
      bootstrapServers,
      '-t',
      t,
      '-o',
      'beginning',
      '-e',
      '-q',
      '-X',
      `isolation.level=${isolation}`,
      '-f',
      '%k=%s\n',
    ],
    { timeout: 20_000 },
  );
  return stdout.split('\n').filter((l) => l.length > 0);
}

/** partition -> committed offset of `group` on `t`, as a plain consumer of the group reads them. */
async function committed(group: string, t: string, partitions = 1): Promise<Map<number, number>> {
  const c = new Kafka.KafkaConsumer(
    { 'bootstrap.servers': bootstrapServers, 'group.id': group, 'enable.auto.commit': false },
    {},
  );
  const call = <R>(f: (cb: (err: unknown, v: R) => void) => void): Promise<R> =>
    new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));
  await call((cb) => c.connect({ timeout: 10_000 }, cb as never));
  try {
    const got = await call<Kafka.TopicPartitionOffsetAndMetadata[]>((cb) =>
      c.committed(
        Array.from({ length: partitions }, (_, partition) => ({ topic: t, partition })),
        10_000,
        cb as never,
      ),
    );
    return new Map(got.filter((p) => p.offset >= 0).map((p) => [p.partition, p.offset]));
  } finally {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      c.disconnect(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

interface Rec {
  id: string;
  n: number;
}

const records = (n: number, seed: string): Rec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${seed}-${i}`, n: i }));
const batchCtx = { time: 1000, offsetRanges: [] };
const sinkCtx = {
  pipelineId: 'tx-test',
  name: 'out',
  logger: silentLogger,
  signal: new AbortController().signal,
};

/**
 * Kafka 4 refuses offsets of topics that do not exist, and the sink conformance suite makes up the
 * topic of its offset ranges: this store creates those topics first (as a pipeline's input topics
 * exist), then does what KafkaTransactionalStore does.
 */
class TopicCreatingStore extends KafkaTransactionalStore {
  override async transaction<R>(
    group: string,
    ranges: readonly OffsetRange[],
    fn: (tx: KafkaTransaction) => Promise<R>,
  ): Promise<R> {
    await Promise.all([...new Set(ranges.map((r) => r.topic))].map((t) => ensureTopic(t)));
    return super.transaction(group, ranges, fn);
  }
}

sinkConformance('KafkaTransactionalSink', async () => {
  const t = await topic('conformance', 3);
  const s = new TopicCreatingStore({ bootstrapServers });
  const sink = new KafkaTransactionalSink<Rec>({
    topic: t,
    store: s,
    bootstrapServers,
    toRecord: (r) => ({ key: r.id, value: JSON.stringify(r) }),
  });
  return {
    sink,
    records,
    readBack: async () => {
      await settled(t);
      return (await kcat(t)).map((line) => JSON.parse(line.slice(line.indexOf('=') + 1)) as Rec);
    },
    cleanup: () => s.close(),
  };
});

describe('KafkaTransactionalStore and KafkaTransactionalSink', () => {
  test('a batch’s records and its offsets commit together: invisible to read_committed readers while open, then both at once', async () => {
    const [input, output] = [await topic('in', 2), await topic('out', 2)];
    const group = uniqueName('g-together');
    const s = store();
    const sink = new KafkaTransactionalSink<Rec>({
      topic: output,
      store: s,
      bootstrapServers,
      toRecord: (r) => ({ key: r.id, value: String(r.n) }),
    });
    closers.push(() => sink.close());
    await sink.open(sinkCtx);
    const ranges = [
      { topic: input, partition: 0, fromOffset: 0, untilOffset: 3 },
      { topic: input, partition: 1, fromOffset: 0, untilOffset: 2 },
    ];
    await s.transaction(group, ranges, async (tx) => {
      await sink.writeInTransaction(tx, Batch.of(records(5, 'a'), 2), batchCtx);
      assert.deepEqual(await kcat(output), [], 'read_committed sees nothing of an open transaction');
      assert.equal((await kcat(output, 'read_uncommitted')).length, 5, 'the records are in the log already');
      assert.deepEqual(await committed(group, input, 2), new Map(), 'the offsets are not committed yet');
    });
    await settled(output);
    assert.deepEqual((await kcat(output)).sort(), ['a-0=0', 'a-1=1', 'a-2=2', 'a-3=3', 'a-4=4']);
    assert.deepEqual(
      await committed(group, input, 2),
      new Map([
        [0, 3],
        [1, 2],
      ]),
    );
    assert.deepEqual(await s.read(group, [input]), [
      { topic: input, partition: 0, offset: 3 },
      { topic: input, partition: 1, offset: 2 },
    ]);
  });

  test('a failure inside the transaction aborts it: no record becomes visible and the offsets stay where they were', async () => {
    const [input, output] = [await topic('fail-in'), await topic('fail-out')];
    const group = uniqueName('g-fail');
    const s = store();
    await s.transaction(group, [{ topic: input, partition: 0, fromOffset: 0, untilOffset: 2 }], (tx) =>
      tx.send(output, ['ok-1', 'ok-2']),
    );
    await assert.rejects(
      s.transaction(group, [{ topic: input, partition: 0, fromOffset: 2, untilOffset: 5 }], async (tx) => {
        await tx.send(output, ['lost-1', 'lost-2', 'lost-3']);
        throw new Error('crash after the output');
      }),
      /crash after the output/,
    );
    await settled(output);
    assert.deepEqual(await kcat(output), ['=ok-1', '=ok-2']);
    assert.deepEqual(
      (await kcat(output, 'read_uncommitted')).filter((l) => l.startsWith('=lost')),
      ['=lost-1', '=lost-2', '=lost-3'],
      'the aborted records were written, then aborted',
    );
    assert.deepEqual(await committed(group, input), new Map([[0, 2]]));
    // The producer goes on: the same batch commits when retried.
    await s.transaction(group, [{ topic: input, partition: 0, fromOffset: 2, untilOffset: 5 }], (tx) =>
      tx.send(output, ['retry']),
    );
    await settled(output);
    assert.deepEqual(await kcat(output), ['=ok-1', '=ok-2', '=retry']);
    assert.deepEqual(await committed(group, input), new Map([[0, 5]]));
  });

  test('a batch whose offsets moved on meanwhile is refused with OffsetConflictError and its records are aborted', async () => {
    const [input, output] = [await topic('conflict-in'), await topic('conflict-out')];
    const group = uniqueName('g-conflict');
    const s = store();
    await s.set(group, [{ topic: input, partition: 0, offset: 10 }]);
    await assert.rejects(
      s.transaction(group, [{ topic: input, partition: 0, fromOffset: 4, untilOffset: 8 }], (tx) =>
        tx.send(output, ['stale']),
      ),
      (e: unknown) => e instanceof OffsetConflictError && e.expected === 4 && e.stored === 10,
    );
    await settled(output);
    assert.deepEqual(await kcat(output), []);
    assert.deepEqual(await committed(group, input), new Map([[0, 10]]));
  });

  test('a zombie with the same transactional.id is fenced: its open transaction is aborted and it fails with KafkaProducerFencedError from then on', async () => {
    const [input, output] = [await topic('zombie-in'), await topic('zombie-out')];
    const group = uniqueName('g-zombie');
    const zombie = store();
    const successor = store();
    assert.equal(zombie.transactionalIdOf(group), successor.transactionalIdOf(group));
    assert.equal(zombie.transactionalIdOf(group), `sluice-${group}`);
    const range = { topic: input, partition: 0, fromOffset: 0, untilOffset: 4 };
    await zombie.transaction(group, [{ ...range, untilOffset: 0 }], (tx) => tx.send(output, ['before']));

    await assert.rejects(
      zombie.transaction(group, [range], async (tx) => {
        await tx.send(output, ['zombie-1', 'zombie-2']);
        // A restarted instance takes over while the zombie's transaction is open.
        await successor.transaction(group, [range], (tx2) => tx2.send(output, ['successor']));
      }),
      (e: unknown) =>
        e instanceof KafkaProducerFencedError && e.group === group && e.transactionalId === `sluice-${group}`,
    );
    await assert.rejects(
      zombie.transaction(group, [{ ...range, fromOffset: 4, untilOffset: 6 }], (tx) =>
        tx.send(output, ['zombie-again']),
      ),
      KafkaProducerFencedError,
    );
    await settled(output);
    assert.deepEqual(await kcat(output), ['=before', '=successor']);
    assert.deepEqual(await committed(group, input), new Map([[0, 4]]));
  });

  test('a restart reads its offsets at once although the previous instance died between sending its offsets and committing: the new producer fences it and ends its transaction', async () => {
    const [input, output] = [await topic('dead-in'), await topic('dead-out')];
    const group = uniqueName('g-dead');
    const first = store();
    await first.transaction(group, [{ topic: input, partition: 0, fromOffset: 0, untilOffset: 2 }], (tx) =>
      tx.send(output, ['first']),
    );

    // The previous instance, as it was when killed: offsets sent to its open transaction, no commit.
    const call = <R>(f: (cb: (err: unknown, v: R) => void) => void): Promise<R> =>
      new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));
    const zombie = new Kafka.Producer(
      { 'bootstrap.servers': bootstrapServers, 'transactional.id': first.transactionalIdOf(group) },
      {},
    );
    const meta = new Kafka.KafkaConsumer({ 'bootstrap.servers': bootstrapServers, 'group.id': group }, {});
    closers.push(async () => {
      await new Promise<void>((resolve) => zombie.disconnect(() => resolve()));
      await new Promise<void>((resolve) => meta.disconnect(() => resolve()));
    });
    await call((cb) => zombie.connect({}, cb as never));
    await call((cb) => meta.connect({}, cb as never));
    await call<void>((cb) => zombie.initTransactions(10_000, cb));
    await call<void>((cb) => zombie.beginTransaction(cb));
    zombie.produce(output, 0, Buffer.from('zombie'), null, null);
    await call<void>((cb) =>
      zombie.sendOffsetsToTransaction([{ topic: input, partition: 0, offset: 5 }], meta, 10_000, cb),
    );

    // Reads would see unstable offsets for transaction.timeout.ms (60 s) if nobody ended that transaction.
    const restarted = store({ connect: { attempts: 2, timeoutMs: 2000 } });
    const started = Date.now();
    assert.deepEqual(await restarted.read(group, [input]), [{ topic: input, partition: 0, offset: 2 }]);
    assert.ok(Date.now() - started < 4000, `read took ${Date.now() - started} ms`);
    await settled(output);
    assert.deepEqual(await kcat(output), ['=first']);
    await restarted.transaction(
      group,
      [{ topic: input, partition: 0, fromOffset: 2, untilOffset: 5 }],
      (tx) => tx.send(output, ['redone']),
    );
    await settled(output);
    assert.deepEqual(await kcat(output), ['=first', '=redone']);
  });

  test('an unreachable cluster fails the transaction with BrokerUnreachableError within the bound, and runs nothing', async () => {
    const s = store({
      bootstrapServers: '127.0.0.1:1',
      connect: { attempts: 1, timeoutMs: 1000 },
      transactionTimeoutMs: 2000,
    });
    let ran = false;
    const started = Date.now();
    await assert.rejects(
      s.transaction('g', [], async () => {
        ran = true;
      }),
      BrokerUnreachableError,
    );
    assert.equal(ran, false);
    assert.ok(Date.now() - started < 10_000, `gave up after ${Date.now() - started} ms`);
  });

  test('transactional.id: stable default sluice-<group>, a function per group, and a string serves one group only', async () => {
    assert.equal(new KafkaTransactionalStore({ bootstrapServers }).transactionalIdOf('etl'), 'sluice-etl');
    assert.equal(
      new KafkaTransactionalStore({ transactionalId: (g) => `app-${g}` }).transactionalIdOf('etl'),
      'app-etl',
    );
    const [input, output] = [await topic('id-in'), await topic('id-out')];
    const s = store({ transactionalId: uniqueName('fixed-id') });
    const g1 = uniqueName('g-id');
    await s.transaction(g1, [{ topic: input, partition: 0, fromOffset: 0, untilOffset: 1 }], (tx) =>
      tx.send(output, ['x']),
    );
    await assert.rejects(
      s.transaction(uniqueName('g-id-other'), [], async () => {}),
      InvalidOptionError,
    );
    assert.throws(() => new KafkaTransactionalStore({ transactionalId: '' }), InvalidOptionError);
    assert.throws(
      () => new KafkaTransactionalStore({ producerConfig: { 'transactional.id': 'x' } }),
      InvalidOptionError,
    );
    assert.throws(() => new KafkaTransactionalStore({ transactionTimeoutMs: 10 }), InvalidOptionError);
    assert.throws(
      () => new KafkaTransactionalSink({ topic: 't', store: {} as KafkaTransactionalStore }),
      InvalidOptionError,
    );
    const st = store();
    assert.equal(st.kind, 'kafka-transactions');
    assert.equal(st.transactional, true);
    assert.equal(st.capabilities.compareAndSet, false);
  });

  test('Kafka to Kafka exactly-once pipeline: a batch that fails after its output leaves nothing; the restart writes each record once and commits the offsets with it', async () => {
    const [input, output] = [await topic('etl-in', 2), await topic('etl-out', 2)];
    await produce(
      bootstrapServers,
      input,
      Array.from({ length: 12 }, (_, i) => ({ value: `r${i}`, partition: i % 2 })),
    );
    const pipelineId = uniqueName('etl');

    const runJob = async (failAfterOutput: boolean, expected: number) => {
      const s = new KafkaTransactionalStore({ bootstrapServers });
      const ctx = new StreamingContext({
        batchInterval: 200,
        pipelineId,
        logger: silentLogger,
        offsetStore: s,
      });
      const upper = createDirectStream(ctx, {
        topics: [input],
        bootstrapServers,
        startingOffsets: 'earliest',
      }).map((r) => r.value!.toUpperCase());
      upper.writeTo(new KafkaTransactionalSink<string>({ topic: output, store: s, bootstrapServers }), {
        name: 'out',
      });
      // A second output in the same transaction, after the sink: it fails the first run's batch.
      upper.foreachBatch(
        async (batch) => {
          if (failAfterOutput && batch.size > 0) throw new Error('crash after the Kafka output');
        },
        { name: 'after', transaction: s },
      );
      const plan = ctx.commitPlan();
      assert.equal(plan.offsets, 'in-transaction');
      assert.deepEqual(
        plan.outputs.map((o) => [o.name, o.guarantee]),
        [
          ['out', 'exactly-once'],
          ['after', 'exactly-once'],
        ],
      );
      await ctx.start();
      try {
        if (failAfterOutput) {
          await assert.rejects(ctx.awaitTermination(), OperatorError);
        } else {
          const deadline = Date.now() + 20_000;
          while ((await committed(pipelineId, input, 2)).get(0) !== expected / 2) {
            if (Date.now() > deadline) throw new Error('the job did not commit its input within 20 s');
            await new Promise((r) => setTimeout(r, 100));
          }
          await ctx.stop();
          await ctx.awaitTermination();
        }
      } finally {
        await s.close();
      }
    };

    await runJob(true, 0);
    await settled(output);
    assert.deepEqual(await kcat(output), [], 'the failed batch left no visible record');
    assert.ok(
      (await kcat(output, 'read_uncommitted')).length > 0,
      'its records had been written, then aborted',
    );
    assert.deepEqual(await committed(pipelineId, input, 2), new Map());

    await runJob(false, 12);
    await settled(output);
    assert.deepEqual((await kcat(output)).sort(), Array.from({ length: 12 }, (_, i) => `=R${i}`).sort());
    assert.deepEqual(
      await committed(pipelineId, input, 2),
      new Map([
        [0, 6],
        [1, 6],
      ]),
    );
  });
});
