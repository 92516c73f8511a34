import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests, waitUntil } from './child-process.js';
import { TIME_ZONE, checkDeadLetters, checkOutput, expected, kcat, records } from './kafka-etl-check.js';

// The case 7 ETL (Kafka transactions), unchanged, as a job of two instances: `sluice run
// --instances 2` on a 3-partition input arriving all the time; one instance is SIGKILLed mid-stream
// and its supervisor restarts it under the same id. kcat (read_committed) must find every good line
// once in the output and every malformed one once in the dead letters.

const { runs, cleanups } = afterTests();

/** The partitions each instance owns after its last rebalance line. */
function owned(stderr: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of stderr.matchAll(/^sluice run --instances: instance (\S+): gained .*; lost .*; owns (.*)$/gm))
    out.set(m[1]!, m[2] === '-' ? [] : m[2]!.split(', '));
  return out;
}

/** The ETL as `sluice run --instances 2` over a fresh 3-partition input, and lines arriving all the time. */
async function startJob(prefix: string) {
  const bootstrap = await kafkaBootstrap();
  const base = uniqueName(prefix);
  const n = { input: `${base}-in`, output: `${base}-out`, dlq: `${base}-dlq` };
  for (const topic of [n.input, n.output, n.dlq]) cleanups.push(() => deleteTopic(bootstrap, topic));
  await createTopic(bootstrap, n.input, 3);
  const idBase = base.replace(/[^A-Za-z0-9_.-]/g, '-');
  const run = ChildRun.sluice(['run', '--instances', '2', '--backoff-ms', '100', 'examples/kafka-etl.ts'], {
    KAFKA_BOOTSTRAP: bootstrap,
    ETL_INPUT_TOPIC: n.input,
    ETL_OUTPUT_TOPIC: n.output,
    ETL_DEAD_LETTER_TOPIC: n.dlq,
    ETL_TIME_ZONE: TIME_ZONE,
    PIPELINE_ID: base,
    BATCH_INTERVAL_MS: '300',
    SLUICE_LOG_LEVEL: 'warn',
    SLUICE_INSTANCE_ID: idBase,
  });
  runs.push(run);
  const ownedBy = (i: number) => owned(run.stderr).get(`${idBase}-${i}`) ?? [];
  const shared = () => ownedBy(0).length > 0 && ownedBy(1).length > 0 && ownedBy(0).length + ownedBy(1).length === 3;
  await run.waitFor(shared, 'both instances to own partitions, together all three', 120_000);
  // Lines arrive all the time: 30 every 100 ms.
  let next = 0;
  let producing = true;
  const producer = (async () => {
    while (producing) {
      await produce(bootstrap, n.input, records(next, next + 30));
      next += 30;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const committed = async () => (await kcat(bootstrap, n.output)).length;
  await waitUntil('output committed by the job', 60_000, committed, (c) => c >= 100);
  return {
    run,
    ownedBy,
    shared,
    /** The pid of instance i's run r, from the supervisor's started line. */
    pid(i: number, r: number): number {
      const m = new RegExp(`instance ${idBase}-${i}: started \\S+ \\(run ${r}, pid (\\d+)\\)`).exec(run.stderr);
      assert.ok(m, run.output());
      return Number(m[1]);
    },
    /** Stops the input, waits for the job to commit all of it, stops the job and checks the outputs. */
    async finish(): Promise<void> {
      producing = false;
      await producer;
      const want = expected(0, next);
      await waitUntil(`all ${want.out.length} good lines committed`, 120_000, committed, (c) => c >= want.out.length).catch(
        (e: Error) => assert.fail(`${e.message}\n${run.output()}`),
      );
      const exit = await run.stop('SIGINT', 120_000);
      assert.deepEqual(exit, { code: 0, signal: null }, run.output());
      checkOutput(await kcat(bootstrap, n.output), want.out, run.output());
      checkDeadLetters(await kcat(bootstrap, n.dlq), want.dead, n.input, run.output());
    },
  };
}

test('kafka-etl example under sluice run --instances 2: the instances share the input, one SIGKILLed mid-stream is restarted under its id, and kcat finds every good line once in the output and every malformed one once in the dead letters', async () => {
  const job = await startJob('example-etl-instances');
  process.kill(job.pid(1, 1), 'SIGKILL');
  await job.run.waitFor(() => /run 2, pid/.test(job.run.stderr), 'the restart of instance 1', 60_000);
  await job.run.waitFor(job.shared, 'the restarted instance to own partitions again', 120_000);
  await new Promise((r) => setTimeout(r, 1000));
  await job.finish();
});

test('kafka-etl example under sluice run --instances 2: an instance frozen (SIGSTOP) past the session timeout loses its partitions to the other; resumed, it commits nothing stale, rejoins, and every line is still there once', async (tc) => {
  const job = await startJob('example-etl-frozen');
  const frozen = job.pid(1, 1);
  const had = job.ownedBy(1);
  process.kill(frozen, 'SIGSTOP');
  try {
    await job.run.waitFor(() => job.ownedBy(0).length === 3, 'instance 0 to take every partition', 60_000);
  } finally {
    process.kill(frozen, 'SIGCONT');
  }
  await job.run.waitFor(job.shared, 'the resumed instance to own partitions again', 120_000);
  await new Promise((r) => setTimeout(r, 1000));
  await job.finish();
  tc.diagnostic(
    `instance 1 owned ${had.join(', ')} when frozen; batches abandoned after resuming: ${
      job.run.stderr
        .split('\n')
        .filter((l) => l.includes('batch abandoned'))
        .map((l) => /"message":"([^"]*)"/.exec(l)?.[1] ?? l)
        .join(' | ') || 'none'
    }`,
  );
});
