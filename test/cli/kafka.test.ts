import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { kafkaStatusCommand } from '../../src/cli/kafka.js';
import { kafkaBootstrap } from '../helpers/services.js';
import { ChildRun } from '../examples/child-process.js';

async function sluice(args: string[], env: Record<string, string> = {}): Promise<ChildRun> {
  const run = ChildRun.sluice(args, env);
  await run.waitForExit(60_000);
  return run;
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

test('sluice kafka status reports the running broker as running, with exit code 0', async () => {
  const bootstrap = await kafkaBootstrap();
  const run = await sluice(['kafka', 'status']);
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.equal(run.stdout.trim().split('\n').length, 1);
  assert.match(run.stdout, new RegExp(`^kafka: running at ${bootstrap.replace(/\./g, '\\.')} \\(`));

  const json = await sluice(['kafka', 'status', '--json']);
  assert.equal(json.exitInfo?.code, 0, json.output());
  const status = JSON.parse(json.stdout) as {
    service: string;
    address: string;
    answering: boolean;
    state: string;
  };
  assert.deepEqual(
    [status.service, status.address, status.answering, status.state],
    ['kafka', bootstrap, true, 'running'],
  );
});

test('sluice kafka start with a broker already answering reuses it and prints its bootstrap servers', async () => {
  const bootstrap = await kafkaBootstrap();
  const run = await sluice(['kafka', 'start']);
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.match(
    run.stdout,
    /^Kafka is running at \S+ \((already running|the cluster KAFKA_BOOTSTRAP points at answers)\)$/m,
  );
  assert.match(run.stdout, new RegExp(`^bootstrap servers: ${bootstrap.replace(/\./g, '\\.')}$`, 'm'));
});

test('sluice kafka status says "not running" with exit code 3 when KAFKA_BOOTSTRAP points at a port nobody listens on', async () => {
  const address = `127.0.0.1:${await closedPort()}`;
  const run = await sluice(['kafka', 'status'], { KAFKA_BOOTSTRAP: address });
  assert.equal(run.exitInfo?.code, 3, run.output());
  assert.equal(run.stdout, `kafka: not running at ${address} (KAFKA_BOOTSTRAP)\n`);
});

test('sluice kafka stop leaves a cluster given by KAFKA_BOOTSTRAP alone and says so', async () => {
  const address = `127.0.0.1:${await closedPort()}`;
  const run = await sluice(['kafka', 'stop'], { KAFKA_BOOTSTRAP: address });
  assert.equal(run.exitInfo?.code, 0, run.output());
  assert.equal(
    run.stdout,
    `KAFKA_BOOTSTRAP is set (${address}): Sluice does not stop a cluster it did not start\n`,
  );
});

test('kafkaStatusCommand returns the status line and exit code without printing', async () => {
  await kafkaBootstrap();
  const result = await kafkaStatusCommand();
  assert.equal(result.exitCode, 0);
  assert.match(result.lines[0]!, /^kafka: running at /);
});
