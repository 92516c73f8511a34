import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChildRun } from '../examples/child-process.js';

async function sluiceRun(file: string): Promise<ChildRun> {
  const run = ChildRun.sluice(['run', file]);
  await run.waitForExit(30_000);
  return run;
}

const EXPECTED = /export default definePipeline\(\{ batchInterval: 1000, build\(ctx\) \{ \.\.\. \} \}\)/;

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
