/**
 * `sluice run --instances 2` on the real broker: test/cli/fixtures/kafka-instances-pipeline.ts reads
 * a topic of 4 partitions with the direct stream in group membership; Kafka's group protocol
 * shares the partitions between the two children, one is killed and comes back under its id, and
 * `sluice group status` shows the running job.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GroupStatus } from '../../src/cli/group.js';
import { ChildRun, afterTests, waitUntil } from '../examples/child-process.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const FIXTURE = 'test/cli/fixtures/kafka-instances-pipeline.ts';
const { runs, cleanups } = afterTests();

/** The partitions each instance owns after its last rebalance line (`owns a-0, a-1` / `owns -`). */
function owned(stderr: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of stderr.matchAll(
    /^sluice run --instances: instance (\S+): gained .*; lost .*; owns (.*)$/gm,
  ))
    out.set(m[1]!, m[2] === '-' ? [] : m[2]!.split(', '));
  return out;
}

/** Values read so far (`instance <id> pid <pid> read <tp>@<offset> <value>` lines). */
const valuesRead = (stdout: string) =>
  new Set([...stdout.matchAll(/ read \S+@\d+ (\S+)$/gm)].map((m) => m[1]!));

async function waitForStderr(run: ChildRun, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  let found: RegExpExecArray | null = null;
  await run.waitFor(() => (found = pattern.exec(run.stderr)) !== null, what, 120_000);
  return found!;
}

test("two instances share a topic's partitions through the consumer group, a killed one comes back under its id and gets partitions again, group status shows both members, and SIGINT stops both with exit code 0", async () => {
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName('cli-instances');
  const pipelineId = uniqueName('cli-instances-job');
  const base = uniqueName('inst').replace(/[^A-Za-z0-9_.-]/g, '-');
  await createTopic(bootstrap, topic, 4);
  cleanups.push(() => deleteTopic(bootstrap, topic));
  const values = (round: string, n: number) =>
    [0, 1, 2, 3].flatMap((partition) =>
      Array.from({ length: n }, (_, i) => ({ value: `${round}-${partition}-${i}`, partition })),
    );
  await produce(bootstrap, topic, values('a', 3));

  const run = ChildRun.sluice(['run', '--instances', '2', '--backoff-ms', '50', FIXTURE], {
    KAFKA_TOPIC: topic,
    PIPELINE_ID: pipelineId,
    SLUICE_INSTANCE_ID: base,
  });
  runs.push(run);
  const all = [0, 1, 2, 3].map((p) => `${topic}-${p}`);
  const shared = () => {
    const o = owned(run.stderr);
    const a = o.get(`${base}-0`) ?? [];
    const b = o.get(`${base}-1`) ?? [];
    return a.length > 0 && b.length > 0 && [...a, ...b].sort().join() === all.join();
  };
  await run.waitFor(shared, 'both instances to own partitions, together all four', 120_000);
  await run.waitFor(
    (out) => values('a', 3).every((r) => valuesRead(out).has(r.value)),
    'every record to be read',
    120_000,
  );
  const o = owned(run.stderr);

  const status = await waitUntil(
    'group status to show both instances as members with all partitions committed',
    120_000,
    async () => {
      const s = ChildRun.sluice(['group', 'status', pipelineId, '--json']);
      await s.waitForExit(60_000);
      return s.exitInfo?.code === 0 ? (JSON.parse(s.stdout) as GroupStatus) : undefined;
    },
    (s) =>
      s !== undefined &&
      s.members.length === 2 &&
      s.partitions.length === 4 &&
      s.partitions.every(
        (p) => p.member !== null && p.committed === 3 && p.lag === 0 && p.lastBatch !== null,
      ),
  );
  assert.deepEqual(status!.members.map((m) => m.lastBatch?.instance).sort(), [`${base}-0`, `${base}-1`]);
  for (const m of status!.members)
    assert.deepEqual(
      [...m.partitions].sort(),
      [...o.get(m.lastBatch!.instance)!].sort(),
      `member ${m.clientId} owns what its instance said`,
    );

  const [, pid] = await waitForStderr(
    run,
    new RegExp(`instance ${base}-1: started \\S+ \\(run 1, pid (\\d+)\\)`),
    'the started line of instance 1',
  );
  const gainedBefore = [...run.stderr.matchAll(new RegExp(`instance ${base}-1: gained (?!-;)`, 'g'))].length;
  process.kill(Number(pid), 'SIGKILL');
  await waitForStderr(
    run,
    new RegExp(`instance ${base}-1: \\S+ failed \\(signal SIGKILL\\); restart 1 \\(1 in a row\\)`),
    'the restart of instance 1',
  );
  await waitForStderr(run, new RegExp(`instance ${base}-1: started \\S+ \\(run 2, pid \\d+\\)`), 'run 2');
  await run.waitFor(
    () =>
      [...run.stderr.matchAll(new RegExp(`instance ${base}-1: gained (?!-;)`, 'g'))].length > gainedBefore,
    'the restarted instance 1 to gain partitions',
    120_000,
  );
  await run.waitFor(shared, 'the two instances to share the four partitions again', 120_000);
  await produce(bootstrap, topic, values('b', 2));
  await run.waitFor(
    (out) => values('b', 2).every((r) => valuesRead(out).has(r.value)),
    'every record produced after the restart to be read',
    120_000,
  );

  // Both instances own partitions now, so both read some of these.
  for (const i of [0, 1])
    assert.match(run.stdout, new RegExp(`^instance ${base}-${i} pid \\d+ read \\S+ b-`, 'm'), run.output());

  const exit = await run.stop('SIGINT', 120_000);
  assert.deepEqual(exit, { code: 0, signal: null }, run.output());
  assert.match(run.stderr, /all 2 instance\(s\) stopped cleanly\n$/);
});
