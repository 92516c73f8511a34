/**
 * Log integrity, with real `sluice run` processes: a pipeline whose records and errors carry a line
 * break followed by a pino-shaped JSON object (test/cli/fixtures/forging-pipeline.ts) must not be
 * able to forge a log entry. Every line a job writes is a JSON log line or a line without control
 * characters, and no line parses as the forged entry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChildRun, afterTests } from '../examples/child-process.js';

const { runs } = afterTests();
const FIXTURE = 'test/cli/fixtures/forging-pipeline.ts';
const FORGED = '{"level":60,"time":1,"pid":1,"hostname":"h","name":"sluice","msg":"forged"}';
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

async function run(args: string[], env: Record<string, string>): Promise<ChildRun> {
  const child = ChildRun.sluice(args, { SLUICE_LOG_LEVEL: 'debug', ...env });
  runs.push(child);
  await child.waitForExit(60_000);
  return child;
}

type Entry = { level: number; msg: string; name: string; [k: string]: unknown };

/**
 * Checks the rule on every line of an output and returns its JSON log entries: a line is a JSON
 * object (a log entry on stderr: level, msg and name sluice; on stdout, a record print() wrote as
 * JSON), or has no control character; no line is the forged entry.
 */
function checkLines(output: string, stream: 'stdout' | 'stderr', context: string): Entry[] {
  const entries: Entry[] = [];
  for (const line of output.split('\n')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    if (parsed !== null && typeof parsed === 'object') {
      const o = parsed as Partial<Entry>;
      assert.notEqual(o.msg, 'forged', `${stream} has a forged log line: ${line}\n${context}`);
      if (stream === 'stderr') {
        assert.equal(typeof o.level, 'number', line);
        assert.equal(typeof o.msg, 'string', line);
        assert.equal(o.name, 'sluice', line);
        entries.push(o as Entry);
      } else {
        assert.deepEqual(Object.keys(o), ['value'], `stdout has a JSON line that is not a record: ${line}`);
      }
    } else {
      assert.doesNotMatch(line, CONTROL, `${stream} has a raw control character in: ${JSON.stringify(line)}`);
    }
  }
  return entries;
}

test('records with line breaks and escape sequences print escaped, and the error quoting one is a fatal log entry and an escaped summary line', async () => {
  const child = await run(['run', FIXTURE], { FORGE: 'operator' });
  assert.equal(child.exitInfo?.code, 1, child.output());
  checkLines(child.stdout, 'stdout', child.output());
  const entries = checkLines(child.stderr, 'stderr', child.output());

  // print(): each record on one line, its control characters escaped.
  const printed = child.stdout.split('\n');
  assert.ok(printed.includes(`first\\n${FORGED}\\nlast`), child.stdout);
  assert.ok(printed.includes(`\\r${FORGED}`), child.stdout);
  assert.ok(printed.includes('\\x1b[2J\\x1b[31mred\\x1b[0m'), child.stdout);
  assert.ok(printed.includes(`c1\\x85${FORGED}\\u2028${FORGED}`), child.stdout);
  assert.ok(printed.includes(`(first\\n${FORGED}\\nlast,1)`), child.stdout);

  const fatal = entries.filter((e) => e.level === 60);
  assert.equal(fatal.length, 1, child.stderr);
  assert.equal(fatal[0]!.code, 'SLUICE_OPERATOR_FAILED');
  assert.match(String(fatal[0]!.message), new RegExp(`cannot parse first\\n\\{"level":60`));
  const last = child.stderr.trimEnd().split('\n').at(-1)!;
  assert.match(last, /^sluice run .*forging-pipeline\.ts: the pipeline failed: SLUICE_OPERATOR_FAILED: /);
  assert.ok(last.includes(`cannot parse first\\n${FORGED}\\nlast`), last);
});

test('an exception nothing catches is reported as a fatal log entry with its stack and an escaped summary line, exit code 1', async () => {
  const child = await run(['run', FIXTURE], { FORGE: 'uncaught' });
  assert.equal(child.exitInfo?.code, 1, child.output());
  checkLines(child.stdout, 'stdout', child.output());
  const fatal = checkLines(child.stderr, 'stderr', child.output()).filter((e) => e.level === 60);
  assert.equal(fatal.length, 1, child.stderr);
  assert.equal(fatal[0]!.type, 'Error');
  assert.match(String(fatal[0]!.stack), /^Error: cannot parse first\n\{"level":60.*\n\s+at /s);
  assert.match(
    child.stderr.trimEnd().split('\n').at(-1)!,
    /^sluice run .*: the pipeline failed: Error: cannot parse first\\n\{"level":60/,
  );
});

test('the supervisor reports a last error with line breaks on one escaped line', async () => {
  const child = await run(['run', '--supervise', '--max-restarts', '0', FIXTURE], { FORGE: 'log-exit' });
  assert.equal(child.exitInfo?.code, 1, child.output());
  checkLines(child.stdout, 'stdout', child.output());
  checkLines(child.stderr, 'stderr', child.output());
  assert.match(
    child.stderr,
    /^sluice run --supervise: giving up after 0 restart\(s\) in a row \(0 restart\(s\); last error: exit code 1: bad record first\\n\{"level":60/m,
  );
});
