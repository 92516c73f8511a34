import { createHash } from 'node:crypto';
import type { CheckAccess } from './access.js';
import type { BadRecordLedger } from './bad-records.js';
import type { Batch } from './batch.js';
import { PipelineDefinitionError } from './errors.js';
import type { Guarantee, SinkContext } from './sink.js';
import type { Membership, Source } from './source.js';
import type { TransactionalOffsetStore } from './transactional-store.js';
import type { OffsetRange } from './offsets.js';

/** Internal hooks between the graph, streams and the context; not part of the public API. */
export const COMPUTE = Symbol('sluice.compute');

/** One batch being processed: its inputs and the batches computed so far, each computed once. */
export interface BatchRun {
  readonly time: number;
  readonly inputs: ReadonlyMap<
    string,
    { readonly batch: Batch<unknown>; readonly offsetRanges: readonly OffsetRange[] }
  >;
  readonly computed: Map<object, Promise<Batch<unknown> | undefined>>;
  /** Records rejected in this batch, per policy owner. */
  readonly badRecords: BadRecordLedger;
}

/** A node of the plan, as `describe` and the JSON plan show it. */
export interface PlanNode {
  readonly name: string;
  readonly kind: string;
  readonly parents: readonly string[];
  readonly options: Readonly<Record<string, unknown>>;
  readonly output: boolean;
}

/** The inspectable, immutable plan of a pipeline. */
export interface PipelinePlan {
  readonly pipelineId: string;
  /** Milliseconds between batches. */
  readonly batchInterval: number;
  /** How the job's instances share its inputs: one process reads everything, or a consumer group. */
  readonly membership: Membership;
  /** A hash of the nodes' names, kinds and wiring: changes when the pipeline's shape changes. */
  readonly fingerprint: string;
  readonly nodes: readonly PlanNode[];
}

export interface OutputRegistration {
  readonly name: string;
  readonly kind: string;
  /** What the user asked for; undefined: the strongest the output and the offset store allow. */
  readonly guarantee: Guarantee | undefined;
  /** Writing a batch again leaves the destination unchanged. */
  readonly idempotent: boolean;
  /** Present when the output can write inside `store`'s transaction, together with the offsets. */
  readonly transactional?: {
    readonly store: TransactionalOffsetStore<unknown>;
    readonly run: (run: BatchRun, tx: unknown) => Promise<void>;
  };
  readonly open?: (ctx: SinkContext) => Promise<void>;
  readonly close?: () => Promise<void>;
  /** The sink's access check, run at start before anything opens (see `Sink.checkAccess`). */
  readonly checkAccess?: CheckAccess;
  /** Computes the output's input batch (memoised), before any output writes. */
  readonly prepare: (run: BatchRun) => Promise<void>;
  /** Computed after all the others: its content (dead letters) is collected while they compute. */
  readonly late: boolean;
  readonly run: (run: BatchRun) => Promise<void>;
}

export interface InputRegistration {
  readonly name: string;
  readonly source: Source<unknown>;
}

const NAME_PATTERN = /^[A-Za-z0-9_.:\-]{1,128}$/;

/** The operator graph of one context. Names are unique; derived names are `<kind>-<n>`. */
export class Graph {
  /** The context's batch interval in ms: the slide of input streams. */
  readonly batchInterval: number;
  /** Every stateful operator's state, for checkpoints; forced every batch so windows see every batch. */
  readonly stateful: {
    readonly handle: import('./state.js').StateHandle;
    readonly force: (run: BatchRun) => Promise<unknown>;
  }[] = [];
  readonly nodes: PlanNode[] = [];
  readonly inputs: InputRegistration[] = [];
  readonly outputs: OutputRegistration[] = [];
  /** Bad-record policies by owner (input or tryMap name). */
  readonly badRecords = new Map<string, import('./bad-records.js').BadRecordsOptions>();
  #names = new Set<string>();
  #kindCounters = new Map<string, number>();
  #frozen: (() => never) | undefined;

  constructor(batchInterval: number) {
    this.batchInterval = batchInterval;
  }

  /**
   * True when `time` is a batch at which a stream sliding every `slideMs` produces a batch. Slides
   * count from the epoch (Spark counts from one interval before the first batch), so window
   * boundaries stay put across restarts.
   */
  isValidTime(time: number, slideMs: number): boolean {
    return time % slideMs === 0;
  }

  /** After start, the graph is immutable; `reject` throws the context's state error. */
  freeze(reject: () => never): void {
    this.#frozen = reject;
  }

  /** Reserves a name for a new node: the given one (checked), or `<kind>-<n>`. */
  name(kind: string, requested: string | undefined): string {
    if (this.#frozen) this.#frozen();
    if (requested !== undefined) {
      if (!NAME_PATTERN.test(requested)) {
        throw new PipelineDefinitionError(
          `Operator name ${JSON.stringify(requested)} is not valid`,
          'Use 1-128 characters among letters, digits, _ . : -',
        );
      }
      if (this.#names.has(requested)) {
        throw new PipelineDefinitionError(
          `Two operators are named '${requested}'`,
          'Operator names key state, metrics and checkpoints: give each operator its own name',
        );
      }
      this.#names.add(requested);
      return requested;
    }
    let n = this.#kindCounters.get(kind) ?? 0;
    let name: string;
    do name = `${kind}-${++n}`;
    while (this.#names.has(name));
    this.#kindCounters.set(kind, n);
    this.#names.add(name);
    return name;
  }

  add(node: PlanNode): void {
    this.nodes.push(node);
  }

  plan(pipelineId: string, membership: Membership): PipelinePlan {
    const shape = this.nodes.map((n) => [n.name, n.kind, n.parents, n.output]);
    const fingerprint = createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16);
    return Object.freeze({
      pipelineId,
      batchInterval: this.batchInterval,
      membership,
      fingerprint,
      nodes: Object.freeze(this.nodes.map((n) => Object.freeze({ ...n }))),
    });
  }
}

/** The plan as text, one line per operator, in the order they were defined. */
export function describePlan(plan: PipelinePlan): string {
  const width = Math.max(4, ...plan.nodes.map((n) => n.name.length));
  const kindWidth = Math.max(4, ...plan.nodes.map((n) => n.kind.length));
  const lines = [
    `Pipeline '${plan.pipelineId}' — batch interval ${plan.batchInterval} ms — membership ${plan.membership} — fingerprint ${plan.fingerprint}`,
  ];
  for (const n of plan.nodes) {
    const from = n.parents.length ? ` <- ${n.parents.join(', ')}` : '';
    const opts = Object.keys(n.options).length ? ` ${JSON.stringify(n.options)}` : '';
    lines.push(
      `  ${n.name.padEnd(width)}  ${n.kind.padEnd(kindWidth)}${from}${opts}${n.output ? '  [output]' : ''}`,
    );
  }
  return lines.join('\n');
}
