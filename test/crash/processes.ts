/**
 * The child processes of the crash harness: the fixture pipeline (read line by line, killed by its
 * own pid) and kcat (the input producer and the independent Kafka reader). Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURE = path.join('test', 'crash', 'fixtures', 'pipeline.ts');

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface Waiter {
  readonly test: (line: string) => boolean;
  readonly resolve: (line: string) => void;
}

/** One run of `fixtures/pipeline.ts`. */
export class FixtureRun {
  readonly lines: string[] = [];
  readonly startedAt = Date.now();
  readyAt: number | undefined;
  exitInfo: Exit | undefined;
  readonly exited: Promise<Exit>;
  #stderr = '';
  #partial = '';
  readonly #child: ChildProcess;
  readonly #waiters = new Set<Waiter>();
  readonly #onLine: (line: string) => void;

  constructor(env: Record<string, string>, onLine: (line: string) => void) {
    this.#onLine = onLine;
    this.#child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: repoRoot,
      env: { ...process.env, SLUICE_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child.stdout!.setEncoding('utf8').on('data', (d: string) => this.#data(d));
    this.#child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-20_000);
    });
    this.exited = new Promise((resolve) => {
      this.#child.on('close', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  #data(d: string): void {
    const parts = (this.#partial + d).split('\n');
    this.#partial = parts.pop()!;
    for (const line of parts) {
      this.lines.push(line);
      if (line.startsWith('ready ')) this.readyAt ??= Date.now();
      this.#onLine(line);
      for (const w of this.#waiters) {
        if (w.test(line)) {
          this.#waiters.delete(w);
          w.resolve(line);
        }
      }
    }
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Resolves with the first line (from now on) that passes `test`; fails on exit or after `timeoutMs`. */
  waitForLine(test: (line: string) => boolean, what: string, timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const waiter: Waiter = {
        test,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.#waiters.add(waiter);
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.output()}`));
      }, timeoutMs);
      void this.exited.then((e) => {
        if (!this.#waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`the pipeline exited (${fmtExit(e)}) before ${what}\n${this.output()}`));
      });
    });
  }

  /** Polls `cond` every 50 ms; fails if the process exits first or after `timeoutMs`. */
  async waitUntil(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.exitInfo)
        throw new Error(`the pipeline exited (${fmtExit(this.exitInfo)}) before ${what}\n${this.output()}`);
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.output()}`);
      await sleep(50);
    }
  }

  /** Sends `signal` to this process (only) and waits, bounded, for it to exit. */
  async signal(signal: NodeJS.Signals, timeoutMs: number): Promise<Exit> {
    if (!this.exitInfo) this.#child.kill(signal);
    return withTimeout(
      this.exited,
      timeoutMs,
      () => `the pipeline did not exit within ${timeoutMs} ms of ${signal}\n${this.output()}`,
    );
  }

  /** Cleanup: SIGKILL if still running. */
  async kill(): Promise<void> {
    if (this.exitInfo) return;
    this.#child.kill('SIGKILL');
    await withTimeout(this.exited, 5_000, () => 'no exit after SIGKILL').catch(() => {});
  }

  output(): string {
    const tail = (s: string, n: number) => s.split('\n').slice(-n).join('\n');
    return `--- stdout (last lines) ---\n${this.lines.slice(-25).join('\n')}${this.#partial}\n--- stderr (last lines) ---\n${tail(this.#stderr, 30)}`;
  }
}

/**
 * `kcat -P`: produces the lines written to it (`key:value`), keyed, with librdkafka's default
 * partitioner. `finish` closes its input and waits until every record is delivered.
 */
export class KcatProducer {
  readonly #child: ChildProcess;
  #stderr = '';
  readonly #exited: Promise<Exit>;

  constructor(bootstrap: string, topic: string) {
    this.#child = spawn(
      'kcat',
      ['-P', '-b', bootstrap, '-t', topic, '-K', ':', '-X', 'enable.idempotence=true', '-X', 'linger.ms=5'],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    this.#child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.#stderr += d));
    this.#child.stdin!.on('error', () => {}); // reported by the exit status
    this.#exited = new Promise((resolve) =>
      this.#child.on('close', (code, signal) => resolve({ code, signal })),
    );
  }

  /** False while the pipe is full (then skip a tick). */
  get writable(): boolean {
    return !this.#child.stdin!.writableNeedDrain;
  }

  write(lines: string): void {
    this.#child.stdin!.write(lines);
  }

  async finish(timeoutMs: number): Promise<void> {
    this.#child.stdin!.end();
    const exit = await withTimeout(
      this.#exited,
      timeoutMs,
      () => `kcat -P did not finish within ${timeoutMs} ms`,
    );
    if (exit.code !== 0) throw new Error(`kcat -P failed (${fmtExit(exit)}): ${this.#stderr}`);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

/** Runs kcat to completion and returns its stdout; `args` are kcat's. */
export function kcat(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kcat ${args.join(' ')} did not finish within ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`kcat ${args.join(' ')} failed (${fmtExit({ code, signal })}): ${err}`));
    });
  });
}

export function fmtExit(e: Exit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
