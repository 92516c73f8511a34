/**
 * `sluice offsets show|set|reset` and the store specs: the command as a real process against every
 * store (PostgreSQL, MariaDB, Redis, ZooKeeper, a checkpoint directory, Kafka group commits), each checked with a plain
 * client; the command functions; usage errors (exit code 2); passwords never printed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Kafka from '@confluentinc/kafka-javascript';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import zookeeper from 'node-zookeeper-client';
import pg from 'pg';
import {
  OffsetStoreAccessError,
  exitCodeOf,
  parseAssignments,
  resetOffsetsCommand,
  runOffsetsCommand,
  setOffsetsCommand,
  showOffsetsCommand,
} from '../../src/cli/offsets.js';
import {
  createOffsetStore,
  describeStoreSpec,
  parseStoreSpec,
  redactSpec,
  specSecrets,
} from '../../src/cli/store-spec.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { ChildRun } from '../examples/child-process.js';
import { createTopic, deleteTopic } from '../helpers/kafka.js';
import {
  kafkaBootstrap,
  mysqlUrl,
  postgresUrl,
  redisUrl,
  uniqueName,
  zookeeperConnect,
} from '../helpers/services.js';
import { plainZooKeeper, removeTree } from '../helpers/zookeeper.js';

const SECRET = 'Sup3r-s3cret-pw';

async function sluice(args: string[], env: Record<string, string> = {}): Promise<ChildRun> {
  const run = ChildRun.sluice(['offsets', ...args], { SLUICE_LOG_LEVEL: 'warn', ...env });
  await run.waitForExit(60_000);
  return run;
}

const table = (prefix: string) =>
  `${prefix}_${uniqueName('').replace(/[^a-z0-9]+/g, '_')}`.replace(/_+$/, '');

/** One store as the tests see it: its spec and CLI options, and a plain client's view of its layout. */
interface StoreCase {
  readonly name: string;
  spec(): Promise<string>;
  readonly options: string[];
  /** Before offsets of `topic` can be set (Kafka: the topic must exist; it gets 3 partitions). */
  prepare?(topic: string): Promise<void>;
  /** partition -> offset of (group, topic), read without Sluice. */
  layout(group: string, topic: string): Promise<Map<number, number>>;
  cleanup(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c().catch(() => {});
});

function postgresCase(): StoreCase {
  const t = table('cli_offsets');
  let pool: pg.Pool | undefined;
  const plain = async () => (pool ??= new pg.Pool({ connectionString: await postgresUrl(), max: 1 }));
  return {
    name: 'postgres',
    spec: postgresUrl,
    options: ['--table', t],
    async layout(group, topic) {
      const { rows } = await (
        await plain()
      ).query<{ partition: number; next_offset: string }>(
        `SELECT partition, next_offset FROM ${t} WHERE group_id = $1 AND topic = $2`,
        [group, topic],
      );
      return new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
    },
    async cleanup() {
      await (await plain()).query(`DROP TABLE IF EXISTS ${t}`);
      await pool?.end();
    },
  };
}

function mysqlCase(): StoreCase {
  const t = table('cli_offsets');
  let pool: mysql.Pool | undefined;
  const plain = async () => (pool ??= mysql.createPool({ uri: await mysqlUrl(), connectionLimit: 1 }));
  return {
    name: 'mysql',
    spec: mysqlUrl,
    options: ['--table', t],
    async layout(group, topic) {
      const [rows] = await (
        await plain()
      ).query<mysql.RowDataPacket[]>(
        `SELECT \`partition\`, next_offset FROM ${t} WHERE group_id = ? AND topic = ?`,
        [group, topic],
      );
      return new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
    },
    async cleanup() {
      await (await plain()).query(`DROP TABLE IF EXISTS ${t}`);
      await pool?.end();
    },
  };
}

function redisCase(): StoreCase {
  const prefix = `${uniqueName('cli-offsets')}:`;
  let client: Redis | undefined;
  const plain = async () =>
    (client ??= new Redis(await redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 2 }));
  return {
    name: 'redis',
    spec: redisUrl,
    options: ['--key-prefix', prefix],
    async layout(group, topic) {
      const hash = await (await plain()).hgetall(prefix + topic);
      const out = new Map<number, number>();
      for (const [field, value] of Object.entries(hash)) {
        const m = /^(.*)\|(\d+)$/.exec(field);
        if (m && m[1] === group) out.set(Number(m[2]), Number(value));
      }
      return out;
    },
    async cleanup() {
      const redis = await plain();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    },
  };
}

function zookeeperCase(): StoreCase {
  const root = `/sluice-test/${uniqueName('cli-offsets')}`;
  let client: zookeeper.Client | undefined;
  const plain = async (): Promise<zookeeper.Client> => (client ??= await plainZooKeeper());
  const call = <T>(f: (cb: (e: zookeeper.Exception | Error | null, v: T) => void) => void) =>
    new Promise<T | undefined>((resolve, reject) =>
      f((e, v) => {
        if (e && 'getCode' in e && e.getCode() === zookeeper.Exception.NO_NODE) resolve(undefined);
        else if (e) reject(e);
        else resolve(v);
      }),
    );
  return {
    name: 'zookeeper',
    spec: async () => `zookeeper://${await zookeeperConnect()}${root}`,
    options: [],
    async layout(group, topic) {
      const zk = await plain();
      const dir = `${root}/${topic}/${group}`;
      const children = (await call<string[]>((cb) => zk.getChildren(dir, cb))) ?? [];
      const out = new Map<number, number>();
      for (const c of children) {
        const data = await call<Buffer>((cb) => zk.getData(`${dir}/${c}`, (e, d) => cb(e, d)));
        if (data) out.set(Number(c), Number(data.toString('utf8')));
      }
      return out;
    },
    async cleanup() {
      const zk = await plain();
      await removeTree(zk, root);
      zk.close();
    },
  };
}

function checkpointCase(): StoreCase {
  let dir: string | undefined;
  const ensure = async () => (dir ??= await mkdtemp(path.join(tmpdir(), 'sluice-cli-offsets-')));
  return {
    name: 'checkpoint',
    spec: async () => `checkpoint:${await ensure()}`,
    options: [],
    async layout(group, topic) {
      const file = path.join(await ensure(), 'offsets', `${encodeURIComponent(group)}.json`);
      const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) =>
        e.code === 'ENOENT' ? undefined : Promise.reject(e),
      );
      if (text === undefined) return new Map();
      const content = JSON.parse(text) as {
        group: string;
        offsets: { topic: string; partition: number; offset: number }[];
      };
      assert.equal(content.group, group);
      return new Map(content.offsets.filter((o) => o.topic === topic).map((o) => [o.partition, o.offset]));
    },
    async cleanup() {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

function kafkaCase(): StoreCase {
  const topics: string[] = [];
  return {
    name: 'kafka',
    spec: async () => `kafka://${await kafkaBootstrap()}`,
    options: [],
    async prepare(topic) {
      topics.push(topic);
      await createTopic(await kafkaBootstrap(), topic, 3);
    },
    async layout(group, topic) {
      // The group's committed offsets as any Kafka client sees them (-1: none).
      const admin = new Kafka.KafkaJS.Kafka({
        kafkaJS: { brokers: (await kafkaBootstrap()).split(','), logLevel: Kafka.KafkaJS.logLevel.ERROR },
      }).admin();
      await admin.connect();
      try {
        const [found] = await admin.fetchOffsets({ groupId: group, topics: [topic], timeout: 10_000 });
        return new Map(
          (found?.partitions ?? [])
            .filter((p) => Number(p.offset) >= 0)
            .map((p) => [p.partition, Number(p.offset)]),
        );
      } finally {
        await admin.disconnect();
      }
    },
    async cleanup() {
      for (const t of topics) await deleteTopic(await kafkaBootstrap(), t);
    },
  };
}

/** `TOPIC PARTITION OFFSET` rows of `show`'s text output. */
function shownRows(stdout: string): [string, number, number][] {
  return stdout
    .split('\n')
    .map((l) => /^(\S+)\s+(\d+)\s+(\d+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1]!, Number(m[2]), Number(m[3])]);
}

for (const make of [postgresCase, mysqlCase, redisCase, zookeeperCase, checkpointCase, kafkaCase]) {
  const store = make();
  cleanups.push(() => store.cleanup());
  test(`sluice offsets set, show and reset round-trip on ${store.name}, as a plain client sees the store`, async () => {
    const spec = await store.spec();
    const group = uniqueName('job');
    const topic = uniqueName('orders');
    const other = uniqueName('other');
    const base = ['--store', spec, '--group', group, ...store.options];
    await store.prepare?.(topic);

    const set1 = await sluice(['set', ...base, '--offsets', `${topic}:0=42,${topic}:1=17`]);
    assert.equal(set1.exitInfo?.code, 0, set1.output());
    assert.match(set1.stdout, new RegExp(`^set 2 offset\\(s\\) of group ${group} in ${store.name} `));
    assert.match(set1.stdout, new RegExp(`^${topic}\\s+0\\s+-\\s+42$`, 'm'));
    assert.deepEqual(
      await store.layout(group, topic),
      new Map([
        [0, 42],
        [1, 17],
      ]),
    );

    const set2 = await sluice([
      'set',
      ...base,
      '--topic',
      topic,
      '--partition',
      '1',
      '--offset',
      '20',
      '--partition',
      '2',
      '--offset',
      '0',
    ]);
    assert.equal(set2.exitInfo?.code, 0, set2.output());
    assert.match(
      set2.stdout,
      new RegExp(`^${topic}\\s+1\\s+17\\s+20$`, 'm'),
      'prints the offset before and after',
    );
    assert.match(set2.stdout, new RegExp(`^${topic}\\s+2\\s+-\\s+0$`, 'm'));
    assert.deepEqual(
      await store.layout(group, topic),
      new Map([
        [0, 42],
        [1, 20],
        [2, 0],
      ]),
    );

    const show = await sluice(['show', ...base, '--topic', topic]);
    assert.equal(show.exitInfo?.code, 0, show.output());
    assert.deepEqual(shownRows(show.stdout), [
      [topic, 0, 42],
      [topic, 1, 20],
      [topic, 2, 0],
    ]);

    const json = await sluice(['show', ...base, '--topic', `${topic},${other}`, '--json']);
    assert.equal(json.exitInfo?.code, 0, json.output());
    const shown = JSON.parse(json.stdout) as {
      store: { kind: string };
      group: string;
      topics: string[];
      offsets: unknown[];
    };
    assert.equal(shown.store.kind, store.name);
    assert.equal(shown.group, group);
    assert.deepEqual(shown.topics, [topic, other]);
    assert.deepEqual(shown.offsets, [
      { topic, partition: 0, offset: 42 },
      { topic, partition: 1, offset: 20 },
      { topic, partition: 2, offset: 0 },
    ]);

    const reset = await sluice(['reset', ...base, '--topic', topic, '--yes']);
    assert.equal(reset.exitInfo?.code, 0, reset.output());
    assert.match(
      reset.stdout,
      new RegExp(
        `^forgot 3 offset\\(s\\) of group ${group} in ${store.name} .*: ${topic}-0=42, ${topic}-1=20, ${topic}-2=0$`,
        'm',
      ),
    );
    assert.deepEqual(await store.layout(group, topic), new Map());

    const empty = await sluice(['show', ...base, '--topic', topic]);
    assert.equal(empty.exitInfo?.code, 0, empty.output());
    assert.deepEqual(shownRows(empty.stdout), []);
    assert.match(empty.stdout, new RegExp(`^no offsets stored for ${topic}$`, 'm'));
  });
}

describe('store specs', () => {
  test('parse every store kind, with its options from flags or from the spec', () => {
    assert.deepEqual(parseStoreSpec('postgres://app@db:5432/jobs', { table: 'ops.offsets' }), {
      kind: 'postgres',
      url: 'postgres://app@db:5432/jobs',
      table: 'ops.offsets',
    });
    assert.deepEqual(parseStoreSpec('postgresql://app@db/jobs?table=offs&sslmode=disable'), {
      kind: 'postgres',
      url: 'postgresql://app@db/jobs?sslmode=disable',
      table: 'offs',
    });
    assert.deepEqual(parseStoreSpec('mariadb://root@127.0.0.1:3306/test?table=o'), {
      kind: 'mysql',
      url: 'mysql://root@127.0.0.1:3306/test',
      table: 'o',
    });
    assert.deepEqual(parseStoreSpec('redis://127.0.0.1:6379/2?keyPrefix=jobs:'), {
      kind: 'redis',
      url: 'redis://127.0.0.1:6379/2',
      keyPrefix: 'jobs:',
    });
    assert.deepEqual(parseStoreSpec('rediss://h:6380', { keyPrefix: 'p:' }), {
      kind: 'redis',
      url: 'rediss://h:6380',
      keyPrefix: 'p:',
    });
    assert.deepEqual(parseStoreSpec('zookeeper://zk1:2181,zk2:2181/jobs/offsets'), {
      kind: 'zookeeper',
      connectString: 'zk1:2181,zk2:2181',
      root: '/jobs/offsets',
    });
    assert.deepEqual(parseStoreSpec('zk://127.0.0.1:2181'), {
      kind: 'zookeeper',
      connectString: '127.0.0.1:2181',
      root: '/sluice/offsets',
    });
    assert.deepEqual(parseStoreSpec('zookeeper://127.0.0.1:2181', { root: '/x' }), {
      kind: 'zookeeper',
      connectString: '127.0.0.1:2181',
      root: '/x',
    });
    assert.deepEqual(parseStoreSpec('checkpoint:/var/lib/job/ckpt'), {
      kind: 'checkpoint',
      dir: '/var/lib/job/ckpt',
    });
    assert.deepEqual(parseStoreSpec('checkpoint:///var/lib/job/ckpt'), {
      kind: 'checkpoint',
      dir: '/var/lib/job/ckpt',
    });
    assert.deepEqual(parseStoreSpec('checkpoint:rel/dir'), { kind: 'checkpoint', dir: 'rel/dir' });
    assert.deepEqual(parseStoreSpec('kafka://b1:9093,b2'), {
      kind: 'kafka',
      bootstrapServers: 'b1:9093,b2:9092',
    });
  });

  const refused: [string, unknown, Record<string, string>, string, RegExp][] = [
    ['an empty spec', '', {}, 'store', /Accepted: postgres:\/\//],
    ['a spec that is not a string', 42, {}, 'store', /got 42/],
    ['a spec without scheme', '127.0.0.1:6379', {}, 'store', /no scheme/],
    ['an unknown scheme', 'mongodb://h/db', {}, 'store', /unknown scheme mongodb:/],
    [
      '--table with a redis store',
      'redis://h:6379',
      { table: 't' },
      '--table',
      /--table only with postgres:\/\/ or mysql:\/\/ stores, not with a redis store/,
    ],
    [
      '--key-prefix with a postgres store',
      'postgres://h/db',
      { keyPrefix: 'p' },
      '--key-prefix',
      /only with redis:\/\//,
    ],
    [
      '--root with a checkpoint store',
      'checkpoint:/tmp/x',
      { root: '/r' },
      '--root',
      /only with zookeeper:\/\//,
    ],
    [
      '?table= in a redis spec',
      'redis://h:6379?table=t',
      {},
      'store (?table=)',
      /--table only with postgres/,
    ],
    [
      'a table in the spec and another as --table',
      'postgres://h/db?table=a',
      { table: 'b' },
      '--table',
      /not both with different values/,
    ],
    [
      'a zookeeper root in the path and another as --root',
      'zookeeper://h:2181/a',
      { root: '/b' },
      '--root',
      /not both/,
    ],
    ['a relative zookeeper root', 'zookeeper://h:2181', { root: 'x' }, '--root', /absolute ZooKeeper path/],
    ['a zookeeper spec with a user', 'zookeeper://u:pw@h:2181', {}, 'store', /no user or password/],
    [
      'a zookeeper host list with an empty host',
      'zookeeper://h:2181,,g:2181',
      {},
      'store',
      /zookeeper:\/\/host:2181/,
    ],
    ['a postgres URL without host', 'postgres:///db', {}, 'store', /a host is required/],
    ['a redis db that is not a number', 'redis://h:6379/x', {}, 'store', /db is a number/],
    ['an empty checkpoint dir', 'checkpoint:', {}, 'store', /checkpoint:<dir>/],
    ['a kafka spec with a path', 'kafka://127.0.0.1:9092/x', {}, 'store', /without a path/],
    [
      'a kafka spec with a parameter',
      'kafka://127.0.0.1:9092?acks=all',
      {},
      'store',
      /without parameters other than/,
    ],
    [
      '--table with a kafka store',
      'kafka://127.0.0.1:9092',
      { table: 't' },
      '--table',
      /not with a kafka store/,
    ],
  ];
  for (const [what, spec, options, option, message] of refused) {
    test(`refuse ${what} with an InvalidOptionError naming ${option}`, () => {
      assert.throws(
        () => parseStoreSpec(spec, options),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option && message.test(e.message),
      );
    });
  }

  test('keep the password of a spec out of redactSpec, describeStoreSpec and errors, and list it for scrubbing', () => {
    const url = `postgres://app:${SECRET}@db:5432/jobs`;
    assert.equal(redactSpec(url), 'postgres://app:***@db:5432/jobs');
    assert.equal(
      describeStoreSpec(parseStoreSpec(url)),
      'postgres postgres://app:***@db:5432/jobs table sluice_offsets',
    );
    assert.equal(describeStoreSpec(parseStoreSpec(`redis://:${SECRET}@h:6379`)), 'redis redis://:***@h:6379');
    // A password with '@' and ':' in it, percent-encoded or not.
    assert.equal(redactSpec('mysql://u:p@ss:w@h/db'), 'mysql://u:***@h/db');
    assert.deepEqual(specSecrets('mysql://u:p%40ss@h/db').sort(), ['p%40ss', 'p@ss']);
    assert.deepEqual(specSecrets('redis://h:6379'), []);
    for (const [spec, options] of [
      [`mongodb://u:${SECRET}@h/db`, {}],
      [`redis://u:${SECRET}@h:6379`, { table: 't' }],
      [`zookeeper://u:${SECRET}@h:2181`, {}],
      [`kafka://u:${SECRET}@h:9092`, {}],
    ] as const) {
      assert.throws(
        () => parseStoreSpec(spec, options),
        (e: unknown) => e instanceof InvalidOptionError && !e.message.includes(SECRET),
        spec,
      );
    }
  });
});

describe('offsets command functions', () => {
  test('parseAssignments pairs --partition with --offset in order, one --topic for all, and merges --offsets', () => {
    assert.deepEqual(
      parseAssignments({
        topic: ['a'],
        partition: ['0', '1'],
        offset: ['5', '6'],
        offsets: ['b:3=9,b:4=10', 'c:0=0'],
      }),
      [
        { topic: 'a', partition: 0, offset: 5 },
        { topic: 'a', partition: 1, offset: 6 },
        { topic: 'b', partition: 3, offset: 9 },
        { topic: 'b', partition: 4, offset: 10 },
        { topic: 'c', partition: 0, offset: 0 },
      ],
    );
    assert.deepEqual(parseAssignments({ topic: ['a', 'b'], partition: ['0', '0'], offset: ['1', '2'] }), [
      { topic: 'a', partition: 0, offset: 1 },
      { topic: 'b', partition: 0, offset: 2 },
    ]);
    // The same position twice is one assignment.
    assert.deepEqual(parseAssignments({ offsets: ['a:0=1', 'a:0=1'] }), [
      { topic: 'a', partition: 0, offset: 1 },
    ]);
  });

  const badSets: [string, Parameters<typeof parseAssignments>[0], string][] = [
    ['nothing to set', {}, '--offsets'],
    ['more --partition than --offset', { topic: ['a'], partition: ['0', '1'], offset: ['5'] }, '--offset'],
    [
      'two topics for three partitions',
      { topic: ['a', 'b'], partition: ['0', '1', '2'], offset: ['1', '2', '3'] },
      '--topic',
    ],
    ['--topic without --partition', { topic: ['a'] }, '--partition'],
    ['a negative offset', { topic: ['a'], partition: ['0'], offset: ['-1'] }, '--offset'],
    ['an offset beyond 2^53', { offsets: ['a:0=9007199254740993'] }, '--offsets'],
    ['a partition that is not a number', { topic: ['a'], partition: ['x'], offset: ['1'] }, '--partition'],
    ['a malformed --offsets item', { offsets: ['a:0:5'] }, '--offsets'],
    ['a topic name Kafka refuses', { offsets: ['a b:0=5'] }, '--offsets'],
    ['one partition given two offsets', { offsets: ['a:0=1,a:0=2'] }, '--offset'],
  ];
  for (const [what, options, option] of badSets) {
    test(`parseAssignments refuses ${what} (InvalidOptionError on ${option}, exit code 2)`, () => {
      assert.throws(
        () => parseAssignments(options),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option && exitCodeOf(e) === 2,
      );
    });
  }

  test('reset asks first: declined changes nothing (exit 1), confirmed forgets, and nobody to ask without --yes is a usage error', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-cli-reset-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const target = { store: `checkpoint:${dir}`, group: 'job', topic: ['orders'] };
    await setOffsetsCommand({ store: target.store, group: target.group, offsets: ['orders:0=7,orders:1=8'] });

    await assert.rejects(
      resetOffsetsCommand({ ...target, interactive: false }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === '--yes' && /add --yes/.test(e.message),
    );
    const questions: string[] = [];
    const declined = await resetOffsetsCommand({
      ...target,
      interactive: true,
      confirm: async (q) => (questions.push(q), false),
    });
    assert.deepEqual(declined, { exitCode: 1, lines: ['reset declined: nothing was changed'] });
    assert.match(
      questions[0]!,
      /^Forget 2 offset\(s\) of group job in checkpoint .* \(orders-0=7, orders-1=8\)\? .*\[y\/N\] $/,
    );
    assert.equal(
      (await showOffsetsCommand({ ...target, json: true })).lines[0]!.includes('"offset":7'),
      true,
    );

    const confirmed = await resetOffsetsCommand({ ...target, interactive: true, confirm: async () => true });
    assert.equal(confirmed.exitCode, 0);
    assert.match(confirmed.lines[0]!, /^forgot 2 offset\(s\) of group job/);
    const after = JSON.parse((await showOffsetsCommand({ ...target, json: true })).lines[0]!) as {
      offsets: unknown[];
    };
    assert.deepEqual(after.offsets, []);
    // Nothing stored: nothing to ask.
    const nothing = await resetOffsetsCommand({
      ...target,
      interactive: true,
      confirm: async () => assert.fail('asked'),
    });
    assert.match(nothing.lines[0]!, /nothing to reset$/);
  });

  test('a store that cannot be reached is an OffsetStoreAccessError (exit code 1) naming the store without its password', async () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const options = { store: `postgres://app:${SECRET}@127.0.0.1:1/db`, group: 'g', topic: ['t'] };
    const code = await runOffsetsCommand('show', options, () => showOffsetsCommand(options), {
      out: (l) => lines.push(l),
      err: (l) => errors.push(l),
    });
    assert.equal(code, 1);
    assert.deepEqual(lines, []);
    assert.match(
      errors.join('\n'),
      /^sluice offsets show: SLUICE_OFFSET_STORE_ACCESS: The offset store postgres postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/db table sluice_offsets failed: .*ECONNREFUSED/,
    );
    assert.ok(!errors.join('\n').includes(SECRET));
    await assert.rejects(showOffsetsCommand(options), OffsetStoreAccessError);
  });

  test('the store opened from a spec is the adapter the spec names, with its options', async () => {
    const cases: [string, string, Record<string, unknown>][] = [
      ['postgres://u@h/db?table=my_offsets', 'postgres', { table: 'my_offsets' }],
      ['mysql://u@h/db', 'mysql', { table: 'sluice_offsets' }],
      ['zookeeper://127.0.0.1:2181/a/b', 'zookeeper', { connectString: '127.0.0.1:2181', root: '/a/b' }],
      ['checkpoint:/tmp/x', 'checkpoint', { dir: '/tmp/x' }],
      ['kafka://127.0.0.1:9092', 'kafka', { bootstrapServers: '127.0.0.1:9092' }],
    ];
    for (const [spec, kind, described] of cases) {
      const store = createOffsetStore(parseStoreSpec(spec));
      try {
        assert.equal(store.kind, kind);
        for (const [k, v] of Object.entries(described))
          assert.deepEqual(store.describe()[k], v, `${spec}: ${k}`);
      } finally {
        await store.close();
      }
    }
  });
});

describe('sluice offsets usage errors and secrets', () => {
  test('a bad store spec exits with code 2 and says which forms are accepted', async () => {
    const run = await sluice(['show', '--store', 'mongodb://h/db', '--group', 'g', '--topic', 't']);
    assert.equal(run.exitInfo?.code, 2, run.output());
    assert.equal(run.stdout, '');
    assert.match(
      run.stderr,
      /^sluice offsets show: SLUICE_INVALID_OPTION: Invalid option '--store': got "mongodb:\/\/h\/db"\. Accepted: a store spec: postgres:\/\/.*checkpoint:<dir>.*\(unknown scheme mongodb:\)$/m,
    );
  });

  test('missing --store, missing --group, a malformed --offsets and an unknown option all exit with code 2', async () => {
    const noStore = await sluice(['show', '--group', 'g', '--topic', 't'], { SLUICE_OFFSET_STORE: '' });
    assert.equal(noStore.exitInfo?.code, 2, noStore.output());
    assert.match(noStore.stderr, /Invalid option '--store'.*SLUICE_OFFSET_STORE/);
    const noGroup = await sluice(['show', '--store', 'checkpoint:/tmp/none', '--topic', 't']);
    assert.equal(noGroup.exitInfo?.code, 2, noGroup.output());
    assert.match(noGroup.stderr, /Invalid option '--group'/);
    const badOffsets = await sluice([
      'set',
      '--store',
      'checkpoint:/tmp/none',
      '--group',
      'g',
      '--offsets',
      't:0',
    ]);
    assert.equal(badOffsets.exitInfo?.code, 2, badOffsets.output());
    assert.match(
      badOffsets.stderr,
      /Invalid option '--offsets': got "t:0"\. Accepted: topic:partition=offset/,
    );
    const unknown = await sluice(['show', '--bogus']);
    assert.equal(unknown.exitInfo?.code, 2, unknown.output());
    assert.match(unknown.stderr, /unknown option '--bogus'/);
  });

  test('reset without --yes exits with code 2 when stdin is not a terminal, and when CI is set, and keeps the offsets', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-cli-reset-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const base = ['--store', `checkpoint:${dir}`, '--group', 'job'];
    assert.equal((await sluice(['set', ...base, '--offsets', 'orders:0=3'])).exitInfo?.code, 0);
    for (const env of [{}, { CI: 'true' }] as Record<string, string>[]) {
      const run = await sluice(['reset', ...base, '--topic', 'orders'], env);
      assert.equal(run.exitInfo?.code, 2, run.output());
      assert.match(
        run.stderr,
        /Invalid option '--yes'.*nobody can answer here \(CI is set, or stdin is not a terminal\): add --yes/,
      );
    }
    const show = await sluice(['show', ...base, '--topic', 'orders']);
    assert.deepEqual(shownRows(show.stdout), [['orders', 0, 3]]);
  });

  test('a password in the store URL is never printed: not by set/show/reset, not in errors', async () => {
    // PostgreSQL trusts local connections, so the password is sent and ignored: the commands succeed.
    const pgUrl = new URL(await postgresUrl());
    pgUrl.password = SECRET;
    const t = table('cli_secret');
    cleanups.push(async () => {
      const pool = new pg.Pool({ connectionString: await postgresUrl(), max: 1 });
      await pool.query(`DROP TABLE IF EXISTS ${t}`).finally(() => pool.end());
    });
    const base = ['--store', pgUrl.href, '--group', 'g', '--table', t];
    const runs = [
      await sluice(['set', ...base, '--offsets', 'orders:0=1']),
      await sluice(['show', ...base, '--topic', 'orders']),
      await sluice(['show', ...base, '--topic', 'orders', '--json']),
      await sluice(['reset', ...base, '--topic', 'orders', '--yes']),
    ];
    for (const run of runs) assert.equal(run.exitInfo?.code, 0, run.output());
    assert.match(runs[1]!.stdout, /postgres:\/\/postgres:\*\*\*@/);

    // Failures: MariaDB refuses the password, nothing listens on port 1, the spec is malformed.
    const myUrl = new URL(await mysqlUrl());
    myUrl.password = SECRET;
    const failing = [
      await sluice(['show', '--store', myUrl.href, '--group', 'g', '--topic', 't']),
      await sluice(['show', '--store', `redis://:${SECRET}@127.0.0.1:1`, '--group', 'g', '--topic', 't']),
      await sluice([
        'show',
        '--store',
        `mysql://root:${SECRET}@127.0.0.1:3306/test`,
        '--group',
        'g',
        '--topic',
        't',
        '--key-prefix',
        'x',
      ]),
      await sluice(['show', '--store', `mongodb://root:${SECRET}@h/db`, '--group', 'g', '--topic', 't']),
    ];
    assert.deepEqual(
      failing.map((r) => r.exitInfo?.code),
      [1, 1, 2, 2],
      failing.map((r) => r.output()).join('\n'),
    );
    assert.match(
      failing[0]!.stderr,
      /SLUICE_OFFSET_STORE_ACCESS: The offset store mysql mysql:\/\/root:\*\*\*@.*Access denied/,
    );
    for (const run of [...runs, ...failing]) {
      assert.ok(!run.stdout.includes(SECRET) && !run.stderr.includes(SECRET), run.output());
    }
  });

  test('SLUICE_OFFSET_STORE gives the store when --store is absent (a password stays off the command line)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sluice-cli-env-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const env = { SLUICE_OFFSET_STORE: `checkpoint:${dir}` };
    assert.equal((await sluice(['set', '--group', 'g', '--offsets', 'orders:0=11'], env)).exitInfo?.code, 0);
    const show = await sluice(['show', '--group', 'g', '--topic', 'orders'], env);
    assert.deepEqual(shownRows(show.stdout), [['orders', 0, 11]]);
  });
});
