/**
 * `sluice run --supervise <file>`: runs the pipeline as a child process (`node bin/sluice.js run
 * <file>`) and restarts it, with exponential back-off, whenever it exits with an error or is killed.
 * The pipeline resumes where its checkpoint (or offset store) says: the supervisor keeps no state.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { InvalidOptionError } from '../core/errors.js';
import { escapeControlChars } from '../core/logger.js';

/** Options of {@link superviseRun}. */
export interface SuperviseOptions {
  /** Restarts allowed in a row before giving up (default: no limit). */
  readonly maxRestarts?: number;
  /** Wait before the first restart in a row, in ms (default 1000); doubled for each further one. */
  readonly backoffMs?: number;
  /** Cap of the wait (default 30 000 ms). */
  readonly maxBackoffMs?: number;
  /**
   * A child that ran at least this long before failing counts as having worked: the back-off and
   * the count of restarts in a row start over (default 60 000 ms).
   */
  readonly stableAfterMs?: number;
  /**
   * After SIGINT/SIGTERM, how long a child may take to stop gracefully before it is killed
   * (SIGKILL). Default: no limit.
   */
  readonly stopTimeoutMs?: number;
  /** Passed on as `sluice run --log-level`. */
  readonly logLevel?: string;
  /** Where the supervisor's own lines go (default stderr). */
  readonly writeError?: (line: string) => void;
}

/** How one run of the child ended. */
export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The child's last stderr line that says what went wrong, if any. */
  readonly lastError: string | undefined;
}

/**
 * Start failures that need a person (a wrong file or option, a checkpoint that does not fit): the
 * supervisor gives up at once instead of restarting. Anything else (a broker down, a failed batch, a
 * build that threw) is restarted.
 */
const NOT_FIXED_BY_RESTARTING = new Set([
  'SLUICE_PIPELINE_FILE',
  'SLUICE_INVALID_OPTION',
  'SLUICE_CHECKPOINT_INCOMPATIBLE',
  'SLUICE_CHECKPOINT_CORRUPT',
  'SLUICE_CHECKPOINT_PIPELINE_MISMATCH',
]);

const BIN = fileURLToPath(new URL('../../bin/sluice.js', import.meta.url));
/** Set in the child's environment: `sluice run` then stops gracefully when the supervisor goes away. */
export const SUPERVISED_ENV = 'SLUICE_SUPERVISED';
/** The `type` of the IPC message a supervised child sends for each rebalance (see instances.ts). */
export const REBALANCE_MESSAGE = 'sluice.rebalance';

/**
 * Runs `file` under supervision until it stops with exit code 0, a signal (SIGINT/SIGTERM) stops it
 * (forwarded to the child, which stops gracefully after its running batch; a second one is
 * forwarded too and stops it at once), or `maxRestarts` restarts in a row have failed. Each
 * restart and the end are reported with the restart count and the last error (the child's exit code
 * or signal and its last error line on stderr). A child that cannot start for a reason a restart does
 * not change (its file, an invalid option, an incompatible or corrupt checkpoint) is not restarted.
 * Resolves to the exit code: 0 after a graceful stop; after giving up, the child's exit code (128 +
 * the signal number when it was killed).
 *
 * The child runs in a process group of its own (a terminal's Ctrl-C reaches the supervisor only,
 * which forwards it once) and stops gracefully if the supervisor dies. The child's stdout is the
 * supervisor's; its stderr is copied through, line by line.
 */
export async function superviseRun(file: string, options: SuperviseOptions = {}): Promise<number> {
  const write = options.writeError ?? ((l: string) => process.stderr.write(`${l}\n`));
  // One line each, control characters escaped: a line may quote the child's last error.
  const say = (line: string) => write(`sluice run --supervise: ${escapeControlChars(line)}`);
  const pipeline = new SupervisedPipeline(file, { ...options, say });
  let stopping: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping === undefined) {
      say(`${signal} received: stopping the pipeline gracefully (again to stop it at once)`);
      stopping = signal;
      if (options.stopTimeoutMs !== undefined) {
        killTimer = setTimeout(() => {
          if (!pipeline.running) return;
          say(`still running ${options.stopTimeoutMs} ms after ${signal}: killing it (SIGKILL)`);
          pipeline.signal('SIGKILL');
        }, options.stopTimeoutMs);
      }
    }
    pipeline.signal(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return (await pipeline.run()).exitCode;
  } finally {
    clearTimeout(killTimer);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** How a {@link SupervisedPipeline} ended. */
export interface SupervisionEnd {
  /**
   * `completed`: the child stopped by itself with exit code 0; `stopped`: {@link SupervisedPipeline.signal}
   * stopped it (or its back-off wait); `gave-up`: it failed and is not restarted (too many restarts in
   * a row, or a failure a restart does not change).
   */
  readonly how: 'completed' | 'stopped' | 'gave-up';
  /** The exit code the supervisor passes on: the child's (128 + the signal number when killed). */
  readonly exitCode: number;
}

/** Options of one {@link SupervisedPipeline}. */
export interface SupervisedPipelineOptions extends SuperviseOptions {
  /** Added to the child's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Writes one of the supervisor's lines (already a single line; escaping is up to it). */
  readonly say: (line: string) => void;
  /**
   * Each message the child sends on its IPC channel (`sluice run` under supervision sends its
   * rebalances: see run.ts), whatever its log level.
   */
  readonly onMessage?: (message: unknown) => void;
}

/**
 * One pipeline child and its restarts: `run()` starts it and restarts it after a failure, with
 * doubling back-off, until it stops with exit code 0, {@link signal} stops it, or it gives up.
 */
export class SupervisedPipeline {
  readonly #file: string;
  readonly #options: SupervisedPipelineOptions;
  #stopping: NodeJS.Signals | undefined;
  #kill: ((signal: NodeJS.Signals) => void) | undefined;
  #wake: (() => void) | undefined;

  constructor(file: string, options: SupervisedPipelineOptions) {
    const { maxRestarts } = options;
    if (maxRestarts !== undefined && !(Number.isInteger(maxRestarts) && maxRestarts >= 0))
      throw new InvalidOptionError('--max-restarts', 'an integer >= 0', maxRestarts);
    const backoffMs = options.backoffMs ?? 1000;
    if (!(Number.isInteger(backoffMs) && backoffMs >= 1))
      throw new InvalidOptionError('--backoff-ms', 'a whole number of milliseconds >= 1', backoffMs);
    this.#file = file;
    this.#options = options;
  }

  /** True while a child runs. */
  get running(): boolean {
    return this.#kill !== undefined;
  }

  /**
   * Stops the pipeline: the signal is forwarded to the running child (SIGINT/SIGTERM stop it
   * gracefully, a second one at once), or ends the wait before a restart; nothing is restarted
   * any more.
   */
  signal(signal: NodeJS.Signals): void {
    this.#stopping ??= signal;
    if (this.#kill) this.#kill(signal);
    else this.#wake?.();
  }

  async run(): Promise<SupervisionEnd> {
    const file = this.#file;
    const { maxRestarts, say } = this.#options;
    const backoffMs = this.#options.backoffMs ?? 1000;
    const maxBackoffMs = Math.max(this.#options.maxBackoffMs ?? 30_000, backoffMs);
    const stableAfterMs = this.#options.stableAfterMs ?? 60_000;
    let restarts = 0;
    let inARow = 0;
    let lastError: string | undefined;
    const summary = () => `${restarts} restart(s)${lastError ? `; last error: ${lastError}` : ''}`;
    for (let run = 1; ; run++) {
      if (this.#stopping !== undefined) {
        say(`stopped before starting, after ${summary()}`);
        return { how: 'stopped', exitCode: 0 };
      }
      const startedAt = Date.now();
      const end = await runChild(file, this.#options, run, (k) => (this.#kill = k));
      this.#kill = undefined;
      if (end.code === 0) {
        say(`${file} stopped (exit code 0) after ${summary()}`);
        return { how: this.#stopping !== undefined ? 'stopped' : 'completed', exitCode: 0 };
      }
      lastError = describeEnd(end);
      if (this.#stopping !== undefined) {
        say(`${file} stopped after ${summary()}`);
        return { how: 'stopped', exitCode: exitCodeOf(end) };
      }
      const hopeless = /: cannot start: (SLUICE_[A-Z_]+)/.exec(end.lastError ?? '')?.[1];
      if (hopeless && NOT_FIXED_BY_RESTARTING.has(hopeless)) {
        say(
          `not restarting: ${file} cannot start (${hopeless}), which a restart does not change (${summary()})`,
        );
        return { how: 'gave-up', exitCode: exitCodeOf(end) };
      }
      if (Date.now() - startedAt >= stableAfterMs) inARow = 0;
      if (maxRestarts !== undefined && inARow >= maxRestarts) {
        say(`giving up after ${inARow} restart(s) in a row (${summary()})`);
        return { how: 'gave-up', exitCode: exitCodeOf(end) };
      }
      inARow++;
      restarts++;
      const delay = Math.min(backoffMs * 2 ** Math.min(inARow - 1, 30), maxBackoffMs);
      say(`${file} failed (${lastError}); restart ${restarts} (${inARow} in a row) in ${delay} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      if (this.#stopping !== undefined) {
        say(`stopped while waiting to restart, after ${summary()}`);
        return { how: 'stopped', exitCode: 0 };
      }
    }
  }
}

function runChild(
  file: string,
  options: SupervisedPipelineOptions,
  run: number,
  setKill: (kill: (signal: NodeJS.Signals) => void) => void,
): Promise<ChildEnd> {
  const { logLevel, say, onMessage } = options;
  const args = [BIN, 'run', file, ...(logLevel !== undefined ? ['--log-level', logLevel] : [])];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    detached: true,
    env: { ...process.env, ...options.env, [SUPERVISED_ENV]: '1' },
  });
  say(`started ${file} (run ${run}, pid ${child.pid ?? '?'})`);
  setKill((signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
  const tail = new LastLines(50);
  // Whole lines only: the stderr of several children (--instances) then never mixes inside a line.
  const lines = new LineSplitter();
  const pass = (complete: string[]) => {
    if (complete.length === 0) return;
    process.stderr.write(`${complete.join('\n')}\n`);
  };
  if (onMessage) child.on('message', onMessage);
  child.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    tail.push(text);
    pass(lines.push(text));
  });
  return new Promise((resolve) => {
    let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const done = () => {
      pass(lines.flush());
      resolve({ ...ended!, lastError: lastErrorLine(tail.lines()) });
    };
    child.on('error', (e) => {
      // The child could not be started (or signalled); it never ran if no exit follows.
      tail.push(`\ncannot run ${process.execPath}: ${e.message}\n`);
      if (child.pid === undefined) {
        ended = { code: 127, signal: null };
        done();
      }
    });
    child.on('exit', (code, signal) => {
      ended = { code, signal };
      // Its last stderr lines may still be in the pipe, which a process it started can hold open:
      // wait for the end of the stream, briefly.
      const timer = setTimeout(done, 1000);
      child.on('close', () => {
        clearTimeout(timer);
        done();
      });
    });
  });
}

/** `exit code 1: <line>` / `signal SIGKILL`. */
export function describeEnd(end: ChildEnd): string {
  const how = end.signal ? `signal ${end.signal}` : `exit code ${end.code}`;
  return end.lastError ? `${how}: ${end.lastError}` : how;
}

function exitCodeOf(end: ChildEnd): number {
  if (end.code !== null) return end.code;
  return 128 + (end.signal ? (constants.signals[end.signal] ?? 0) : 0);
}

/**
 * The line of a child's stderr that best says what went wrong: `sluice run`'s own error line, else
 * the last JSON log line at level error or above (its message, and its code and message or its
 * error's message), else the last line that is neither a log line below warn nor a stack frame. Line
 * breaks that `sluice run` escaped in a message (`\n` and the indentation after it) read as a space.
 */
export function lastErrorLine(lines: readonly string[]): string | undefined {
  const own = lines.findLast((l) => /^sluice run .*: (cannot start|the pipeline failed): /.test(l));
  if (own !== undefined) {
    const text = own.replace(/(\\[rn])+[ \t]*/g, ' ');
    return text.length > 1000 ? `${text.slice(0, 1000)}…` : text;
  }
  let plain: string | undefined;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (line === '' || /^at /.test(line)) continue;
    const log = parseLog(line);
    if (log) {
      if (log.level >= 50) return log.err ? `${log.msg}: ${log.err}` : log.msg;
      if (log.level >= 40) plain ??= log.err ? `${log.msg}: ${log.err}` : log.msg;
      continue;
    }
    plain ??= line;
  }
  return plain;
}

function parseLog(line: string): { level: number; msg: string; err?: string } | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const o = JSON.parse(line) as {
      level?: unknown;
      msg?: unknown;
      err?: { message?: unknown };
      code?: unknown;
      message?: unknown;
    };
    if (typeof o.level !== 'number') return undefined;
    // `sluice run`'s fatal entry carries code and message; other entries an `err`.
    const err =
      typeof o.message === 'string'
        ? typeof o.code === 'string'
          ? `${o.code}: ${o.message}`
          : o.message
        : typeof o.err?.message === 'string'
          ? o.err.message
          : undefined;
    return { level: o.level, msg: typeof o.msg === 'string' ? o.msg : '', ...(err ? { err } : {}) };
  } catch {
    return undefined;
  }
}

/** The last `max` complete lines of a stream, plus the one still being written. */
class LastLines {
  #lines: string[] = [];
  #partial = '';
  constructor(readonly max: number) {}
  push(text: string): void {
    const parts = (this.#partial + text).split('\n');
    this.#partial = parts.pop()!;
    this.#lines.push(...parts.map((l) => (l.length > 2000 ? `${l.slice(0, 2000)}…` : l)));
    if (this.#lines.length > this.max) this.#lines.splice(0, this.#lines.length - this.max);
  }
  lines(): string[] {
    return this.#partial ? [...this.#lines, this.#partial] : [...this.#lines];
  }
}

/** Splits a stream into complete lines; the last one is kept until its line break comes. */
class LineSplitter {
  #partial = '';
  push(text: string): string[] {
    const parts = (this.#partial + text).split('\n');
    this.#partial = parts.pop()!;
    return parts;
  }
  /** The line still unfinished when the stream ended, if any. */
  flush(): string[] {
    const rest = this.#partial;
    this.#partial = '';
    return rest === '' ? [] : [rest];
  }
}
