import { InMemoryOffsetStore, type OffsetRange, type OffsetStore } from './offsets.js';

/**
 * The state contract: what a stateful operator exposes to checkpoints (a {@link StateHandle}),
 * what a checkpoint holds, and the {@link StateStore} that keeps it with the offsets. Values are
 * stored as JSON through `state-codec.ts`.
 */

/**
 * The state of one stateful operator, as checkpoints see it: a full snapshot that `restore`
 * accepts back. Snapshots are plain JSON-serialisable data.
 */
export interface StateHandle {
  /** The operator's stable name: checkpoints key state on it. */
  readonly name: string;
  readonly kind: string;
  snapshot(): unknown;
  restore(data: unknown): void;
  /** Keyed states: the keys set and removed since the last call (then forgotten). */
  delta?(): StateDelta;
  /** Applies a delta on top of the restored state. */
  applyDelta?(delta: StateDelta): void;
}

/** A stateful operator as a checkpoint records it. */
export interface CheckpointOperator {
  readonly name: string;
  readonly kind: string;
}

/** What a checkpoint says about the pipeline that wrote it. */
export interface CheckpointMeta {
  readonly pipelineId: string;
  readonly fingerprint: string;
  readonly operators: readonly CheckpointOperator[];
  /** The last batch whose outputs, offsets and state were committed together. */
  readonly batchTime: number;
}

/** The changes of one keyed state since the last commit. */
export interface StateDelta {
  readonly set: readonly (readonly [unknown, unknown])[];
  readonly removed: readonly unknown[];
}

/** An operator's stored state: a full snapshot and the deltas on top of it. */
export interface OperatorState {
  readonly full: unknown;
  readonly deltas: readonly StateDelta[];
}

/** One batch's state: per operator a full snapshot, or a delta on top of the last commit. */
export interface StateUpdate {
  readonly full: ReadonlyMap<string, unknown>;
  readonly deltas: ReadonlyMap<string, StateDelta>;
}

/**
 * The state store contract: an offset store that also keeps operator state, committing a batch's
 * offsets and state changes together, so after any crash they agree. `CheckpointDirectory`
 * (`sluice/checkpoint`) is the file-system one; `InMemoryCheckpointStore` the reference.
 */
export interface StateStore extends OffsetStore {
  readonly stateful: true;
  /**
   * The last committed checkpoint of `pipelineId`, or undefined: per operator its last full
   * snapshot and the deltas committed since, oldest first (the engine replays them).
   */
  loadCheckpoint(
    pipelineId: string,
  ): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined>;
  /**
   * Commits atomically: the ranges' untilOffsets for `group` (compare-and-set from fromOffset) and
   * the state update, as the checkpoint of `meta.batchTime`. All or nothing.
   */
  commitBatch(
    group: string,
    ranges: readonly OffsetRange[],
    meta: CheckpointMeta,
    update: StateUpdate,
  ): Promise<void>;
}

export function isStateStore(store: OffsetStore | undefined): store is StateStore {
  return Boolean(
    store &&
    (store as Partial<StateStore>).stateful === true &&
    typeof (store as StateStore).commitBatch === 'function',
  );
}

/** The reference state store: checkpoints in process memory (the test driver's default). */
export class InMemoryCheckpointStore extends InMemoryOffsetStore implements StateStore {
  readonly stateful = true;
  override readonly kind: string = 'memory-checkpoint';
  readonly #checkpoints = new Map<
    string,
    { meta: CheckpointMeta; state: Map<string, { full: unknown; deltas: StateDelta[] }> }
  >();

  async loadCheckpoint(pipelineId: string) {
    const cp = this.#checkpoints.get(pipelineId);
    if (!cp) return undefined;
    return {
      meta: cp.meta,
      state: new Map([...cp.state].map(([k, v]) => [k, structuredClone(v)] as [string, OperatorState])),
    };
  }

  async commitBatch(
    group: string,
    ranges: readonly OffsetRange[],
    meta: CheckpointMeta,
    update: StateUpdate,
  ): Promise<void> {
    await this.write(group, ranges, { compareAndSet: true });
    const prev = this.#checkpoints.get(meta.pipelineId)?.state ?? new Map();
    const state = new Map<string, { full: unknown; deltas: StateDelta[] }>();
    for (const op of meta.operators) {
      const full = update.full.get(op.name);
      const delta = update.deltas.get(op.name);
      const before = prev.get(op.name);
      // Copies, as a durable store would serialise: later in-place changes must not leak in.
      if (full !== undefined) state.set(op.name, { full: structuredClone(full), deltas: [] });
      else if (before)
        state.set(op.name, {
          full: before.full,
          deltas: delta ? [...before.deltas, structuredClone(delta)] : before.deltas,
        });
    }
    this.#checkpoints.set(meta.pipelineId, { meta, state });
  }
}
