/**
 * Sluice's Kafka clients against the SECURED test broker (src/services/secure-kafka.ts: SASL_SSL with
 * SCRAM-SHA-512, StandardAuthorizer with ACLs): every client of a pipeline gets its settings from
 * ONE kafkaCluster({ bootstrapServers, sasl, tls }).
 * - As the super user `admin`, a Kafka-to-Kafka pipeline runs exactly-once end to end.
 * - A wrong password fails ctx.start() with KafkaAuthenticationError, at once (no retries), whichever
 *   client meets it first: the source, a sink alone, the offset store alone.
 * - A principal missing each ACL the pipeline needs in turn gets KafkaAuthorizationError naming it;
 *   missing several, ONE error names them all (source, sink and dead-letter sink).
 *
 * Each ACL case has a user of its own (addScramUser), made and granted its ACLs in `before`, all
 * cases at once: Kafka's AclCommand and ConfigCommand are a JVM each (2.5-5 s).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Kafka from '@confluentinc/kafka-javascript';
import type { Message } from '@confluentinc/kafka-javascript';
import { StreamingContext } from '../../src/core/context.js';
import { silentLogger } from '../../src/core/logger.js';
import { queueStream } from '../../src/core/queue-source.js';
import {
  KafkaAdmin,
  KafkaAuthenticationError,
  KafkaAuthorizationError,
  KafkaDirectSource,
  KafkaOffsetStore,
  KafkaSink,
  KafkaTextProducer,
  KafkaTransactionalSink,
  KafkaTransactionalStore,
  createDirectStream,
  kafkaCluster,
  kafkaDeadLetterSink,
  type KafkaCluster,
} from '../../src/kafka/index.js';
import {
  ensureSecureKafka,
  type SecureKafkaHandle,
  type SecureKafkaUser,
} from '../../src/services/secure-kafka.js';
import {
  addScramUser,
  grantAcls,
  saslSslClientConfig,
  type AclSpec,
} from '../../src/services/secure-kafka-tools.js';
import { uniqueName } from '../helpers/services.js';

/** One attempt of at most 5 s per connection: "within the connect bound". */
const CONNECT = { attempts: 1, timeoutMs: 5000 } as const;

let h: SecureKafkaHandle;
let admin: KafkaCluster;
const closers: (() => Promise<void>)[] = [];

function clusterOf(user: { username: string; password: string }): KafkaCluster {
  return kafkaCluster({
    bootstrapServers: h.bootstrapServers,
    sasl: { mechanism: 'SCRAM-SHA-512', username: user.username, password: user.password },
    tls: { caLocation: h.tls.caLocation },
  });
}

async function createTopics(...topics: string[]): Promise<void> {
  const a = KafkaAdmin.create(admin);
  try {
    await a.ensureTopics(topics, { partitions: 1 });
  } finally {
    a.close();
  }
}

async function produce(topic: string, values: string[]): Promise<void> {
  const p = await KafkaTextProducer.connect({ cluster: admin });
  try {
    await p.send(topic, values);
  } finally {
    await p.close();
  }
}

/** The values of partition 0 of `topic` a read_committed consumer reads (as admin), up to its end. */
async function readCommitted(topic: string): Promise<string[]> {
  const c = new Kafka.KafkaConsumer(
    {
      ...saslSslClientConfig(h, 'admin'),
      'group.id': uniqueName('reader'),
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
    },
    {},
  );
  const call = <R>(f: (cb: (err: unknown, v: R) => void) => void): Promise<R> =>
    new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));
  await call((cb) => c.connect({ timeout: 15_000 }, cb as never));
  try {
    let eof = false;
    c.on('partition.eof', () => (eof = true));
    c.assign([{ topic, partition: 0, offset: 0 }]);
    const values: string[] = [];
    const deadline = Date.now() + 20_000;
    while (!eof) {
      if (Date.now() > deadline) assert.fail(`no end of ${topic} within 20 s`);
      const batch = await call<Message[]>((cb) => c.consume(100, cb as never));
      values.push(...batch.map((m) => m.value?.toString() ?? ''));
    }
    return values;
  } finally {
    await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}

/** The error itself or the first of its causes that is a `type`. */
function causeOf<T>(e: unknown, type: abstract new (...a: never[]) => T): T | undefined {
  for (let x = e, depth = 0; x && depth < 5; x = (x as { cause?: unknown }).cause, depth++) {
    if (x instanceof type) return x;
  }
  return undefined;
}

/** The names of the pipeline's topics and group; the transactional id is the store's default, `sluice-<group>`. */
interface Names {
  readonly input: string;
  readonly output: string;
  readonly dlq: string;
  readonly pipelineId: string;
}

function names(prefix: string): Names {
  return {
    input: uniqueName(`sec-${prefix}-in`),
    output: uniqueName(`sec-${prefix}-out`),
    dlq: uniqueName(`sec-${prefix}-dlq`),
    pipelineId: uniqueName(`sec-${prefix}`),
  };
}

/**
 * input -> parse (bad lines to a dead-letter topic) -> upper case -> output, exactly-once: the output,
 * the dead letters and the offsets commit in one Kafka transaction. Every client on `cluster`.
 */
function pipeline(cluster: KafkaCluster, n: Names) {
  const store = new KafkaTransactionalStore({ cluster, connect: CONNECT });
  closers.push(() => store.close());
  const ctx = new StreamingContext({
    batchInterval: 200,
    pipelineId: n.pipelineId,
    logger: silentLogger,
    offsetStore: store,
  });
  createDirectStream(ctx, { cluster, topics: [n.input], startingOffsets: 'earliest', connect: CONNECT })
    .tryMap(
      (r) => {
        if (r.value?.startsWith('bad')) throw new Error('a bad record');
        return r.value!.toUpperCase();
      },
      {
        name: 'parse',
        badRecords: {
          policy: 'dead-letter',
          deadLetter: kafkaDeadLetterSink({ cluster, topic: n.dlq, transactional: store, connect: CONNECT }),
        },
      },
    )
    .writeTo(new KafkaTransactionalSink<string>({ cluster, topic: n.output, store, connect: CONNECT }), {
      name: 'out',
    });
  return { ctx, store };
}

/** Every ACL the pipeline needs, but those `except` names (as `${operation} ${resourceType}:${name}`). */
function aclsOf(n: Names, except: readonly string[]): AclSpec[] {
  const wanted: [string, AclSpec['resourceType'], string][] = [
    ['Read', 'topic', n.input],
    ['Describe', 'topic', n.input],
    ['Read', 'group', n.pipelineId],
    ['Describe', 'group', n.pipelineId],
    ['Write', 'topic', n.output],
    ['Describe', 'topic', n.output],
    ['Write', 'topic', n.dlq],
    ['Describe', 'topic', n.dlq],
    ['Write', 'transactional-id', `sluice-${n.pipelineId}`],
    ['Describe', 'transactional-id', `sluice-${n.pipelineId}`],
  ];
  // One spec per resource; AclCommand runs once per distinct operation list (see grantAcls).
  const byResource = new Map<string, AclSpec>();
  for (const [op, resourceType, name] of wanted) {
    if (except.includes(`${op} ${resourceType}:${name}`)) continue;
    const key = `${resourceType}:${name}`;
    const spec = byResource.get(key) ?? { resourceType, name, operations: [] };
    spec.operations.push(op as AclSpec['operations'][number]);
    byResource.set(key, spec);
  }
  return [...byResource.values()];
}

/** A principal of its own with the pipeline's ACLs but `except`. */
interface AclCase {
  readonly user: Promise<SecureKafkaUser>;
}

function aclCase(n: Names, label: string, except: (n: Names) => string[]): AclCase {
  return {
    user: (async () => {
      const user = await addScramUser(h, uniqueName(`sec-${label}`), undefined, ['SCRAM-SHA-512']);
      const specs = aclsOf(n, except(n));
      if (specs.length > 0) await grantAcls(h, user, specs);
      return user;
    })(),
  };
}

/** The missing permissions of a KafkaAuthorizationError, as `${operation} ${resourceType}:${resource}`. */
function listed(e: KafkaAuthorizationError): string[] {
  return e.missing.map((m) => `${m.operation} ${m.resourceType}:${m.resource}`);
}

/** ctx.start() of the pipeline as `user`: the KafkaAuthorizationError it fails with. */
async function startRefused(user: SecureKafkaUser, n: Names): Promise<KafkaAuthorizationError> {
  const { ctx, store } = pipeline(clusterOf(user), n);
  try {
    const e = await ctx.start().then(
      async () => {
        await ctx.stop();
        return assert.fail('start() succeeded');
      },
      (err: unknown) => err,
    );
    assert.ok(e instanceof KafkaAuthorizationError, `not a KafkaAuthorizationError: ${String(e)}`);
    assert.equal(e.principal, user.principal);
    assert.equal(e.code, 'SLUICE_KAFKA_NOT_AUTHORIZED');
    assert.equal(e.retriable, false);
    for (const m of e.missing) assert.ok(e.hint.includes(`--operation ${m.operation}`));
    assert.doesNotMatch(`${e.message} ${e.hint}`, new RegExp(user.password));
    return e;
  } finally {
    await store.close();
  }
}

describe('a pipeline on a secured Kafka cluster (SASL_SSL, SCRAM-SHA-512, ACLs)', () => {
  // The names every ACL case shares (each case is another principal); created once.
  const n = names('acl');
  const cases: Record<string, AclCase> = {};

  before(async () => {
    h = await ensureSecureKafka();
    admin = clusterOf(h.users.admin);
    const topics = createTopics(n.input, n.output, n.dlq);
    Object.assign(cases, {
      readInput: aclCase(n, 'read-in', (x) => [`Read topic:${x.input}`]),
      describeInput: aclCase(n, 'desc-in', (x) => [`Read topic:${x.input}`, `Describe topic:${x.input}`]),
      readGroup: aclCase(n, 'group', (x) => [`Read group:${x.pipelineId}`, `Describe group:${x.pipelineId}`]),
      writeOutput: aclCase(n, 'write-out', (x) => [`Write topic:${x.output}`]),
      transactionalId: aclCase(n, 'txid', (x) => [
        `Write transactional-id:sluice-${x.pipelineId}`,
        `Describe transactional-id:sluice-${x.pipelineId}`,
      ]),
      several: aclCase(n, 'several', (x) => [
        `Read topic:${x.input}`,
        `Describe topic:${x.input}`,
        `Read group:${x.pipelineId}`,
        `Describe group:${x.pipelineId}`,
        `Write topic:${x.output}`,
        `Write topic:${x.dlq}`,
        `Describe topic:${x.dlq}`,
      ]),
      describeOnlyGroup: aclCase(n, 'grp-desc', (x) => [`Read group:${x.pipelineId}`]),
    });
    await topics;
    // Unhandled until the test awaits it: fail setup now rather than crash the file.
    await Promise.all(Object.values(cases).map((c) => c.user));
    // Grants take effect a moment after AclCommand returns.
    await new Promise((r) => setTimeout(r, 1000));
  });

  after(async () => {
    for (const c of closers) await c().catch(() => {});
  });

  test('as the super user, input to output runs exactly-once end to end', async () => {
    const e2e = names('e2e');
    await createTopics(e2e.input, e2e.output, e2e.dlq);
    await produce(e2e.input, ['a', 'b', 'bad 1', 'c']);
    const { ctx, store } = pipeline(admin, e2e);
    await ctx.start();
    try {
      const deadline = Date.now() + 30_000;
      const offsets = new KafkaOffsetStore({ cluster: admin });
      closers.push(() => offsets.close());
      while ((await offsets.read(e2e.pipelineId, [e2e.input]))[0]?.offset !== 4) {
        if (Date.now() > deadline) assert.fail('the job did not commit the 4 records within 30 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await ctx.stop();
      await store.close();
    }
    assert.deepEqual(await readCommitted(e2e.output), ['A', 'B', 'C']);
    assert.deepEqual(await readCommitted(e2e.dlq), ['bad 1']);
  });

  describe('a wrong password fails the start with KafkaAuthenticationError, without retries', () => {
    const wrong = () => clusterOf({ username: h.users.alice.username, password: 'not-the-password' });

    function assertRefusedLogin(e: unknown): true {
      assert.ok(e instanceof KafkaAuthenticationError, `not a KafkaAuthenticationError: ${String(e)}`);
      assert.equal(e.code, 'SLUICE_KAFKA_AUTH_FAILED');
      assert.equal(e.retriable, false);
      assert.equal(e.bootstrapServers, h.bootstrapServers);
      assert.equal(e.username, h.users.alice.username);
      assert.equal(e.mechanism, 'SCRAM-SHA-512');
      assert.match(e.reason, /SASL authentication error: Authentication failed .*invalid credentials/);
      assert.doesNotMatch(e.message, /not-the-password/);
      return true;
    }

    test('the source', async () => {
      const cluster = wrong();
      const ctx = new StreamingContext({
        batchInterval: 200,
        pipelineId: uniqueName('sec'),
        logger: silentLogger,
      });
      ctx
        .stream(new KafkaDirectSource({ cluster, topics: [n.input], connect: CONNECT }))
        .foreachBatch(() => {});
      await assert.rejects(ctx.start(), assertRefusedLogin);
    });

    test('a sink alone (the input is not Kafka)', async () => {
      const ctx = new StreamingContext({ batchInterval: 200, logger: silentLogger });
      queueStream<string>(ctx).writeTo(
        new KafkaSink<string>({ cluster: wrong(), topic: n.output, connect: CONNECT }),
      );
      await assert.rejects(ctx.start(), assertRefusedLogin);
    });

    test('the offset store alone (the source logs in)', async () => {
      const store = new KafkaOffsetStore({ cluster: wrong(), connect: CONNECT });
      closers.push(() => store.close());
      const ctx = new StreamingContext({
        batchInterval: 200,
        pipelineId: uniqueName('sec'),
        logger: silentLogger,
        offsetStore: store,
      });
      ctx
        .stream(new KafkaDirectSource({ cluster: admin, topics: [n.input], connect: CONNECT }))
        .foreachBatch(() => {});
      await assert.rejects(ctx.start(), assertRefusedLogin);
      await store.close();
    });
  });

  describe('a principal missing an ACL gets KafkaAuthorizationError naming it', () => {
    test('Read on the input topic', async () => {
      const e = await startRefused(await cases.readInput!.user, n);
      assert.deepEqual(listed(e), [`Read topic:${n.input}`]);
      assert.match(e.message, new RegExp(`^Principal User:\\S+ may not: Read topic '${n.input}'`));
    });

    test('Describe on the input topic (then it may not read it either)', async () => {
      const e = await startRefused(await cases.describeInput!.user, n);
      assert.deepEqual(listed(e), [`Read topic:${n.input}`, `Describe topic:${n.input}`]);
    });

    test('Read on the group', async () => {
      const e = await startRefused(await cases.readGroup!.user, n);
      assert.deepEqual(listed(e), [`Read group:${n.pipelineId}`, `Describe group:${n.pipelineId}`]);
    });

    test('Write on the output topic', async () => {
      const e = await startRefused(await cases.writeOutput!.user, n);
      assert.deepEqual(listed(e), [`Write topic:${n.output}`]);
    });

    test('the transactional id (refused when the store starts its producer, at the source open)', async () => {
      const e = await startRefused(await cases.transactionalId!.user, n);
      assert.deepEqual(listed(e), [
        `Write transactional-id:sluice-${n.pipelineId}`,
        `Describe transactional-id:sluice-${n.pipelineId}`,
      ]);
      assert.match(e.message, /Transactional Id authorization failed/);
    });

    test('several at once: ONE error lists all of them, across the source, the sink and the dead-letter sink', async () => {
      const e = await startRefused(await cases.several!.user, n);
      assert.deepEqual(listed(e), [
        `Read topic:${n.input}`,
        `Describe topic:${n.input}`,
        `Read group:${n.pipelineId}`,
        `Describe group:${n.pipelineId}`,
        // Outputs in definition order: the dead-letter sink came with tryMap, before writeTo.
        `Write topic:${n.dlq}`,
        `Describe topic:${n.dlq}`,
        `Write topic:${n.output}`,
      ]);
      assert.equal(e.hint.split('\n').filter((l) => l.startsWith('  kafka-acls ')).length, 7);
    });

    test('Read on a group it may describe: not knowable up front, refused at the first commit', async () => {
      const user = await cases.describeOnlyGroup!.user;
      await produce(n.input, ['x']);
      const { ctx, store } = pipeline(clusterOf(user), n);
      try {
        await ctx.start();
        const e = await ctx.awaitTermination().then(
          () => assert.fail('the job did not fail'),
          (err: unknown) => err,
        );
        const refused = causeOf(e, KafkaAuthorizationError);
        assert.ok(refused, `no KafkaAuthorizationError in ${String(e)}`);
        assert.deepEqual(listed(refused), [`Read group:${n.pipelineId}`]);
      } finally {
        await ctx.stop();
        await store.close();
      }
    });
  });
});
