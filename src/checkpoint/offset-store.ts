import { createHash } from 'node:crypto';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { InvalidOptionError } from '../core/errors.js';
import { checkCompareAndSet, type OffsetStore, type PartitionOffset } from '../core/offsets.js';
import { removeLeftoverTempFiles, writeFileAtomic } from '../fs/atomic-file.js';
import type { OffsetRange } from '../core/offsets.js';

export interface CheckpointDirOffsetStoreOptions {
  /** The checkpoint directory; offsets go to `<dir>/offsets/<group>.json`. Created when missing. */
  readonly dir: string;
}

/** The content of one group's offsets file. */
export interface CheckpointOffsetsFile {
  readonly version: 1;
  readonly group: string;
  /** ISO 8601 time of the last write. */
  readonly updatedAt: string;
  /** Sorted by topic, then partition. */
  readonly offsets: readonly PartitionOffset[];
}

/**
 * Offsets in a checkpoint directory, one readable JSON file per group:
 *
 * ```
 * <dir>/offsets/billing.json
 * { "version": 1, "group": "billing", "updatedAt": "2026-11-21T12:00:00.000Z",
 *   "offsets": [{ "topic": "orders", "partition": 3, "offset": 1042 }] }
 * ```
 *
 * Each write replaces the whole file atomically (temporary file, fsync, rename, directory fsync),
 * so a crash at any moment, SIGKILL or power cut, leaves the previous content or the new one, never
 * a mix. Temporary files a crash left behind are removed by the next write of that group.
 *
 * Writes to one file are serialised within the process (also across store instances on the same
 * directory), which makes `compareAndSet` atomic there. Processes do not exclude each other: two
 * processes writing the same group's file at once can lose one's update. Run one process per group
 * (as a Sluice job does), or use a store backed by a server (PostgreSQL, Redis, ZooKeeper).
 *
 * Group names are file names after `encodeURIComponent` (and `.` at the start as `%2E`); names
 * that would make a file name over 200 characters are shortened with a hash. On a case-insensitive
 * file system, groups that differ only in case share a file: the store detects it (the file names
 * its group) and refuses.
 *
 * @example
 * ```ts
 * const store = new CheckpointDirOffsetStore({ dir: '/var/lib/jobs/orders/checkpoint' });
 * await store.write('billing', [{ topic: 'orders', partition: 3, fromOffset: 1000, untilOffset: 1042 }], { compareAndSet: true });
 * ```
 */
export class CheckpointDirOffsetStore implements OffsetStore {
  readonly kind = 'checkpoint';
  readonly capabilities = { compareAndSet: true };
  /** The checkpoint directory, absolute. */
  readonly dir: string;
  readonly #offsetsDir: string;
  #dirReady: Promise<void> | undefined;

  constructor(options: CheckpointDirOffsetStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('options', "{ dir: 'path/to/checkpoint' }", options);
    }
    if (typeof options.dir !== 'string' || options.dir.trim() === '' || options.dir.includes('\0')) {
      throw new InvalidOptionError(
        'dir',
        'the path of the checkpoint directory, a non-empty string',
        options.dir,
      );
    }
    this.dir = path.resolve(options.dir);
    this.#offsetsDir = path.join(this.dir, 'offsets');
  }

  describe(): Record<string, unknown> {
    return { dir: this.dir };
  }

  /** The file holding the offsets of `group`. */
  file(group: string): string {
    checkGroup(group);
    return path.join(this.#offsetsDir, `${fileName(group)}.json`);
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    const file = this.file(group);
    // No lock: a rename is atomic, so this sees the file before or after any write.
    const all = await readOffsets(file, group);
    return all.filter((o) => topics.includes(o.topic));
  }

  async write(
    group: string,
    ranges: readonly OffsetRange[],
    options: { compareAndSet?: boolean } = {},
  ): Promise<void> {
    if (ranges.length === 0) return;
    const offsets = ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.untilOffset }));
    await this.#update(group, (current) => {
      if (options.compareAndSet) {
        const stored = new Map(current.map((o) => [key(o.topic, o.partition), o.offset]));
        checkCompareAndSet(group, ranges, (t, p) => stored.get(key(t, p)));
      }
      return merge(current, offsets);
    });
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.#update(group, (current) => merge(current, offsets));
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.#update(group, (current) => current.filter((o) => !topics.includes(o.topic)));
  }

  async close(): Promise<void> {}

  /** Read, change and replace the group's file, alone among the writers of this process. */
  async #update(group: string, change: (current: PartitionOffset[]) => PartitionOffset[]): Promise<void> {
    const file = this.file(group);
    await withFileLock(file, async () => {
      await this.#ensureDir();
      if (!cleaned.has(file)) {
        await removeLeftoverTempFiles(file);
        cleaned.add(file);
      }
      const current = await readOffsets(file, group);
      const next = change(current);
      for (const o of next) checkOffset(o);
      if (next.length === 0) {
        if (current.length > 0) await unlink(file);
        return;
      }
      const content: CheckpointOffsetsFile = {
        version: 1,
        group,
        updatedAt: new Date().toISOString(),
        offsets: sorted(next),
      };
      await writeFileAtomic(file, `${JSON.stringify(content, null, 2)}\n`);
    });
  }

  #ensureDir(): Promise<void> {
    this.#dirReady ??= (async () => {
      const created = await mkdir(this.#offsetsDir, { recursive: true });
      // A new directory entry is durable once its parent is synced (writeFileAtomic syncs offsets/).
      if (created !== undefined) await syncDir(path.dirname(this.#offsetsDir));
    })().catch((e: unknown) => {
      this.#dirReady = undefined;
      throw e;
    });
    return this.#dirReady;
  }
}

/** The tail of the chain of updates of each file (absolute path), shared by every instance in the process. */
const locks = new Map<string, Promise<void>>();
/** Files whose leftover temporary files this process has removed. */
const cleaned = new Set<string>();

async function withFileLock(file: string, fn: () => Promise<void>): Promise<void> {
  const previous = locks.get(file) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => {});
  locks.set(file, tail);
  try {
    await run;
  } finally {
    if (locks.get(file) === tail) locks.delete(file);
  }
}

async function readOffsets(file: string, group: string): Promise<PartitionOffset[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  let parsed: Partial<CheckpointOffsetsFile>;
  try {
    parsed = JSON.parse(text) as Partial<CheckpointOffsetsFile>;
  } catch (e) {
    throw new Error(`Checkpoint offsets file ${file} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.version !== 1) {
    throw new Error(
      `Checkpoint offsets file ${file} has version ${JSON.stringify(parsed?.version)}; this Sluice reads version 1`,
    );
  }
  if (parsed.group !== group) {
    throw new Error(
      `Checkpoint offsets file ${file} belongs to group ${JSON.stringify(parsed.group)}, not ${JSON.stringify(group)} (group names that differ only in case on a case-insensitive file system?)`,
    );
  }
  if (!Array.isArray(parsed.offsets)) throw new Error(`Checkpoint offsets file ${file} has no offsets array`);
  return parsed.offsets.map((o: unknown) => {
    const { topic, partition, offset } = (o ?? {}) as Partial<PartitionOffset>;
    if (typeof topic !== 'string' || !isOffset(partition) || !isOffset(offset)) {
      throw new RangeError(`Checkpoint offsets file ${file} holds an invalid entry ${JSON.stringify(o)}`);
    }
    return { topic, partition, offset };
  });
}

/** `current` with `updates` applied (the last update of a partition wins). */
function merge(current: readonly PartitionOffset[], updates: readonly PartitionOffset[]): PartitionOffset[] {
  const byKey = new Map(current.map((o) => [key(o.topic, o.partition), o]));
  for (const o of updates)
    byKey.set(key(o.topic, o.partition), { topic: o.topic, partition: o.partition, offset: o.offset });
  return [...byKey.values()];
}

function sorted(offsets: PartitionOffset[]): PartitionOffset[] {
  return offsets.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition));
}

/** @internal shared with CheckpointDirectory */
export function key(topic: string, partition: number): string {
  return JSON.stringify([topic, partition]);
}

/** @internal shared with CheckpointDirectory */
export function isOffset(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** @internal shared with CheckpointDirectory */
export function checkOffset(o: PartitionOffset): void {
  if (typeof o.topic !== 'string' || o.topic === '')
    throw new InvalidOptionError('topic', 'a non-empty topic name', o.topic);
  if (!isOffset(o.partition)) throw new InvalidOptionError('partition', 'an integer >= 0', o.partition);
  if (!isOffset(o.offset))
    throw new RangeError(`Offset ${String(o.offset)} is not an integer between 0 and 2^53 - 1`);
}

/** @internal shared with CheckpointDirectory */
export function checkGroup(group: string): void {
  if (typeof group !== 'string' || group === '')
    throw new InvalidOptionError('group', 'a non-empty string', group);
}

/**
 * A file name for `group`, distinct for distinct groups: `encodeURIComponent` (which also escapes
 * `%`), a leading `.` as `%2E` (so no group file is hidden or looks like a temporary file), and,
 * past 200 characters, a prefix plus `+` (never produced by the encoding) and a SHA-256.
 */
function fileName(group: string): string {
  const encoded = encodeURIComponent(group).replace(/^\./, '%2E');
  if (encoded.length <= 200) return encoded;
  return `${encoded.slice(0, 120)}+${createHash('sha256').update(group).digest('hex')}`;
}

async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Not every platform can fsync a directory; the entry is still there, only its durability
    // across a power cut is up to the file system.
  } finally {
    await handle?.close();
  }
}
