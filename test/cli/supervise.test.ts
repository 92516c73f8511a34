/**
 * `sluice run --supervise` as real processes: the supervisor runs test/checkpoint/fixtures/
 * supervised-pipeline.ts as its child, and the tests crash it (process.exit(1), SIGKILL), stop it
 * (SIGINT, SIGTERM, a graceful stop of its own) or kill the supervisor.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CheckpointDirectory } from '../../src/checkpoint/directory.js';
import { lastErrorLine } from '../../src/cli/supervise.js';
import { ChildRun } from '../examples/child-process.js';
import { waitForStderr } from './supervisor-output.js';

const FIXTURE = 'test/checkpoint/fixtures/supervised-pipeline.ts';
const root = await mkdtemp(path.join(tmpdir(), 'sluice-supervise-'));
const runs: ChildRun[] = [];
const orphans: number[] = [];
after(async () => {
  for (const r of runs) await r.kill();
  for (const pid of orphans) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await rm(root, { recursive: true, force: true });
});
let files = 0;

function supervise(args: string[], env: Record<string, string>): { run: ChildRun; runsFile: string } {
  const runsFile = path.join(root, `runs-${++files}.txt`);
  const run = ChildRun.sluice(['run', '--supervise', ...args, FIXTURE], {
    RUNS_FILE: runsFile,
    SLUICE_LOG_LEVEL: 'warn',
    ...env,
  });
  runs.push(run);
  return { run, runsFile };
}

const runCount = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter(Boolean).length;


const started = (stderr: string) => [...stderr.matchAll(/started \S+ \(run \d+, pid \d+\)/g)].length;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('restarts a pipeline that exits with an error, with doubling back-off, reporting the restart count and the last error; SIGINT then stops it gracefully with exit 0', async () => {
  const { run, runsFile } = supervise(['--backoff-ms', '50'], { CRASH_RUNS: '1,2' });
  await run.waitFor((out) => out.includes('run 3 batch 2\n'), 'the third run to work', 60_000);
  assert.match(
    run.stderr,
    /sluice run --supervise: .*supervised-pipeline\.ts failed \(exit code 1: fatal: the disk is on fire \(run 1\)\); restart 1 \(1 in a row\) in 50 ms/,
  );
  assert.match(
    run.stderr,
    /failed \(exit code 1: fatal: the disk is on fire \(run 2\)\); restart 2 \(2 in a row\) in 100 ms/,
  );
  assert.match(run.stderr, /started .*supervised-pipeline\.ts \(run 3, pid \d+\)/);
  const exit = await run.stop('SIGINT');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stdout, /^run 3 stopped$/m, 'the child stopped gracefully');
  assert.match(run.stderr, /SIGINT received: stopping the pipeline gracefully/);
  assert.match(
    run.stderr,
    /stopped \(exit code 0\) after 2 restart\(s\); last error: exit code 1: fatal: the disk is on fire \(run 2\)\n/,
  );
  assert.equal(await runCount(runsFile), 3);
});

test('restarts a pipeline killed with SIGKILL, and SIGTERM stops the restarted one gracefully', async () => {
  const { run, runsFile } = supervise(['--backoff-ms', '50'], {});
  const [, pid] = await waitForStderr(run, /started \S+ \(run 1, pid (\d+)\)/, 'the first child');
  await run.waitFor((out) => out.includes('run 1 batch 1\n'), 'a first batch', 30_000);
  process.kill(Number(pid), 'SIGKILL');
  await run.waitFor((out) => out.includes('run 2 batch 1\n'), 'the restarted run', 30_000);
  assert.match(run.stderr, /failed \(signal SIGKILL\); restart 1 \(1 in a row\) in 50 ms/);
  assert.doesNotMatch(run.stdout, /^run 1 stopped$/m, 'the killed run never got to stop');
  const exit = await run.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stdout, /^run 2 stopped$/m);
  assert.match(run.stderr, /stopped \(exit code 0\) after 1 restart\(s\); last error: signal SIGKILL\n/);
  assert.equal(await runCount(runsFile), 2);
});

test('gives up after --max-restarts restarts in a row and exits with the last exit code', async () => {
  const { run, runsFile } = supervise(['--max-restarts', '2', '--backoff-ms', '20'], {
    CRASH_RUNS: '1,2,3,4',
  });
  const exit = await run.waitForExit(60_000);
  assert.deepEqual(exit, { code: 1, signal: null }, run.output());
  assert.match(
    run.stderr,
    /giving up after 2 restart\(s\) in a row \(2 restart\(s\); last error: exit code 1: fatal: the disk is on fire \(run 3\)\)/,
  );
  assert.equal(await runCount(runsFile), 3);
});

test('does not restart a pipeline that stops by itself with exit code 0', async () => {
  const { run, runsFile } = supervise(['--backoff-ms', '20'], { STOP_AFTER_BATCHES: '2' });
  const exit = await run.waitForExit(30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stdout, /^run 1 batch 2\nrun 1 stopped\n$/m);
  assert.match(run.stderr, /stopped \(exit code 0\) after 0 restart\(s\)\n/);
  assert.equal(await runCount(runsFile), 1);
});

test('SIGINT while waiting to restart stops at once with exit code 0 and starts nothing more', async () => {
  const { run, runsFile } = supervise(['--backoff-ms', '600000'], { CRASH_RUNS: '1' });
  await waitForStderr(run, /restart 1 \(1 in a row\) in 600000 ms/, 'the long back-off');
  const exit = await run.stop('SIGINT', 10_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(
    run.stderr,
    /stopped while waiting to restart, after 1 restart\(s\); last error: exit code 1: fatal/,
  );
  assert.equal(await runCount(runsFile), 1);
});

test('when the supervisor dies, its pipeline stops gracefully instead of running on as an orphan', async () => {
  const { run } = supervise([], {});
  const [, pidText] = await waitForStderr(run, /started \S+ \(run 1, pid (\d+)\)/, 'the child');
  const pid = Number(pidText);
  orphans.push(pid);
  await run.waitFor((out) => out.includes('run 1 batch 1\n'), 'a first batch', 30_000);
  // SIGKILL: the supervisor can forward nothing. The child notices its channel close.
  await run.stop('SIGKILL', 30_000);
  assert.match(
    run.stdout,
    /^run 1 stopped$/m,
    'the child stopped gracefully (its stdout is still this pipe)',
  );
  const deadline = Date.now() + 10_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(alive(pid), false, `the pipeline (pid ${pid}) still runs`);
});

test('does not restart a pipeline whose checkpoint does not fit it: exits 1 at once with the migrate command', async () => {
  const dir = path.join(root, 'incompatible-checkpoint');
  // A checkpoint of the example whose stateful operator had another name.
  await new CheckpointDirectory({ dir }).commitBatch(
    'stateful-wordcount',
    [],
    {
      pipelineId: 'stateful-wordcount',
      fingerprint: 'old',
      operators: [{ name: 'totals', kind: 'updateStateByKey' }],
      batchTime: 1000,
    },
    { full: new Map([['totals', [['a', 1]]]]), deltas: new Map() },
  );
  const run = ChildRun.sluice(
    ['run', '--supervise', '--backoff-ms', '20', 'examples/stateful-wordcount.ts'],
    { CHECKPOINT_DIR: dir, SLUICE_LOG_LEVEL: 'warn', KAFKA_TOPIC: 'never-read' },
  );
  runs.push(run);
  const exit = await run.waitForExit(60_000);
  assert.deepEqual(exit, { code: 1, signal: null }, run.output());
  // The child's summary line escapes the line breaks of the message; its fatal log entry has them.
  assert.match(run.stderr, /cannot start: SLUICE_CHECKPOINT_INCOMPATIBLE: [^\n]*\\n  - 'totals'/);
  const fatal = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('{"level":60,'))
    .map((l) => JSON.parse(l) as { code?: string; message?: string });
  assert.equal(fatal.length, 1, run.output());
  assert.equal(fatal[0]!.code, 'SLUICE_CHECKPOINT_INCOMPATIBLE');
  assert.match(fatal[0]!.message!, /does not fit this pipeline:\n  - 'totals'/);
  assert.match(run.stderr, new RegExp(`sluice checkpoint migrate ${dir} --drop totals`));
  assert.match(
    run.stderr,
    /not restarting: examples\/stateful-wordcount\.ts cannot start \(SLUICE_CHECKPOINT_INCOMPATIBLE\), which a restart does not change \(0 restart\(s\); last error: exit code 1: sluice run .* does not fit this pipeline: - 'totals' \(updateStateByKey\) has state in the checkpoint/,
  );
  assert.equal(started(run.stderr), 1);
});

test('the last error is sluice run’s own error line (escaped line breaks read as spaces), else the last error log line, else the last plain line', () => {
  assert.equal(
    lastErrorLine([
      '{"level":60,"code":"SLUICE_OPERATOR_FAILED","message":"Operator x failed","msg":"sluice run x.ts: the pipeline failed"}',
      'sluice run x.ts: the pipeline failed: SLUICE_OPERATOR_FAILED: Operator x failed',
      '{"level":30,"msg":"streaming context stopped"}',
    ]),
    'sluice run x.ts: the pipeline failed: SLUICE_OPERATOR_FAILED: Operator x failed',
  );
  assert.equal(
    lastErrorLine([
      "sluice run x.ts: cannot start: SLUICE_CHECKPOINT_INCOMPATIBLE: The checkpoint at /cp does not fit this pipeline:\\n  - 'a' is gone\\n  - 'b' is gone. Ways forward: ...",
      '{"level":30,"msg":"streaming context stopped"}',
    ]),
    "sluice run x.ts: cannot start: SLUICE_CHECKPOINT_INCOMPATIBLE: The checkpoint at /cp does not fit this pipeline: - 'a' is gone - 'b' is gone. Ways forward: ...",
  );
  assert.equal(
    lastErrorLine([
      '{"level":50,"msg":"batch failed; stopping the context","err":{"message":"disk full"}}',
      '{"level":30,"msg":"streaming context stopped"}',
    ]),
    'batch failed; stopping the context: disk full',
  );
  assert.equal(
    lastErrorLine([
      '{"level":60,"code":"SLUICE_SOURCE_FAILED","message":"Source \'in\' failed","msg":"sluice run x.ts: the pipeline failed"}',
    ]),
    "sluice run x.ts: the pipeline failed: SLUICE_SOURCE_FAILED: Source 'in' failed",
  );
  assert.equal(
    lastErrorLine(['fatal: out of cheese', '{"level":30,"msg":"tick"}', '']),
    'fatal: out of cheese',
  );
  assert.equal(lastErrorLine(['{"level":30,"msg":"tick"}']), undefined);
});
