import { decodeStateValue, encodeStateValue } from '../core/state-codec.js';
import type { CheckpointMeta, OperatorState, StateDelta, StateUpdate } from '../core/state.js';
import { InvalidOptionError } from '../core/errors.js';
import type { ConnectionDialect } from './dialect.js';

/** The two tables a SQL state store keeps beside its offsets table, quoted. */
export interface StateTables {
  /** `<offsets table>_checkpoints`: one row per pipeline, the meta of its last committed batch. */
  readonly checkpoints: string;
  /** `<offsets table>_state`: per pipeline and operator a full snapshot (seq 0) and the deltas after it. */
  readonly state: string;
}

/** A row of the checkpoint query: the meta, joined with each state row (none: operator null). */
export interface CheckpointRow {
  readonly meta: unknown;
  readonly operator: string | null;
  readonly kind: 'full' | 'delta' | null;
  readonly data: unknown;
}

/** The state tables' statements of one database. JSON values are given as text. */
export interface StateDialect<Pool, Conn> {
  /** Creates the checkpoint tables of an offsets table if they do not exist. */
  createStateTables(pool: Pool, offsetsTable: string): Promise<void>;
  /** Inserts or replaces the pipeline's checkpoint row. */
  upsertMeta(conn: Conn, t: StateTables, pipelineId: string, meta: string): Promise<void>;
  /** Deletes the pipeline's rows of the operators in `replaced` and of those not in `operators`. */
  deleteState(
    conn: Conn,
    t: StateTables,
    pipelineId: string,
    replaced: readonly string[],
    operators: readonly string[],
  ): Promise<void>;
  /** Inserts an operator's full snapshot at seq 0. */
  insertFull(conn: Conn, t: StateTables, pipelineId: string, operator: string, data: string): Promise<void>;
  /** Appends a delta at max(seq) + 1, only if the operator has rows (a snapshot) to apply it to. */
  appendDelta(conn: Conn, t: StateTables, pipelineId: string, operator: string, data: string): Promise<void>;
  /** The checkpoint row joined with its state rows, ordered by operator and seq, in one statement. */
  selectCheckpoint(pool: Pool, t: StateTables, pipelineId: string): Promise<readonly CheckpointRow[]>;
  /** A JSON column's value as read (the driver may have parsed it already, or give the text). */
  readJson(value: unknown): unknown;
}

/**
 * The state tables derived from the offsets table (`name` or qualified): `<name>_checkpoints` and
 * `<name>_state` beside it. A derived name over the database's longest identifier is refused.
 */
export function stateTableNames(
  db: Pick<ConnectionDialect<unknown, unknown>, 'quoteIdentifier' | 'maxIdentifierLength'>,
  offsetsTable: string,
): StateTables {
  try {
    return {
      checkpoints: db.quoteIdentifier('table', `${offsetsTable}_checkpoints`, true),
      state: db.quoteIdentifier('table', `${offsetsTable}_state`, true),
    };
  } catch {
    throw new InvalidOptionError(
      'table',
      `a table name of at most ${db.maxIdentifierLength - '_checkpoints'.length} characters when the store keeps state (it adds the tables '<table>_checkpoints' and '<table>_state')`,
      offsetsTable,
    );
  }
}

/**
 * In the caller's transaction, after the offsets: the checkpoint of `meta.batchTime`. The meta
 * upsert goes first because it locks the pipeline's checkpoint row, so two writers of one pipeline
 * take turns before either reads the next delta seq. Per operator of `meta.operators`: a full
 * snapshot replaces the operator's rows with seq 0; a delta appends max(seq) + 1 on top of them (if
 * there is no snapshot to apply it to, it is dropped, as the in-memory reference does). Operators
 * no longer in `meta.operators` lose their rows.
 */
export async function writeCheckpoint<Conn>(
  db: StateDialect<unknown, Conn>,
  conn: Conn,
  t: StateTables,
  meta: CheckpointMeta,
  update: StateUpdate,
): Promise<void> {
  const id = meta.pipelineId;
  await db.upsertMeta(conn, t, id, JSON.stringify(meta));
  const operators = meta.operators.map((o) => o.name);
  const fulls = operators.filter((op) => update.full.has(op));
  await db.deleteState(conn, t, id, fulls, operators);
  for (const op of fulls) {
    const data = JSON.stringify(encodeStateValue(update.full.get(op), `state of '${op}'`));
    await db.insertFull(conn, t, id, op, data);
  }
  for (const op of operators) {
    const delta = update.deltas.get(op);
    if (delta === undefined || update.full.has(op)) continue;
    const data = JSON.stringify(encodeStateValue(delta, `state delta of '${op}'`));
    await db.appendDelta(conn, t, id, op, data);
  }
}

/** The last committed checkpoint of `pipelineId`, read in one statement (so from one snapshot). */
export async function readCheckpoint<Pool>(
  db: StateDialect<Pool, unknown>,
  pool: Pool,
  t: StateTables,
  pipelineId: string,
): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined> {
  const rows = await db.selectCheckpoint(pool, t, pipelineId);
  if (rows.length === 0) return undefined;
  const state = new Map<string, { full: unknown; deltas: StateDelta[] }>();
  for (const r of rows) {
    if (r.operator === null) continue; // the LEFT JOIN's row of a checkpoint without state
    const decode = () => decodeStateValue(db.readJson(r.data));
    if (r.kind === 'full') state.set(r.operator, { full: decode(), deltas: [] });
    else state.get(r.operator)?.deltas.push(decode() as StateDelta);
  }
  return { meta: db.readJson(rows[0]!.meta) as CheckpointMeta, state };
}
