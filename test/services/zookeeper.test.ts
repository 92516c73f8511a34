import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ServiceStartError } from '../../src/core/errors.js';
import { ensureZooKeeper, stopZooKeeper, zookeeperStatus } from '../../src/services/index.js';
import { freePorts, isListening, silentServer } from '../helpers/ports.js';
import { zookeeperConnect } from '../helpers/services.js';
import { rejection, tempDirs, withEnv } from './helpers.js';

const tempDir = tempDirs('sluice-zk-test-');

/** Sends a four-letter word and returns the whole answer. */
function fourLetterWord(connect: string, word: string): Promise<string> {
  const [host, port] = connect.split(',')[0]!.split('/')[0]!.split(':');
  return new Promise((resolve, reject) => {
    let answer = '';
    const s = net.connect(Number(port), host!, () => s.write(word));
    s.setTimeout(5_000, () => s.destroy(new Error(`no answer to ${word} within 5 s`)));
    s.on('data', (d) => (answer += d.toString()));
    s.on('end', () => resolve(answer));
    s.on('error', reject);
  });
}

describe('the shared ZooKeeper', () => {
  test('answers ruok with imok', async () => {
    assert.equal(await fourLetterWord(await zookeeperConnect(), 'ruok'), 'imok');
  });

  test('ensureZooKeeper called again returns the same connect string and reports it reused', async () => {
    const connect = await zookeeperConnect();
    const again = await ensureZooKeeper();
    assert.equal(again.connectString, connect);
    assert.equal(again.reused, true);
    assert.equal((await zookeeperStatus()).answering, true);
  });
});

describe('a throwaway ZooKeeper', () => {
  test('starts detached on its own port, answers srvr as a standalone server, and stops on stopZooKeeper', async () => {
    const [port] = await freePorts(1);
    const dataDir = tempDir();
    const zk = await ensureZooKeeper({ port: port!, dataDir });
    try {
      assert.equal(zk.connectString, `127.0.0.1:${port}`);
      assert.equal(zk.reused, false);
      assert.match(await fourLetterWord(zk.connectString, 'srvr'), /Mode: standalone/);
      assert.ok(existsSync(path.join(dataDir, 'zookeeper.pid')));
    } finally {
      const stopped = await stopZooKeeper({ dataDir });
      assert.equal(stopped.stopped, true);
      assert.equal(stopped.pid, zk.pid);
    }
    assert.equal(await isListening(port!), false);
  });

  test('whose JVM cannot start fails with ServiceStartError naming ZooKeeper with the JVM output as log tail', async () => {
    const [port] = await freePorts(1);
    const dataDir = tempDir();
    const { error } = await rejection(ensureZooKeeper({ port: port!, dataDir, heap: 'lots' }));
    assert.ok(error instanceof ServiceStartError, String(error));
    assert.equal(error.service, 'ZooKeeper');
    assert.match(error.message, /exited \(code 1\)/);
    assert.match(error.logTail, /Invalid maximum heap size/);
    assert.equal(existsSync(path.join(dataDir, 'zookeeper.pid')), false);
  });

  test('on a port held by a program that does not speak ZooKeeper it fails at once instead of waiting', async () => {
    const squatter = await silentServer();
    try {
      const { error, ms } = await rejection(ensureZooKeeper({ port: squatter.port, dataDir: tempDir() }));
      assert.ok(error instanceof ServiceStartError, String(error));
      assert.match(error.message, /does not answer as a ZooKeeper/);
      assert.ok(ms < 10_000, `took ${ms} ms`);
    } finally {
      await squatter.close();
    }
  });

  test('ZOOKEEPER_CONNECT pointing at nothing fails with ServiceStartError after the bounded wait, starting nothing', async () => {
    const [port] = await freePorts(1);
    await withEnv('ZOOKEEPER_CONNECT', `127.0.0.1:${port}/sluice`, async () => {
      const { error, ms } = await rejection(ensureZooKeeper({ externalWaitMs: 1_000 }));
      assert.ok(error instanceof ServiceStartError, String(error));
      assert.match(error.message, /ZOOKEEPER_CONNECT=127\.0\.0\.1:\d+\/sluice does not answer/);
      assert.ok(ms < 10_000, `took ${ms} ms`);
      assert.equal(await isListening(port!), false);
    });
  });
});
