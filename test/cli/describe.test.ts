import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describePipelineFile } from '../../src/cli/describe.js';
import { PipelineFileError } from '../../src/cli/errors.js';
import { ChildRun } from '../examples/child-process.js';

test('sluice describe prints the plan of the socket example as text: every operator, its kind and parents', async () => {
  const run = ChildRun.sluice(['describe', 'examples/socket-wordcount.ts'], { SOCKET_PORT: '7777' });
  const exit = await run.waitForExit(30_000);
  assert.equal(exit.code, 0, run.output());
  const lines = run.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^Pipeline 'socket-wordcount' — batch interval 1000 ms — membership single — fingerprint [0-9a-f]+$/);
  assert.match(run.stdout, /^ {2}lines +socket +\{.*"host":"127\.0\.0\.1","port":7777/m);
  assert.match(run.stdout, /^ {2}words +flatMap +<- lines$/m);
  assert.match(run.stdout, /^ {2}pairs +mapToPair +<- words$/m);
  assert.match(run.stdout, /^ {2}counts +reduceByKey +<- pairs$/m);
  assert.match(run.stdout, /^ {2}print-counts +print +<- counts .*\[output\]$/m);
});

test('sluice describe --json prints the plan as parseable JSON with the nodes in definition order', async () => {
  const run = ChildRun.sluice(['describe', 'examples/directory-wordcount.ts', '--json'], {
    WATCH_DIR: '/tmp/sluice-describe-test',
  });
  const exit = await run.waitForExit(30_000);
  assert.equal(exit.code, 0, run.output());
  const plan = JSON.parse(run.stdout) as {
    pipelineId: string;
    batchInterval: number;
    fingerprint: string;
    nodes: {
      name: string;
      kind: string;
      parents: string[];
      options: Record<string, unknown>;
      output: boolean;
    }[];
  };
  assert.equal(plan.pipelineId, 'directory-wordcount');
  assert.equal(plan.batchInterval, 1000);
  assert.deepEqual(
    plan.nodes.map((n) => [n.name, n.kind, n.parents, n.output]),
    [
      ['files', 'directory', [], false],
      ['words', 'flatMap', ['files'], false],
      ['counts', 'countByValue', ['words'], false],
      ['print-counts', 'print', ['counts'], true],
    ],
  );
  assert.equal(plan.nodes[0]!.options.directory, '/tmp/sluice-describe-test');
});

test('describePipelineFile returns the same plan text and JSON without starting anything', async () => {
  const text = await describePipelineFile('examples/socket-wordcount.ts');
  assert.match(text, /^Pipeline 'socket-wordcount'/);
  const json = JSON.parse(await describePipelineFile('examples/socket-wordcount.ts', { json: true })) as {
    nodes: unknown[];
  };
  assert.equal(json.nodes.length, 5);
});

test('describePipelineFile rejects a file without a pipeline default export with PipelineFileError', async () => {
  await assert.rejects(describePipelineFile('test/cli/fixtures/no-default-export.ts'), (e: unknown) => {
    assert.ok(e instanceof PipelineFileError);
    assert.equal(e.code, 'SLUICE_PIPELINE_FILE');
    assert.match(e.message, /has no default export \(it exports pipeline\)/);
    return true;
  });
});
