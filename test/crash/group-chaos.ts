/**
 * The scale-out chaos test: case 7's ETL (examples/kafka-etl.ts, unchanged: Kafka transactions,
 * dead letters) as a job of several instances in group membership, each a `sluice run` child of
 * this harness, on a broker of its own (so it can be restarted without disturbing other tests).
 * Lines arrive all the time while seeded random actions run: SIGKILL an instance (and start it
 * again under its id), add an instance, stop one gracefully for good; and the broker is restarted
 * once. An instance that exits by itself (e.g. the broker was away too long) is started again, as a
 * supervisor would. At the end every line must be in the output or the dead letters exactly once,
 * as kcat (read_committed) reads them.
 *
 * Short form in `npm test` (test/crash/group-chaos.test.ts); long form: `npm run crash-test`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ensureKafka, stopKafka } from '../../src/services/kafka.js';
import { ChildRun } from '../examples/child-process.js';
import {
  TIME_ZONE,
  checkDeadLetters,
  checkOutput,
  expected,
  kcat,
  records as etlRecords,
} from '../examples/kafka-etl-check.js';
import { createTopic, produce } from '../helpers/kafka.js';
import { freePorts } from '../helpers/ports.js';
import { prng } from './harness.js';

export interface GroupChaosOptions {
  /** Instances at the start (default 3). */
  readonly instances?: number;
  /** Random actions (default 8); the broker restart comes in the middle, on top of them. */
  readonly actions?: number;
  readonly seed?: number;
  /** Restart the broker once, in the middle (default true). */
  readonly brokerRestart?: boolean;
  /** Input partitions (default 6). */
  readonly partitions?: number;
  readonly progress?: (line: string) => void;
}

export interface GroupChaosResult {
  readonly seed: number;
  readonly lines: number;
  readonly out: number;
  readonly deadLetters: number;
  readonly actions: readonly string[];
  /** Batches the instances abandoned (lost partitions, fenced), from their logs. */
  readonly abandoned: number;
  /** Instances that exited by themselves and were started again, and the errors they printed. */
  readonly selfExits: number;
  readonly exitReasons: readonly string[];
  readonly seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runGroupChaos(options: GroupChaosOptions = {}): Promise<GroupChaosResult> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rnd = prng(seed);
  const log = options.progress ?? (() => {});
  const partitions = options.partitions ?? 6;
  const started = Date.now();
  const [port, controllerPort] = await freePorts(2);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'sluice-chaos-kafka-'));
  const brokerOpts = { port: port!, controllerPort: controllerPort!, dataDir, heap: '384m' };
  const { bootstrapServers } = await ensureKafka(brokerOpts);
  const base = `chaos-${seed}-${Date.now().toString(36)}`;
  const topics = { input: `${base}-in`, output: `${base}-out`, dlq: `${base}-dlq` };
  const instances = new Map<string, ChildRun>();
  const finished: ChildRun[] = [];
  const actions: string[] = [];
  let selfExits = 0;
  const exitReasons: string[] = [];
  let nextId = 0;
  let producing = true;
  let paused = false;
  let next = 0;
  let feeding: Promise<void> | undefined;

  const start = (id: string): void => {
    const run = ChildRun.sluice(['run', 'examples/kafka-etl.ts'], {
      KAFKA_BOOTSTRAP: bootstrapServers,
      ETL_INPUT_TOPIC: topics.input,
      ETL_OUTPUT_TOPIC: topics.output,
      ETL_DEAD_LETTER_TOPIC: topics.dlq,
      ETL_TIME_ZONE: TIME_ZONE,
      PIPELINE_ID: base,
      BATCH_INTERVAL_MS: '300',
      SLUICE_LOG_LEVEL: 'warn',
      SLUICE_MEMBERSHIP: 'group',
      SLUICE_INSTANCE_ID: id,
    });
    instances.set(id, run);
  };
  const newInstance = (): string => {
    const id = `${base}-${nextId++}`;
    start(id);
    return id;
  };
  /** Starts again, under its id, every instance that exited without being told to. */
  const revive = (): void => {
    for (const [id, run] of instances) {
      if (!run.exitInfo) continue;
      selfExits++;
      finished.push(run);
      const why = run.stderr.split('\n').reverse().find((l) => l.startsWith('sluice run')) ?? '';
      exitReasons.push(why.replace(/^sluice run \S+: /, '').slice(0, 200));
      log(`instance ${id} exited by itself (${JSON.stringify(run.exitInfo)}): starting it again. ${why}`);
      start(id);
    }
  };
  const lines = (from: number, to: number) =>
    etlRecords(from, to).map((r, k) => ({ ...r, partition: (from + k) % partitions }));

  try {
    await createTopic(bootstrapServers, topics.input, partitions);
    await createTopic(bootstrapServers, topics.output, 3);
    await createTopic(bootstrapServers, topics.dlq, 3);
    for (let i = 0; i < (options.instances ?? 3); i++) newInstance();
    feeding = (async () => {
      while (producing) {
        if (!paused) {
          await produce(bootstrapServers, topics.input, lines(next, next + 20));
          next += 20;
        }
        await sleep(100);
      }
    })();
    const total = options.actions ?? 8;
    const brokerRestartAt = options.brokerRestart === false ? -1 : Math.floor(total / 2);
    for (let a = 0; a < total; a++) {
      await sleep(2000 + rnd() * 2000);
      revive();
      if (a === brokerRestartAt) {
        // The producer pauses: a send that fails half-way could write some lines twice.
        paused = true;
        await sleep(200);
        log('restarting the broker');
        await stopKafka({ dataDir, graceMs: 30_000 });
        await sleep(1000);
        await ensureKafka(brokerOpts);
        paused = false;
        actions.push('broker-restart');
        continue;
      }
      const running = [...instances.keys()];
      const pick = () => running[Math.floor(rnd() * running.length)]!;
      const r = rnd();
      if (r < 0.55 || running.length <= 2) {
        const id = pick();
        log(`SIGKILL ${id}`);
        await instances.get(id)!.kill();
        finished.push(instances.get(id)!);
        await sleep(300 + rnd() * 1500);
        start(id);
        actions.push(`kill ${id}`);
      } else if (r < 0.8 && running.length < 4) {
        const id = newInstance();
        log(`added ${id}`);
        actions.push(`add ${id}`);
      } else {
        const id = pick();
        log(`stopping ${id} for good`);
        const run = instances.get(id)!;
        instances.delete(id);
        await run.stop('SIGTERM', 60_000);
        finished.push(run);
        actions.push(`remove ${id}`);
      }
    }
    producing = false;
    await feeding;
    const want = expected(0, next);
    log(`${next} lines produced; waiting for the job to commit them`);
    const deadline = Date.now() + 180_000;
    for (;;) {
      revive();
      const [out, dead] = [(await kcat(bootstrapServers, topics.output)).length, (await kcat(bootstrapServers, topics.dlq)).length];
      if (out >= want.out.length && dead >= want.dead.length) break;
      if (Date.now() > deadline)
        throw new Error(
          `after 180 s the job has committed ${out} of ${want.out.length} lines and ${dead} of ${want.dead.length} dead letters\n${tails(instances, finished)}`,
        );
      await sleep(500);
    }
    for (const run of instances.values()) await run.stop('SIGTERM', 60_000);
    const all = [...finished, ...instances.values()];
    const context = `seed ${seed}, actions: ${actions.join(', ')}\n${tails(instances, finished)}`;
    const out = await kcat(bootstrapServers, topics.output);
    const dead = await kcat(bootstrapServers, topics.dlq);
    checkOutput(out, want.out, context);
    checkDeadLetters(dead, want.dead, topics.input, context, partitions);
    return {
      seed,
      lines: next,
      out: out.length,
      deadLetters: dead.length,
      actions,
      abandoned: all.reduce((n, run) => n + (run.stderr.match(/batch abandoned/g) ?? []).length, 0),
      selfExits,
      exitReasons,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    producing = false;
    await feeding?.catch(() => {});
    for (const run of instances.values()) await run.kill();
    await stopKafka({ dataDir, graceMs: 10_000 }).catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The last stderr lines of every instance, for a failure message. */
function tails(instances: Map<string, ChildRun>, finished: readonly ChildRun[]): string {
  return [...finished, ...instances.values()]
    .map((r, i) => `--- instance run ${i} ---\n${r.stderr.split('\n').slice(-8).join('\n')}`)
    .join('\n');
}

export function formatGroupChaos(r: GroupChaosResult): string {
  return [
    `  seed ${r.seed}; ${r.lines} lines -> ${r.out} output + ${r.deadLetters} dead letters, each exactly once (kcat read_committed)`,
    `  actions: ${r.actions.join(', ')}`,
    `  batches abandoned ${r.abandoned}; instances that exited by themselves and were started again ${r.selfExits}; ${r.seconds} s`,
    ...[...new Set(r.exitReasons)].map((w) => `  exited with: ${w}`),
  ].join('\n');
}
