/**
 * Group membership against the real broker (its consumer groups run with short timeouts: see
 * brokerProperties in src/services/kafka.ts): instances of one pipeline share a topic's partitions
 * through Kafka's consumer group protocol (KIP-848) and, through rebalances, a graceful stop, a
 * SIGKILL and a member dropped as too slow, every input record reaches the output exactly once.
 * Outputs are read by readers that are not Sluice's: kcat with read_committed, a plain pg client.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import type { BatchInfo } from '../../src/core/batch-protocol.js';
import { StreamingContext } from '../../src/core/context.js';
import { OwnershipLostError } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/logger.js';
import type { OffsetStore } from '../../src/core/offsets.js';
import type { RebalanceEvent } from '../../src/core/source.js';
import {
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  parseCommitMetadata,
} from '../../src/kafka/index.js';
import { AdminClient } from '../../src/kafka/rdkafka.js';
import { PostgresOffsetStore, PostgresSink, dropTable } from '../../src/postgres/index.js';
import { ChildRun, waitUntil } from '../examples/child-process.js';
import { createTopic, deleteTopic, kcat as kcatTopic, produce, type TestRecord } from '../helpers/kafka.js';
import { kafkaBootstrap, postgresUrl, uniqueName } from '../helpers/services.js';

const bootstrapServers = await kafkaBootstrap();
const pgUrl = await postgresUrl();
const cleanups: (() => Promise<unknown>)[] = [];
const runs: ChildRun[] = [];
after(async () => {
  for (const r of runs) await r.kill();
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

// ---- helpers -------------------------------------------------------------------------------------

/** Topics `<base>-in` (4 partitions) and `<base>-out`, deleted after the file's tests. */
async function topics(prefix: string): Promise<{ base: string; input: string; output: string }> {
  const base = uniqueName(`group-${prefix}`);
  const t = { base, input: `${base}-in`, output: `${base}-out` };
  await createTopic(bootstrapServers, t.input, 4);
  await createTopic(bootstrapServers, t.output, 2);
  cleanups.push(
    () => deleteTopic(bootstrapServers, t.input),
    () => deleteTopic(bootstrapServers, t.output),
  );
  return t;
}

const value = (i: number): string => `record-${String(i).padStart(6, '0')}`;
const records = (from: number, to: number): TestRecord[] =>
  Array.from({ length: to - from }, (_, k) => ({ value: value(from + k), partition: (from + k) % 4 }));
const expected = (n: number): string[] => Array.from({ length: n }, (_, i) => value(i));

/** The whole topic as a read_committed consumer that is not Sluice's sees it. */
const kcat = (topic: string) => kcatTopic(bootstrapServers, topic);

/** Fails naming the values seen twice and those missing. */
function assertExactlyOnce(got: readonly (string | null)[], want: readonly string[], context: string): void {
  const seen = new Map<string | null, number>();
  for (const v of got) seen.set(v, (seen.get(v) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([v, n]) => `${v} x${n}`);
  const missing = want.filter((v) => !seen.has(v));
  const extra = [...seen.keys()].filter((v) => !want.includes(v as string));
  assert.deepEqual(
    { twice: twice.slice(0, 20), missing: missing.slice(0, 20), extra: extra.slice(0, 20) },
    { twice: [], missing: [], extra: [] },
    `every record exactly once (${got.length} read, ${want.length} expected)\n${context}`,
  );
}

/** A logger that keeps the last lines, to show what the instances did when a test fails. */
function memoryLogger(lines: string[], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      if (level === 'debug') return;
      lines.push(
        `${new Date().toISOString()} ${level} ${msg ?? ''} ${JSON.stringify({ ...bindings, ...obj })}`,
      );
      if (lines.length > 400) lines.splice(0, lines.length - 400);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => memoryLogger(lines, { ...bindings, ...b }),
  };
}

/** One instance of a job in this process, with what its listeners saw. */
interface Instance {
  readonly id: string;
  readonly ctx: StreamingContext;
  /** The partitions it owns after the last rebalance it reported (`topic-partition`). */
  owned: string[];
  readonly rebalances: (RebalanceEvent & { at: number })[];
  readonly abandoned: BatchInfo[];
  readonly failed: BatchInfo[];
  readonly completed: BatchInfo[];
}

const log: string[] = [];
const diagnostics = (...xs: Instance[]): string =>
  [
    ...xs.map(
      (x) =>
        `instance ${x.id}: owns [${x.owned.join(', ')}], ${x.completed.length} batches completed, ${x.abandoned.length} abandoned, ${x.failed.length} failed; rebalances ${JSON.stringify(x.rebalances.map((r) => ({ gained: r.gained.length, lost: r.lost.length, owned: r.owned.length })))}`,
    ),
    '--- log ---',
    ...log.slice(-120),
  ].join('\n');

/** Starts an instance of a job whose pipeline `build` defines on its context. */
async function instance(
  id: string,
  options: { pipelineId: string; offsetStore: OffsetStore; batchInterval?: number },
  build: (ctx: StreamingContext) => void,
): Promise<Instance> {
  const ctx = new StreamingContext({
    batchInterval: options.batchInterval ?? 300,
    pipelineId: options.pipelineId,
    membership: 'group',
    instanceId: id,
    offsetStore: options.offsetStore,
    logger: memoryLogger(log, { instance: id }),
  });
  const x: Instance = { id, ctx, owned: [], rebalances: [], abandoned: [], failed: [], completed: [] };
  ctx.addListener({
    onRebalance(e) {
      x.rebalances.push({ ...e, at: Date.now() });
      x.owned = e.owned.map((p) => `${p.topic}-${p.partition}`).sort();
    },
    onBatchAbandoned: (info) => void x.abandoned.push(info),
    onBatchFailed: (info) => void x.failed.push(info),
    onBatchCompleted: (info) => void x.completed.push(info),
  });
  build(ctx);
  await ctx.start();
  cleanups.push(() => ctx.stop({ graceful: false }));
  return x;
}

/** Kafka to Kafka, exactly-once: records of the input to the output, in the transactions of `store`. */
function kafkaEtl(
  t: { input: string; output: string },
  store: KafkaTransactionalStore,
  options: { consumerConfig?: Record<string, string | number>; stall?: () => Promise<void> } = {},
): (ctx: StreamingContext) => void {
  return (ctx) => {
    const values = createDirectStream(ctx, {
      topics: [t.input],
      bootstrapServers,
      startingOffsets: 'earliest',
      ...(options.consumerConfig ? { consumerConfig: options.consumerConfig } : {}),
    }).map((r) => r.value!);
    values.writeTo(new KafkaTransactionalSink<string>({ topic: t.output, store, bootstrapServers }), {
      name: 'out',
      guarantee: 'exactly-once',
    });
    const stall = options.stall;
    if (stall) {
      // In the same transaction, after the output is written: a batch that takes long to commit.
      values.foreachBatch((batch) => (batch.size > 0 ? stall() : undefined), {
        name: 'stall',
        transaction: store,
        guarantee: 'exactly-once',
      });
    }
  };
}

function txStore(): KafkaTransactionalStore {
  const store = new KafkaTransactionalStore({ bootstrapServers });
  cleanups.push(() => store.close());
  return store;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Produces `perTick` records every `everyMs` from `from` on, until stopped; answers how many it produced. */
function steadyInput(
  topic: string,
  from: number,
  perTick: number,
  everyMs: number,
): { stop(): Promise<number> } {
  let next = from;
  let running = true;
  const loop = (async () => {
    while (running) {
      await produce(bootstrapServers, topic, records(next, next + perTick));
      next += perTick;
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return next;
    },
  };
}

// ---- tests ---------------------------------------------------------------------------------------

/**
 * Waits (bounded) until `n` records are in the output, stops the instances, and checks with kcat
 * (read_committed) that the output holds records 0..n-1 exactly once and that no batch failed.
 */
async function outputExactlyOnce(t: { output: string }, n: number, xs: readonly Instance[]): Promise<void> {
  const context = () => diagnostics(...xs);
  await waitUntil(
    `${n} records in the output`,
    60_000,
    () => kcat(t.output),
    (r) => r.length >= n,
  ).catch((e: Error) => assert.fail(`${e.message}\n${context()}`));
  await Promise.all(xs.map((x) => x.ctx.stop()));
  assertExactlyOnce(
    (await kcat(t.output)).map((r) => r.payload),
    expected(n),
    context(),
  );
  assert.deepEqual(
    xs.flatMap((x) => x.failed),
    [],
    context(),
  );
}

/** Waits until a and b own 2 partitions each. */
async function splitTwoTwo(a: Instance, b: Instance): Promise<void> {
  await waitUntil(
    'a 2+2 split',
    30_000,
    async () => [a.owned.length, b.owned.length],
    ([x, y]) => x === 2 && y === 2,
  ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
}

/** Starts instance `id` of the Kafka-to-Kafka job over `t`, with a transactional store of its own. */
function kafkaInstance(
  id: string,
  t: { base: string; input: string; output: string },
  options: Parameters<typeof kafkaEtl>[2] = {},
): Promise<Instance> {
  const store = txStore();
  return instance(id, { pipelineId: t.base, offsetStore: store }, kafkaEtl(t, store, options));
}

describe('group membership with Kafka transactions', () => {
  test('two instances in one process split a 4-partition topic 2+2, and a read_committed reader of their transactional output sees every input record exactly once', async () => {
    const t = await topics('split');
    await produce(bootstrapServers, t.input, records(0, 400));
    const a = await kafkaInstance('a', t);
    await waitUntil(
      'instance a owns the 4 partitions',
      30_000,
      async () => a.owned,
      (o) => o.length === 4,
    );
    const b = await kafkaInstance('b', t);
    await splitTwoTwo(a, b);
    assert.deepEqual([...a.owned, ...b.owned].sort(), [0, 1, 2, 3].map((p) => `${t.input}-${p}`).sort());
    await produce(bootstrapServers, t.input, records(400, 800));
    await outputExactlyOnce(t, 800, [a, b]);
    assert.ok(
      a.completed.some((i) => i.numRecords > 0) && b.completed.some((i) => i.numRecords > 0),
      `both instances processed records\n${diagnostics(a, b)}`,
    );
    // Each partition's committed offset names the instance that committed it and its batch.
    const committed = await groupOffsets(t.base);
    assert.equal(committed.length, 4);
    for (const c of committed) {
      const owner = [a, b].find((x) => x.owned.includes(`${c.topic}-${c.partition}`))!;
      assert.equal(c.metadata?.instance, owner.id, JSON.stringify(c));
      assert.ok(
        owner.completed.some((i) => i.batchTime === c.metadata?.batchTime),
        JSON.stringify(c),
      );
    }
  });

  test('an instance stopped gracefully mid-stream hands its partitions to the other within seconds, and with input arriving all the time the output stays exactly-once', async (tc) => {
    const t = await topics('leave');
    const a = await kafkaInstance('a', t);
    const b = await kafkaInstance('b', t);
    await splitTwoTwo(a, b);
    const input = steadyInput(t.input, 0, 20, 50);
    await waitUntil(
      'b has processed records',
      30_000,
      async () => b.completed.filter((i) => i.numRecords > 0).length,
      (n) => n >= 3,
    );
    const stopping = Date.now();
    await b.ctx.stop();
    await waitUntil(
      'a owns the 4 partitions',
      30_000,
      async () => a.owned.length,
      (n) => n === 4,
    ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
    const moved = a.rebalances.at(-1)!.at - stopping;
    tc.diagnostic(`partitions moved ${moved} ms after the graceful stop began`);
    await waitUntil(
      'a has processed records of every partition',
      30_000,
      async () => a.completed.length,
      () => a.completed.filter((i) => i.numRecords > 0).length >= 3,
    );
    const produced = await input.stop();
    await outputExactlyOnce(t, produced, [a, b]);
  });

  test('an instance whose batch outlasts max.poll.interval.ms does not commit it: the batch is abandoned uncommitted, the instance leaves and rejoins the group, reads the batch again from the stored offsets, and nothing is lost or duplicated', async (tc) => {
    const t = await topics('zombie');
    // Short for the test: a member that does not consume for 3 s is dropped.
    const consumerConfig = { 'max.poll.interval.ms': 3000 };
    let stalls = 0;
    const a = await kafkaInstance('a', t, {
      consumerConfig,
      // Once, 8 s: long past max.poll.interval.ms.
      stall: async () => {
        if (stalls++ === 0) await sleep(8000);
      },
    });
    const b = await kafkaInstance('b', t, { consumerConfig });
    await splitTwoTwo(a, b);
    await produce(bootstrapServers, t.input, records(0, 400));
    await waitUntil(
      'a abandons its stalled batch',
      60_000,
      async () => a.abandoned.length,
      (n) => n >= 1,
    ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
    const [abandoned] = a.abandoned;
    assert.ok(
      abandoned!.error instanceof OwnershipLostError,
      `${String(abandoned!.error)}\n${diagnostics(a, b)}`,
    );
    assert.equal(abandoned!.status, 'abandoned');
    assert.ok(abandoned!.numRecords > 0);
    // librdkafka leaves the group for a's missed poll only at a's next consume call (it rejoins at
    // once), so b does not get a's partitions meanwhile: what matters is that the stalled batch
    // never commits, since the drop would let its transactional offsets through.
    assert.match(abandoned!.error!.message, /did not consume|no longer owns|lost its partitions|dropped/);
    // a rejoins and gets partitions again.
    await waitUntil(
      'a owns partitions again',
      30_000,
      async () => a.owned.length,
      (n) => n > 0,
    ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
    await produce(bootstrapServers, t.input, records(400, 600));
    await outputExactlyOnce(t, 600, [a, b]);
    tc.diagnostic(
      `instance a abandoned ${a.abandoned.length} batch(es): ${String(abandoned!.error?.message)}`,
    );
  });
});

/** The group's committed offsets, with their metadata parsed. */
async function groupOffsets(
  group: string,
): Promise<
  { topic: string; partition: number; offset: number; metadata: ReturnType<typeof parseCommitMetadata> }[]
> {
  const admin = AdminClient.create({
    'bootstrap.servers': bootstrapServers,
    'client.id': 'group-test',
  } as never);
  try {
    const result = await new Promise<
      { partitions: { topic: string; partition: number; offset: number; metadata?: string }[] }[]
    >((resolve, reject) =>
      admin.listConsumerGroupOffsets(
        [{ groupId: group }],
        { timeout: 10_000, requireStableOffsets: true } as never,
        (err, r) => (err ? reject(err) : resolve(r as never)),
      ),
    );
    return result[0]!.partitions.map((p) => ({ ...p, metadata: parseCommitMetadata(p.metadata) }));
  } finally {
    admin.disconnect();
  }
}

describe('group membership with PostgreSQL transactions', () => {
  test('two instances write rows and offsets in one PostgreSQL transaction each; one stops mid-stream, the other takes its partitions from the offsets in the table, and a plain pg client counts every record exactly once', async () => {
    const t = await topics('pg');
    const table = t.base.replace(/-/g, '_');
    const pool = new pg.Pool({ connectionString: pgUrl });
    cleanups.push(async () => {
      await dropTable(pool, table).catch(() => {});
      await pool.query('DELETE FROM sluice_offsets WHERE group_id = $1', [t.base]).catch(() => {});
      await pool.end();
    });
    await pool.query(`CREATE TABLE ${table} (value text NOT NULL, inst text NOT NULL)`);
    const pgInstance = (id: string): Promise<Instance> => {
      const store = new PostgresOffsetStore({ connection: pgUrl });
      cleanups.push(() => store.close());
      return instance(id, { pipelineId: t.base, offsetStore: store }, (ctx) => {
        createDirectStream(ctx, { topics: [t.input], bootstrapServers, startingOffsets: 'earliest' })
          .map((r) => r.value!)
          .writeTo(
            new PostgresSink<string>({
              store,
              table,
              columns: ['value', 'inst'],
              toRow: (v) => [v, id],
              mode: 'insert',
            }),
            { name: 'rows', guarantee: 'exactly-once' },
          );
      });
    };
    const a = await pgInstance('a');
    const b = await pgInstance('b');
    await splitTwoTwo(a, b);
    const input = steadyInput(t.input, 0, 20, 50);
    await waitUntil(
      'both instances wrote rows',
      30_000,
      async () => (await pool.query<{ n: string }>(`SELECT count(DISTINCT inst) AS n FROM ${table}`)).rows[0]!.n,
      (n) => n === '2',
    ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
    await b.ctx.stop();
    await waitUntil(
      'a owns the 4 partitions',
      30_000,
      async () => a.owned.length,
      (n) => n === 4,
    ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
    await sleep(1000);
    const produced = await input.stop();
    await waitUntil(
      `${produced} rows`,
      60_000,
      async () => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n),
      (n) => n >= produced,
    ).catch((e: Error) => assert.fail(`${e.message}\n${diagnostics(a, b)}`));
    await a.ctx.stop();
    const { rows } = await pool.query<{ value: string }>(`SELECT value FROM ${table}`);
    assertExactlyOnce(
      rows.map((r) => r.value),
      expected(produced),
      diagnostics(a, b),
    );
    assert.deepEqual([...a.failed, ...b.failed], [], diagnostics(a, b));
    // The offsets in the table are the input's ends: a commits b's old partitions too.
    const stored = await pool.query<{ n: string }>(
      'SELECT sum(next_offset)::text AS n FROM sluice_offsets WHERE group_id = $1',
      [t.base],
    );
    assert.equal(Number(stored.rows[0]!.n), produced, diagnostics(a, b));
  });
});
