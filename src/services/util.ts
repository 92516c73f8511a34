/**
 * Small process, file and socket helpers shared by the local-service launchers in this folder.
 * Everything here is bounded: every wait has a deadline.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is `<root>/src/services/util.ts`). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `<repo>/.sluice/...`: runtime data (gitignored). */
export function sluicePath(...parts: string[]): string {
  return path.join(repoRoot, '.sluice', ...parts);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The last `lines` lines of a text file ('' when it does not exist). Reads at most the last 256 KiB. */
export function tailFile(file: string, lines = 30): string {
  if (!existsSync(file)) return '';
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return lastLines(buf.toString('utf8'), lines);
  } finally {
    closeSync(fd);
  }
}

export function lastLines(text: string, lines: number): string {
  const all = text.replace(/\s+$/, '').split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}

/** Reads what was appended to a file since the last call (for following a log while a server starts). */
export class FileFollower {
  private offset = 0;
  constructor(private readonly file: string) {}
  readNew(): string {
    if (!existsSync(this.file)) return '';
    const fd = openSync(this.file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) this.offset = 0; // truncated or rotated
      if (size === this.offset) return '';
      const buf = Buffer.alloc(size - this.offset);
      readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      return buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  }
}

/** True when a process with this pid exists (and is not a zombie of ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // A zombie still answers kill(0); /proc tells them apart on Linux.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return true;
  }
}

/** The command line of a live process ('' if unknown). Linux /proc. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Reads a pid file; returns the pid only when that process is alive and its command line contains `marker`. */
export function livePid(pidFile: string, marker: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  const cmd = commandLine(pid);
  return cmd === '' || cmd.includes(marker) ? pid : undefined;
}

/**
 * null while the server process runs; else how it ended. `exit` is filled by the child's 'exit' event
 * when this process spawned it (the event can lag behind the process being gone: wait up to 2 s for
 * the code); without it only the pid file tells.
 */
export async function exitStatus(
  exit: { value: string | null } | null,
  pidFile: string,
  marker: string,
): Promise<string | null> {
  if (exit?.value) return exit.value;
  if (livePid(pidFile, marker) !== undefined) return null;
  if (exit) {
    const deadline = Date.now() + 2_000;
    while (exit.value === null && Date.now() < deadline) await sleep(50);
    return exit.value ?? 'exit status unknown';
  }
  return 'exit status unknown';
}

/** Waits until `pid` is gone, up to `ms`. Returns true if it exited. */
export async function waitForExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
  return true;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL and wait up to 5 s. Returns how it ended. */
export async function terminate(
  pid: number,
  graceMs: number,
): Promise<'not-running' | 'terminated' | 'killed'> {
  if (!isAlive(pid)) return 'not-running';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'not-running';
  }
  if (await waitForExit(pid, graceMs)) return 'terminated';
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  await waitForExit(pid, 5_000);
  return 'killed';
}

export type ExchangeResult =
  { ok: true; data: Buffer } | { ok: false; stage: 'connect' | 'answer'; error: string };

/**
 * Connects to host:port, writes `request` (if any) and collects bytes until `complete(data)` says the
 * answer is whole, the peer closes, or `timeoutMs` passes. `stage` tells a refused connection from a
 * server that accepted but did not answer. `farewell` may return bytes to send before closing.
 */
export function exchange(
  host: string,
  port: number,
  request: Buffer | string | null,
  complete: (data: Buffer) => boolean,
  timeoutMs: number,
  farewell?: (data: Buffer) => Buffer | string | null,
): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    let connected = false;
    let settled = false;
    const socket = net.connect({ host, port });
    const finish = (r: ExchangeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const bye = r.ok && farewell ? farewell(r.data) : null;
      if (bye !== null && !socket.destroyed) {
        // Say goodbye politely (so the server logs nothing) and close; never wait for it.
        socket.end(bye);
        setTimeout(() => socket.destroy(), 1_000).unref();
      } else {
        socket.destroy();
      }
      resolve(r);
    };
    const timer = setTimeout(
      () =>
        finish({
          ok: false,
          stage: connected ? 'answer' : 'connect',
          error: `no answer within ${timeoutMs} ms`,
        }),
      timeoutMs,
    );
    socket.on('connect', () => {
      connected = true;
      if (request !== null) socket.write(request);
    });
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (complete(data)) finish({ ok: true, data });
    });
    socket.on('end', () => {
      if (data.length > 0) finish({ ok: true, data });
      else
        finish({ ok: false, stage: 'answer', error: 'the server closed the connection without answering' });
    });
    socket.on('error', (e: NodeJS.ErrnoException) =>
      finish({ ok: false, stage: connected ? 'answer' : 'connect', error: e.code ?? e.message }),
    );
  });
}

/** Runs a command to completion (bounded), capturing stdout and stderr together. Never throws. */
export function runCommand(
  command: string,
  args: string[],
  opts: { timeoutMs: number; cwd?: string },
): Promise<{ code: number | null; output: string; error?: string }> {
  return new Promise((resolve) => {
    let output = '';
    let child;
    try {
      child = spawn(command, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      resolve({ code: null, output: '', error: (e as Error).message });
      return;
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      output += `\n(killed after ${opts.timeoutMs} ms)`;
    }, opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ code: null, output, error: e.code === 'ENOENT' ? `${command} is not installed` : e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/**
 * Runs `fn` holding an exclusive lock file (other processes of this repo starting the same service
 * wait). A lock left by a dead process is taken over. Waits at most `waitMs` for the lock.
 */
export async function withLockFile<T>(lockFile: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number.parseInt(safeRead(lockFile).trim(), 10);
      if (!Number.isInteger(holder) || !isAlive(holder)) {
        safeUnlink(lockFile);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new Error(`${lockFile} is still held by process ${holder} after ${waitMs} ms`);
      }
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    safeUnlink(lockFile);
  }
}

export function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function safeUnlink(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* not there */
  }
}

/** Status line data shared by every service. */
export interface ServiceStatus {
  service: string;
  /** host:port (or URL without credentials) that was checked. */
  address: string;
  answering: boolean;
  /** pid of a server Sluice started and still runs (from its pid file). */
  pid?: number;
  /** 'sluice' = started by Sluice from this repo; 'env' = pointed at by an environment variable; 'system' = a machine service. */
  managedBy: 'sluice' | 'env' | 'system';
}

/** A URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

/** What stopping a service Sluice started says. */
export interface StopResult {
  stopped: boolean;
  pid?: number;
  how: 'not-running' | 'terminated' | 'killed';
}

/**
 * Stops the process whose pid file (in a data dir Sluice manages) names a live `marker` process:
 * SIGTERM, then SIGKILL after `graceMs`. A stale pid file is removed; nothing else is touched.
 */
export async function stopByPidFile(pidFile: string, marker: string, graceMs: number): Promise<StopResult> {
  const pid = livePid(pidFile, marker);
  if (pid === undefined) {
    safeUnlink(pidFile);
    return { stopped: false, how: 'not-running' };
  }
  const how = await terminate(pid, graceMs);
  safeUnlink(pidFile);
  return { stopped: how !== 'not-running', pid, how };
}

/** Property values as the strings a `.properties` file holds. */
export function stringifyProperties(p: Record<string, string | number | boolean>): Record<string, string> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)]));
}
