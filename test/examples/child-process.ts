/**
 * Runs a real child process (`node bin/sluice.js run examples/x.ts`, the demo, ...) and lets a test
 * wait for its output with a deadline. Every wait is bounded; a timeout fails with what was printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ChildRun {
  stdout = '';
  stderr = '';
  exitInfo: Exit | undefined;
  readonly exited: Promise<Exit>;
  readonly #child: ChildProcess;
  readonly #label: string;

  private constructor(child: ChildProcess, label: string) {
    this.#child = child;
    this.#label = label;
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts `node <args>` in the repository root with `env` added to the environment. */
  static node(args: string[], env: Record<string, string> = {}): ChildRun {
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ChildRun(child, `node ${args.join(' ')}`);
  }

  /** `node bin/sluice.js <args>`. */
  static sluice(args: string[], env: Record<string, string> = {}): ChildRun {
    return ChildRun.node(['bin/sluice.js', ...args], env);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Polls `cond` (every 50 ms) until it holds; fails after `timeoutMs`, or if the process exits first. */
  async waitFor(cond: (stdout: string) => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (cond(this.stdout)) return;
      if (this.exitInfo)
        throw new Error(`${this.#label} exited (${fmtExit(this.exitInfo)}) before ${what}\n${this.output()}`);
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` and waits (bounded) for the process to exit. */
  async stop(signal: NodeJS.Signals = 'SIGINT', timeoutMs = 20_000): Promise<Exit> {
    if (!this.exitInfo) this.#child.kill(signal);
    return this.waitForExit(timeoutMs);
  }

  /** Waits (bounded) for the process to exit by itself. */
  async waitForExit(timeoutMs: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.#label} did not exit within ${timeoutMs} ms\n${this.output()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Cleanup for `after`/`finally`: SIGKILL if still running. */
  async kill(): Promise<void> {
    if (this.exitInfo || this.#child.exitCode !== null) return;
    this.#child.kill('SIGKILL');
    await this.waitForExit(5_000).catch(() => {});
  }

  /** stdout and the tail of stderr, for failure messages. */
  output(): string {
    const tail = this.stderr.split('\n').slice(-30).join('\n');
    return `--- stdout ---\n${this.stdout}\n--- stderr (last lines) ---\n${tail}`;
  }
}

function fmtExit(e: Exit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}

/**
 * The runs and clean-ups of a test file, done after its tests: every run still going is killed
 * first, then the clean-ups run in order, a failing one not stopping the others. `tempDir` makes a
 * new directory under the OS temp dir and adds its removal to the clean-ups.
 */
export function afterTests(): {
  runs: ChildRun[];
  cleanups: (() => Promise<unknown>)[];
  tempDir: (prefix: string) => Promise<string>;
} {
  const runs: ChildRun[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const r of runs) await r.kill();
    for (const c of cleanups) await c().catch(() => {});
  });
  const tempDir = async (prefix: string) => {
    const dir = await mkdtemp(path.join(tmpdir(), prefix));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  return { runs, cleanups, tempDir };
}

/** Polls `probe` (every 100 ms) until `ok` holds for its value, and returns it; fails after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await probe();
    if (ok(last)) return last;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(last, mapJson)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

function mapJson(_k: string, v: unknown): unknown {
  return v instanceof Map ? Object.fromEntries(v) : v;
}

/** One `print()` block: Spark's `Time: <ms> ms` header and the records printed under it. */
export interface PrintedBatch {
  time: number;
  lines: string[];
}

/** Splits `print()` output into its batches. */
export function parsePrintedBatches(stdout: string): PrintedBatch[] {
  const batches: PrintedBatch[] = [];
  let current: PrintedBatch | undefined;
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1); // a line still being written is left out
  for (const line of complete.split('\n')) {
    const header = /^Time: (\d+) ms$/.exec(line);
    if (header) {
      current = { time: Number(header[1]), lines: [] };
      batches.push(current);
    } else if (current && line !== '' && !line.startsWith('----')) {
      current.lines.push(line);
    }
  }
  return batches;
}

/** `(word,count)` lines of one printed batch as a map (a word printed twice in one batch throws). */
export function countsOf(batch: PrintedBatch): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of batch.lines) {
    const m = /^\((.+),(\d+)\)$/.exec(line);
    if (!m) throw new Error(`not a (word,count) line in the batch of ${batch.time}: ${JSON.stringify(line)}`);
    if (counts.has(m[1]!)) throw new Error(`word ${m[1]} printed twice in the batch of ${batch.time}`);
    counts.set(m[1]!, Number(m[2]));
  }
  return counts;
}

/** Word counts summed over every printed batch. */
export function totalCounts(stdout: string): Map<string, number> {
  const total = new Map<string, number>();
  for (const b of parsePrintedBatches(stdout)) {
    for (const [w, n] of countsOf(b)) total.set(w, (total.get(w) ?? 0) + n);
  }
  return total;
}

/** Counts of the words of `text` (split on whitespace). */
export function wordCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const w of text.split(/\s+/)) if (w !== '') counts.set(w, (counts.get(w) ?? 0) + 1);
  return counts;
}

export function sameCounts(a: Map<string, number>, b: Map<string, number>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

export function sortedEntries(m: Map<string, number>): [string, number][] {
  return [...m].sort(([a], [b]) => a.localeCompare(b));
}
