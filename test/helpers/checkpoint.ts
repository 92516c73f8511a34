/**
 * What the state store tests commit: unique names, batch metadata and state updates (see
 * StateStore.commitBatch in src/core/state.ts).
 */
import { randomUUID } from 'node:crypto';
import type { CheckpointMeta, StateUpdate } from '../../src/core/state.js';

/** A pipeline, offset group and topic no other test or run uses. */
export function checkpointIds(): { pipeline: string; group: string; topic: string } {
  const id = randomUUID().slice(0, 8);
  return { pipeline: `p-${id}`, group: `g-${id}`, topic: `t-${id}` };
}

/** One running count, the stateful operator most checkpoints hold. */
export const COUNTS_OPERATORS = [{ name: 'counts', kind: 'updateStateByKey' }];

export function checkpointMeta(
  pipelineId: string,
  batchTime: number,
  operators = COUNTS_OPERATORS,
  fingerprint = 'f1',
): CheckpointMeta {
  return { pipelineId, fingerprint, operators, batchTime };
}

/** Full snapshots of the given operators' state. */
export const fullUpdate = (entries: Record<string, unknown>): StateUpdate => ({
  full: new Map(Object.entries(entries)),
  deltas: new Map(),
});

/** One operator's changes since its last snapshot. */
export const deltaUpdate = (op: string, set: [unknown, unknown][], removed: unknown[] = []): StateUpdate => ({
  full: new Map(),
  deltas: new Map([[op, { set, removed }]]),
});
