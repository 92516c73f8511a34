/**
 * What the tests of `sluice run --supervise / --instances` share: waiting for a line of the
 * supervisor's stderr.
 */
import { ChildRun } from '../examples/child-process.js';

/** Polls the supervisor's stderr (bounded); fails with what was printed. */
export async function waitForStderr(
  run: ChildRun,
  pattern: RegExp,
  what: string,
  timeoutMs = 60_000,
): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(run.stderr);
    if (m) return m;
    if (run.exitInfo) throw new Error(`the supervisor exited before ${what}\n${run.output()}`);
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
