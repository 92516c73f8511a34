/**
 * What the checkpoint directory tests share: a temporary root removed after the file's tests, and
 * the writer processes (fixtures/*-writer.ts) the SIGKILL tests start and kill.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

/** A new directory under the OS temp dir, removed after the file's tests; `freshDir()` names a new one in it. */
export async function tempRoot(prefix: string): Promise<{ root: string; freshDir: () => string }> {
  const root = await mkdtemp(path.join(tmpdir(), prefix));
  after(() => rm(root, { recursive: true, force: true }));
  let dirs = 0;
  return { root, freshDir: () => path.join(root, `cp-${++dirs}`) };
}

export interface WriterRun {
  /** The last number printed so far: the last commit that resolved. */
  acked: () => number | undefined;
  /** The position printed in its `start <n>` line; rejects if it exits before printing it. */
  started: Promise<number>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  kill: () => void;
}

/** Starts `node --import tsx fixtures/<fixture> <args>`, a writer that prints `start <n>`, then `n` per commit. */
export function runWriter(fixture: string, args: string[]): WriterRun {
  const script = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  let onStart: (n: number) => void;
  let onEarlyExit: (e: Error) => void;
  const started = new Promise<number>((resolve, reject) => {
    onStart = resolve;
    onEarlyExit = reject;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    const m = /^start (\d+)$/m.exec(out);
    if (m) onStart(Number(m[1]));
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) =>
      child.on('exit', (code, signal) => {
        // A no-op once started.
        onEarlyExit(new Error(`the writer exited (${code ?? signal}) before starting: ${stderr}`));
        resolve({ code, signal, stderr });
      }),
  );
  return {
    acked: () => {
      const nums = out.split('\n').filter((l) => /^\d+$/.test(l));
      return nums.length ? Number(nums[nums.length - 1]) : undefined;
    },
    started,
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

/** `p`, or a rejection naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)),
    ),
  ]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The `n`-th writer of a SIGKILL loop: waits for its start, which must be `expected` (else fails
 * with `resumes`), lets it commit for a random time under `maxSleepMs`, SIGKILLs it and waits for
 * its exit. Returns the last commit it acknowledged (its start if none).
 */
export async function killWhileWriting(
  run: WriterRun,
  n: number,
  expected: number,
  resumes: string,
  maxSleepMs: number,
): Promise<number> {
  const start = await within(run.started, 30_000, `writer ${n} start`);
  assert.equal(start, expected, resumes);
  await sleep(Math.floor(Math.random() * maxSleepMs));
  const ackedBefore = run.acked() ?? start;
  run.kill();
  const { signal, stderr } = await within(run.exited, 10_000, `writer ${n} exit`);
  assert.equal(signal, 'SIGKILL', stderr);
  const acked = run.acked() ?? start;
  assert.ok(acked >= ackedBefore);
  return acked;
}
