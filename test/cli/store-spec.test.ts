import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CheckpointDirectory } from '../../src/checkpoint/directory.js';
import { USAGE_EXIT_CODE, runOffsetsCommand, showOffsetsCommand } from '../../src/cli/offsets.js';
import {
  describeStoreSpec,
  offsetStoreFromSpec,
  parseStoreSpec,
  redactSpec,
  specSecrets,
  type StoreSpecOptions,
} from '../../src/cli/store-spec.js';
import { InvalidOptionError } from '../../src/core/errors.js';

describe('checkpoint:<dir> store specs', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tmp = async () => {
    const d = await mkdtemp(path.join(os.tmpdir(), 'sluice-spec-'));
    dirs.push(d);
    return d;
  };

  it("opens a stateful pipeline's checkpoint directory, so offsets shown are the ones it resumes from", async () => {
    const dir = await tmp();
    const cp = new CheckpointDirectory({ dir });
    const meta = { pipelineId: 'p', fingerprint: 'f', operators: [], batchTime: 1000 };
    await cp.commitBatch('g', [{ topic: 't', partition: 0, fromOffset: 0, untilOffset: 7 }], meta, {
      full: new Map(),
      deltas: new Map(),
    });
    await cp.close();
    const store = offsetStoreFromSpec(`checkpoint:${dir}`);
    assert.equal(store.kind, 'checkpoint-dir');
    assert.deepEqual(await store.read('g', ['t']), [{ topic: 't', partition: 0, offset: 7 }]);
    await store.close();
  });

  it('opens the offsets-only layout for a directory without a manifest', async () => {
    const store = offsetStoreFromSpec(`checkpoint:${await tmp()}`);
    assert.equal(store.kind, 'checkpoint');
    await store.close();
  });
});

describe('secrets in store specs', () => {
  const PW = 'pw-S3cr3t';
  const Q = 'q-S3cr3t';
  const secretsOf = (text: string) => [PW, Q].filter((s) => text.includes(s));

  it('redactSpec hides the user-info password and every secret query parameter of every kind of spec, keeping the rest as written', () => {
    const cases: [string, string][] = [
      [
        `postgres://app:${PW}@db:5432/jobs?sslpassword=${Q}&sslmode=require&table=t`,
        'postgres://app:***@db:5432/jobs?sslpassword=***&sslmode=require&table=t',
      ],
      [`postgresql://app@db/jobs?password=${Q}`, 'postgresql://app@db/jobs?password=***'],
      [`mysql://root:${PW}@db:3306/test?ssl-key=${Q}`, 'mysql://root:***@db:3306/test?ssl-key=***'],
      [`mariadb://root:${PW}@db/test`, 'mariadb://root:***@db/test'],
      [
        `redis://:${PW}@h:6379/0?keyPrefix=jobs:&token=${Q}`,
        'redis://:***@h:6379/0?keyPrefix=jobs:&token=***',
      ],
      [`rediss://u:${PW}@h:6380?key-prefix=p&apiKey=${Q}`, 'rediss://u:***@h:6380?key-prefix=p&apiKey=***'],
      [`zookeeper://u:${PW}@a:2181,b:2181/root?auth=${Q}`, 'zookeeper://u:***@a:2181,b:2181/root?auth=***'],
      [`zk://a:2181?digest-secret=${Q}`, 'zk://a:2181?digest-secret=***'],
      [
        `kafka://a:9092,b:9092?sasl.password=${Q}&sasl.mechanism=PLAIN`,
        'kafka://a:9092,b:9092?sasl.password=***&sasl.mechanism=PLAIN',
      ],
      [`kafka://h:9092?sasl.oauthbearer.config=${Q}`, 'kafka://h:9092?sasl.oauthbearer.config=***'],
      [
        `kafka://h:9092?ssl.key.password=${Q}&ssl.keystore.password=${Q}`,
        'kafka://h:9092?ssl.key.password=***&ssl.keystore.password=***',
      ],
      [`mongodb://u:${PW}@h/db?authSource=admin&x=${Q}`, 'mongodb://u:***@h/db?authSource=***&x=' + Q],
      // A password with characters that end a URL's authority: the loose reading hides all of it.
      [`postgres://u:${PW}/x@h/db`, 'postgres://u:***@h/db'],
      [`postgres://u:12?${PW}@h/db`, 'postgres://u:***@h/db'],
      [`postgres://u:12#${PW}@h/db`, 'postgres://u:***@h/db'],
      [`mysql://u:p@${PW}:w@h/db`, 'mysql://u:***@h/db'],
      // Percent-encoded parameter names and `;` separators count too.
      [`postgres://h/db?pass%77ord=${Q}`, 'postgres://h/db?pass%77ord=***'],
      [`postgres://h/db?a=1;password=${Q}`, 'postgres://h/db?a=1;password=***'],
      // No scheme: `user:pass@host`.
      [`u:${PW}@h:5432/db`, 'u:***@h:5432/db'],
      // Nothing secret: returned exactly as given.
      ['redis://h:6379/0?x=a@b&keyPrefix=k', 'redis://h:6379/0?x=a@b&keyPrefix=k'],
      ['checkpoint:/var/lib/job:1@ckpt', 'checkpoint:/var/lib/job:1@ckpt'],
    ];
    for (const [spec, redacted] of cases) assert.equal(redactSpec(spec), redacted, spec);
  });

  it('describeStoreSpec shows no secret of a spec with secrets in the user info and the query string', () => {
    const specs = [
      `postgres://app:${PW}@db:5432/jobs?sslpassword=${Q}&table=t`,
      `mysql://root:${PW}@db/test?password=${Q}`,
      `redis://:${PW}@h:6379/2?keyPrefix=p&password=${Q}`,
    ];
    for (const spec of specs) {
      const described = describeStoreSpec(parseStoreSpec(spec));
      assert.deepEqual(secretsOf(described), [], described);
      assert.match(described, /:\*\*\*@.*=\*\*\*/, described);
    }
  });

  it('specSecrets lists the password and the secret query values, as written and decoded, for scrubbing', () => {
    assert.deepEqual(specSecrets(`postgres://u:${PW}@h/db?sslpassword=${Q}&table=t`).sort(), [PW, Q].sort());
    assert.deepEqual(specSecrets('kafka://a:9092,b:9092?sasl.password=a+b%21').sort(), [
      'a b!',
      'a+b!',
      'a+b%21',
    ]);
    assert.deepEqual(specSecrets('postgres://u@h/db?table=t&keyPrefix=k'), []);
    assert.deepEqual(specSecrets('checkpoint:/a:b@c'), []);
  });

  it('every error a spec with secrets is refused with shows neither secret', () => {
    const refused: [string, StoreSpecOptions][] = [
      [`mongodb://u:${PW}@h/db?password=${Q}`, {}],
      [`postgres://u:${PW}@/db?password=${Q}`, {}],
      [`postgres://u:${PW}/x@h/db?password=${Q}`, {}],
      [`postgres://u:${PW}@h/db?password=${Q}&table=a`, { table: 'b' }],
      [`mysql://u:${PW}@h/db?token=${Q}`, { keyPrefix: 'x' }],
      [`redis://u:${PW}@h:6379/x?password=${Q}`, {}],
      [`redis://u:${PW}@h:6379?password=${Q}&table=t`, {}],
      [`zookeeper://u:${PW}@h:2181?auth=${Q}`, {}],
      [`zookeeper://h:2181?secret=${Q}`, {}],
      [`kafka://h:9092?sasl.password=${Q}`, {}],
      [`kafka://h:9092/path?sasl.oauthbearer.config=${Q}`, {}],
      [`kafka://u:${PW}@h:9092`, {}],
      [`u:${PW}@h:5432/db?password=${Q}`, {}],
    ];
    for (const [spec, options] of refused) {
      assert.throws(
        () => parseStoreSpec(spec, options),
        (e: unknown) =>
          e instanceof InvalidOptionError &&
          secretsOf(e.message).length === 0 &&
          secretsOf(String(e.received)).length === 0,
        spec,
      );
    }
  });

  it('a spec with secrets from SLUICE_OFFSET_STORE is refused without them, as `sluice offsets` prints the error', async () => {
    const saved = process.env.SLUICE_OFFSET_STORE;
    try {
      for (const spec of [
        `kafka://h:9092?sasl.password=${Q}`,
        `mongodb://u:${PW}@h/db?token=${Q}`,
        `postgres://u:${PW}/x@h/db?password=${Q}`,
      ]) {
        process.env.SLUICE_OFFSET_STORE = spec;
        const options = { group: 'g', topic: ['t'] };
        const errors: string[] = [];
        const code = await runOffsetsCommand('show', options, () => showOffsetsCommand(options), {
          out: () => assert.fail('no output expected'),
          err: (l) => errors.push(l),
        });
        assert.equal(code, USAGE_EXIT_CODE);
        assert.match(
          errors.join('\n'),
          /^sluice offsets show: SLUICE_INVALID_OPTION: Invalid option '--store'/,
        );
        assert.deepEqual(secretsOf(errors.join('\n')), [], errors.join('\n'));
      }
    } finally {
      if (saved === undefined) delete process.env.SLUICE_OFFSET_STORE;
      else process.env.SLUICE_OFFSET_STORE = saved;
    }
  });
});
