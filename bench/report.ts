/**
 * Shared by the benchmarks: the machine a result was measured on, and appending results to
 * bench/results/<name>.jsonl (one JSON object per run) and <name>.md (a readable table per run).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
}

export function machine(): Machine {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

/** Appends `result` (with the machine and the date) to `<name>.jsonl` and a markdown section to `<name>.md`. */
export function writeResult(name: string, title: string, result: Record<string, unknown>, table: string[][]): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const date = new Date().toISOString();
  const m = machine();
  appendFileSync(path.join(RESULTS_DIR, `${name}.jsonl`), `${JSON.stringify({ date, machine: m, ...result })}\n`);
  const [head, ...rows] = table;
  const md = [
    `## ${title} — ${date}`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}`,
    '',
    `| ${head!.join(' | ')} |`,
    `| ${head!.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  appendFileSync(path.join(RESULTS_DIR, `${name}.md`), `${md}\n`);
}

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
