/**
 * A plain ZooKeeper client on the shared server, independent of the code under test, to look at and
 * clean up the nodes the tests make. Every wait is bounded.
 */
import zookeeper from 'node-zookeeper-client';
import { zookeeperConnect } from './services.js';

/** A new client with a session (within 10 s, else it is closed and this fails); the caller closes it. */
export async function plainZooKeeper(): Promise<zookeeper.Client> {
  const connect = await zookeeperConnect();
  const c = zookeeper.createClient(connect, { sessionTimeout: 10_000, retries: 2 });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      c.close();
      reject(new Error(`no ZooKeeper session with ${connect} within 10 s`));
    }, 10_000);
    c.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    c.connect();
  });
  return c;
}

const isNoNode = (e: unknown) =>
  (e as zookeeper.Exception | null)?.getCode?.() === zookeeper.Exception.NO_NODE;

/** The node's data as text, or undefined when there is no such node. */
export const nodeText = (c: zookeeper.Client, path: string) =>
  new Promise<string | undefined>((resolve, reject) =>
    c.getData(path, (e, data) => {
      if (isNoNode(e)) resolve(undefined);
      else if (e) reject(e);
      else resolve(data ? data.toString('utf8') : '');
    }),
  );

/**
 * Removes the node and everything below it, if it is there. (The library's removeRecursive lists
 * only two levels: async v3 does not see the growing list.)
 */
export async function removeTree(c: zookeeper.Client, path: string): Promise<void> {
  const children = await new Promise<string[]>((resolve, reject) =>
    c.getChildren(path, (e, ch) => (isNoNode(e) ? resolve([]) : e ? reject(e) : resolve(ch))),
  );
  for (const child of children) await removeTree(c, `${path}/${child}`);
  await new Promise<void>((resolve, reject) =>
    c.remove(path, -1, (e) => (e && !isNoNode(e) ? reject(e) : resolve())),
  );
}
