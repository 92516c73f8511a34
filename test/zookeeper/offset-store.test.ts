import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import zookeeper from 'node-zookeeper-client';
import { InvalidOptionError, OffsetConflictError } from '../../src/core/errors.js';
import { ZooKeeperOffsetStore, ZooKeeperUnreachableError } from '../../src/zookeeper/index.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';
import { compareAndSetAcrossTopics, refusesInexactOffsets } from '../helpers/offset-store.js';
import { uniqueName, zookeeperConnect } from '../helpers/services.js';
import { nodeText, plainZooKeeper, removeTree } from '../helpers/zookeeper.js';

/** Runs `fn` with a client independent of the store, to look at and clean up the nodes. */
async function plain<R>(fn: (c: zookeeper.Client) => Promise<R>): Promise<R> {
  const c = await plainZooKeeper();
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

const mkdirp = (c: zookeeper.Client, path: string, data: string) =>
  new Promise<void>((resolve, reject) =>
    c.mkdirp(path, Buffer.from(data), (e) => (e ? reject(e) : resolve())),
  );

// Everything this file creates lives under one of these, removed after the tests.
const base = `/sluice-test/${uniqueName('zk')}`;
const cleanup: string[] = [base];
after(async () => {
  await plain(async (c) => {
    for (const p of cleanup) await removeTree(c, p);
  });
});

const open = async (extra: { root?: string } = {}) =>
  new ZooKeeperOffsetStore({ connectString: await zookeeperConnect(), root: `${base}/offsets`, ...extra });

offsetStoreConformance('ZooKeeperOffsetStore', () => open());

describe('ZooKeeperOffsetStore', () => {
  it('keeps the offset as text in the node /sluice/offsets/<topic>/<group>/<partition>', async () => {
    const topic = uniqueName('orders');
    cleanup.push(`/sluice/offsets/${topic}`);
    const store = new ZooKeeperOffsetStore({ connectString: await zookeeperConnect() });
    try {
      await store.write('billing', [{ topic, partition: 3, fromOffset: 0, untilOffset: 1042 }]);
      assert.equal(store.path('billing', topic, 3), `/sluice/offsets/${topic}/billing/3`);
      assert.equal(await plain((c) => nodeText(c, `/sluice/offsets/${topic}/billing/3`)), '1042');
    } finally {
      await store.close();
    }
  });

  it('reads offsets that another program stored as nodes', async () => {
    const store = await open();
    const topic = uniqueName('t');
    try {
      await plain(async (c) => {
        await mkdirp(c, `${base}/offsets/${topic}/g/0`, '15');
        await mkdirp(c, `${base}/offsets/${topic}/g/4`, String(2 ** 53 - 1));
        await mkdirp(c, `${base}/offsets/${topic}/other/0`, '99');
      });
      assert.deepEqual(await store.read('g', [topic]), [
        { topic, partition: 0, offset: 15 },
        { topic, partition: 4, offset: 2 ** 53 - 1 },
      ]);
    } finally {
      await store.close();
    }
  });

  it('compare-and-set across two topics writes neither when the second conflicts', async () => {
    const store = await open();
    try {
      const [t1] = await compareAndSetAcrossTopics(store);
      assert.equal(await plain((c) => nodeText(c, store.path('g', t1, 0))), undefined);
    } finally {
      await store.close();
    }
  });

  it('of three instances racing to commit each of 15 batches with compare-and-set, exactly one wins each', async () => {
    const stores = [await open(), await open(), await open()];
    const topic = uniqueName('t');
    try {
      let offset = 0;
      for (let batch = 0; batch < 15; batch++) {
        // The first batch races on creating the nodes, the others on their versions.
        const results = await Promise.allSettled(
          stores.map((s, i) =>
            s.write(
              'g',
              [
                { topic, partition: 0, fromOffset: offset, untilOffset: offset + 10 + i },
                { topic, partition: 1, fromOffset: offset, untilOffset: offset + 10 + i },
              ],
              { compareAndSet: true },
            ),
          ),
        );
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(won.length, 1, `batch ${batch}: ${won.length} winners`);
        for (const r of results)
          if (r.status === 'rejected') assert.ok(r.reason instanceof OffsetConflictError, String(r.reason));
        offset += 10 + won[0]!;
        assert.deepEqual(await stores[0]!.read('g', [topic]), [
          { topic, partition: 0, offset },
          { topic, partition: 1, offset },
        ]);
      }
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('compare-and-set stays conditional on a node never changed since its creation (version 0)', async () => {
    const [a, b] = [await open(), await open()];
    const topic = uniqueName('t');
    try {
      await plain((c) => mkdirp(c, `${base}/offsets/${topic}/g/0`, '5'));
      const results = await Promise.allSettled([
        a.write('g', [{ topic, partition: 0, fromOffset: 5, untilOffset: 6 }], { compareAndSet: true }),
        b.write('g', [{ topic, partition: 0, fromOffset: 5, untilOffset: 7 }], { compareAndSet: true }),
      ]);
      assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(lost.reason instanceof OffsetConflictError);
      const won = results[0]!.status === 'fulfilled' ? 6 : 7;
      assert.deepEqual(await a.read('g', [topic]), [{ topic, partition: 0, offset: won }]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('delete removes the group node and its partitions, and leaves other groups alone', async () => {
    const store = await open();
    const topic = uniqueName('t');
    try {
      await store.write('a', [
        { topic, partition: 0, fromOffset: 0, untilOffset: 1 },
        { topic, partition: 1, fromOffset: 0, untilOffset: 2 },
      ]);
      await store.write('b', [{ topic, partition: 0, fromOffset: 0, untilOffset: 3 }]);
      await store.delete('a', [topic]);
      await store.delete('a', [topic]); // nothing left: no error
      assert.equal(await plain((c) => nodeText(c, `${base}/offsets/${topic}/a`)), undefined);
      assert.deepEqual(await store.read('b', [topic]), [{ topic, partition: 0, offset: 3 }]);
      await store.write('a', [{ topic, partition: 0, fromOffset: 0, untilOffset: 5 }], {
        compareAndSet: true,
      });
      assert.deepEqual(await store.read('a', [topic]), [{ topic, partition: 0, offset: 5 }]);
    } finally {
      await store.close();
    }
  });

  it('refuses an offset ZooKeeper text could not round-trip exactly (above 2^53 - 1 or fractional)', async () => {
    const store = await open();
    try {
      await refusesInexactOffsets(store, 0.5);
    } finally {
      await store.close();
    }
  });

  it('fails with ZooKeeperUnreachableError after connectTimeoutMs when nothing answers', async () => {
    const store = new ZooKeeperOffsetStore({ connectString: '127.0.0.1:1', connectTimeoutMs: 500 });
    const started = Date.now();
    try {
      await assert.rejects(
        store.read('g', ['t']),
        (e: unknown) =>
          e instanceof ZooKeeperUnreachableError &&
          e.code === 'SLUICE_ZOOKEEPER_UNREACHABLE' &&
          e.retriable &&
          /127\.0\.0\.1:1 did not answer a session request within 500 ms/.test(e.message),
      );
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await store.close();
    }
  });

  it('rejects invalid options and node names with InvalidOptionError naming the option', async () => {
    const named = (option: string) => (e: unknown) => e instanceof InvalidOptionError && e.option === option;
    assert.throws(() => new ZooKeeperOffsetStore({ root: 'sluice/offsets' }), named('root'));
    assert.throws(() => new ZooKeeperOffsetStore({ root: '/sluice/' }), named('root'));
    assert.throws(() => new ZooKeeperOffsetStore({ root: '/zookeeper/x' }), named('root'));
    assert.throws(() => new ZooKeeperOffsetStore({ connectString: '' }), named('connectString'));
    assert.throws(() => new ZooKeeperOffsetStore({ connectString: 'zk 1:2181' }), named('connectString'));
    assert.throws(() => new ZooKeeperOffsetStore({ connectTimeoutMs: 0 }), named('connectTimeoutMs'));
    assert.throws(() => new ZooKeeperOffsetStore({ operationTimeoutMs: -5 }), named('operationTimeoutMs'));
    const store = await open();
    try {
      await assert.rejects(store.read('a/b', ['t']), named('group'));
      await assert.rejects(store.read('..', ['t']), named('group'));
      await assert.rejects(
        store.write('g', [{ topic: '', partition: 0, fromOffset: 0, untilOffset: 1 }]),
        named('topic'),
      );
      await assert.rejects(store.set('g', [{ topic: 't', partition: -1, offset: 1 }]), named('partition'));
    } finally {
      await store.close();
    }
  });

  it('describes its connect string and root', async () => {
    const store = new ZooKeeperOffsetStore({ connectString: 'zk1:2181,zk2:2181/apps', root: '/o' });
    assert.deepEqual(store.describe(), { connectString: 'zk1:2181,zk2:2181/apps', root: '/o' });
    await store.close();
  });
});
