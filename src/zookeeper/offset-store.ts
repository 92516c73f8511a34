import { InvalidOptionError } from '../core/errors.js';
import { checkCompareAndSet, type OffsetStore, type PartitionOffset } from '../core/offsets.js';
import { ZkException, ZooKeeperConnection, zkCode, type ZkOp } from './client.js';
import type { OffsetRange } from '../core/offsets.js';

export interface ZooKeeperOffsetStoreOptions {
  /**
   * `host:port[,host:port...][/chroot]`. Default env `ZOOKEEPER_CONNECT`, else `127.0.0.1:2181`.
   */
  readonly connectString?: string;
  /** The node under which offsets live. Default `/sluice/offsets`. */
  readonly root?: string;
  /** How long to wait for a session before failing with `ZooKeeperUnreachableError`. Default 10 000. */
  readonly connectTimeoutMs?: number;
  /** How long any one request may take before failing with `ZooKeeperUnreachableError`. Default 30 000. */
  readonly operationTimeoutMs?: number;
  /** The ZooKeeper session timeout asked for. Default 30 000. */
  readonly sessionTimeoutMs?: number;
}

export const DEFAULT_ZOOKEEPER_CONNECT = '127.0.0.1:2181';
export const DEFAULT_ZOOKEEPER_ROOT = '/sluice/offsets';

/** How often a write is tried again when another writer changed a node between its read and its multi. */
const MAX_ATTEMPTS = 10;

/**
 * Offsets in ZooKeeper, in the layout Spark Streaming jobs used: one node per topic, group and
 * partition holding the next offset to read as decimal text.
 *
 * ```
 * get /sluice/offsets/orders/billing/3   →  1042
 * ```
 *
 * Writes are atomic across all their ranges: one ZooKeeper `multi` that sets each existing node at
 * the version read (and creates the absent ones), so either every node changes or none does. With
 * `compareAndSet`, the values read must be the ranges' `fromOffset`; a writer that changed a node
 * in between makes the multi fail, the store reads again, and then reports the conflict.
 *
 * Topic and group names become path components: they may not be empty, `.` or `..`, nor contain
 * `/` or the characters ZooKeeper refuses in paths (controls, U+D800–U+F8FF, U+FFF0–U+FFFF).
 * `delete` removes the partition nodes and the group node; the topic node stays.
 *
 * Offsets are kept exactly up to 2^53 - 1. Needs ZooKeeper 3.4 or later (`multi`).
 *
 * @example
 * ```ts
 * const store = new ZooKeeperOffsetStore({ connectString: '127.0.0.1:2181' });
 * await store.write('billing', [{ topic: 'orders', partition: 3, fromOffset: 1000, untilOffset: 1042 }], { compareAndSet: true });
 * ```
 */
export class ZooKeeperOffsetStore implements OffsetStore {
  readonly kind = 'zookeeper';
  readonly capabilities = { compareAndSet: true, shared: true };
  readonly root: string;
  readonly #zk: ZooKeeperConnection;

  constructor(options: ZooKeeperOffsetStoreOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('options', '{ connectString?, root?, connectTimeoutMs?, ... }', options);
    }
    const connectString =
      options.connectString ?? (process.env.ZOOKEEPER_CONNECT?.trim() || DEFAULT_ZOOKEEPER_CONNECT);
    if (typeof connectString !== 'string' || !/^[^\s,/]+(,[^\s,/]+)*(\/\S*)?$/.test(connectString)) {
      throw new InvalidOptionError(
        'connectString',
        "'host:port[,host:port...][/chroot]', e.g. '127.0.0.1:2181'",
        connectString,
      );
    }
    this.root = options.root ?? DEFAULT_ZOOKEEPER_ROOT;
    checkRoot(this.root);
    this.#zk = new ZooKeeperConnection({
      connectString,
      connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 10_000),
      operationTimeoutMs: positive('operationTimeoutMs', options.operationTimeoutMs, 30_000),
      sessionTimeoutMs: positive('sessionTimeoutMs', options.sessionTimeoutMs, 30_000),
    });
  }

  describe(): Record<string, unknown> {
    return { connectString: this.#zk.connectString, root: this.root };
  }

  /** The node holding the offset of (group, topic, partition). */
  path(group: string, topic: string, partition: number): string {
    return `${this.#groupPath(group, topic)}/${partition}`;
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    const perTopic = await Promise.all(
      topics.map(async (topic) => {
        const groupPath = this.#groupPath(group, topic);
        const children = (await this.#zk.getChildren(groupPath)) ?? [];
        const found = await Promise.all(
          children
            .filter((c) => /^\d+$/.test(c))
            .map(async (c) => {
              const node = await this.#zk.getData(`${groupPath}/${c}`);
              return (
                node && { topic, partition: Number(c), offset: parseStored(`${groupPath}/${c}`, node.data) }
              );
            }),
        );
        return found.filter((o): o is PartitionOffset => o !== undefined);
      }),
    );
    return perTopic
      .flat()
      .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
  }

  async write(
    group: string,
    ranges: readonly OffsetRange[],
    options: { compareAndSet?: boolean } = {},
  ): Promise<void> {
    for (const r of ranges) checkOffset(r.fromOffset);
    await this.#apply(
      group,
      ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.untilOffset })),
      options.compareAndSet ? ranges : undefined,
    );
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    await this.#apply(group, offsets, undefined);
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    for (const topic of topics) {
      const groupPath = this.#groupPath(group, topic);
      for (let attempt = 1; ; attempt++) {
        const children = await this.#zk.getChildren(groupPath);
        if (children === undefined) break;
        try {
          await this.#zk.multi([
            ...children.map((c): ZkOp => ({ op: 'remove', path: `${groupPath}/${c}`, version: -1 })),
            { op: 'remove', path: groupPath, version: -1 },
          ]);
          break;
        } catch (e) {
          // A partition node created or removed meanwhile: list again.
          const code = zkCode(e);
          if ((code !== ZkException.NOT_EMPTY && code !== ZkException.NO_NODE) || attempt >= MAX_ATTEMPTS)
            throw e;
        }
      }
    }
  }

  async close(): Promise<void> {
    await this.#zk.close();
  }

  /**
   * Stores `offsets` in one multi. With `expected` (compare-and-set), every node read must hold its
   * range's fromOffset or be absent. A multi that fails because a node changed since it was read is
   * retried from the read, so the check always runs against what the multi will replace.
   */
  async #apply(
    group: string,
    offsets: readonly PartitionOffset[],
    expected: readonly OffsetRange[] | undefined,
  ): Promise<void> {
    if (offsets.length === 0) return;
    // One operation per node (the last given wins, as in the in-memory store), in a stable order.
    const byPath = new Map<string, PartitionOffset>();
    for (const o of offsets) {
      checkPartition(o.partition);
      checkOffset(o.offset);
      byPath.set(this.path(group, o.topic, o.partition), o);
    }
    const paths = [...byPath.keys()];
    let parentsEnsured = false;
    for (let attempt = 1; ; attempt++) {
      const current = await Promise.all(paths.map((p) => this.#zk.getData(p)));
      if (expected) {
        const stored = new Map(paths.map((p, i) => [p, current[i] && parseStored(p, current[i].data)]));
        checkCompareAndSet(group, expected, (t, p) => stored.get(this.path(group, t, p)));
      }
      const ops = paths.map((p, i): ZkOp => {
        const data = Buffer.from(String(byPath.get(p)!.offset));
        const node = current[i];
        return node
          ? { op: 'setData', path: p, data, version: node.version }
          : { op: 'create', path: p, data };
      });
      try {
        await this.#zk.multi(ops);
        return;
      } catch (e) {
        const code = zkCode(e);
        if (code === ZkException.NO_NODE && !parentsEnsured) {
          // A node to create whose group (or topic, or root) node does not exist yet.
          const parents = new Set(paths.map((p) => p.slice(0, p.lastIndexOf('/'))));
          for (const parent of parents) await this.#zk.ensurePath(parent);
          parentsEnsured = true;
          continue;
        }
        // Another writer created, changed or deleted a node since it was read: read again.
        const raced =
          code === ZkException.NODE_EXISTS ||
          code === ZkException.BAD_VERSION ||
          code === ZkException.NO_NODE;
        if (!raced || attempt >= MAX_ATTEMPTS) throw e;
        if (code === ZkException.NO_NODE) parentsEnsured = false;
      }
    }
  }

  #groupPath(group: string, topic: string): string {
    checkName('group', group);
    checkName('topic', topic);
    return `${this.root}/${topic}/${group}`;
  }
}

// ZooKeeper refuses these in paths (PathUtils.validatePath).
const REFUSED = /[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]/;

function checkName(what: 'group' | 'topic', name: string): void {
  if (
    typeof name !== 'string' ||
    name === '' ||
    name === '.' ||
    name === '..' ||
    name.includes('/') ||
    REFUSED.test(name)
  ) {
    throw new InvalidOptionError(
      what,
      `a non-empty ${what} name usable as a ZooKeeper node name: not '.' or '..', without '/' or control characters`,
      name,
    );
  }
}

function checkRoot(root: unknown): void {
  const parts = typeof root === 'string' && root.startsWith('/') ? root.slice(1).split('/') : [];
  const ok =
    parts.length > 0 &&
    parts.every((p) => p !== '' && p !== '.' && p !== '..' && !REFUSED.test(p)) &&
    parts[0] !== 'zookeeper';
  if (!ok) {
    throw new InvalidOptionError(
      'root',
      "an absolute ZooKeeper path without trailing '/', outside /zookeeper, e.g. '/sluice/offsets'",
      root,
    );
  }
}

function positive(option: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new InvalidOptionError(option, 'an integer number of milliseconds > 0', value);
  return value;
}

function checkPartition(partition: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0)
    throw new InvalidOptionError('partition', 'an integer >= 0', partition);
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`Offset ${String(offset)} is not an integer between 0 and 2^53 - 1`);
  }
}

function parseStored(path: string, data: Buffer | null | undefined): number {
  const text = data ? data.toString('utf8').trim() : '';
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(
      `ZooKeeper node ${path} holds ${JSON.stringify(text)}, not an offset between 0 and 2^53 - 1`,
    );
  }
  return n;
}
