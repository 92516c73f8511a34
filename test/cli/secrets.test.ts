/**
 * The secret search: real `sluice` processes are given secrets wherever they take them (store specs
 * in the user info and the query string, from --store and from SLUICE_OFFSET_STORE; librdkafka
 * configs of a Kafka source and sink with a SASL password, TLS key and keystore passwords and an
 * OAUTHBEARER config with a client secret), run against the real broker and databases at trace
 * level, and everything they produce — stdout and stderr of `run`, `describe`, `describe --json`,
 * `offsets show`, `checkpoint inspect`, and the checkpoint files — is searched for every secret value.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ChildRun, afterTests } from '../examples/child-process.js';
import { deleteTopic } from '../helpers/kafka.js';
import { kafkaBootstrap, postgresUrl, redisUrl, uniqueName } from '../helpers/services.js';

const { runs, cleanups, tempDir } = afterTests();

/** A secret value no output could contain by chance. */
const secret = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;
const SECRETS = {
  redisPassword: secret('redispw'),
  postgresPassword: secret('pgpw'),
  sslPassword: secret('sslpw'),
  saslPassword: secret('saslpw'),
  sslKeyPassword: secret('keypw'),
  keystorePassword: secret('kspw'),
  oauthClientSecret: secret('oauth'),
  queryPassword: secret('qpw'),
  queryToken: secret('qtoken'),
  apiKey: secret('apikey'),
  slashPassword: secret('slashpw'),
};

function assertNoSecret(where: string, text: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(value), `${where} prints the secret ${name} (${value}):\n${text}`);
  }
}

async function sluice(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<ChildRun> {
  const run = ChildRun.sluice(args, env);
  runs.push(run);
  await run.waitForExit(timeoutMs);
  return run;
}

function assertClean(what: string, run: ChildRun): void {
  assertNoSecret(`${what} (stdout)`, run.stdout);
  assertNoSecret(`${what} (stderr)`, run.stderr);
}

/** Every file under `dir`, with its content. */
async function filesUnder(dir: string): Promise<{ file: string; content: string }[]> {
  const out: { file: string; content: string }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.push({ file, content: await readFile(file, 'utf8') });
  }
  return out;
}

const FIXTURE = 'test/cli/fixtures/secret-pipeline.ts';

async function pipelineEnv(extra: Record<string, string>): Promise<Record<string, string>> {
  const topic = uniqueName('secrets');
  const bootstrap = await kafkaBootstrap();
  cleanups.push(() => deleteTopic(bootstrap, topic));
  return {
    KAFKA_BOOTSTRAP: bootstrap,
    SOURCE_TOPIC: topic,
    SINK_TOPIC: topic, // the source reads back what the sink wrote: records go through print()
    PIPELINE_ID: uniqueName('secret-pipeline'),
    SECRETS: JSON.stringify({
      sasl: SECRETS.saslPassword,
      sslKey: SECRETS.sslKeyPassword,
      keystore: SECRETS.keystorePassword,
      oauth: SECRETS.oauthClientSecret,
    }),
    SLUICE_LOG_LEVEL: 'trace',
    ...extra,
  };
}

test('sluice run at trace level with secrets in store specs and librdkafka configs prints none of them, and its checkpoint holds none', async () => {
  const redis = new URL(await redisUrl());
  redis.password = SECRETS.redisPassword;
  redis.search = `keyPrefix=${uniqueName('secrets')}:`;
  const postgres = new URL(await postgresUrl());
  postgres.password = SECRETS.postgresPassword;
  postgres.search = `sslpassword=${SECRETS.sslPassword}&table=${uniqueName('secret_offsets').replace(/-/g, '_')}`;
  const checkpointDir = await tempDir('sluice-secrets-');

  for (const [what, extra] of [
    ['redis offset store', { SECRET_STORE: redis.href }],
    ['postgres offset store', { SECRET_STORE: postgres.href }],
    ['checkpoint with state', { CHECKPOINT_DIR: checkpointDir }],
  ] as const) {
    const run = await sluice(['run', FIXTURE], await pipelineEnv(extra));
    assert.equal(run.exitInfo?.code, 0, `${what}\n${run.output()}`);
    assert.match(run.stdout, /^(\(ping,\d+\)|ping)$/m, `${what}: records went through Kafka and print()`);
    assert.match(run.stderr, /"consumerConfig":\{[^}]*"sasl\.password":"\[redacted\]"/, what);
    assertClean(`sluice run with a ${what}`, run);
  }

  const files = await filesUnder(checkpointDir);
  assert.ok(
    files.some((f) => f.file.endsWith('manifest.json')),
    'the run wrote a checkpoint',
  );
  for (const { file, content } of files) assertNoSecret(file, content);
  for (const args of [
    ['inspect', checkpointDir],
    ['inspect', checkpointDir, '--json'],
  ]) {
    const inspect = await sluice(['checkpoint', ...args]);
    assert.equal(inspect.exitInfo?.code, 0, inspect.output());
    assertClean(`sluice checkpoint ${args.join(' ')}`, inspect);
  }
});

test('sluice describe and describe --json show every secret librdkafka key as [redacted] and none of the values', async () => {
  const env = await pipelineEnv({});
  const text = await sluice(['describe', FIXTURE], env);
  const json = await sluice(['describe', FIXTURE, '--json'], env);
  for (const run of [text, json]) assert.equal(run.exitInfo?.code, 0, run.output());
  assertClean('sluice describe', text);
  assertClean('sluice describe --json', json);
  const plan = JSON.parse(json.stdout) as { nodes: { name: string; options: Record<string, unknown> }[] };
  const secretKeys = {
    'security.protocol': 'plaintext',
    'sasl.username': '[redacted]',
    'sasl.password': '[redacted]',
    'ssl.key.password': '[redacted]',
    'ssl.keystore.password': '[redacted]',
    'sasl.oauthbearer.config': '[redacted]',
  };
  assert.deepEqual(plan.nodes.find((n) => n.name === 'records')?.options.consumerConfig, secretKeys);
  assert.deepEqual(plan.nodes.find((n) => n.name === 'to-kafka')?.options.producerConfig, secretKeys);
});

test('sluice offsets show prints no secret of a store spec, in the user info or the query string, from --store or SLUICE_OFFSET_STORE, whether the store fails or the spec is refused', async () => {
  const S = SECRETS;
  const cases: [spec: string, exitCode: number][] = [
    // Nothing listens on port 1: the store fails (exit 1) and its error names it.
    [`postgres://postgres:${S.postgresPassword}@127.0.0.1:1/test?sslpassword=${S.sslPassword}`, 1],
    [`redis://:${S.redisPassword}@127.0.0.1:1/0?password=${S.queryPassword}`, 1],
    // Refused specs (exit 2), each echoed in the error.
    [
      `kafka://127.0.0.1:9092?sasl.password=${S.queryPassword}&sasl.oauthbearer.config=${S.oauthClientSecret}`,
      2,
    ],
    [`zookeeper://u:${S.redisPassword}@127.0.0.1:2181?token=${S.queryToken}`, 2],
    [`mongodb://u:${S.postgresPassword}@h/db?authSource=admin&apiKey=${S.apiKey}`, 2],
    [`postgres://u:${S.slashPassword}/x@127.0.0.1/db?password=${S.queryPassword}`, 2],
    [`postgres://u:${S.postgresPassword}@/db?access_token=${S.queryToken}`, 2],
    [`redis://u:${S.redisPassword}@127.0.0.1:6379/x?api-key=${S.apiKey}`, 2],
  ];
  const group = ['--group', 'g', '--topic', 't'];
  for (const [spec, exitCode] of cases) {
    for (const json of [[], ['--json']]) {
      const given = await sluice(['offsets', 'show', '--store', spec, ...group, ...json]);
      const fromEnv = await sluice(['offsets', 'show', ...group, ...json], { SLUICE_OFFSET_STORE: spec });
      for (const run of [given, fromEnv]) {
        assert.equal(run.exitInfo?.code, exitCode, `${spec}\n${run.output()}`);
        assert.match(run.stderr, /^sluice offsets show: SLUICE_[A-Z_]+: /, run.output());
        // A refused spec is echoed, redacted.
        if (exitCode === 2) assert.match(run.stderr, /Invalid option '--store': got ".*\*\*\*/, run.output());
        assertClean(`sluice offsets show ${spec}`, run);
      }
    }
  }
});
