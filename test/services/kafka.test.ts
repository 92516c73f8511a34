import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BrokerUnreachableError, ServiceStartError } from '../../src/core/errors.js';
import { ensureKafka, kafkaStatus, probeKafka, stopKafka } from '../../src/services/index.js';
import { consume, createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { freePorts, isListening, silentServer } from '../helpers/ports.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { rejection, tempDirs, withEnv } from './helpers.js';

const tempDir = tempDirs('sluice-kafka-test-');

describe('the shared Kafka broker', () => {
  test('ensureKafka called twice returns the same broker and the second call reports it reused', async () => {
    const first = await ensureKafka();
    const second = await ensureKafka();
    assert.equal(second.bootstrapServers, first.bootstrapServers);
    assert.equal(second.reused, true);
    const [host, port] = second.bootstrapServers.split(',')[0]!.split(':');
    assert.deepEqual(await probeKafka(host!, Number(port)), { ok: true });
  });

  test('a record produced to a new topic is read back with its key, value, header and timestamp', async () => {
    const bootstrap = await kafkaBootstrap();
    const topic = uniqueName('services-roundtrip');
    await createTopic(bootstrap, topic, 2);
    try {
      // Recent on purpose: the broker checks retention every second, and a record whose CreateTime is
      // older than retention.ms (7 days by default) is deleted almost at once.
      const timestamp = Date.now() - 60_000;
      const [where] = await produce(bootstrap, topic, [
        { key: 'k1', value: 'hello sluice', partition: 1, headers: { h: 'v' }, timestamp },
      ]);
      assert.deepEqual(where, { topic, partition: 1, offset: '0' });
      const [record] = await consume(bootstrap, topic, 1);
      assert.equal(record!.partition, 1);
      assert.equal(record!.offset, '0');
      assert.equal(record!.key?.toString(), 'k1');
      assert.equal(record!.value?.toString(), 'hello sluice');
      assert.equal(String(record!.headers.h), 'v');
      assert.equal(record!.timestamp, String(timestamp));
    } finally {
      await deleteTopic(bootstrap, topic);
    }
  });

  test('kafkaStatus reports the shared broker as answering', async () => {
    await kafkaBootstrap();
    const s = await kafkaStatus();
    assert.equal(s.answering, true);
  });
});

describe('KAFKA_BOOTSTRAP', () => {
  test('when set, ensureKafka only checks that cluster and returns it as reused', async () => {
    const bootstrap = await kafkaBootstrap();
    await withEnv('KAFKA_BOOTSTRAP', bootstrap, async () => {
      assert.deepEqual(await ensureKafka(), { bootstrapServers: bootstrap, reused: true });
    });
  });

  test('when it points at nothing, ensureKafka fails with BrokerUnreachableError after the bounded wait', async () => {
    const [port] = await freePorts(1);
    await withEnv('KAFKA_BOOTSTRAP', `127.0.0.1:${port}`, async () => {
      const { error, ms } = await rejection(ensureKafka({ externalWaitMs: 1_500 }));
      assert.ok(error instanceof BrokerUnreachableError, String(error));
      assert.equal(error.bootstrapServers, `127.0.0.1:${port}`);
      assert.ok(ms < 10_000, `took ${ms} ms`);
      assert.equal(await isListening(port!), false, 'nothing was started for KAFKA_BOOTSTRAP');
    });
  });
});

describe('a throwaway broker', () => {
  test('starts detached in its own data dir, is reused by the next call, and stops on stopKafka', async () => {
    const [port, controllerPort] = await freePorts(2);
    const dataDir = tempDir();
    const opts = { port: port!, controllerPort: controllerPort!, dataDir, heap: '256m' };
    const started = await ensureKafka(opts);
    try {
      assert.equal(started.bootstrapServers, `127.0.0.1:${port}`);
      assert.equal(started.reused, false);
      assert.ok(started.pid && started.pid > 0);
      assert.ok(existsSync(path.join(dataDir, 'kafka.pid')));
      assert.ok(existsSync(path.join(dataDir, 'data', 'meta.properties')));
      const again = await ensureKafka(opts);
      assert.equal(again.reused, true);
      assert.equal(again.pid, started.pid);
      assert.equal((await kafkaStatus(opts)).pid, started.pid);
    } finally {
      const stopped = await stopKafka({ dataDir, graceMs: 20_000 });
      assert.equal(stopped.stopped, true);
      assert.equal(stopped.pid, started.pid);
    }
    assert.equal(await isListening(port!), false);
    assert.equal(existsSync(path.join(dataDir, 'kafka.pid')), false);
    assert.deepEqual(await stopKafka({ dataDir }), { stopped: false, how: 'not-running' });
  });

  test('with an invalid advertised port it fails fast with ServiceStartError naming Kafka with the fatal error in the log tail', async () => {
    const [port, controllerPort] = await freePorts(2);
    const dataDir = tempDir();
    const { error, ms } = await rejection(
      ensureKafka({
        port: port!,
        controllerPort: controllerPort!,
        dataDir,
        heap: '256m',
        properties: { 'advertised.listeners': 'PLAINTEXT://127.0.0.1:70000' },
      }),
    );
    assert.ok(error instanceof ServiceStartError, String(error));
    assert.equal(error.service, 'Kafka');
    assert.match(
      error.message,
      /^Kafka could not be started: the broker stopped during start-up: .*invalid port number 70000/,
    );
    assert.match(error.logTail, /Exiting Kafka due to fatal exception/);
    assert.match(error.message, /--- last lines of its log ---/);
    assert.ok(ms < 60_000, `took ${ms} ms: that is a timeout, not a detected failure`);
    assert.equal(existsSync(path.join(dataDir, 'kafka.pid')), false, 'no pid file is left behind');
    assert.equal(await isListening(controllerPort!), false, 'the failed broker is gone');
  });

  test('with an invalid property value it fails in the storage format step with the tool output as log tail', async () => {
    const [port, controllerPort] = await freePorts(2);
    const { error } = await rejection(
      ensureKafka({
        port: port!,
        controllerPort: controllerPort!,
        dataDir: tempDir(),
        properties: { 'log.segment.bytes': 10 },
      }),
    );
    assert.ok(error instanceof ServiceStartError, String(error));
    assert.match(error.message, /^Kafka could not be started: formatting the storage .* failed/);
    assert.match(error.logTail, /log\.segment\.bytes/);
  });

  test('on a port held by a program that does not speak Kafka it fails at once instead of waiting', async () => {
    const squatter = await silentServer();
    try {
      const { error, ms } = await rejection(ensureKafka({ port: squatter.port, dataDir: tempDir() }));
      assert.ok(error instanceof ServiceStartError, String(error));
      assert.match(error.message, /does not answer Kafka requests/);
      assert.ok(ms < 10_000, `took ${ms} ms`);
    } finally {
      await squatter.close();
    }
  });

  test('a broker started from this data dir with another configuration is restarted with the one asked for now, keeping its data; one started from another data dir is left alone', async () => {
    const [port, controllerPort] = await freePorts(2);
    const dataDir = tempDir();
    const base = { port: port!, controllerPort: controllerPort!, dataDir, heap: '256m' };
    const first = await ensureKafka({ ...base, properties: { 'log.retention.check.interval.ms': 2000 } });
    try {
      const bootstrap = first.bootstrapServers;
      const topic = uniqueName('services-restart');
      await createTopic(bootstrap, topic, 1);
      await produce(bootstrap, topic, [{ value: 'kept' }]);

      // The configuration brokerProperties() makes now (no extra properties) is not the running one.
      const second = await ensureKafka(base);
      assert.equal(second.restarted, true);
      assert.equal(second.reused, false);
      assert.notEqual(second.pid, first.pid);
      const props = readFileSync(path.join(dataDir, 'server.properties'), 'utf8');
      assert.match(props, /^log\.retention\.check\.interval\.ms=1000$/m);
      assert.match(props, /^group\.consumer\.session\.timeout\.ms=6000$/m);
      const [record] = await consume(bootstrap, topic, 1);
      assert.equal(record!.value?.toString(), 'kept', 'the data dir was kept');

      // Same configuration: reused, not restarted.
      const third = await ensureKafka(base);
      assert.equal(third.reused, true);
      assert.equal(third.restarted, undefined);
      assert.equal(third.pid, second.pid);

      // Another data dir's broker on the port is not ours to restart, whatever it runs with.
      const foreign = await ensureKafka({ ...base, dataDir: tempDir(), properties: { 'num.partitions': 3 } });
      assert.deepEqual(foreign, { bootstrapServers: bootstrap, reused: true });
      assert.equal((await kafkaStatus(base)).pid, second.pid);
    } finally {
      await stopKafka({ dataDir, graceMs: 20_000 });
    }
  });
});
