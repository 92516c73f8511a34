/**
 * The short form of the crash test, as `npm test` runs it: a few thousand records and six SIGKILLs
 * per mode (one paused before the write, one in the middle of it, one after it and before the
 * offsets, three at random moments). `CRASH_SEED` replays a run's kill plan and kill times.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { formatSummary, runCrashTest, violation, type CrashResult } from './harness.js';
import type { Mode } from './modes.js';

export const SHORT = { records: 4_000, kills: 6 } as const;

/** Budget of one short crash test (they take 5-15 s on 2 cores). */
export const SHORT_TIMEOUT_MS = 90_000;

/** Runs the short crash test of `mode`, reports its summary and checks the kills happened as planned. */
export async function shortCrashTest(t: TestContext, mode: Mode): Promise<CrashResult> {
  const seed = process.env.CRASH_SEED ? Number(process.env.CRASH_SEED) : undefined;
  const result = await runCrashTest({ mode, ...SHORT, ...(seed !== undefined ? { seed } : {}) });
  const summary = formatSummary(result);
  for (const line of summary.split('\n')) t.diagnostic(line);
  assert.ok(result.records >= SHORT.records, summary);
  assert.equal(result.kills, SHORT.kills, summary);
  assert.equal(result.restarts, SHORT.kills, summary);
  for (const [phase, n] of Object.entries(result.targeted)) {
    assert.ok(n >= 1, `no kill paused at ${phase}\n${summary}`);
  }
  assert.equal(result.foreign, 0, summary);
  assert.equal(violation(result), undefined, summary);
  return result;
}
