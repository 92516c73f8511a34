import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KafkaAdmin } from '../../src/kafka/admin.js';
import { kafkaCluster } from '../../src/kafka/cluster.js';
import { KafkaOffsetStore } from '../../src/kafka/offset-store.js';
import { ensureSecureKafka, type SecureKafkaHandle } from '../../src/services/secure-kafka.js';
import { ChildRun } from '../examples/child-process.js';
import { uniqueName } from '../helpers/services.js';

// The CLI on a secured cluster: the security settings come from a file (--kafka-config or env
// SLUICE_KAFKA_CONFIG), never from the command line, and a refused login is its own error.

let h: SecureKafkaHandle;
const dir = mkdtempSync(path.join(tmpdir(), 'sluice-cli-secured-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A properties file with `user`'s SCRAM-SHA-512 login over SASL_SSL (password given or the user's). */
function propertiesFile(user: 'admin' | 'alice', password = h.users[user].password): string {
  const file = path.join(dir, `${uniqueName(user)}.properties`);
  writeFileSync(
    file,
    [
      'security.protocol=SASL_SSL',
      'sasl.mechanisms=SCRAM-SHA-512',
      `sasl.username=${h.users[user].username}`,
      `sasl.password=${password}`,
      `ssl.ca.location=${h.tls.caLocation}`,
    ].join('\n'),
    { mode: 0o600 },
  );
  return file;
}

async function sluice(args: string[], env: Record<string, string> = {}): Promise<ChildRun> {
  const run = ChildRun.sluice(args, { SLUICE_LOG_LEVEL: 'warn', ...env });
  await run.waitForExit(90_000);
  return run;
}

describe('the CLI on a SASL_SSL cluster', () => {
  const topic = uniqueName('cli-secured');
  const group = uniqueName('cli-secured-g');

  before(async () => {
    h = await ensureSecureKafka();
    const admin = kafkaCluster({
      bootstrapServers: h.bootstrapServers,
      sasl: { mechanism: 'SCRAM-SHA-512', username: 'admin', password: h.users.admin.password },
      tls: { caLocation: h.tls.caLocation },
    });
    const kafkaAdmin = KafkaAdmin.create(admin);
    try {
      await kafkaAdmin.ensureTopics([topic], { partitions: 2 });
    } finally {
      kafkaAdmin.close();
    }
    const store = new KafkaOffsetStore({ cluster: admin });
    try {
      await store.set(group, [
        { topic, partition: 0, offset: 7 },
        { topic, partition: 1, offset: 3 },
      ]);
    } finally {
      await store.close();
    }
  });

  test('kafka status --bootstrap logs in with the settings of --kafka-config and says the cluster runs', async () => {
    const run = await sluice([
      '--kafka-config',
      propertiesFile('admin'),
      'kafka',
      'status',
      '--bootstrap',
      h.bootstrapServers,
    ]);
    assert.equal(run.exitInfo?.code, 0, run.output());
    assert.match(run.stdout, new RegExp(`kafka: running at ${h.bootstrapServers} \\(SASL_SSL; \\d+ topic`));
  });

  test('kafka status with a wrong password fails with SLUICE_KAFKA_AUTH_FAILED naming the user, never the password', async () => {
    const wrong = `wrong-${uniqueName('pw')}`;
    const run = await sluice(['kafka', 'status', '--bootstrap', h.bootstrapServers], {
      SLUICE_KAFKA_CONFIG: propertiesFile('admin', wrong),
    });
    assert.equal(run.exitInfo?.code, 1, run.output());
    assert.match(run.stderr, /SLUICE_KAFKA_AUTH_FAILED/);
    assert.match(run.stderr, /'admin'/);
    assert.ok(!run.output().includes(wrong), run.output());
  });

  test('offsets show --store kafka://… reads the group’s commits with the settings of SLUICE_KAFKA_CONFIG', async () => {
    const run = await sluice(
      ['offsets', 'show', '--store', `kafka://${h.bootstrapServers}`, '--group', group, '--topic', topic],
      { SLUICE_KAFKA_CONFIG: propertiesFile('admin') },
    );
    assert.equal(run.exitInfo?.code, 0, run.output());
    assert.match(run.stdout, new RegExp(`${topic}\\s+0\\s+7`));
    assert.match(run.stdout, new RegExp(`${topic}\\s+1\\s+3`));
    assert.ok(!run.output().includes(h.users.admin.password));
  });

  test('group status reads the group with the settings of SLUICE_KAFKA_CONFIG: no members (exit code 3), its committed offsets', async () => {
    const run = await sluice(['group', 'status', group, '--bootstrap', h.bootstrapServers], {
      SLUICE_KAFKA_CONFIG: propertiesFile('admin'),
    });
    assert.equal(run.exitInfo?.code, 3, run.output());
    assert.match(run.stdout, new RegExp(`^group ${group}: empty, 0 member\\(s\\)`));
    assert.match(run.stdout, new RegExp(`^${topic}\\s+0\\s+-\\s+7\\s`, 'm'));
    assert.match(run.stdout, new RegExp(`^${topic}\\s+1\\s+-\\s+3\\s`, 'm'));
  });

  test('group status as a principal that may not describe the group fails with SLUICE_KAFKA_NOT_AUTHORIZED instead of crashing', async () => {
    const run = await sluice(['group', 'status', group, '--bootstrap', h.bootstrapServers], {
      SLUICE_KAFKA_CONFIG: propertiesFile('alice'),
    });
    assert.deepEqual(run.exitInfo, { code: 1, signal: null }, run.output());
    assert.match(run.stderr, /^sluice group status: SLUICE_KAFKA_NOT_AUTHORIZED: .*User:alice/m);
    assert.match(run.stderr, new RegExp(`Describe.*group.*${group}`));
    assert.ok(!run.output().includes(h.users.alice.password));
  });

  test('offsets show as a principal without ACLs fails with SLUICE_KAFKA_NOT_AUTHORIZED naming what is missing', async () => {
    const run = await sluice(
      ['offsets', 'show', '--store', `kafka://${h.bootstrapServers}`, '--group', group, '--topic', topic],
      { SLUICE_KAFKA_CONFIG: propertiesFile('alice') },
    );
    assert.equal(run.exitInfo?.code, 1, run.output());
    assert.match(run.stderr, /SLUICE_KAFKA_NOT_AUTHORIZED/);
    assert.match(run.stderr, /User:alice/);
    assert.ok(!run.output().includes(h.users.alice.password));
  });
});
