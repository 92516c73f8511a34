/**
 * `npm run bench`: every benchmark, one after the other, each in its own process
 * (`node --expose-gc --import tsx bench/<name>.ts`) so that no run inherits another's heap, JIT
 * state or open clients. Each appends its results (with the machine and the date) to
 * bench/results/<name>.{jsonl,md}; this runner prints a summary and exits 1 if any failed.
 *
 *   1. bench/kafka-direct.ts  Kafka direct stream vs a raw consume loop vs ConsumerPerformance
 *   2. bench/state.ts         state with 1M keys, checkpoint write/restore, windows
 *   3. bench/etl.ts           case 7's ETL, Kafka to Kafka: Sluice per guarantee vs a hand-written loop
 *   4. bench/scaling.ts       the ETL as a job of 1 and 2 instances in a consumer group; failover time
 *
 * Sized to finish in well under 20 minutes on a 2-core machine with the defaults below (2 min
 * measured on the 2-core dev machine with the pre-filled input topics reused; the first run also
 * fills them). Each benchmark is killed after BENCH_TIMEOUT_MIN minutes (default 10). Scale with
 * the environment:
 *   BENCH_ONLY=etl,state        run only these (names as above, without .ts)
 *   BENCH_RECORDS, BENCH_ROUNDS  kafka-direct (default 1,000,000 records, 3 rounds)
 *   BENCH_KEYS                   state (default 1,000,000)
 *   BENCH_ETL_RECORDS, BENCH_ETL_ROUNDS  etl (default 300,000 lines, 3 rounds)
 *   BENCH_SCALING_RECORDS, BENCH_SCALING_ROUNDS  scaling (default 400,000 lines, 2 rounds)
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const BENCHES = [
  { name: 'kafka-direct', file: 'bench/kafka-direct.ts' },
  { name: 'state', file: 'bench/state.ts' },
  { name: 'etl', file: 'bench/etl.ts' },
  { name: 'scaling', file: 'bench/scaling.ts' },
] as const;

interface Outcome {
  readonly name: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly seconds: number;
  readonly timedOut: boolean;
}

function runOne(file: string, timeoutMs: number): Promise<Omit<Outcome, 'name'>> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', file], {
      cwd: root,
      stdio: 'inherit',
      env: process.env,
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`bench/run: ${file} still running after ${timeoutMs / 60_000} min: stopping it`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, timeoutMs);
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('SIGINT', forward);
      process.removeListener('SIGTERM', forward);
      resolve({ code, signal, seconds: (performance.now() - started) / 1000, timedOut });
    });
  });
}

async function main(): Promise<number> {
  const only = process.env.BENCH_ONLY?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = only?.filter((n) => !BENCHES.some((b) => b.name === n)) ?? [];
  if (unknown.length) {
    console.error(
      `bench/run: unknown benchmark(s) in BENCH_ONLY: ${unknown.join(', ')} (known: ${BENCHES.map((b) => b.name).join(', ')})`,
    );
    return 2;
  }
  const timeoutMin = Number(process.env.BENCH_TIMEOUT_MIN ?? 10);
  if (!(timeoutMin > 0)) {
    console.error(
      `bench/run: BENCH_TIMEOUT_MIN must be a number of minutes > 0, got ${process.env.BENCH_TIMEOUT_MIN}`,
    );
    return 2;
  }
  const selected = BENCHES.filter((b) => !only?.length || only.includes(b.name));
  const outcomes: Outcome[] = [];
  for (const b of selected) {
    console.error(`\n=== bench ${b.name} (${b.file}) ===`);
    const o = await runOne(b.file, timeoutMin * 60_000);
    outcomes.push({ name: b.name, ...o });
    if (o.signal === 'SIGINT') break; // the user interrupted: do not start the next one
  }
  console.error('\n=== summary ===');
  for (const o of outcomes) {
    const status = o.timedOut
      ? `timed out after ${timeoutMin} min`
      : o.code === 0
        ? 'ok'
        : `failed (${o.signal ? `signal ${o.signal}` : `exit ${o.code}`})`;
    console.error(`${o.name.padEnd(14)} ${status.padEnd(28)} ${o.seconds.toFixed(0)} s`);
  }
  console.error(`results: ${path.join('bench', 'results')}/<name>.{jsonl,md}`);
  const failed = outcomes.filter((o) => o.code !== 0).length;
  return failed || outcomes.length < selected.length ? 1 : 0;
}

process.exitCode = await main();
