import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChildRun } from '../examples/child-process.js';

async function sluiceRun(file: string): Promise<ChildRun> {
  const run = ChildRun.sluice(['run', file]);
  await run.waitForExit(30_000);
  return run;
}

const EXPECTED = /export default definePipeline\(\{ batchInterval: 1000, build\(ctx\) \{ \.\.\. \} \}\)/;

/** The JSON log entries of a stderr at level 60 (fatal). */
function fatalEntries(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.level === 60);
}

test('sluice run on a file without a default export exits 1 naming the file, the code and what it must export', async () => {
  const run = await sluiceRun('test/cli/fixtures/no-default-export.ts');
  assert.equal(run.exitInfo?.code, 1, run.output());
  assert.equal(run.stdout, '');
  assert.match(
    run.stderr,
    /SLUICE_PIPELINE_FILE: Pipeline file test\/cli\/fixtures\/no-default-export\.ts does not export a pipeline/,
  );
  assert.match(run.stderr, /it has no default export \(it exports pipeline\)/);
  assert.match(run.stderr, EXPECTED);
});

test('sluice run on a file whose default export is not a pipeline definition exits 1 saying what is missing', async () => {
  const run = await sluiceRun('test/cli/fixtures/default-without-build.ts');
  assert.equal(run.exitInfo?.code, 1, run.output());
  assert.match(
    run.stderr,
    /SLUICE_PIPELINE_FILE: .*default-without-build\.ts does not export a pipeline: its default export lacks a build\(ctx\) function/,
  );
  assert.match(run.stderr, EXPECTED);
});

test('sluice run on a missing file exits 1 with the path it looked for', async () => {
  const run = await sluiceRun('test/cli/fixtures/does-not-exist.ts');
  assert.equal(run.exitInfo?.code, 1, run.output());
  assert.match(
    run.stderr,
    /SLUICE_PIPELINE_FILE: Pipeline file test\/cli\/fixtures\/does-not-exist\.ts does not exist \(looked for \/.*does-not-exist\.ts\)/,
  );
});

test('sluice run exits 1 with the error code and message when the pipeline build throws', async () => {
  const run = await sluiceRun('test/cli/fixtures/failing-build.ts');
  assert.equal(run.exitInfo?.code, 1, run.output());
  assert.match(run.stderr, /SLUICE_PIPELINE_DEFINITION: reference data missing\. Load it before building/);
});

test('sluice run --log-level rejects an unknown level and lists the accepted ones', async () => {
  const run = ChildRun.sluice(['run', 'examples/socket-wordcount.ts', '--log-level', 'loud']);
  await run.waitForExit(30_000);
  assert.equal(run.exitInfo?.code, 1, run.output());
  assert.match(run.stderr, /Allowed choices are trace, debug, info, warn, error, fatal, silent/);
});

test('sluice run exits 1 with SLUICE_OPERATOR_FAILED naming the operator when a batch fails', async () => {
  const run = await sluiceRun('test/cli/fixtures/failing-batch.ts');
  assert.equal(run.exitInfo?.code, 1, run.output());
  assert.match(run.stdout, /^batch 1\nbatch 2\n$/);
  assert.match(
    run.stderr,
    /the pipeline failed: SLUICE_OPERATOR_FAILED: Operator 'flaky-sink' failed in the batch of .*: the sink is down/,
  );
  // The user function's stack is in the fatal log entry, not in the summary line.
  const [fatal, ...more] = fatalEntries(run.stderr);
  assert.deepEqual(more, []);
  const cause = fatal?.cause as { type?: string; stack?: string } | undefined;
  assert.equal(cause?.type, 'Error');
  assert.match(cause?.stack ?? '', /^Error: the sink is down\n\s+at .*failing-batch\.ts/);
});

test('sluice run reports a failure as a fatal JSON log entry with code, message, hint and retriable, then one summary line without a stack', async () => {
  const run = await sluiceRun('test/cli/fixtures/failing-build.ts');
  assert.equal(run.exitInfo?.code, 1, run.output());
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  const [fatal, ...more] = fatalEntries(run.stderr);
  assert.deepEqual(more, []);
  assert.deepEqual(
    {
      msg: fatal?.msg,
      file: fatal?.file,
      pipeline: fatal?.pipeline,
      code: fatal?.code,
      message: fatal?.message,
      hint: fatal?.hint,
      retriable: fatal?.retriable,
    },
    {
      msg: 'sluice run test/cli/fixtures/failing-build.ts: cannot start',
      file: 'test/cli/fixtures/failing-build.ts',
      pipeline: undefined, // the build failed: no context yet
      code: 'SLUICE_PIPELINE_DEFINITION',
      message: 'reference data missing',
      hint: 'Load it before building',
      retriable: false,
    },
  );
  assert.equal(fatal?.stack, undefined, 'no stack for a Sluice error');
  assert.equal(fatal?.cause, undefined);
  assert.equal(
    lines.at(-1),
    'sluice run test/cli/fixtures/failing-build.ts: cannot start: SLUICE_PIPELINE_DEFINITION: reference data missing. Load it before building',
  );
  assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace line');
});

test('sluice run stops gracefully with exit 0 when SIGINT arrives while the pipeline is still being built', async () => {
  const run = ChildRun.sluice(['run', 'test/cli/fixtures/slow-build.ts']);
  await run.waitFor((out) => out.includes('building\n'), 'the build to begin', 30_000);
  const exit = await run.stop('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stderr, /SIGINT received while starting; stopping once started/);
  assert.doesNotMatch(run.stdout, /^batch /m, 'no batch ran');
});

test('sluice run exits 0 after a graceful stop even when the pipeline left a handle open', async () => {
  const run = ChildRun.sluice(['run', 'test/cli/fixtures/leaky-handle.ts']);
  await run.waitFor((out) => /^batch \d+$/m.test(out), 'a first batch', 30_000);
  const exit = await run.stop('SIGINT', 15_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stderr, /still open 5000 ms after it stopped; exiting anyway/);
});

test('sluice run --log-level sets the level of the JSON logs on stderr (debug shows each batch, silent none)', async () => {
  const debug = ChildRun.sluice(['run', 'test/cli/fixtures/failing-batch.ts', '--log-level', 'debug']);
  await debug.waitForExit(30_000);
  assert.equal(debug.exitInfo?.code, 1, debug.output());
  assert.match(debug.stderr, /"level":20,.*"msg":"batch completed"/);

  const silent = ChildRun.sluice(['run', 'test/cli/fixtures/failing-batch.ts', '--log-level', 'silent']);
  await silent.waitForExit(30_000);
  assert.equal(silent.exitInfo?.code, 1, silent.output());
  assert.doesNotMatch(silent.stderr, /"level":/);
  assert.match(silent.stderr, /SLUICE_OPERATOR_FAILED/, 'the CLI still reports the failure');
});
