/**
 * `sluice run --instances N` as real processes, on test/cli/fixtures/instances-pipeline.ts: a
 * pipeline whose input declares group membership and reports a rebalance through the context when
 * it opens (no Kafka needed), so that what the supervisor does with N children — ids, restarts,
 * rebalance lines, stopping — is tested apart from Kafka's group protocol.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { availableParallelism, hostname } from 'node:os';
import { test } from 'node:test';
import { instanceIds, parseInstances, rebalanceLine } from '../../src/cli/instances.js';
import { ChildRun, afterTests } from '../examples/child-process.js';
import { waitForStderr } from './supervisor-output.js';

const FIXTURE = 'test/cli/fixtures/instances-pipeline.ts';
const { runs } = afterTests();

function instances(args: string[], env: Record<string, string> = {}): ChildRun {
  const run = ChildRun.sluice(['run', '--instances', ...args, FIXTURE], env);
  runs.push(run);
  return run;
}

/** A unique SLUICE_INSTANCE_ID base for one test. */
const uniqueBase = () => `t${randomUUID().slice(0, 8)}`;


const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const count = (text: string, re: RegExp) =>
  [...text.matchAll(new RegExp(re.source, `${re.flags.replace('g', '')}g`))].length;

test('--instances 2 starts two supervised children in group membership with ids <base>-0 and <base>-1, prints a line per rebalance, restarts a killed one under the same id, and SIGINT stops both with exit code 0', async () => {
  const base = uniqueBase();
  const run = instances(['2', '--backoff-ms', '50'], { SLUICE_INSTANCE_ID: base, SLUICE_LOG_LEVEL: 'info' });
  await waitForStderr(
    run,
    /running 2 instance\(s\) of \S+ in group membership: (\S+), (\S+)\n/,
    'the start line',
  );
  assert.match(run.stderr, new RegExp(`in group membership: ${base}-0, ${base}-1\\n`));
  for (const i of [0, 1]) {
    await run.waitFor(
      (out) => out.includes(`instance ${base}-${i} pid `),
      `instance ${i}'s first batch`,
      60_000,
    );
    assert.match(run.stdout, new RegExp(`^instance ${base}-${i} pid \\d+ membership group batch 1$`, 'm'));
    await waitForStderr(
      run,
      new RegExp(
        `^sluice run --instances: instance ${base}-${i}: gained fake-${i}; lost -; owns fake-${i}$`,
        'm',
      ),
      `instance ${i}'s rebalance line`,
    );
  }

  const [, pid] = await waitForStderr(
    run,
    new RegExp(`instance ${base}-1: started \\S+ \\(run 1, pid (\\d+)\\)`),
    'the started line of instance 1',
  );
  process.kill(Number(pid), 'SIGKILL');
  await waitForStderr(
    run,
    new RegExp(`instance ${base}-1: \\S+ failed \\(signal SIGKILL\\); restart 1 \\(1 in a row\\) in 50 ms`),
    'the restart of instance 1',
  );
  const [, newPid] = await waitForStderr(
    run,
    new RegExp(`instance ${base}-1: started \\S+ \\(run 2, pid (\\d+)\\)`),
    'the second run of instance 1',
  );
  await run.waitFor(
    (out) => out.includes(`instance ${base}-1 pid ${newPid} membership group batch 1\n`),
    'the restarted instance 1 under its id',
    60_000,
  );
  await waitForStderr(
    run,
    /(instance \S+-1: gained fake-1; lost -; owns fake-1\n[^]*){2}/,
    'the rebalance line of the restarted instance',
  );
  assert.equal(count(run.stderr, new RegExp(`instance ${base}-0: started`)), 1, 'instance 0 ran on');

  const exit = await run.stop('SIGINT', 60_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stderr, /SIGINT received: stopping 2 instance\(s\) gracefully/);
  assert.match(run.stdout, new RegExp(`^instance ${base}-0 stopped$`, 'm'));
  assert.match(run.stdout, new RegExp(`^instance ${base}-1 stopped$`, 'm'));
  assert.match(
    run.stderr,
    new RegExp(
      `instance ${base}-1: \\S+ stopped \\(exit code 0\\) after 1 restart\\(s\\); last error: signal SIGKILL`,
    ),
  );
  assert.match(run.stderr, /all 2 instance\(s\) stopped cleanly\n$/);
  // Every line on stderr is a child's JSON log entry, whole, or one of the supervisor's.
  for (const line of run.stderr.split('\n').filter(Boolean)) {
    if (line.startsWith('sluice run --instances: ')) continue;
    assert.doesNotThrow(() => JSON.parse(line), `not a whole JSON line: ${line}`);
  }
});

test('--instances 1 without SLUICE_INSTANCE_ID runs one supervised instance <host>-0 in group membership; rebalance lines escape control characters', async () => {
  const id = `${hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 80)}-0`;
  const run = instances(['1'], { SLUICE_INSTANCE_ID: '', FAKE_TOPIC: 'fa\u001b[2Jke\n{"level":60}' });
  await run.waitFor((out) => out.includes(`instance ${id} pid `), 'the first batch', 60_000);
  assert.match(run.stdout, new RegExp(`^instance ${escapeRe(id)} pid \\d+ membership group batch 1$`, 'm'));
  await waitForStderr(run, /: gained /, 'the rebalance line');
  assert.ok(
    run.stderr.includes(
      `sluice run --instances: instance ${id}: gained fa\\x1b[2Jke\\n{"level":60}-0; lost -; owns fa\\x1b[2Jke\\n{"level":60}-0\n`,
    ),
    run.output(),
  );
  assert.doesNotMatch(run.stderr, /\u001b/);
  const exit = await run.stop('SIGTERM', 60_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stderr, /SIGTERM received: stopping 1 instance\(s\) gracefully/);
});

test('an instance that does not stop gracefully within --stop-timeout-ms is killed; the others stop cleanly and the exit code says one did not', async () => {
  const base = uniqueBase();
  const run = instances(['2', '--stop-timeout-ms', '2000'], {
    SLUICE_INSTANCE_ID: base,
    HANG_INSTANCE: `${base}-1`,
  });
  for (const i of [0, 1])
    await run.waitFor(
      (out) => out.includes(`instance ${base}-${i} pid `),
      `instance ${i}'s first batch`,
      60_000,
    );
  const exit = await run.stop('SIGINT', 60_000);
  assert.deepEqual(exit, { code: 137, signal: null }, run.output());
  assert.match(run.stdout, new RegExp(`^instance ${base}-0 stopped$`, 'm'));
  assert.doesNotMatch(run.stdout, new RegExp(`^instance ${base}-1 stopped$`, 'm'));
  assert.match(
    run.stderr,
    new RegExp(`instance ${base}-1: still running 2000 ms after SIGINT: killing it \\(SIGKILL\\)`),
  );
  assert.match(
    run.stderr,
    new RegExp(`instance ${base}-1: \\S+ stopped after 0 restart\\(s\\); last error: signal SIGKILL`),
  );
  assert.match(run.stderr, /1 of 2 instance\(s\) stopped cleanly\n$/);
});

test("an instance that gives up (--max-restarts) stops the other instances gracefully, and its exit code is the supervisor's", async () => {
  const base = uniqueBase();
  const run = instances(['2', '--max-restarts', '1', '--backoff-ms', '50'], {
    SLUICE_INSTANCE_ID: base,
    CRASH_INSTANCE: `${base}-1`,
  });
  const exit = await run.waitForExit(120_000);
  assert.deepEqual(exit, { code: 1, signal: null }, run.output());
  assert.match(
    run.stderr,
    new RegExp(
      `instance ${base}-1: giving up after 1 restart\\(s\\) in a row \\(1 restart\\(s\\); last error: exit code 1: fatal: instance ${base}-1 crashed\\)`,
    ),
  );
  assert.match(run.stderr, new RegExp(`instance ${base}-1 gave up: stopping the other instance\\(s\\)`));
  assert.match(run.stdout, new RegExp(`^instance ${base}-0 stopped$`, 'm'));
  assert.match(
    run.stderr,
    new RegExp(`instance ${base}-0: \\S+ stopped \\(exit code 0\\) after 0 restart\\(s\\)`),
  );
});

test('--instances auto runs one instance per core (os.availableParallelism)', async () => {
  const n = availableParallelism();
  const base = uniqueBase();
  const run = instances(['auto'], { SLUICE_INSTANCE_ID: base });
  await waitForStderr(
    run,
    new RegExp(`running ${n} instance\\(s\\) of \\S+ in group membership: ${base}-0`),
    'the start line',
  );
  for (let i = 0; i < n; i++)
    await run.waitFor(
      (out) => out.includes(`instance ${base}-${i} pid `),
      `instance ${i}'s first batch`,
      120_000,
    );
  const exit = await run.stop('SIGINT', 60_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.equal(count(run.stdout, /^instance \S+ stopped$/m), n);
});

test('--instances takes a whole number >= 1 or auto: anything else is a usage error naming the accepted values', async () => {
  for (const value of ['0', '-1', '1.5', 'two', '']) {
    const run = ChildRun.sluice(['run', '--instances', value, FIXTURE]);
    runs.push(run);
    const exit = await run.waitForExit(30_000);
    assert.equal(exit.code, 1, run.output());
    assert.match(run.stderr, /--instances takes a whole number >= 1, or 'auto' \(one per core\)/, value);
    assert.equal(run.stdout, '');
  }
  const bad = ChildRun.sluice(['run', '--instances', '2', FIXTURE], { SLUICE_INSTANCE_ID: 'not an id' });
  runs.push(bad);
  assert.equal((await bad.waitForExit(30_000)).code, 1, bad.output());
  assert.match(bad.stderr, /^sluice run \S+: SLUICE_INVALID_OPTION: .*SLUICE_INSTANCE_ID/m);
  assert.doesNotMatch(bad.stderr, /started/);
});

test('instance ids are <base>-<i>, the base being SLUICE_INSTANCE_ID or the host name; the rebalance messages of a child become one line for a person', () => {
  assert.deepEqual(instanceIds(3, 'etl'), ['etl-0', 'etl-1', 'etl-2']);
  assert.match(instanceIds(1, undefined)[0]!, /^[A-Za-z0-9_.-]+-0$/);
  assert.throws(() => instanceIds(2, 'a b'), { code: 'SLUICE_INVALID_OPTION' });
  assert.throws(() => instanceIds(11, 'x'.repeat(98)), { code: 'SLUICE_INVALID_OPTION' });
  assert.equal(parseInstances('auto'), 'auto');
  assert.equal(parseInstances(' 4 '), 4);
  const entry = (o: object) => ({ type: 'sluice.rebalance', ...o });
  assert.equal(
    rebalanceLine(
      entry({ instanceId: 'h-1', input: 'in', gained: ['o-2', 'o-3'], lost: [], owned: ['o-2', 'o-3'] }),
      'x',
    ),
    'instance h-1: gained o-2, o-3; lost -; owns o-2, o-3',
  );
  const inputs = new Set<string>(['a']);
  assert.equal(
    rebalanceLine(
      entry({ instanceId: 'h-1', input: 'b', gained: [], lost: ['o-1'], owned: [] }),
      'x',
      inputs,
    ),
    'instance h-1: gained -; lost o-1; owns - (input b)',
  );
  assert.equal(rebalanceLine(entry({ type: 'other' }), 'x'), undefined);
  assert.equal(rebalanceLine('sluice.rebalance', 'x'), undefined);
  assert.equal(rebalanceLine(null, 'x'), undefined);
});
