import { PipelineDefinitionError } from './errors.js';
import type { InputRegistration, OutputRegistration } from './graph.js';
import type { OffsetStore } from './offsets.js';
import type { Guarantee } from './sink.js';
import type { Membership, Source } from './source.js';
import type { StateStore } from './state.js';
import { isTransactionalStore } from './transactional-store.js';

/** How the engine commits each batch, decided at start from the outputs and the offset store. */
export interface CommitPlan {
  readonly offsetStore: string | undefined;
  /** `before-outputs` for at-most-once, `in-transaction` when an output commits them, else `after-outputs`. */
  readonly offsets: 'none' | 'before-outputs' | 'after-outputs' | 'in-transaction';
  readonly outputs: readonly { readonly name: string; readonly guarantee: Guarantee; readonly how: string }[];
  /** The outputs that write inside the offset store's transaction (step 7 of the batch protocol). */
  readonly transactionalOutputs: readonly string[];
}

/** What the decision looks at: the pipeline's inputs, outputs and state, and the context's stores. */
export interface CommitPlanInputs {
  readonly pipelineId: string;
  readonly inputs: readonly InputRegistration[];
  readonly outputs: readonly OutputRegistration[];
  /** Names of the operators that keep state across batches. */
  readonly statefulOperators: readonly string[];
  /** The context's `offsetStore` option. */
  readonly offsetStore: OffsetStore | undefined;
  /** The context's `checkpoint` option. */
  readonly checkpoint: StateStore | undefined;
  /** How the job's instances share its inputs. */
  readonly membership?: Membership;
}

/** The group a source's offsets are kept under: its own choice, else the pipeline id. */
export function offsetGroupOf(source: Source<unknown>, pipelineId: string): string {
  return source.offsetGroup?.(pipelineId) ?? pipelineId;
}

/**
 * The offset store: the one given; else, for a stateful pipeline, the checkpoint (state and
 * offsets commit together); else the input's own (Kafka's group commits), else the checkpoint.
 */
export function chooseOffsetStore(p: CommitPlanInputs): OffsetStore | undefined {
  if (p.offsetStore) return p.offsetStore;
  if (p.statefulOperators.length && p.checkpoint) return p.checkpoint;
  return p.inputs.map((i) => i.source.defaultOffsetStore?.()).find((s) => s !== undefined) ?? p.checkpoint;
}

/**
 * Decides, before anything starts, how each output's guarantee is met; refuses a combination
 * that cannot give what was asked, saying why and what would work.
 */
export function decideCommitPlan(p: CommitPlanInputs, store = chooseOffsetStore(p)): CommitPlan {
  const hasOffsets = p.inputs.some((i) => i.source.offsetGroup !== undefined);
  const notReplayable = p.inputs.filter((i) => !i.source.replayable).map((i) => i.name);
  // Replayable inputs without offsets that save their position in commit() (a directory's read
  // set) do it after the batch, outside any transaction: a crash in between replays the batch.
  const ownPosition = p.inputs
    .filter((i) => i.source.replayable && !i.source.offsetGroup && i.source.commit)
    .map((i) => i.name);
  const storeName = store ? store.kind : undefined;
  const outputs: { name: string; guarantee: Guarantee; how: string }[] = [];
  const transactionalOutputs: string[] = [];
  const stateful = p.statefulOperators.length > 0;
  for (const out of p.outputs) {
    const inStoreTransaction = Boolean(out.transactional && store && out.transactional.store === store);
    const canExactlyOnce = out.idempotent || (inStoreTransaction && ownPosition.length === 0);
    const ceiling: Guarantee = notReplayable.length
      ? 'at-most-once'
      : canExactlyOnce
        ? 'exactly-once'
        : 'at-least-once';
    const wanted = out.guarantee ?? ceiling;
    if (rank(wanted) > rank(ceiling)) {
      throw new PipelineDefinitionError(
        `Output '${out.name}' (${out.kind}) cannot be ${wanted}: ${whyNot(out, wanted, notReplayable, ownPosition, store)}`,
        howTo(out, wanted, notReplayable, store),
      );
    }
    let how: string;
    if (wanted === 'exactly-once' && !out.idempotent) {
      // Every such output writes in the same transaction, which then commits the offsets once.
      transactionalOutputs.push(out.name);
      how = `writes and offsets in one ${storeName} transaction`;
    } else if (wanted === 'exactly-once') {
      how = hasOffsets || stateful ? 'idempotent writes, then offsets' : 'idempotent writes';
    } else if (wanted === 'at-least-once') {
      how = hasOffsets || stateful ? 'write, then offsets' : 'write (no offsets to save)';
    } else {
      how = hasOffsets || stateful ? 'offsets, then write' : 'write (input not replayable)';
    }
    outputs.push({ name: out.name, guarantee: wanted, how });
  }
  const atMostOnce = outputs.filter(
    (o) => o.guarantee === 'at-most-once' && hasOffsets && !notReplayable.length,
  );
  if (atMostOnce.length && atMostOnce.length !== outputs.length) {
    throw new PipelineDefinitionError(
      `Output '${atMostOnce[0]!.name}' is at-most-once but '${outputs.find((o) => o.guarantee !== 'at-most-once')!.name}' is not`,
      'At-most-once saves offsets before writing and the others after: run them as separate pipelines, or give them one guarantee',
    );
  }
  if (hasOffsets && !store) {
    throw new PipelineDefinitionError(
      'The pipeline reads offsets but has no offset store',
      'Pass offsetStore to the StreamingContext',
    );
  }
  if (stateful && !p.checkpoint) {
    throw new PipelineDefinitionError(
      `Operators ${p.statefulOperators.map((s) => `'${s}'`).join(', ')} keep state across batches but the context has no checkpoint`,
      "Pass checkpoint: new CheckpointDirectory({ dir }) (from 'sluice/checkpoint') to the StreamingContext",
    );
  }
  if (stateful && hasOffsets && store !== p.checkpoint) {
    throw new PipelineDefinitionError(
      `State is kept in the checkpoint (${p.checkpoint!.kind}) but offsets in ${store?.kind}`,
      'State and offsets must commit together: leave offsetStore unset (the checkpoint keeps them) or pass the checkpoint as offsetStore',
    );
  }
  if (stateful && transactionalOutputs.length && store !== p.checkpoint) {
    throw new PipelineDefinitionError(
      `Output(s) ${transactionalOutputs.map((o) => `'${o}'`).join(', ')} commit in a ${storeName} transaction, but the operators' state is kept in ${p.checkpoint!.kind}`,
      'Use one store that keeps state in the transaction as both checkpoint and offset store (e.g. the PostgreSQL store), or make the output idempotent',
    );
  }
  const groups = new Set(
    p.inputs.filter((i) => i.source.offsetGroup).map((i) => offsetGroupOf(i.source, p.pipelineId)),
  );
  // State, and a transaction's offsets, commit under one group.
  if (groups.size > 1 && (stateful || transactionalOutputs.length)) {
    throw new PipelineDefinitionError(
      `Inputs use several offset groups (${[...groups].join(', ')}) but ${stateful ? 'state commits with one' : 'one output commits offsets in its transaction'}`,
      'Give every input the same group id',
    );
  }
  if (p.membership === 'group') checkGroupMembership(p, store, hasOffsets, stateful);
  const offsets: CommitPlan['offsets'] =
    !hasOffsets && !stateful
      ? 'none'
      : transactionalOutputs.length
        ? 'in-transaction'
        : atMostOnce.length
          ? 'before-outputs'
          : 'after-outputs';
  return { offsetStore: storeName, offsets, outputs, transactionalOutputs };
}

/**
 * Group membership needs a store that several machines commit to safely, and (for now) a
 * stateless pipeline: state is kept per process, and would not move with its partitions.
 */
function checkGroupMembership(
  p: CommitPlanInputs,
  store: OffsetStore | undefined,
  hasOffsets: boolean,
  stateful: boolean,
): void {
  if (stateful) {
    throw new PipelineDefinitionError(
      `Operators ${p.statefulOperators.map((s) => `'${s}'`).join(', ')} keep state, which group membership cannot move between instances yet`,
      "Run this pipeline with membership 'single' (one process reads every partition), or keep the state in an output (e.g. upserts into a table) and run it stateless",
    );
  }
  if (hasOffsets && store && !store.capabilities.shared) {
    throw new PipelineDefinitionError(
      `The offset store (${store.kind}) cannot be shared by instances on several machines, which group membership needs`,
      'Keep the offsets where every instance commits safely: Kafka (the default, or KafkaTransactionalStore), PostgreSQL, MySQL, Redis or ZooKeeper',
    );
  }
  const notShared = p.inputs.filter((i) => !i.source.groupMembership);
  if (notShared.length) {
    throw new PipelineDefinitionError(
      `Input ${notShared.map((i) => `'${i.name}'`).join(', ')} cannot be shared by the instances of a group (it has no partitions a group assigns)`,
      "Read it with membership 'single', or read a Kafka topic instead",
    );
  }
}

const RANK: Record<Guarantee, number> = { 'at-most-once': 0, 'at-least-once': 1, 'exactly-once': 2 };
function rank(g: Guarantee): number {
  return RANK[g];
}

function whyNot(
  out: OutputRegistration,
  wanted: Guarantee,
  notReplayable: string[],
  ownPosition: string[],
  store: OffsetStore | undefined,
): string {
  if (notReplayable.length)
    return `input ${notReplayable.map((n) => `'${n}'`).join(', ')} cannot be read again after a crash`;
  if (ownPosition.length && out.transactional && !out.idempotent)
    return `input ${ownPosition.map((n) => `'${n}'`).join(', ')} keeps its position outside the offset store, so it cannot commit in the output's transaction`;
  if (wanted === 'exactly-once' && out.transactional && store && out.transactional.store !== store) {
    return `it commits in a ${out.transactional.store.kind} transaction but the offsets are kept in ${store.kind}`;
  }
  return `it is neither idempotent nor able to write in the offset store's transaction${store ? ` (offsets in ${store.kind})` : ''}`;
}

function howTo(
  out: OutputRegistration,
  wanted: Guarantee,
  notReplayable: string[],
  store: OffsetStore | undefined,
): string {
  if (notReplayable.length)
    return 'Read from a replayable input (Kafka, a directory), or ask for at-most-once';
  const options = ['make the output idempotent (upsert on a key the records carry)'];
  if (out.transactional && store && out.transactional.store !== store) {
    options.unshift(
      `keep the offsets in the output's store (offsetStore: the ${out.transactional.store.kind} store)`,
    );
  } else if (isTransactionalStore(store)) {
    options.push(
      `write inside the ${store.kind} offset store's transaction (foreachBatch with { transaction })`,
    );
  } else {
    options.push('use a transactional output together with its store as the offset store');
  }
  return `To get ${wanted}: ${options.join('; or ')}; or ask for at-least-once`;
}
