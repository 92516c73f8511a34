import { createClient, Exception, type Client, type Transaction } from 'node-zookeeper-client';
import { ZooKeeperUnreachableError } from './errors.js';

export interface ZooKeeperConnectionOptions {
  readonly connectString: string;
  readonly connectTimeoutMs: number;
  readonly sessionTimeoutMs: number;
  readonly operationTimeoutMs: number;
}

/** One operation of a `multi`, as ZooKeeper's Java client `Op`. */
export type ZkOp =
  | { readonly op: 'create'; readonly path: string; readonly data: Buffer }
  | { readonly op: 'setData'; readonly path: string; readonly data: Buffer; readonly version: number }
  | { readonly op: 'check'; readonly path: string; readonly version: number }
  | { readonly op: 'remove'; readonly path: string; readonly version: number };

/**
 * node-zookeeper-client's Transaction turns version 0 into -1 ("any version") with `version || -1`
 * (alexguan/node-zookeeper-client#67), which would make a compare-and-set against a node never
 * changed since its creation unconditional. Sets the version of the operation just added.
 */
function pinVersion(tx: Transaction, version: number): void {
  const ops = (tx as unknown as { ops?: { version?: number }[] }).ops;
  const last = Array.isArray(ops) ? ops[ops.length - 1] : undefined;
  if (!last || typeof last.version !== 'number') {
    throw new Error('Unsupported node-zookeeper-client: its Transaction no longer keeps an ops array');
  }
  last.version = version;
}

/** The ZooKeeper error code of `e` (e.g. `Exception.NO_NODE`), or undefined for other errors. */
export function zkCode(e: unknown): number | undefined {
  return e instanceof Exception ? e.getCode() : undefined;
}

export { Exception as ZkException };

/**
 * A session with ZooKeeper, opened on first use, with promise-returning operations that never wait
 * longer than the configured timeouts. A session that expires is dropped; the next call opens a new
 * one.
 */
export class ZooKeeperConnection {
  readonly #o: ZooKeeperConnectionOptions;
  #session: Promise<Client> | undefined;
  #closed = false;

  constructor(options: ZooKeeperConnectionOptions) {
    this.#o = options;
  }

  get connectString(): string {
    return this.#o.connectString;
  }

  async getData(path: string): Promise<{ data: Buffer; version: number } | undefined> {
    return this.#call<{ data: Buffer; version: number } | undefined>(`getData ${path}`, (c, done) =>
      c.getData(path, (e, data, stat) => {
        if (zkCode(e) === Exception.NO_NODE) done(null, undefined);
        else done(e, e ? undefined : { data, version: stat.version });
      }),
    );
  }

  /** Children of `path`, or undefined when it does not exist. */
  async getChildren(path: string): Promise<string[] | undefined> {
    return this.#call<string[] | undefined>(`getChildren ${path}`, (c, done) =>
      c.getChildren(path, (e, children) => {
        if (zkCode(e) === Exception.NO_NODE) done(null, undefined);
        else done(e, children);
      }),
    );
  }

  /** Creates `path` and its missing ancestors, all empty; no error when they exist. */
  async ensurePath(path: string): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = `/${parts.slice(0, i).join('/')}`;
      await this.#call<void>(`create ${p}`, (c, done) =>
        c.create(p, (e) => done(zkCode(e) === Exception.NODE_EXISTS ? null : e, undefined)),
      );
    }
  }

  /** Runs `ops` as one ZooKeeper `multi`: all applied, or none (then it throws the failing op's error). */
  async multi(ops: readonly ZkOp[]): Promise<void> {
    if (ops.length === 0) return;
    return this.#call<void>(`multi of ${ops.length} operation(s)`, (c, done) => {
      const tx: Transaction = c.transaction();
      for (const o of ops) {
        if (o.op === 'create') tx.create(o.path, o.data);
        else if (o.op === 'setData') pinVersion(tx.setData(o.path, o.data, o.version), o.version);
        else if (o.op === 'check') pinVersion(tx.check(o.path, o.version), o.version);
        else pinVersion(tx.remove(o.path, o.version), o.version);
      }
      tx.commit((e) => done(e, undefined));
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    if (!session) return;
    const client = await session.catch(() => undefined);
    client?.close();
  }

  async #client(): Promise<Client> {
    if (this.#closed) throw new Error('This ZooKeeper offset store is closed');
    this.#session ??= this.#connect().catch((e: unknown) => {
      this.#session = undefined; // a later call tries again
      throw e;
    });
    return this.#session;
  }

  #connect(): Promise<Client> {
    const { connectString, connectTimeoutMs, sessionTimeoutMs } = this.#o;
    const client = createClient(connectString, {
      sessionTimeout: sessionTimeoutMs,
      spinDelay: 200,
      retries: 0,
    });
    return new Promise<Client>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.close();
        reject(new ZooKeeperUnreachableError(connectString, connectTimeoutMs, 'a session request'));
      }, connectTimeoutMs);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve(client);
      });
      client.on('expired', () => {
        // The session and its client are dead; let the next call open a new one.
        if (this.#session) {
          void this.#session.then((c) => {
            if (c === client) this.#session = undefined;
          });
        }
        client.close();
      });
      client.connect();
    });
  }

  async #call<R>(
    what: string,
    fn: (c: Client, done: (e: Error | Exception | null, r: R) => void) => void,
  ): Promise<R> {
    const client = await this.#client();
    const { connectString, operationTimeoutMs } = this.#o;
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new ZooKeeperUnreachableError(connectString, operationTimeoutMs, what)),
        operationTimeoutMs,
      );
      fn(client, (e, r) => {
        clearTimeout(timer);
        if (e) reject(e);
        else resolve(r);
      });
    });
  }
}
