import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidOptionError } from '../../src/core/errors.js';
import {
  defaultCluster,
  kafkaCluster,
  librdkafkaConfig,
  readClusterFile,
  resolveCluster,
} from '../../src/kafka/cluster.js';
import { KafkaDirectSource } from '../../src/kafka/direct-source.js';
import { KafkaOffsetStore } from '../../src/kafka/offset-store.js';
import { KafkaSink } from '../../src/kafka/sink.js';
import { KafkaTransactionalStore } from '../../src/kafka/transactions.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sluice-cluster-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn` with the environment variables set (undefined: unset), then restores them. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const SECRET = 'pa55-w0rd-never-shown';

describe('kafkaCluster', () => {
  it('turns SASL with TLS into SASL_SSL librdkafka properties', () => {
    const c = kafkaCluster({
      bootstrapServers: 'b1:9094,b2:9094',
      sasl: { mechanism: 'SCRAM-SHA-512', username: 'etl', password: SECRET },
      tls: { caLocation: '/etc/ca.pem', certificateLocation: '/etc/c.pem', keyLocation: '/etc/c.key' },
    });
    assert.equal(c.bootstrapServers, 'b1:9094,b2:9094');
    assert.deepEqual(c.config, {
      'sasl.mechanisms': 'SCRAM-SHA-512',
      'sasl.username': 'etl',
      'sasl.password': SECRET,
      'ssl.ca.location': '/etc/ca.pem',
      'ssl.certificate.location': '/etc/c.pem',
      'ssl.key.location': '/etc/c.key',
      'security.protocol': 'sasl_ssl',
    });
  });

  it('chooses the protocol from what is given: SASL alone is SASL_PLAINTEXT, TLS alone SSL, neither plaintext', () => {
    const plain = { mechanism: 'PLAIN', username: 'key', password: SECRET } as const;
    assert.equal(kafkaCluster({ sasl: plain }).config['security.protocol'], 'sasl_plaintext');
    assert.equal(kafkaCluster({ tls: true }).config['security.protocol'], 'ssl');
    assert.equal(kafkaCluster({}).config['security.protocol'], undefined);
  });

  it('configures OAUTHBEARER through an OpenID Connect token endpoint', () => {
    const c = kafkaCluster({
      sasl: {
        mechanism: 'OAUTHBEARER',
        tokenEndpointUrl: 'https://idp.example.com/token',
        clientId: 'sluice',
        clientSecret: SECRET,
        scope: 'kafka',
      },
      tls: true,
    });
    assert.equal(c.config['sasl.oauthbearer.method'], 'oidc');
    assert.equal(c.config['sasl.oauthbearer.client.secret'], SECRET);
    assert.equal(c.config['sasl.oauthbearer.scope'], 'kafka');
  });

  it('describes itself with every secret redacted', () => {
    const c = kafkaCluster({
      sasl: { mechanism: 'SCRAM-SHA-256', username: 'etl', password: SECRET },
      tls: { keyLocation: '/k', certificateLocation: '/c', keyPassword: SECRET },
    });
    const text = JSON.stringify(c.describe());
    assert.ok(!text.includes(SECRET), text);
    assert.match(text, /sasl_ssl/);
  });

  it('refuses bad settings with InvalidOptionError naming the setting, never echoing a secret', () => {
    const cases: [unknown, RegExp][] = [
      [{ sasl: { mechanism: 'GSSAPI', username: 'u', password: SECRET } }, /cluster\.sasl\.mechanism/],
      [{ sasl: { mechanism: 'PLAIN', username: 'u', password: '' } }, /cluster\.sasl\.password/],
      [
        { sasl: { mechanism: 'PLAIN', username: 'u', password: SECRET }, tls: { keyLocation: '/k' } },
        /cluster\.tls/,
      ],
      [{ bootstrapServers: 'no-port' }, /bootstrapServers/],
      [{ config: { 'group.id': SECRET } }, /group\.id/],
      [{ passwd: SECRET }, /cluster\.passwd/],
    ];
    for (const [options, name] of cases) {
      assert.throws(
        () => kafkaCluster(options as never),
        (e: unknown) =>
          e instanceof InvalidOptionError && name.test(e.message) && !e.message.includes(SECRET),
        JSON.stringify(name.source),
      );
    }
  });

  it('puts the cluster’s properties under the caller’s and the address and the client’s own over both', () => {
    const c = kafkaCluster({ bootstrapServers: 'b:1', config: { 'socket.keepalive.enable': true } });
    const cfg = librdkafkaConfig(
      c,
      { 'client.id': 'x', 'socket.keepalive.enable': false },
      { 'client.id': 'mine' },
      { 'group.id': 'g' },
    );
    assert.deepEqual(cfg, {
      'client.id': 'mine',
      'socket.keepalive.enable': true,
      'bootstrap.servers': 'b:1',
      'group.id': 'g',
    });
  });
});

describe('the process’s default cluster', () => {
  it('reads the librdkafka properties of the file SLUICE_KAFKA_CONFIG names, comments and blank lines skipped', () => {
    const file = path.join(dir, 'client.properties');
    writeFileSync(
      file,
      [
        '# a comment',
        'bootstrap.servers=from-file:9094',
        '',
        'security.protocol=SASL_SSL',
        'sasl.mechanisms = SCRAM-SHA-512',
        `sasl.password=${SECRET}`,
        '! also a comment',
      ].join('\n'),
    );
    const c = withEnv({ SLUICE_KAFKA_CONFIG: file, KAFKA_BOOTSTRAP: undefined }, () => defaultCluster());
    assert.equal(c.bootstrapServers, 'from-file:9094');
    assert.deepEqual(c.config, {
      'security.protocol': 'SASL_SSL',
      'sasl.mechanisms': 'SCRAM-SHA-512',
      'sasl.password': SECRET,
    });
    // KAFKA_BOOTSTRAP, then a client's own address, win over the file's.
    assert.equal(
      withEnv({ SLUICE_KAFKA_CONFIG: file, KAFKA_BOOTSTRAP: 'env:1' }, () => defaultCluster())
        .bootstrapServers,
      'env:1',
    );
    assert.equal(
      withEnv({ SLUICE_KAFKA_CONFIG: file }, () => defaultCluster('mine:2')).bootstrapServers,
      'mine:2',
    );
  });

  it('gives every Kafka client its settings: source, sink, offset store, transactional store', () => {
    const file = path.join(dir, 'every.properties');
    writeFileSync(
      file,
      `security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\nsasl.username=u\nsasl.password=${SECRET}\n`,
    );
    withEnv({ SLUICE_KAFKA_CONFIG: file, KAFKA_BOOTSTRAP: 'secure:9094' }, () => {
      const clients = [
        new KafkaDirectSource({ topics: ['t'] }).cluster,
        new KafkaSink({ topic: 't' }).cluster,
        (new KafkaOffsetStore() as unknown as { cluster: { config: object } }).cluster,
        (new KafkaTransactionalStore() as unknown as { cluster: { config: object } }).cluster,
      ];
      for (const c of clients) {
        assert.equal((c.config as Record<string, unknown>)['sasl.password'], SECRET);
      }
      for (const d of [
        new KafkaDirectSource({ topics: ['t'] }).describe(),
        new KafkaSink({ topic: 't' }).describe(),
        new KafkaTransactionalStore().describe(),
      ]) {
        assert.ok(!JSON.stringify(d).includes(SECRET), JSON.stringify(d));
        assert.equal((d as { bootstrapServers: string }).bootstrapServers, 'secure:9094');
      }
    });
  });

  it('refuses a missing file and a line that is not key=value, without showing the line', () => {
    assert.throws(() => readClusterFile(path.join(dir, 'missing.properties')), /SLUICE_KAFKA_CONFIG.*ENOENT/);
    const file = path.join(dir, 'bad.properties');
    writeFileSync(file, `sasl.password ${SECRET}\n`);
    assert.throws(
      () => readClusterFile(file),
      (e: unknown) =>
        e instanceof InvalidOptionError && /line 1/.test(e.message) && !e.message.includes(SECRET),
    );
  });

  it('a client given a cluster takes its address from it and refuses a second address', () => {
    const c = kafkaCluster({ bootstrapServers: 'c:1' });
    assert.equal(resolveCluster({ cluster: c }), c);
    assert.equal(resolveCluster({ cluster: { bootstrapServers: 'd:2' } }).bootstrapServers, 'd:2');
    assert.throws(() => resolveCluster({ cluster: c, bootstrapServers: 'e:3' }), /bootstrapServers/);
    assert.throws(
      () => new KafkaSink({ topic: 't', cluster: c, bootstrapServers: 'e:3' }),
      /bootstrapServers/,
    );
  });
});
