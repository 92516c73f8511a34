import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import type {
  CheckpointMeta,
  OperatorState,
  StateStore,
  StateUpdate,
} from '../core/state.js';
import { InvalidOptionError, SluiceError } from '../core/errors.js';
import { checkCompareAndSet, type OffsetRange, type PartitionOffset } from '../core/offsets.js';
import { encodeStateValue } from '../core/state-codec.js';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { checkGroup, checkOffset, key } from './offset-store.js';
import {
  MANIFEST_FILE,
  STATE_DIR,
  emptyManifest,
  formatManifest,
  garbage,
  isTempName,
  loadState,
  readManifest,
  type CheckpointManifest,
  type GroupOffset,
  type StateFile,
  type StateFileEntry,
} from './files.js';

export interface CheckpointDirectoryOptions {
  /** The checkpoint directory (one per pipeline). Created when missing. */
  readonly dir: string;
  /**
   * How many full snapshots to keep (default 2): the one the manifest points at and the
   * `keepFull - 1` before it, each self-contained (state and offsets) for a manual rollback.
   */
  readonly keepFull?: number;
}

/** The directory holds the checkpoint of another pipeline. */
export class CheckpointPipelineMismatchError extends SluiceError {
  static readonly code = 'SLUICE_CHECKPOINT_PIPELINE_MISMATCH';
  readonly code = CheckpointPipelineMismatchError.code;
  constructor(
    readonly dir: string,
    readonly stored: string,
    readonly pipelineId: string,
  ) {
    super(
      `The checkpoint at ${dir} belongs to pipeline '${stored}', not '${pipelineId}'`,
      'Give each pipeline a checkpoint directory of its own, or set the pipelineId that wrote it',
    );
  }
}

/**
 * The file-system state store: a pipeline's offsets and operator state in one directory, readable
 * with any JSON tool and committed so that a crash at any moment (SIGKILL, power cut) leaves the
 * last commit or the next one, whole.
 *
 * ```
 * <dir>/manifest.json                      { version: 1, pipelineId, fingerprint, operators, commit,
 *                                            lastBatch: { time, offsets: [{ group, topic, partition, offset }] },
 *                                            state: { full: 'state/full-<time>-<commit>.json',
 *                                                     deltas: ['state/delta-<time>-<commit>.json', ...] },
 *                                            updatedAt }
 * <dir>/state/full-1700000010000-7.json    every operator's whole state after commit 7
 * <dir>/state/delta-1700000011000-8.json   the keys changed by commit 8 (whole state for operators without deltas)
 * ```
 *
 * A commit checks the offsets (compare-and-set), writes its state file (temporary file, fsync,
 * rename, directory fsync), then writes the manifest the same way: the manifest's rename is the
 * commit point. A state file the manifest does not reference is garbage: an interrupted commit's
 * file, deltas behind a newer full snapshot, full snapshots beyond `keepFull`. They are removed
 * after each full commit and when the directory is first used (with the temporary files of
 * interrupted writes). File names carry the commit number, so re-committing a batch time (the final
 * checkpoint of a graceful stop) never replaces a file the manifest references.
 *
 * Commits are serialised within the process (across instances on the same directory too).
 * Processes do not exclude each other: run one job per directory (`sluice run --supervise` restarts
 * one child at a time).
 *
 * State values are JSON, with `undefined`, bigint, non-finite numbers, Date, Map, Set, Buffer and
 * Uint8Array kept as tagged objects (see {@link encodeStateValue}); functions and symbols are refused.
 *
 * @example
 * ```ts
 * import { definePipeline } from 'sluice';
 * import { CheckpointDirectory } from 'sluice/checkpoint';
 * export default definePipeline({
 *   batchInterval: 1000,
 *   context: { checkpoint: new CheckpointDirectory({ dir: '/var/lib/jobs/wordcount' }) },
 *   build(ctx) { ... },
 * });
 * ```
 */
export class CheckpointDirectory implements StateStore {
  readonly kind = 'checkpoint-dir';
  readonly stateful = true;
  readonly capabilities = { compareAndSet: true };
  /** The checkpoint directory, absolute. */
  readonly dir: string;
  readonly keepFull: number;
  #dirsReady: Promise<void> | undefined;

  constructor(options: CheckpointDirectoryOptions) {
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
    const keepFull = options.keepFull ?? 2;
    if (!Number.isInteger(keepFull) || keepFull < 1) {
      throw new InvalidOptionError('keepFull', 'an integer >= 1', options.keepFull);
    }
    this.dir = path.resolve(options.dir);
    this.keepFull = keepFull;
  }

  describe(): Record<string, unknown> {
    return { dir: this.dir, keepFull: this.keepFull };
  }

  get manifestFile(): string {
    return path.join(this.dir, MANIFEST_FILE);
  }

  /** The manifest as stored, or undefined when nothing was committed yet. */
  async manifest(): Promise<CheckpointManifest | undefined> {
    return readManifest(this.dir);
  }

  async read(group: string, topics: readonly string[]): Promise<PartitionOffset[]> {
    checkGroup(group);
    // No lock: the manifest is replaced by a rename, so this sees it before or after any commit.
    const m = await readManifest(this.dir);
    return (m?.lastBatch.offsets ?? [])
      .filter((o) => o.group === group && topics.includes(o.topic))
      .map(({ topic, partition, offset }) => ({ topic, partition, offset }));
  }

  async write(
    group: string,
    ranges: readonly OffsetRange[],
    options: { compareAndSet?: boolean } = {},
  ): Promise<void> {
    checkGroup(group);
    if (ranges.length === 0) return;
    await this.#update(async (m) => {
      if (options.compareAndSet) checkRanges(group, ranges, m.lastBatch.offsets);
      return {
        ...m,
        lastBatch: { ...m.lastBatch, offsets: merge(m.lastBatch.offsets, group, untils(ranges)) },
      };
    });
  }

  async set(group: string, offsets: readonly PartitionOffset[]): Promise<void> {
    checkGroup(group);
    if (offsets.length === 0) return;
    await this.#update(async (m) => ({
      ...m,
      lastBatch: { ...m.lastBatch, offsets: merge(m.lastBatch.offsets, group, offsets) },
    }));
  }

  async delete(group: string, topics: readonly string[]): Promise<void> {
    checkGroup(group);
    if (topics.length === 0) return;
    await this.#update(async (m) => ({
      ...m,
      lastBatch: {
        ...m.lastBatch,
        offsets: m.lastBatch.offsets.filter((o) => !(o.group === group && topics.includes(o.topic))),
      },
    }));
  }

  async loadCheckpoint(
    pipelineId: string,
  ): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined> {
    return withDirLock(this.dir, async () => {
      await this.#recover();
      const m = await readManifest(this.dir);
      if (!m || m.pipelineId === null) return undefined;
      if (m.pipelineId !== pipelineId)
        throw new CheckpointPipelineMismatchError(this.dir, m.pipelineId, pipelineId);
      return {
        meta: {
          pipelineId: m.pipelineId,
          fingerprint: m.fingerprint ?? '',
          operators: m.operators.map((o) => ({ name: o.name, kind: o.kind })),
          batchTime: m.lastBatch.time ?? 0,
        },
        state: await loadState(this.dir, m),
      };
    });
  }

  async commitBatch(
    group: string,
    ranges: readonly OffsetRange[],
    meta: CheckpointMeta,
    update: StateUpdate,
  ): Promise<void> {
    checkGroup(group);
    const ops = meta.operators.map((o) => ({ name: o.name, kind: o.kind }));
    const full = ops.length > 0 && ops.every((o) => update.full.has(o.name));
    // Encoded now, before any wait: the operators' state objects may change once the batch is done.
    const operators: Record<string, StateFileEntry> = {};
    for (const o of ops) {
      const where = `state of operator '${o.name}'`;
      const delta = update.deltas.get(o.name);
      if (update.full.has(o.name)) {
        operators[o.name] = { kind: o.kind, full: encodeStateValue(update.full.get(o.name), where) };
      } else if (delta) {
        operators[o.name] = {
          kind: o.kind,
          delta: { set: encodeStateValue(delta.set, where), removed: encodeStateValue(delta.removed, where) },
        };
      }
    }
    const nothingChanged =
      !full &&
      Object.values(operators).every(
        (e) =>
          'delta' in e &&
          (e.delta.set as unknown[]).length === 0 &&
          (e.delta.removed as unknown[]).length === 0,
      ) &&
      Object.keys(operators).length === ops.length;
    await this.#update(
      async (m) => {
        if (m.pipelineId !== null && m.pipelineId !== meta.pipelineId) {
          throw new CheckpointPipelineMismatchError(this.dir, m.pipelineId, meta.pipelineId);
        }
        checkRanges(group, ranges, m.lastBatch.offsets);
        const offsets = merge(m.lastBatch.offsets, group, untils(ranges));
        const commit = m.commit + 1;
        let state: CheckpointManifest['state'] = { full: null, deltas: [] };
        const sameOperators =
          m.operators.length === ops.length &&
          ops.every((o, i) => m.operators[i]!.name === o.name && m.operators[i]!.kind === o.kind);
        if (nothingChanged && sameOperators && (m.state.full !== null || ops.length === 0)) {
          // An idle batch: no state file; the manifest still records the batch and its offsets.
          state = m.state;
        } else if (ops.length > 0) {
          const name = `${STATE_DIR}/${full ? 'full' : 'delta'}-${meta.batchTime}-${commit}.json`;
          const file: StateFile = {
            version: 1,
            type: full ? 'full' : 'delta',
            pipelineId: meta.pipelineId,
            batchTime: meta.batchTime,
            commit,
            offsets,
            operators,
          };
          // 1. The state file, durable under its final name; nothing references it yet.
          await writeFileAtomic(path.join(this.dir, name), `${JSON.stringify(file)}\n`);
          state = full
            ? { full: name, deltas: [] }
            : { full: m.state.full, deltas: [...m.state.deltas, name] };
        }
        // 2. The manifest that references it (written by #update): its rename is the commit.
        return {
          ...m,
          pipelineId: meta.pipelineId,
          fingerprint: meta.fingerprint,
          operators: ops,
          commit,
          lastBatch: { time: meta.batchTime, offsets },
          state,
        };
      },
      // 3. What the new full snapshot made unnecessary.
      () => (full ? this.#collectGarbage(false) : Promise.resolve()),
    );
  }

  /**
   * Drops the state of `operators` (the offsets stay): the manifest is rewritten without them, so a
   * pipeline that no longer has them resumes. `sluice checkpoint migrate` calls this.
   * @throws InvalidOptionError naming an operator the checkpoint does not have.
   */
  async dropOperators(operators: readonly string[]): Promise<CheckpointManifest> {
    let result!: CheckpointManifest;
    await this.#update(async (m) => {
      const known = new Set(m.operators.map((o) => o.name));
      for (const name of operators) {
        if (!known.has(name)) {
          throw new InvalidOptionError(
            'operators',
            known.size
              ? `an operator with state in the checkpoint: ${[...known].join(', ')}`
              : 'nothing: the checkpoint holds no operator state',
            name,
          );
        }
      }
      const left = m.operators.filter((o) => !operators.includes(o.name));
      result = {
        ...m,
        operators: left,
        // With no operator left, no state file is needed; the old ones become garbage.
        state: left.length ? m.state : { full: null, deltas: [] },
      };
      return result;
    });
    return result;
  }

  async close(): Promise<void> {}

  /** Read the manifest, change it, write it atomically; alone among this process's writers of the directory. */
  async #update(
    change: (m: CheckpointManifest) => Promise<CheckpointManifest>,
    after: () => Promise<void> = () => Promise.resolve(),
  ): Promise<void> {
    await withDirLock(this.dir, async () => {
      await this.#recover();
      const current = (await readManifest(this.dir)) ?? emptyManifest();
      const next = await change(current);
      for (const o of next.lastBatch.offsets) checkOffset(o);
      await writeFileAtomic(
        this.manifestFile,
        formatManifest({ ...next, updatedAt: new Date().toISOString() }),
      );
      await after();
    });
  }

  /** On this instance's first use: create the directories, remove what interrupted writes and commits left. */
  async #recover(): Promise<void> {
    this.#dirsReady ??= (async () => {
      if ((await mkdir(this.dir, { recursive: true })) !== undefined) await syncDir(path.dirname(this.dir));
      if ((await mkdir(path.join(this.dir, STATE_DIR), { recursive: true })) !== undefined)
        await syncDir(this.dir);
      // Under the directory lock: no commit of this process is half done.
      await this.#collectGarbage(true);
    })().catch((e: unknown) => {
      this.#dirsReady = undefined;
      throw e;
    });
    return this.#dirsReady;
  }

  /** Removes the state files the manifest does not need (see the class comment); with `temps`, leftover temporary files too. */
  async #collectGarbage(temps: boolean): Promise<void> {
    const m = await readManifest(this.dir);
    const stateDir = path.join(this.dir, STATE_DIR);
    const names = await readdir(stateDir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [] as string[];
      throw e;
    });
    const doomed = garbage(names, m, this.keepFull);
    if (temps) {
      doomed.push(...names.filter(isTempName).map((n) => `${STATE_DIR}/${n}`));
      const top = await readdir(this.dir);
      doomed.push(...top.filter(isTempName));
    }
    for (const rel of doomed) {
      await unlink(path.join(this.dir, rel)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
    }
  }
}

function untils(ranges: readonly OffsetRange[]): PartitionOffset[] {
  return ranges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.untilOffset }));
}

function checkRanges(group: string, ranges: readonly OffsetRange[], stored: readonly GroupOffset[]): void {
  const mine = new Map(
    stored.filter((o) => o.group === group).map((o) => [key(o.topic, o.partition), o.offset]),
  );
  checkCompareAndSet(group, ranges, (t, p) => mine.get(key(t, p)));
}

/** `current` with `updates` of `group` applied (the last update of a partition wins), sorted. */
function merge(
  current: readonly GroupOffset[],
  group: string,
  updates: readonly PartitionOffset[],
): GroupOffset[] {
  const byKey = new Map(current.map((o) => [JSON.stringify([o.group, o.topic, o.partition]), o]));
  for (const u of updates) {
    const o = { group, topic: u.topic, partition: u.partition, offset: u.offset };
    checkOffset(o);
    byKey.set(JSON.stringify([group, u.topic, u.partition]), o);
  }
  return [...byKey.values()].sort(
    (a, b) => cmp(a.group, b.group) || cmp(a.topic, b.topic) || a.partition - b.partition,
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The tail of the chain of commits of each directory (absolute path), shared by every instance in the process. */
const locks = new Map<string, Promise<unknown>>();

async function withDirLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const previous = locks.get(dir) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => {});
  locks.set(dir, tail);
  try {
    return await run;
  } finally {
    if (locks.get(dir) === tail) locks.delete(dir);
  }
}

async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Not every platform can fsync a directory; only durability across a power cut depends on it.
  } finally {
    await handle?.close();
  }
}
