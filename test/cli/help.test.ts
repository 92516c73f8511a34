import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChildRun } from '../examples/child-process.js';

async function sluice(args: string[]): Promise<ChildRun> {
  const run = ChildRun.sluice(args);
  await run.waitForExit(30_000);
  return run;
}

test('sluice --help lists the run, describe and kafka commands and exits 0', async () => {
  const run = await sluice(['--help']);
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.match(run.stdout, /^Usage: sluice \[options\] \[command\]/);
  for (const cmd of ['run', 'describe', 'kafka'])
    assert.match(run.stdout, new RegExp(`^  ${cmd} `, 'm'), `lists ${cmd}`);
});

test('sluice run --help documents the pipeline argument, --log-level and the exit codes', async () => {
  const run = await sluice(['run', '--help']);
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.match(run.stdout, /^Usage: sluice run \[options\] <pipeline>/);
  assert.match(run.stdout, /--log-level <level>/);
  assert.match(run.stdout, /default export is\s+definePipeline/);
  assert.match(run.stdout, /Exit code: 0 after a graceful stop; 1 when/);
});

test('sluice describe --help documents the pipeline argument and --json', async () => {
  const run = await sluice(['describe', '--help']);
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.match(run.stdout, /^Usage: sluice describe \[options\] <pipeline>/);
  assert.match(run.stdout, /--json/);
});

test('sluice kafka --help lists start, stop and status; each subcommand has its own help', async () => {
  const run = await sluice(['kafka', '--help']);
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.match(run.stdout, /^Usage: sluice kafka \[options\] \[command\]/);
  for (const cmd of ['start', 'stop', 'status']) {
    assert.match(run.stdout, new RegExp(`^  ${cmd}`, 'm'), `lists ${cmd}`);
    const sub = await sluice(['kafka', cmd, '--help']);
    assert.equal(sub.exitInfo?.code, 0, sub.output());
    assert.match(sub.stdout, new RegExp(`^Usage: sluice kafka ${cmd}`));
  }
});

test('sluice with an unknown command or a missing argument exits 1 and points to --help', async () => {
  const unknown = await sluice(['frobnicate']);
  assert.equal(unknown.exitInfo?.code, 1);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const missing = await sluice(['run']);
  assert.equal(missing.exitInfo?.code, 1);
  assert.match(missing.stderr, /missing required argument 'pipeline'/);
  assert.match(missing.stderr, /--help/);
});
