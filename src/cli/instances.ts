/**
 * `sluice run --instances <N|auto> <file>`: N instances of a pipeline on this machine, each a
 * supervised child process (`sluice run <file>`, restarted after a crash as `--supervise` does) in
 * group membership: they join the consumer group of the pipeline's Kafka input, and Kafka assigns
 * the partitions among them — and among the instances of the same pipeline (same id, same cluster)
 * started on other machines.
 *
 * What it prints: the children's stdout and stderr as they are (their JSON log lines intact: each
 * copied whole, never mixed with another's inside a line; pino's `pid` field says which child wrote
 * one, and the supervisor's `started` line says which instance a pid is). The supervisor's own
 * lines, on stderr, start with `sluice run --instances: ` (control characters escaped), among them
 * one per rebalance, which each child sends over its IPC channel whatever its log level: `instance
 * host-1: gained orders-2, orders-3; lost -; owns orders-2, orders-3`.
 */
import { availableParallelism, hostname } from 'node:os';
import { InvalidArgumentError } from 'commander';
import { InvalidOptionError } from '../core/errors.js';
import { escapeControlChars } from '../core/logger.js';
import {
  REBALANCE_MESSAGE,
  SupervisedPipeline,
  type SuperviseOptions,
  type SupervisionEnd,
} from './supervise.js';

/** Options of {@link runInstances}: those of `--supervise`, with a default bound on stopping. */
export type InstancesOptions = SuperviseOptions;

/** How long the instances may take to stop gracefully after SIGINT/SIGTERM by default. */
export const DEFAULT_INSTANCES_STOP_TIMEOUT_MS = 30_000;

/** What an instance id may be (StreamingContext's rule). */
const INSTANCE_ID = /^[A-Za-z0-9_.-]{1,100}$/;

/** The commander parser of `--instances`: a whole number >= 1, or `auto` (one per core). */
export function parseInstances(value: string): number | 'auto' {
  const text = value.trim();
  if (text === 'auto') return 'auto';
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError("--instances takes a whole number >= 1, or 'auto' (one per core)");
  return n;
}

/**
 * The stable id of each instance: `<base>-<i>` for i = 0..n-1, where the base is the user's
 * SLUICE_INSTANCE_ID, else this host's name (made to fit the id rule). Instance i keeps its id
 * across restarts, so a restarted instance fences its crashed self.
 */
export function instanceIds(
  n: number,
  userBase: string | undefined = process.env.SLUICE_INSTANCE_ID,
): string[] {
  let base: string;
  if (userBase !== undefined && userBase !== '') {
    // Room for the `-<i>` suffix within the 100 characters an id may have.
    if (!INSTANCE_ID.test(userBase) || userBase.length > 100 - `-${n - 1}`.length)
      throw new InvalidOptionError(
        'SLUICE_INSTANCE_ID',
        `at most ${100 - `-${n - 1}`.length} characters among letters, digits, _ . - (--instances adds -<i>)`,
        userBase,
      );
    base = userBase;
  } else {
    base =
      hostname()
        .replace(/[^A-Za-z0-9_.-]/g, '-')
        .slice(0, 80) || 'sluice';
  }
  return Array.from({ length: n }, (_, i) => `${base}-${i}`);
}

/**
 * The person's line for a message a child sent (see {@link REBALANCE_MESSAGE}) when it is a
 * rebalance: `instance <id>: gained a-0, a-1; lost -; owns a-0, a-1` (and `(input <name>)` for a
 * pipeline of several inputs). Undefined for any other message.
 */
export function rebalanceLine(message: unknown, fallbackId: string, inputs?: Set<string>): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const entry = message as {
    type?: unknown;
    instanceId?: unknown;
    input?: unknown;
    gained?: unknown;
    lost?: unknown;
    owned?: unknown;
  };
  if (entry.type !== REBALANCE_MESSAGE) return undefined;
  const list = (v: unknown): string =>
    Array.isArray(v) && v.length > 0 ? v.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(', ') : '-';
  const id = typeof entry.instanceId === 'string' ? entry.instanceId : fallbackId;
  let input = '';
  if (typeof entry.input === 'string') {
    inputs?.add(entry.input);
    if (inputs && inputs.size > 1) input = ` (input ${entry.input})`;
  }
  return `instance ${id}: gained ${list(entry.gained)}; lost ${list(entry.lost)}; owns ${list(entry.owned)}${input}`;
}

/**
 * Runs `count` instances of `file` (`auto`: os.availableParallelism()), each supervised as by
 * `sluice run --supervise`, with env SLUICE_MEMBERSHIP=group and SLUICE_INSTANCE_ID from
 * {@link instanceIds}. SIGINT/SIGTERM are forwarded to every child, which stops gracefully after its
 * running batch (a second signal is forwarded too and stops them at once); a child still running
 * `stopTimeoutMs` later (default 30 s) is killed. An instance that gives up (`--max-restarts`, or a
 * failure a restart does not change) stops the others gracefully too. An instance whose pipeline
 * stops by itself with exit code 0 is not restarted; the others go on.
 *
 * Resolves to the exit code: 0 when every instance stopped cleanly (exit code 0); else the exit code
 * of the instance that gave up, or of the first that did not stop cleanly (128 + the signal number
 * when it was killed).
 */
export async function runInstances(
  file: string,
  count: number | 'auto',
  options: InstancesOptions = {},
): Promise<number> {
  const n = count === 'auto' ? availableParallelism() : count;
  if (!(Number.isSafeInteger(n) && n >= 1))
    throw new InvalidOptionError('--instances', "a whole number >= 1, or 'auto'", count);
  const ids = instanceIds(n);
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_INSTANCES_STOP_TIMEOUT_MS;
  const write = options.writeError ?? ((l: string) => process.stderr.write(`${l}\n`));
  const say = (line: string) => write(`sluice run --instances: ${escapeControlChars(line)}`);

  const inputs = new Set<string>();
  const pipelines = ids.map(
    (id) =>
      new SupervisedPipeline(file, {
        ...options,
        env: { SLUICE_MEMBERSHIP: 'group', SLUICE_INSTANCE_ID: id },
        say: (line) => say(`instance ${id}: ${line}`),
        onMessage: (message) => {
          const text = rebalanceLine(message, id, inputs);
          if (text !== undefined) say(text);
        },
      }),
  );

  let stopping: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const stopAll = (signal: NodeJS.Signals, why: string): void => {
    if (stopping === undefined) {
      stopping = signal;
      say(why);
      killTimer = setTimeout(() => {
        pipelines.forEach((p, i) => {
          if (!p.running) return;
          say(`instance ${ids[i]}: still running ${stopTimeoutMs} ms after ${signal}: killing it (SIGKILL)`);
          p.signal('SIGKILL');
        });
      }, stopTimeoutMs);
    }
    for (const p of pipelines) p.signal(signal);
  };
  const onSignal = (signal: NodeJS.Signals): void =>
    stopAll(signal, `${signal} received: stopping ${n} instance(s) gracefully (again to stop them at once)`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  say(`running ${n} instance(s) of ${file} in group membership: ${ids.join(', ')}`);
  let gaveUp: SupervisionEnd | undefined;
  try {
    const ends = await Promise.all(
      pipelines.map(async (p, i) => {
        const end = await p.run();
        if (end.how === 'gave-up') {
          gaveUp ??= end;
          stopAll('SIGTERM', `instance ${ids[i]} gave up: stopping the other instance(s)`);
        }
        return end;
      }),
    );
    const failed = ends.filter((e) => e.exitCode !== 0);
    say(
      failed.length === 0
        ? `all ${n} instance(s) stopped cleanly`
        : `${n - failed.length} of ${n} instance(s) stopped cleanly`,
    );
    return gaveUp?.exitCode ?? failed[0]?.exitCode ?? 0;
  } finally {
    clearTimeout(killTimer);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
