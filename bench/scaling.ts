/**
 * Scale-out over a consumer group (group membership), measured on this machine:
 *
 * 1. Throughput: case 7's ETL (Kafka to Kafka, Kafka transactions, dead letters) as a job of 1 and
 *    of 2 instances (processes: bench/scaling-worker.ts) in one consumer group, each run reading a
 *    pre-filled 4-partition topic (BENCH_SCALING_RECORDS lines, default 400,000, 1 % malformed)
 *    with a fresh group into fresh outputs; BENCH_SCALING_ROUNDS rounds (default 2), 1 and 2
 *    interleaved. Two rates per run:
 *    - whole job: the lines over the time from the first batch's start to the last batch's end
 *      (with 2 instances it includes the second one joining and the rebalance);
 *    - all working: the lines of the batches that ran while every instance was processing, over
 *      that window (from the latest first batch to the earliest last batch).
 *    Each run is checked: the batches hold every input line once, and read_committed readers find
 *    exactly the good lines in the output and the malformed ones in the dead letters.
 *    And where the CPU went meanwhile: the machine's busy share, the cores the broker (when it is
 *    Sluice's development broker, on this machine) and the instances used on average.
 * 2. Failover: 2 instances with lines arriving all the time (2,000/s); one is SIGKILLed; the time
 *    until the survivor completes (commits) a batch with lines of a partition the killed one owned.
 *    It is bounded below by the broker's group.consumer.session.timeout.ms (reported with it).
 *
 * Results are appended to bench/results/scaling.{jsonl,md} with the machine and the date.
 *
 *   node --import tsx bench/scaling.ts
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sampleAccessLogLine } from '../examples/lib/access-log.js';
import { KafkaAdmin, KafkaTextProducer } from '../src/kafka/index.js';
import { brokerProperties, ensureKafka } from '../src/services/kafka.js';
import { deleteTopics, malformationOf, prefill } from './etl.js';
import { median, writeResult } from './report.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PARTITIONS = 4;
/** Bump when the generated lines change, so an old pre-filled topic is not reused. */
const DATA_VERSION = 1;

interface Batch {
  readonly start: number;
  readonly end: number;
  readonly n: number;
  readonly parts: readonly string[];
}

/** A running instance and what it reported. */
interface Worker {
  readonly id: string;
  readonly child: ChildProcess;
  readonly batches: Batch[];
  owned: string[];
  readonly exited: Promise<void>;
  stderr: string;
}

function startWorker(
  id: string,
  env: { bootstrap: string; topic: string; group: string; output: string; dlq: string },
): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/scaling-worker.ts'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      KAFKA_BOOTSTRAP: env.bootstrap,
      BENCH_TOPIC: env.topic,
      BENCH_GROUP: env.group,
      BENCH_OUTPUT: env.output,
      BENCH_DLQ: env.dlq,
      SLUICE_INSTANCE_ID: id,
    },
  });
  const w: Worker = {
    id,
    child,
    batches: [],
    owned: [],
    stderr: '',
    exited: new Promise((resolve) => child.on('close', () => resolve())),
  };
  child.stderr!.on('data', (d: Buffer) => (w.stderr = (w.stderr + d.toString()).slice(-4000)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const e = JSON.parse(line) as { ev: string; owned?: string[] } & Batch;
    if (e.ev === 'owned') w.owned = e.owned!;
    else if (e.ev === 'batch') w.batches.push({ start: e.start, end: e.end, n: e.n, parts: e.parts });
  });
  return w;
}

async function stopWorkers(workers: readonly Worker[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  const timer = setTimeout(() => workers.forEach((w) => w.child.kill('SIGKILL')), 30_000);
  await Promise.all(workers.map((w) => w.exited));
  clearTimeout(timer);
}

async function waitFor(what: string, ms: number, ok: () => boolean, workers: readonly Worker[]): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    const dead = workers.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
    if (dead) throw new Error(`instance ${dead.id} exited while waiting for ${what}: ${dead.stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Records of `topics` as a read_committed reader that is not Sluice's (kcat) sees them: offsets
 * would count transaction markers too.
 */
async function committedLines(bootstrap: string, topics: readonly string[]): Promise<number> {
  let n = 0;
  for (const topic of topics) {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'kcat',
        ['-C', '-b', bootstrap, '-t', topic, '-X', 'isolation.level=read_committed', '-o', 'beginning', '-e', '-q', '-f', '.'],
        { timeout: 120_000, maxBuffer: 64 * 2 ** 20 },
        (err, stdout, stderr) => (err ? reject(new Error(`kcat ${topic}: ${err.message} ${stderr}`)) : resolve(stdout)),
      ),
    );
    n += out.length;
  }
  return n;
}

/** CPU seconds (user + system) of process `pid` so far, from /proc; undefined when unreadable. */
function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (in parentheses, which may hold spaces): utime is the 14th, stime the 15th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
const CLOCK_TICKS = 100;

/** The machine's busy and total CPU time so far (all cores), in seconds. */
function machineCpu(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t / 1000;
    busy += (t - c.times.idle) / 1000;
  }
  return { busy, total };
}

/** Where the CPU went during a run: cores used on average by each party, and the machine's busy share. */
interface CpuShare {
  readonly machineBusy: number;
  readonly brokerCores: number | null;
  readonly instancesCores: number;
}

interface ThroughputRun {
  readonly instances: number;
  readonly cpu: CpuShare;
  readonly wholeJobPerSec: number;
  readonly allWorkingPerSec: number | null;
  readonly seconds: number;
  readonly batches: number;
}

async function throughputRun(
  admin: KafkaAdmin,
  brokerPid: number | undefined,
  bootstrap: string,
  input: string,
  records: number,
  instances: number,
): Promise<ThroughputRun> {
  const group = `bench-scaling-${instances}-${Date.now()}`;
  const output = `${group}-out`;
  const dlq = `${group}-dlq`;
  await admin.createTopics([output, dlq], { partitions: PARTITIONS, replicationFactor: 1 });
  const workers = Array.from({ length: instances }, (_, i) =>
    startWorker(`w${i}`, { bootstrap, topic: input, group, output, dlq }),
  );
  try {
    const handled = () => workers.reduce((n, w) => n + w.batches.reduce((m, b) => m + b.n, 0), 0);
    // CPU from the first batch with lines to the last.
    await waitFor('the first batch', 120_000, () => handled() > 0, workers);
    const cpu0 = {
      machine: machineCpu(),
      broker: processCpuSeconds(brokerPid),
      workers: workers.map((w) => processCpuSeconds(w.child.pid) ?? 0),
      at: performance.now(),
    };
    await waitFor(`${records} lines handled`, 600_000, () => handled() >= records, workers);
    const seconds = (performance.now() - cpu0.at) / 1000;
    const m = machineCpu();
    const broker = processCpuSeconds(brokerPid);
    const workerCpu = workers.reduce((n, w, i) => n + (processCpuSeconds(w.child.pid) ?? 0) - cpu0.workers[i]!, 0);
    const cpu: CpuShare = {
      machineBusy: round2((m.busy - cpu0.machine.busy) / (m.total - cpu0.machine.total)),
      brokerCores: broker !== undefined && cpu0.broker !== undefined ? round2((broker - cpu0.broker) / seconds) : null,
      instancesCores: round2(workerCpu / seconds),
    };
    if (handled() !== records) throw new Error(`the batches hold ${handled()} lines, expected ${records}`);
    const all = workers.flatMap((w) => w.batches);
    const first = Math.min(...all.map((b) => b.start));
    const last = Math.max(...all.map((b) => b.end));
    // The window in which every instance was processing.
    const t0 = Math.max(...workers.map((w) => Math.min(...w.batches.map((b) => b.start))));
    const t1 = Math.min(...workers.map((w) => Math.max(...w.batches.map((b) => b.end))));
    const inWindow = all.filter((b) => b.start >= t0 && b.end <= t1).reduce((n, b) => n + b.n, 0);
    const committed = await committedLines(bootstrap, [output, dlq]);
    if (committed !== records)
      throw new Error(`read_committed readers find ${committed} lines in the outputs, expected ${records}`);
    return {
      instances,
      cpu,
      seconds: (last - first) / 1000,
      wholeJobPerSec: records / ((last - first) / 1000),
      allWorkingPerSec: t1 > t0 && inWindow > 0 ? inWindow / ((t1 - t0) / 1000) : null,
      batches: all.length,
    };
  } finally {
    await stopWorkers(workers);
    await deleteTopics(bootstrap, [output, dlq]);
  }
}

interface Failover {
  readonly seconds: number;
  readonly assignedAfterSeconds: number;
  readonly moved: readonly string[];
}

async function failoverRun(admin: KafkaAdmin, bootstrap: string): Promise<Failover> {
  const group = `bench-scaling-failover-${Date.now()}`;
  const [input, output, dlq] = [`${group}-in`, `${group}-out`, `${group}-dlq`];
  await admin.createTopics([input, output, dlq], { partitions: PARTITIONS, replicationFactor: 1 });
  const workers = [0, 1].map((i) => startWorker(`f${i}`, { bootstrap, topic: input, group, output, dlq }));
  const producer = await KafkaTextProducer.connect({ bootstrapServers: bootstrap });
  let producing = true;
  let next = 0;
  const feeding = (async () => {
    while (producing) {
      const batch = Array.from({ length: 200 }, (_, k) => ({
        value: sampleAccessLogLine(next + k, malformationOf(next + k)),
        partition: (next + k) % PARTITIONS,
      }));
      next += 200;
      await producer.send(input, batch);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const [a, b] = workers as [Worker, Worker];
    await waitFor(
      'both instances to own partitions',
      60_000,
      () => a.owned.length > 0 && b.owned.length > 0 && a.owned.length + b.owned.length === PARTITIONS,
      workers,
    );
    await waitFor('both instances to commit batches', 60_000, () => a.batches.length > 3 && b.batches.length > 3, workers);
    const moved = [...b.owned];
    const killedAt = Date.now();
    b.child.kill('SIGKILL');
    await b.exited;
    let assignedAt: number | undefined;
    let done: Batch | undefined;
    await waitFor('the survivor to commit a batch of the killed one\'s partitions', 120_000, () => {
      if (assignedAt === undefined && moved.every((p) => a.owned.includes(p))) assignedAt = Date.now();
      done = a.batches.find((x) => x.start >= killedAt && x.parts.some((p) => moved.includes(p)));
      return done !== undefined;
    }, [a]);
    return {
      seconds: (done!.end - killedAt) / 1000,
      assignedAfterSeconds: ((assignedAt ?? done!.start) - killedAt) / 1000,
      moved,
    };
  } finally {
    producing = false;
    await feeding;
    await producer.close();
    await stopWorkers(workers);
    await deleteTopics(bootstrap, [input, output, dlq]);
  }
}

export async function runScalingBench(): Promise<void> {
  const log = (l: string) => console.log(`scaling: ${l}`);
  const records = Number(process.env.BENCH_SCALING_RECORDS ?? 400_000);
  const rounds = Number(process.env.BENCH_SCALING_ROUNDS ?? 2);
  const kafka = await ensureKafka();
  const bootstrap = kafka.bootstrapServers;
  const admin = KafkaAdmin.create(bootstrap);
  const loadBefore = os.loadavg()[0]!;
  try {
    const input = `bench-scaling-in-v${DATA_VERSION}-${records}`;
    await prefill(admin, bootstrap, input, records, log, PARTITIONS);
    const runs: ThroughputRun[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const instances of [1, 2]) {
        const r = await throughputRun(admin, kafka.pid, bootstrap, input, records, instances);
        log(
          `round ${round}, ${instances} instance(s): whole job ${fmt(r.wholeJobPerSec)} lines/s (${r.seconds.toFixed(2)} s), all working ${r.allWorkingPerSec === null ? '-' : fmt(r.allWorkingPerSec)} lines/s; machine ${Math.round(r.cpu.machineBusy * 100)} % busy, broker ${r.cpu.brokerCores ?? '?'} cores, instances ${r.cpu.instancesCores} cores`,
        );
        runs.push(r);
      }
    }
    const failover = await failoverRun(admin, bootstrap);
    log(`failover: a SIGKILLed instance's partitions committed elsewhere after ${failover.seconds.toFixed(2)} s`);
    const of = (k: number) => runs.filter((r) => r.instances === k);
    const best = (k: number, f: (r: ThroughputRun) => number | null) =>
      Math.max(...of(k).map((r) => f(r) ?? 0));
    const med = (k: number, f: (r: ThroughputRun) => number | null) => median(of(k).map((r) => f(r) ?? 0));
    const summary = [1, 2].map((k) => ({
      instances: k,
      wholeJobBest: best(k, (r) => r.wholeJobPerSec),
      wholeJobMedian: med(k, (r) => r.wholeJobPerSec),
      allWorkingBest: best(k, (r) => r.allWorkingPerSec),
      allWorkingMedian: med(k, (r) => r.allWorkingPerSec),
      machineBusyMedian: med(k, (r) => r.cpu.machineBusy),
      brokerCoresMedian: med(k, (r) => r.cpu.brokerCores),
      instancesCoresMedian: med(k, (r) => r.cpu.instancesCores),
    }));
    const speedup = {
      wholeJob: ratio(summary[1]!.wholeJobBest, summary[0]!.wholeJobBest),
      allWorking: ratio(summary[1]!.allWorkingBest, summary[0]!.allWorkingBest),
    };
    const sessionTimeoutMs = Number(brokerProperties({ port: 0, controllerPort: 0, dataDir: '' })['group.consumer.session.timeout.ms']);
    const result = {
      bench: 'scaling',
      input,
      partitions: PARTITIONS,
      records,
      rounds,
      runs,
      summary,
      speedup,
      failover: { ...failover, brokerSessionTimeoutMs: sessionTimeoutMs },
      loadAverage: { before: round2(loadBefore), after: round2(os.loadavg()[0]!) },
    };
    writeResult(
      'scaling',
      `Scale-out (group membership): case 7's ETL with Kafka transactions, ${records.toLocaleString('en-US')} lines, ${PARTITIONS} partitions, best of ${rounds}; load average ${result.loadAverage.before} before, ${result.loadAverage.after} after`,
      result,
      [
        ['measure', '1 instance', '2 instances', '2 vs 1'],
        [
          'whole job, lines/s best (median)',
          `${fmt(summary[0]!.wholeJobBest)} (${fmt(summary[0]!.wholeJobMedian)})`,
          `${fmt(summary[1]!.wholeJobBest)} (${fmt(summary[1]!.wholeJobMedian)})`,
          `${speedup.wholeJob ?? '-'}x`,
        ],
        [
          'all instances working, lines/s best (median)',
          `${fmt(summary[0]!.allWorkingBest)} (${fmt(summary[0]!.allWorkingMedian)})`,
          `${fmt(summary[1]!.allWorkingBest)} (${fmt(summary[1]!.allWorkingMedian)})`,
          `${speedup.allWorking ?? '-'}x`,
        ],
        [
          'CPU (median): machine busy; cores used by the broker / by the instances',
          `${pctOf(summary[0]!.machineBusyMedian)}; ${summary[0]!.brokerCoresMedian} / ${summary[0]!.instancesCoresMedian}`,
          `${pctOf(summary[1]!.machineBusyMedian)}; ${summary[1]!.brokerCoresMedian} / ${summary[1]!.instancesCoresMedian}`,
          '',
        ],
        [
          `SIGKILL of 1 of 2 instances until its partitions commit elsewhere (broker session timeout ${sessionTimeoutMs / 1000} s)`,
          '',
          `${failover.seconds.toFixed(2)} s (assigned after ${failover.assignedAfterSeconds.toFixed(2)} s)`,
          '',
        ],
      ],
    );
  } finally {
    admin.close();
  }
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function ratio(a: number, b: number): number | null {
  return a > 0 && b > 0 ? Math.round((a / b) * 100) / 100 : null;
}

function pctOf(share: number): string {
  return `${Math.round(share * 100)} %`;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  runScalingBench().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
