/**
 * The secured test broker (src/services/secure-kafka.ts): SASL_SSL with SCRAM and PLAIN, mutual TLS,
 * StandardAuthorizer with ACLs managed by Kafka's own tools. Clients are `@confluentinc/kafka-javascript`'s
 * node-rdkafka-style Producer / KafkaConsumer / AdminClient with plain librdkafka properties.
 *
 * The shared broker (.sluice/kafka-secure) is started or reused and never stopped here (other test
 * files may use it); the stop/restart test runs its own broker in a temporary directory.
 */
import Kafka from '@confluentinc/kafka-javascript';
import type { LibrdKafkaError, Message } from '@confluentinc/kafka-javascript';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ensureSecureKafka,
  secureKafkaStatus,
  stopSecureKafka,
  type SecureKafkaHandle,
} from '../../src/services/secure-kafka.js';
import {
  addScramUser,
  grantAcls,
  listAcls,
  mtlsClientConfig,
  revokeAcls,
  saslSslClientConfig,
  type AclSpec,
} from '../../src/services/secure-kafka-tools.js';
import { uniqueName } from '../helpers/services.js';

const { AdminClient, Producer, KafkaConsumer, CODES } = Kafka;
const E = CODES.ERRORS;
type Config = Record<string, string>;

// ------------------------------------------------------------------ bounded client helpers

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function createTopic(config: Config, topic: string): Promise<void> {
  const admin = AdminClient.create(config);
  try {
    await bounded(
      new Promise<void>((resolve, reject) =>
        admin.createTopic({ topic, num_partitions: 1, replication_factor: 1 }, 15_000, (e) =>
          e ? reject(e) : resolve(),
        ),
      ),
      30_000,
      `create topic ${topic}`,
    );
  } finally {
    admin.disconnect();
  }
}

/** Produces one record; resolves with its offset, or with the delivery error (e.g. an authorization failure). */
async function produceOne(
  config: Config,
  topic: string,
  value: string,
  extra: Config = {},
): Promise<{ offset: number } | { error: LibrdKafkaError }> {
  const producer = new Producer({ ...config, ...extra, dr_cb: true, 'message.timeout.ms': 15_000 });
  try {
    await bounded(
      new Promise<void>((resolve, reject) =>
        producer.connect({ timeout: 15_000 }, (e) => (e ? reject(e) : resolve())),
      ),
      30_000,
      'producer connect',
    );
    const delivered = new Promise<{ offset: number } | { error: LibrdKafkaError }>((resolve) =>
      producer.once('delivery-report', (e, report) => resolve(e ? { error: e } : { offset: report.offset })),
    );
    producer.setPollInterval(50);
    producer.produce(topic, null, Buffer.from(value));
    return await bounded(delivered, 30_000, `delivery of a record to ${topic}`);
  } finally {
    await new Promise<void>((resolve) => {
      if (!producer.isConnected()) return resolve();
      producer.disconnect(5_000, () => resolve());
    });
  }
}

/** Reads partition 0 of `topic` from offset 0 until `count` records arrived; resolves with their values or the first error. */
async function consumeValues(
  config: Config,
  topic: string,
  group: string,
  count: number,
): Promise<{ values: string[] } | { error: LibrdKafkaError }> {
  const consumer = new KafkaConsumer(
    { ...config, 'group.id': group, 'enable.auto.commit': false },
    { 'auto.offset.reset': 'earliest' },
  );
  try {
    await bounded(
      new Promise<void>((resolve, reject) =>
        consumer.connect({ timeout: 15_000 }, (e) => (e ? reject(e) : resolve())),
      ),
      30_000,
      'consumer connect',
    );
    consumer.assign([{ topic, partition: 0, offset: 0 }]);
    const values: string[] = [];
    const deadline = Date.now() + 30_000;
    while (values.length < count) {
      if (Date.now() > deadline) assert.fail(`only ${values.length} of ${count} records of ${topic} in 30 s`);
      const batch = await new Promise<Message[] | LibrdKafkaError>((resolve) =>
        consumer.consume(10, (e, messages) => resolve(e ?? messages)),
      );
      if (!Array.isArray(batch)) return { error: batch };
      values.push(...batch.map((m) => m.value?.toString() ?? ''));
    }
    return { values };
  } finally {
    await new Promise<void>((resolve) => {
      if (!consumer.isConnected()) return resolve();
      consumer.disconnect(() => resolve());
    });
  }
}

interface ClientEvents {
  /** 'event.error' messages: librdkafka's error string without its "Local: " origin, lower case. */
  errors: string[];
  /** 'event.log' lines (librdkafka's FAIL lines and other warnings). */
  logs: string[];
}

/**
 * Has an admin client built from `config` try to create a topic (3 s per attempt, again until `ms`
 * pass) and records what librdkafka reports until an 'event.error' matches `until`. Short attempts
 * because the binding's disconnect() waits for a pending admin call to end.
 */
async function connectionEvents(config: Config, until: RegExp, ms = 30_000): Promise<ClientEvents> {
  const events: ClientEvents = { errors: [], logs: [] };
  const admin = AdminClient.create(config, {
    'event.error': (e: LibrdKafkaError) => events.errors.push(e.message),
    'event.log': (l: { message: string }) => events.logs.push(l.message),
  });
  try {
    const deadline = Date.now() + ms;
    while (!events.errors.some((e) => until.test(e)) && Date.now() < deadline) {
      await bounded(
        new Promise<void>((resolve) =>
          admin.createTopic(
            { topic: uniqueName('secure-never'), num_partitions: 1, replication_factor: 1 },
            3_000,
            () => resolve(),
          ),
        ),
        15_000,
        'an admin call',
      );
    }
    return events;
  } finally {
    admin.disconnect();
  }
}

/** Retries `attempt` (bounded) while it reports an authorization failure: ACL changes reach the broker a moment after AclCommand returns. */
async function untilAuthorized<T extends object>(attempt: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await attempt();
    const code = 'error' in r ? (r.error as LibrdKafkaError).code : undefined;
    if (code !== E.ERR_TOPIC_AUTHORIZATION_FAILED && code !== E.ERR_GROUP_AUTHORIZATION_FAILED) return r;
    if (Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// ------------------------------------------------------------------ tests

describe('the secured Kafka broker (SASL_SSL, SCRAM and PLAIN, mutual TLS, ACLs)', () => {
  let h: SecureKafkaHandle;
  before(async () => {
    h = await ensureSecureKafka();
  });

  test('ensureSecureKafka called again reuses the running broker and hands out users, mechanisms and TLS files', async () => {
    const again = await ensureSecureKafka();
    assert.equal(again.reused, true);
    assert.equal(again.bootstrapServers, h.bootstrapServers);
    assert.deepEqual(again.users, h.users);
    assert.deepEqual([...again.mechanisms].sort(), ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']);
    assert.deepEqual(Object.keys(again.users).sort(), ['admin', 'alice', 'bob', 'carol']);
    assert.ok(again.superUsers.includes('User:admin'));
    assert.ok(!again.superUsers.includes('User:alice'));
    for (const f of [
      again.tls.caLocation,
      again.tls.clientCertificateLocation,
      again.tls.clientKeyLocation,
      again.tls.truststoreLocation,
      again.adminConfigFile,
    ]) {
      assert.ok(existsSync(f), `${f} exists`);
    }
    const status = await secureKafkaStatus();
    assert.equal(status.answering, true);
  });

  test('a SCRAM-SHA-512 client (admin) over SASL_SSL creates a topic, produces a record and reads it back', async () => {
    const config = saslSslClientConfig(h, 'admin', 'SCRAM-SHA-512');
    const topic = uniqueName('secure-scram');
    await createTopic(config, topic);
    const produced = await produceOne(config, topic, 'over SASL_SSL');
    assert.deepEqual(produced, { offset: 0 });
    assert.deepEqual(await consumeValues(config, topic, uniqueName('secure-scram-g'), 1), {
      values: ['over SASL_SSL'],
    });
  });

  test('a PLAIN client (managed-cloud style SASL_SSL/PLAIN) and a SCRAM-SHA-256 client produce and read back too', async () => {
    const plain = saslSslClientConfig(h, 'admin', 'PLAIN');
    const scram256 = saslSslClientConfig(h, 'admin', 'SCRAM-SHA-256');
    const topic = uniqueName('secure-plain');
    await createTopic(plain, topic);
    assert.deepEqual(await produceOne(plain, topic, 'plain'), { offset: 0 });
    assert.deepEqual(await produceOne(scram256, topic, 'scram-256'), { offset: 1 });
    assert.deepEqual(await consumeValues(plain, topic, uniqueName('secure-plain-g'), 2), {
      values: ['plain', 'scram-256'],
    });
  });

  test('a wrong password is refused with an authentication failure (ERR__AUTHENTICATION), for SCRAM and PLAIN', async () => {
    for (const mechanism of ['SCRAM-SHA-512', 'PLAIN'] as const) {
      const config = saslSslClientConfig(h, { username: 'alice', password: 'not-the-password' }, mechanism);
      const events = await connectionEvents(config, /authentication failure/);
      // librdkafka's ERR__AUTHENTICATION is "Local: Authentication failure"; the binding's event.error
      // keeps only the lower-cased text.
      assert.ok(
        events.errors.includes('authentication failure'),
        `${mechanism}: event.error messages: ${JSON.stringify(events.errors)}`,
      );
      // SCRAM: "... due to invalid credentials with SASL mechanism SCRAM-SHA-512";
      // PLAIN: "Authentication failed: Invalid username or password".
      assert.ok(
        events.logs.some((l) =>
          /SASL authentication error: Authentication failed.*(invalid credentials|Invalid username or password)/.test(
            l,
          ),
        ),
        `${mechanism}: log lines: ${JSON.stringify(events.logs)}`,
      );
    }
  });

  test('a plaintext client on the SASL_SSL port gets no answer: the broker closes the connection', async () => {
    const events = await connectionEvents(
      { 'bootstrap.servers': h.bootstrapServers },
      /all broker connections are down/,
    );
    assert.ok(events.errors.includes('all broker connections are down'), JSON.stringify(events.errors));
    assert.ok(
      events.logs.some((l) => /connection closed by peer|Disconnected/.test(l)),
      JSON.stringify(events.logs),
    );
  });

  test('a client that does not trust the test CA fails the TLS handshake before any SASL exchange', async () => {
    const { 'ssl.ca.location': _ca, ...config } = saslSslClientConfig(h, 'admin');
    const events = await connectionEvents(config, /ssl error/);
    assert.ok(events.errors.includes('ssl error'), JSON.stringify(events.errors));
    assert.ok(
      events.logs.some((l) => l.includes('certificate verify failed')),
      JSON.stringify(events.logs),
    );
  });

  test('an authenticated user without ACLs is denied; grantAcls lets it produce and consume; revokeAcls takes it back', async () => {
    const admin = saslSslClientConfig(h, 'admin');
    const bob = saslSslClientConfig(h, 'bob');
    const prefix = uniqueName('secure-acl');
    const topic = `${prefix}-t`;
    const group = `${prefix}-g`;
    await createTopic(admin, topic);

    const denied = await produceOne(bob, topic, 'denied');
    assert.ok('error' in denied);
    assert.equal(denied.error.code, E.ERR_TOPIC_AUTHORIZATION_FAILED);
    await assert.rejects(createTopic(bob, `${prefix}-other`), (e: LibrdKafkaError) => {
      assert.equal(e.code, E.ERR_TOPIC_AUTHORIZATION_FAILED);
      return true;
    });

    const acls: AclSpec[] = [
      { resourceType: 'topic', name: topic, operations: ['Describe', 'Read', 'Write'] },
      { resourceType: 'group', name: prefix, patternType: 'prefixed', operations: ['Read'] },
    ];
    await grantAcls(h, h.users.bob, acls);
    try {
      assert.deepEqual(await untilAuthorized(() => produceOne(bob, topic, 'allowed')), { offset: 0 });
      assert.deepEqual(await untilAuthorized(() => consumeValues(bob, topic, group, 1)), {
        values: ['allowed'],
      });

      const listed = await listAcls(h, { principal: 'bob' });
      const mine = listed
        .filter((a) => a.name === topic || a.name === prefix)
        .map((a) => `${a.resourceType}:${a.patternType}:${a.name}:${a.operation}:${a.permission}:${a.host}`)
        .sort();
      assert.deepEqual(mine, [
        `GROUP:PREFIXED:${prefix}:READ:ALLOW:*`,
        `TOPIC:LITERAL:${topic}:DESCRIBE:ALLOW:*`,
        `TOPIC:LITERAL:${topic}:READ:ALLOW:*`,
        `TOPIC:LITERAL:${topic}:WRITE:ALLOW:*`,
      ]);
      assert.ok(listed.every((a) => a.principal === 'User:bob'));
    } finally {
      await revokeAcls(h, 'bob', acls);
    }
    const deadline = Date.now() + 15_000;
    let again = await produceOne(bob, topic, 'denied again');
    while ('offset' in again && Date.now() < deadline) again = await produceOne(bob, topic, 'denied again');
    assert.ok('error' in again, 'denied again after revokeAcls');
    assert.equal(again.error.code, E.ERR_TOPIC_AUTHORIZATION_FAILED);
  });

  test('the mTLS listener takes the client certificate as User:sluice-client and refuses a client without one', async () => {
    const withCert = mtlsClientConfig(h);
    assert.equal(h.tls.clientPrincipal, 'User:sluice-client');
    const topic = uniqueName('secure-mtls');
    await createTopic(saslSslClientConfig(h, 'admin'), topic);

    const denied = await produceOne(withCert, topic, 'no acl yet');
    assert.ok('error' in denied, 'authenticated by its certificate, but no ACL yet');
    assert.equal(denied.error.code, E.ERR_TOPIC_AUTHORIZATION_FAILED);

    const acls: AclSpec[] = [{ resourceType: 'topic', name: topic, operations: ['Describe', 'Write'] }];
    await grantAcls(h, h.tls.clientPrincipal, acls);
    try {
      assert.deepEqual(await untilAuthorized(() => produceOne(withCert, topic, 'by certificate')), {
        offset: 0,
      });
    } finally {
      await revokeAcls(h, h.tls.clientPrincipal, acls);
    }

    const { 'ssl.certificate.location': _c, 'ssl.key.location': _k, ...withoutCert } = withCert;
    const events = await connectionEvents(withoutCert, /broker transport failure/);
    assert.ok(
      events.logs.some((l) => l.includes('bad certificate')),
      `the broker rejects the handshake: ${JSON.stringify(events.logs)}`,
    );
  });

  test('a transactional producer (admin) commits over SASL_SSL: the broker reaches itself over the inter-broker listener', async () => {
    const config = saslSslClientConfig(h, 'admin');
    const topic = uniqueName('secure-txn');
    await createTopic(config, topic);
    const producer = new Producer({
      ...config,
      'transactional.id': uniqueName('secure-txn-id'),
      dr_cb: true,
    });
    const call = (
      what: string,
      f: (cb: (e: LibrdKafkaError | null | undefined) => void) => void,
    ): Promise<void> =>
      bounded(new Promise<void>((resolve, reject) => f((e) => (e ? reject(e) : resolve()))), 45_000, what);
    try {
      await call('connect', (cb) => producer.connect({ timeout: 15_000 }, (e) => cb(e)));
      producer.setPollInterval(50);
      await call('initTransactions', (cb) => producer.initTransactions(30_000, cb));
      await call('beginTransaction', (cb) => producer.beginTransaction(cb));
      producer.produce(topic, null, Buffer.from('committed'));
      await call('commitTransaction', (cb) => producer.commitTransaction(30_000, cb));
    } finally {
      await new Promise<void>((resolve) =>
        producer.isConnected() ? producer.disconnect(5_000, () => resolve()) : resolve(),
      );
    }
    assert.deepEqual(
      await consumeValues({ ...config, 'isolation.level': 'read_committed' }, topic, uniqueName('txn-g'), 1),
      { values: ['committed'] },
    );
  });

  test('addScramUser creates a SCRAM user at runtime that authenticates but has no ACLs', async () => {
    const user = await addScramUser(h, uniqueName('dave').replace(/-/g, '_'), undefined, ['SCRAM-SHA-512']);
    const topic = uniqueName('secure-newuser');
    await createTopic(saslSslClientConfig(h, 'admin'), topic);
    const r = await produceOne(saslSslClientConfig(h, user, 'SCRAM-SHA-512'), topic, 'x');
    assert.ok('error' in r);
    assert.equal(
      r.error.code,
      E.ERR_TOPIC_AUTHORIZATION_FAILED,
      'authenticated (else a transport error), not authorized',
    );
  });
});

describe('stopping and restarting a secured broker', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) {
      await stopSecureKafka({ dataDir: d });
      rmSync(d, { recursive: true, force: true });
    }
  });

  test('stopSecureKafka then ensureSecureKafka starts it again with the same users, passwords and ACLs', async () => {
    // Its own broker (temporary data dir): the shared one may be in use by other test files. No
    // ports are given: the shared broker holds the default ones, so this one takes free ports, and
    // keeps them across the restart.
    const shared = await ensureSecureKafka();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sluice-secure-kafka-'));
    dirs.push(dataDir);
    const opts = { dataDir };
    const first = await ensureSecureKafka(opts);
    assert.equal(first.reused, false);
    assert.notEqual(first.bootstrapServers, shared.bootstrapServers);
    const port = Number(first.bootstrapServers.split(':')[1]);
    const topic = uniqueName('secure-restart');
    await createTopic(saslSslClientConfig(first, 'admin'), topic);
    await grantAcls(first, 'carol', [
      { resourceType: 'topic', name: topic, operations: ['Describe', 'Write'] },
    ]);
    assert.deepEqual(
      await untilAuthorized(() => produceOne(saslSslClientConfig(first, 'carol'), topic, 'before')),
      { offset: 0 },
    );

    const stopped = await stopSecureKafka({ dataDir });
    assert.equal(stopped.stopped, true);
    assert.equal((await secureKafkaStatus({ dataDir, port })).answering, false);

    const second = await ensureSecureKafka(opts);
    assert.equal(second.reused, false);
    assert.equal(second.bootstrapServers, first.bootstrapServers);
    assert.deepEqual(second.users, first.users);
    for (const mechanism of ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'] as const) {
      assert.deepEqual(
        await produceOne(saslSslClientConfig(second, 'carol', mechanism), topic, mechanism),
        { offset: ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'].indexOf(mechanism) + 1 },
        `carol with ${mechanism} after the restart`,
      );
    }
  });
});
