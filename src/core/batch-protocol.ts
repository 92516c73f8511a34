/**
 * THE BATCH PROTOCOL: how one batch is read, computed, written and committed. The whole
 * exactly-once argument is in {@link BatchProtocol.run}, as numbered steps; everything it works
 * with (inputs, outputs, the offset store, the operators' state, the clock) is handed in, so the
 * context around it only decides when a batch runs.
 *
 * The argument: offsets never move past output that is not durable (except under at-most-once, by
 * request), so after a crash at any point a restart re-reads exactly the uncommitted batch from
 * the stored offsets; that replay is either rolled back (the outputs and offsets share one
 * transaction whose offsets are a compare-and-set) or harmless (idempotent outputs overwrite).
 * State commits in the same atomic step as the offsets, so state and offsets never disagree.
 */
import { Batch } from './batch.js';
import {
  BadRecordLedger,
  type BadRecordCounts,
  type BadRecordPolicy,
  type DeadLetter,
} from './bad-records.js';
import type { Checkpointer } from './checkpointer.js';
import type { Clock } from './clock.js';
import type { CommitPlan } from './commit-plan.js';
import { OffsetConflictError, OwnershipLostError, type SluiceError } from './errors.js';
import type { BatchRun, InputRegistration, OutputRegistration } from './graph.js';
import type { OffsetRange, OffsetStore, PartitionOffset } from './offsets.js';
import type { InputMetrics, InputPlan, Membership, Source } from './source.js';
import type { StateStore } from './state.js';

/** What each input contributed to a batch. */
export interface InputInfo {
  readonly name: string;
  readonly kind: string;
  readonly numRecords: number;
  readonly offsetRanges: readonly OffsetRange[];
  /** Rate limit in force, lag per partition and records lost to offset resets, where the source reports them. */
  readonly metrics?: InputMetrics;
}

/** The record of one batch, as Spark's `BatchInfo`. Times in ms since the epoch, durations in ms. */
export interface BatchInfo {
  readonly batchTime: number;
  readonly processingStartTime: number;
  readonly processingEndTime: number;
  /** Time the batch waited for the previous one: processing start minus batch time. */
  readonly schedulingDelay: number;
  readonly processingTime: number;
  /** schedulingDelay + processingTime. */
  readonly totalDelay: number;
  readonly numRecords: number;
  readonly inputs: readonly InputInfo[];
  /** Records skipped or dead-lettered in this batch, per policy owner (input or tryMap). */
  readonly badRecords: readonly BadRecordCounts[];
  /** Per output: its name and how long it took, in definition order. */
  readonly outputs: readonly { readonly name: string; readonly durationMs: number }[];
  /** `abandoned`: in group membership, the instance lost partitions of the batch; nothing of it was committed. */
  readonly status: 'completed' | 'failed' | 'abandoned';
  readonly error?: SluiceError | Error;
}

/** Everything the protocol works with, decided when the context starts. */
export interface BatchProtocolParts {
  readonly pipelineId: string;
  /** In group membership a batch whose partitions another instance took is abandoned, not failed. */
  readonly membership: Membership;
  readonly clock: Clock;
  readonly inputs: readonly InputRegistration[];
  /** In definition order. */
  readonly outputs: readonly OutputRegistration[];
  /** Stateful operators: forced every batch so that windows and state see every batch. */
  readonly stateful: readonly { readonly force: (run: BatchRun) => Promise<unknown> }[];
  readonly offsetStore: OffsetStore | undefined;
  readonly commitPlan: CommitPlan;
  /** The operators' state for each commit; for a stateful pipeline the offset store is a StateStore. */
  readonly checkpointer: Checkpointer;
  /** The group each input's offsets are kept under. */
  readonly groupOf: (source: Source<unknown>) => string;
}

export class BatchProtocol {
  readonly #p: BatchProtocolParts;
  /** Positions moved by offset resets since the last batch: written to the store in step 3. */
  #movedPositions: (PartitionOffset & { group: string })[] = [];
  /** The bad records of the batch being fetched and computed. */
  #ledger = new BadRecordLedger();
  #batchTime = 0;

  constructor(parts: BatchProtocolParts) {
    this.#p = parts;
  }

  /**
   * A source moved a stored position (retention loss, `offsetOutOfRange` policy). The next batch
   * starts there, so the store must hold it too before that batch's compare-and-set (step 3).
   */
  positionMoved(group: string, position: PartitionOffset): void {
    this.#movedPositions.push({ group, ...position });
  }

  /** A record of `input` could not be read: its policy fails the batch, or counts (and keeps) it. */
  badRecord(
    input: string,
    policy: BadRecordPolicy,
    letter: Omit<DeadLetter, 'input' | 'batchTime'>,
    error: unknown,
  ): void {
    this.#ledger.handle(policy, { ...letter, input, batchTime: this.#batchTime }, error);
  }

  /**
   * Runs the batch of `time` start to finish and answers its record; a failed batch answers its
   * error too. A failure at any step skips the later steps, so a failed batch is never recorded as
   * read: a restart reads it again from the stored offsets (a transaction in progress rolls back).
   *
   *   1. FIX each input's content (its offset ranges) before reading any record.
   *   2. FETCH exactly that content; records that cannot be read go to the bad-record policy.
   *   3. MOVE the stored positions that offset resets moved since the last batch, so that this
   *      batch's compare-and-set (from the reset position) finds them.
   *   4. COMPUTE every output's batch, each stream once; stateful operators run every batch;
   *      dead letters last (they are collected while the others compute).
   *   5. At-most-once only: SAVE the offsets (and state) now, before any output; a crash after
   *      this loses the batch, by request.
   *   6. WRITE the outputs that commit on their own, in definition order (idempotent and
   *      at-least-once outputs, dead-letter sinks).
   *   7. COMMIT. With exactly-once transactional outputs: their writes AND the batch's offsets (and,
   *      for a stateful pipeline, its state) in ONE transaction of the offset store; the offsets are
   *      a compare-and-set from each range's fromOffset, so a replayed batch or a second instance
   *      rolls back with OffsetConflictError. Otherwise save the offsets (with the state, in one
   *      atomic checkpoint commit) now, after the outputs: at-least-once, or exactly-once with
   *      idempotent outputs; compare-and-set where the store can.
   *   8. RECORD: tell each source its batch is committed, and answer the batch's record.
   *
   * In group membership, a batch whose partitions this instance no longer owns (OwnershipLostError
   * from a source or a fenced transaction, or OffsetConflictError: another instance committed them
   * first) is ABANDONED: it committed nothing (the failed step rolled back or never ran), each
   * source starts again from the stored offsets of the partitions it still owns, and the job goes
   * on. Exactly-once holds because the other instance's commit and this one's exclude each other.
   */
  async run(time: number): Promise<{ info: BatchInfo; error?: Error; abandoned?: boolean }> {
    const { clock, inputs: registered, outputs: registeredOutputs, commitPlan: commit } = this.#p;
    const store = this.#p.offsetStore;
    const start = clock.now();
    const inputs: InputInfo[] = [];
    const outputs: { name: string; durationMs: number }[] = [];
    const plans: { source: Source<unknown>; plan: InputPlan }[] = [];
    const run: BatchRun = { time, inputs: new Map(), computed: new Map(), badRecords: new BadRecordLedger() };
    this.#ledger = run.badRecords;
    this.#batchTime = time;
    const timed = async (name: string, work: () => Promise<void>) => {
      const t0 = clock.now();
      await work();
      outputs.push({ name, durationMs: clock.now() - t0 });
    };
    const inTransaction = new Set(commit.transactionalOutputs);
    try {
      // 1. Fix the content.
      for (const input of registered) {
        plans.push({ source: input.source, plan: await input.source.plan(time) });
      }
      // 2. Fetch it.
      for (const [i, input] of registered.entries()) {
        const { plan } = plans[i]!;
        const batch = new Batch(await input.source.fetch(plan));
        (run.inputs as Map<string, unknown>).set(input.name, { batch, offsetRanges: plan.offsetRanges });
        inputs.push({
          name: input.name,
          kind: input.source.kind,
          numRecords: batch.size,
          offsetRanges: plan.offsetRanges,
          ...(plan.metrics ? { metrics: plan.metrics } : {}),
        });
      }
      const offsetsByGroup = this.#offsetsByGroup(plans);
      // 3. Move reset positions in the store.
      if (this.#movedPositions.length && store) await this.#moveStoredPositions(store);
      // 4. Compute.
      for (const s of this.#p.stateful) await s.force(run);
      for (const output of registeredOutputs) if (!output.late) await output.prepare(run);
      for (const output of registeredOutputs) if (output.late) await output.prepare(run);
      // 5. At-most-once: offsets first.
      if (commit.offsets === 'before-outputs') await this.#saveOffsets(store!, offsetsByGroup, time);
      // 6. Outputs that commit on their own.
      for (const output of registeredOutputs) {
        if (!inTransaction.has(output.name)) await timed(output.name, () => output.run(run));
      }
      // 7. Commit: the transactional outputs with the offsets (and state), or the offsets alone.
      if (inTransaction.size) {
        const [group, ranges] = [...offsetsByGroup][0] ?? [this.#p.pipelineId, []];
        const txStore = registeredOutputs.find((o) => inTransaction.has(o.name))!.transactional!.store;
        const checkpoint = this.#p.checkpointer.stateful ? this.#p.checkpointer.next(time) : undefined;
        await txStore.transaction(
          group,
          ranges,
          async (tx) => {
            for (const output of registeredOutputs) {
              if (inTransaction.has(output.name))
                await timed(output.name, () => output.transactional!.run(run, tx));
            }
          },
          checkpoint,
        );
        if (checkpoint) this.#p.checkpointer.committed(time);
      } else if (commit.offsets === 'after-outputs') {
        await this.#saveOffsets(store!, offsetsByGroup, time);
      }
      // 8. Record.
      for (const { source, plan } of plans) await source.commit?.(plan);
    } catch (e) {
      if (
        this.#p.membership === 'group' &&
        (e instanceof OwnershipLostError || e instanceof OffsetConflictError)
      ) {
        for (const { source, plan } of plans) await source.abandon?.(plan);
        const info = this.#info(time, start, inputs, outputs, run.badRecords, e, 'abandoned');
        return { info, error: e, abandoned: true };
      }
      return {
        info: this.#info(time, start, inputs, outputs, run.badRecords, e as Error),
        error: e as Error,
      };
    }
    return { info: this.#info(time, start, inputs, outputs, run.badRecords) };
  }

  /**
   * After a graceful stop: the state of the last committed batch again, as a full checkpoint with
   * no offsets, so the next start restores without replaying deltas.
   */
  async finalCheckpoint(): Promise<void> {
    const cp = this.#p.checkpointer;
    const last = cp.lastCommittedBatch;
    if (!cp.stateful || last === undefined) return;
    const { meta, update } = cp.next(last, true);
    await (this.#p.offsetStore as StateStore).commitBatch(this.#p.pipelineId, [], meta, update);
    cp.committed(last);
  }

  async #moveStoredPositions(store: OffsetStore): Promise<void> {
    const byGroup = new Map<string, PartitionOffset[]>();
    for (const { group, ...p } of this.#movedPositions)
      byGroup.set(group, [...(byGroup.get(group) ?? []), p]);
    for (const [group, positions] of byGroup) await store.set(group, positions);
    this.#movedPositions = [];
  }

  #offsetsByGroup(plans: { source: Source<unknown>; plan: InputPlan }[]): Map<string, OffsetRange[]> {
    const byGroup = new Map<string, OffsetRange[]>();
    for (const { source, plan } of plans) {
      if (!source.offsetGroup || plan.offsetRanges.length === 0) continue;
      const group = this.#p.groupOf(source);
      byGroup.set(group, [...(byGroup.get(group) ?? []), ...plan.offsetRanges]);
    }
    return byGroup;
  }

  /** Saves the batch's offsets and, for a stateful pipeline, its state with them in one commit. */
  async #saveOffsets(store: OffsetStore, byGroup: Map<string, OffsetRange[]>, time: number): Promise<void> {
    const cp = this.#p.checkpointer;
    if (cp.stateful) {
      const [group, ranges] = [...byGroup][0] ?? [this.#p.pipelineId, []];
      const { meta, update } = cp.next(time);
      await (store as StateStore).commitBatch(group, ranges, meta, update);
      cp.committed(time);
      return;
    }
    for (const [group, ranges] of byGroup) {
      await store.write(group, ranges, { compareAndSet: store.capabilities.compareAndSet });
    }
  }

  #info(
    time: number,
    start: number,
    inputs: InputInfo[],
    outputs: { name: string; durationMs: number }[],
    ledger: BadRecordLedger,
    error?: Error,
    status: BatchInfo['status'] = error ? 'failed' : 'completed',
  ): BatchInfo {
    const end = this.#p.clock.now();
    return {
      batchTime: time,
      processingStartTime: start,
      processingEndTime: end,
      schedulingDelay: start - time,
      processingTime: end - start,
      totalDelay: end - time,
      numRecords: inputs.reduce((n, i) => n + i.numRecords, 0),
      inputs,
      outputs,
      badRecords: ledger.counts(),
      status,
      ...(error ? { error } : {}),
    };
  }
}
