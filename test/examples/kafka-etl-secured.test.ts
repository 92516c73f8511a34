import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AccessLogError, accessLogEtl, sampleAccessLogLine } from '../../examples/lib/access-log.js';
import { KafkaAdmin } from '../../src/kafka/admin.js';
import { kafkaCluster, type KafkaCluster } from '../../src/kafka/cluster.js';
import { KafkaTextProducer } from '../../src/kafka/producer.js';
import {
  ensureSecureKafka,
  type SecureKafkaHandle,
  type SecureKafkaUser,
} from '../../src/services/secure-kafka.js';
import { addScramUser, grantAcls } from '../../src/services/secure-kafka-tools.js';
import { uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from './child-process.js';
import { parseEtlBatches, total } from './etl-output.js';

// The case 7 ETL, unchanged, against a secured cluster (SASL_SSL, SCRAM-SHA-512, ACLs): the
// credentials are given once, in the file SLUICE_KAFKA_CONFIG names, and every Kafka client of the
// job (source, sinks, dead letters, the transactional store) uses them. The principal has exactly
// the ACLs README lists for the Kafka-transactions mode.

const { runs, cleanups } = afterTests();
const etl = accessLogEtl({ timeZone: 'UTC' });
const line = (i: number) => sampleAccessLogLine(i, i % 5 === 4 ? 'fields-14' : undefined);

function adminCluster(h: SecureKafkaHandle): KafkaCluster {
  return kafkaCluster({
    bootstrapServers: h.bootstrapServers,
    sasl: { mechanism: 'SCRAM-SHA-512', username: h.users.admin.username, password: h.users.admin.password },
    tls: { caLocation: h.tls.caLocation },
  });
}

/** The ACLs of an exactly-once Kafka-to-Kafka job (README, "Secured clusters"). */
async function grantEtlAcls(
  h: SecureKafkaHandle,
  user: SecureKafkaUser,
  n: { input: string; output: string; dlq: string; pipeline: string },
): Promise<void> {
  await grantAcls(h, user, [
    { resourceType: 'topic', name: n.input, operations: ['Read', 'Describe'] },
    { resourceType: 'topic', name: n.output, operations: ['Write', 'Describe'] },
    { resourceType: 'topic', name: n.dlq, operations: ['Write', 'Describe'] },
    { resourceType: 'group', name: n.pipeline, operations: ['Read', 'Describe'] },
    { resourceType: 'transactional-id', name: `sluice-${n.pipeline}`, operations: ['Write', 'Describe'] },
  ]);
}

/** Reads a topic with kcat (not Sluice) as admin over SASL_SSL/PLAIN, read_committed. */
function kcatValues(h: SecureKafkaHandle, topic: string): Promise<string[]> {
  const x = (k: string, v: string) => ['-X', `${k}=${v}`];
  return new Promise((resolve, reject) => {
    execFile(
      'kcat',
      [
        '-C',
        '-b',
        h.bootstrapServers,
        '-t',
        topic,
        ...x('security.protocol', 'SASL_SSL'),
        // Debian's kcat (librdkafka 2.0) cannot do SCRAM against Kafka 4: PLAIN, as the broker allows.
        ...x('sasl.mechanisms', 'PLAIN'),
        ...x('sasl.username', h.users.admin.username),
        ...x('sasl.password', h.users.admin.password),
        ...x('ssl.ca.location', h.tls.caLocation),
        ...x('isolation.level', 'read_committed'),
        '-o',
        'beginning',
        '-e',
        '-q',
        '-f',
        '%s\\n',
      ],
      { timeout: 60_000, maxBuffer: 16 * 2 ** 20 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`kcat ${topic}: ${err.message}\n${stderr}`))
          : resolve(stdout.split('\n').filter(Boolean)),
    );
  });
}

test('kafka-etl example on a SASL_SSL cluster with ACLs: credentials given once in SLUICE_KAFKA_CONFIG, every good line exactly once in the output, every malformed one in the dead letters, no secret in its output', async () => {
  const h = await ensureSecureKafka();
  const base = uniqueName('secured-etl');
  const n = { input: `${base}-in`, output: `${base}-out`, dlq: `${base}-dlq`, pipeline: base };
  const admin = adminCluster(h);
  const kafkaAdmin = KafkaAdmin.create(admin);
  try {
    await kafkaAdmin.createTopics([n.input, n.output, n.dlq], { partitions: 3 });
    await kafkaAdmin.ensureTopics([n.input, n.output, n.dlq]);
  } finally {
    kafkaAdmin.close();
  }
  const producer = await KafkaTextProducer.connect({ cluster: admin });
  const lines = Array.from({ length: 300 }, (_, i) => line(i));
  try {
    await producer.send(
      n.input,
      lines.map((value, i) => ({ value, partition: i % 3 })),
    );
  } finally {
    await producer.close();
  }
  const user = await addScramUser(h, base.replace(/[^A-Za-z0-9._-]/g, '_'), undefined, ['SCRAM-SHA-512']);
  await grantEtlAcls(h, user, n);

  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-secured-etl-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'kafka.properties');
  writeFileSync(
    config,
    [
      '# The job’s one place for the cluster’s security',
      'security.protocol=SASL_SSL',
      'sasl.mechanisms=SCRAM-SHA-512',
      `sasl.username=${user.username}`,
      `sasl.password=${user.password}`,
      `ssl.ca.location=${h.tls.caLocation}`,
    ].join('\n'),
    { mode: 0o600 },
  );

  const run = ChildRun.sluice(['run', 'examples/kafka-etl.ts'], {
    KAFKA_BOOTSTRAP: h.bootstrapServers,
    SLUICE_KAFKA_CONFIG: config,
    ETL_INPUT_TOPIC: n.input,
    ETL_OUTPUT_TOPIC: n.output,
    ETL_DEAD_LETTER_TOPIC: n.dlq,
    ETL_TIME_ZONE: 'UTC',
    PIPELINE_ID: n.pipeline,
    BATCH_INTERVAL_MS: '500',
    SLUICE_LOG_LEVEL: 'debug',
  });
  runs.push(run);
  await run.waitFor((out) => total(parseEtlBatches(out), 'in') >= 300, 'all 300 lines', 120_000);
  const exit = await run.stop('SIGINT', 30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());

  const good: string[] = [];
  const bad: string[] = [];
  for (const l of lines) {
    try {
      good.push(etl(l));
    } catch (e) {
      assert.ok(e instanceof AccessLogError);
      bad.push(l);
    }
  }
  const [out, dead] = [await kcatValues(h, n.output), await kcatValues(h, n.dlq)];
  assert.deepEqual([...out].sort(), [...good].sort(), 'every good line exactly once');
  assert.deepEqual([...dead].sort(), [...bad].sort(), 'every malformed line in the dead letters');
  const printed = run.output();
  for (const secret of [user.password, h.users.admin.password]) {
    assert.ok(!printed.includes(secret), 'no password in what the job printed (debug logs included)');
  }
});
