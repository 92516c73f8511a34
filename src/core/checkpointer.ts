import { CheckpointIncompatibleError, type CheckpointDifference } from './errors.js';
import type { Logger } from './logger.js';
import type {
  CheckpointMeta,
  CheckpointOperator,
  OperatorState,
  StateDelta,
  StateHandle,
  StateStore,
  StateUpdate,
} from './state.js';

/**
 * The engine's side of checkpoints: puts a stored checkpoint back into the stateful operators at
 * start, and gives each commit the operators' state — a full snapshot every `fullEvery` commits
 * and only the changed keys in between. The first commit after a start is full, so deltas never
 * pile up across restarts.
 */
export class Checkpointer {
  readonly #pipelineId: string;
  readonly #handles: readonly StateHandle[];
  readonly #fullEvery: number;
  readonly #fingerprint: () => string;
  #commitsSinceStart = 0;
  #lastCommittedBatch: number | undefined;

  constructor(options: {
    pipelineId: string;
    handles: readonly StateHandle[];
    fullEvery: number;
    /** The pipeline plan's fingerprint, recorded in every checkpoint. */
    fingerprint: () => string;
  }) {
    this.#pipelineId = options.pipelineId;
    this.#handles = options.handles;
    this.#fullEvery = options.fullEvery;
    this.#fingerprint = options.fingerprint;
  }

  /** True when the pipeline has operators whose state commits with the offsets. */
  get stateful(): boolean {
    return this.#handles.length > 0;
  }

  /** The last batch whose state was committed (restored or written since start). */
  get lastCommittedBatch(): number | undefined {
    return this.#lastCommittedBatch;
  }

  /**
   * Loads the last checkpoint of the pipeline from `store` into the operators. Refuses one that
   * holds state this pipeline can no longer take (an operator removed, renamed or of another kind).
   */
  async restore(store: StateStore, logger: Logger): Promise<void> {
    const cp = await store.loadCheckpoint(this.#pipelineId);
    if (!cp) {
      logger.info({ checkpoint: store.describe() }, 'no checkpoint yet: starting fresh');
      return;
    }
    const diffs = compareOperators(cp.meta.operators, this.#handles);
    if (diffs.length) {
      const where = store.describe();
      throw new CheckpointIncompatibleError(String(where.dir ?? where.location ?? store.kind), diffs);
    }
    for (const h of this.#handles) {
      const stored = cp.state.get(h.name);
      if (stored) restoreState(h, stored);
    }
    this.#lastCommittedBatch = cp.meta.batchTime;
    logger.info(
      {
        batchTime: cp.meta.batchTime,
        fingerprint: cp.meta.fingerprint,
        sameShape: cp.meta.fingerprint === this.#fingerprint(),
      },
      'resumed from checkpoint',
    );
  }

  /** The operators' state for the checkpoint of `time`; `full` forces whole snapshots. */
  next(
    time: number,
    full = this.#commitsSinceStart % this.#fullEvery === 0,
  ): {
    meta: CheckpointMeta;
    update: StateUpdate;
  } {
    const meta: CheckpointMeta = {
      pipelineId: this.#pipelineId,
      fingerprint: this.#fingerprint(),
      operators: this.#handles.map((h) => ({ name: h.name, kind: h.kind })),
      batchTime: time,
    };
    return { meta, update: collectState(this.#handles, full) };
  }

  /** The checkpoint of `time` is durable. */
  committed(time: number): void {
    this.#commitsSinceStart++;
    this.#lastCommittedBatch = time;
  }
}

/** Operators whose state the checkpoint holds but the pipeline can no longer take. Added operators start empty. */
export function compareOperators(
  checkpoint: readonly CheckpointOperator[],
  current: readonly CheckpointOperator[],
): CheckpointDifference[] {
  const now = new Map(current.map((o) => [o.name, o.kind]));
  const out: CheckpointDifference[] = [];
  for (const o of checkpoint) {
    const kind = now.get(o.name);
    if (kind === undefined) {
      out.push({
        operator: o.name,
        change: 'removed-or-renamed',
        detail: `'${o.name}' (${o.kind}) has state in the checkpoint but is not in the pipeline`,
      });
    } else if (kind !== o.kind) {
      out.push({
        operator: o.name,
        change: 'kind-changed',
        detail: `'${o.name}' was ${o.kind}, is now ${kind}: its state has another shape`,
      });
    }
  }
  return out;
}

/** Collects the full snapshots and deltas of the stateful operators for one commit. */
export function collectState(handles: readonly StateHandle[], full: boolean): StateUpdate {
  const fullMap = new Map<string, unknown>();
  const deltas = new Map<string, StateDelta>();
  for (const h of handles) {
    if (!full && h.delta) deltas.set(h.name, h.delta());
    else {
      fullMap.set(h.name, h.snapshot());
      h.delta?.(); // what the snapshot holds is no longer a change
    }
  }
  return { full: fullMap, deltas };
}

/** Puts a loaded operator state back into its handle: the snapshot, then each delta in order. */
export function restoreState(handle: StateHandle, stored: OperatorState): void {
  handle.restore(stored.full);
  for (const d of stored.deltas) handle.applyDelta?.(d);
}
