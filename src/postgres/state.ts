import type pg from 'pg';
import { decodeStateValue, encodeStateValue } from '../checkpoint/directory.js';
import type { CheckpointMeta, OperatorState, StateDelta, StateUpdate } from '../core/checkpoint.js';
import { InvalidOptionError } from '../core/errors.js';
import { quoteIdentifier } from './connection.js';

/** The two tables a PostgreSQL state store keeps beside its offsets table, quoted. */
export interface StateTables {
  /** `<offsets table>_checkpoints`: one row per pipeline, the meta of its last committed batch. */
  readonly checkpoints: string;
  /** `<offsets table>_state`: per pipeline and operator a full snapshot (seq 0) and the deltas after it. */
  readonly state: string;
}

/**
 * The state tables derived from the offsets table (`name` or `schema.name`): `<name>_checkpoints`
 * and `<name>_state` in the same schema. PostgreSQL would silently truncate a name over 63
 * characters, so a derived name that long is refused instead.
 */
export function stateTableNames(offsetsTable: string): StateTables {
  const names = { checkpoints: `${offsetsTable}_checkpoints`, state: `${offsetsTable}_state` };
  try {
    return {
      checkpoints: quoteIdentifier('table', names.checkpoints, true),
      state: quoteIdentifier('table', names.state, true),
    };
  } catch {
    throw new InvalidOptionError(
      'table',
      "a table name of at most 51 characters when the store keeps state (it adds the tables '<table>_checkpoints' and '<table>_state')",
      offsetsTable,
    );
  }
}

/**
 * Creates the checkpoint tables if they do not exist (what the store does before its first
 * checkpoint unless `createTable: false`). Values are `json`, not `jsonb`: `json` keeps the text
 * as written, and `jsonb` refuses strings holding U+0000 or a lone surrogate, which state may hold.
 */
export async function createStateTables(pool: pg.Pool, offsetsTable = 'sluice_offsets'): Promise<void> {
  const t = stateTableNames(offsetsTable);
  for (const ddl of [
    `CREATE TABLE IF NOT EXISTS ${t.checkpoints} (
      pipeline_id text PRIMARY KEY,
      meta json NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE TABLE IF NOT EXISTS ${t.state} (
      pipeline_id text NOT NULL,
      operator text NOT NULL,
      seq int NOT NULL,
      kind text NOT NULL CHECK (kind IN ('full', 'delta')),
      data json NOT NULL,
      PRIMARY KEY (pipeline_id, operator, seq)
    )`,
  ]) {
    try {
      await pool.query(ddl);
    } catch (e) {
      // Two sessions creating the same table at once: see createOffsetsTable.
      const code = (e as { code?: unknown }).code;
      if (code !== '23505' && code !== '42P07') throw e;
    }
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
export async function writeCheckpoint(
  client: pg.ClientBase,
  t: StateTables,
  meta: CheckpointMeta,
  update: StateUpdate,
): Promise<void> {
  const id = meta.pipelineId;
  await client.query(
    `INSERT INTO ${t.checkpoints} (pipeline_id, meta, updated_at) VALUES ($1, $2::json, now())
     ON CONFLICT (pipeline_id) DO UPDATE SET meta = EXCLUDED.meta, updated_at = EXCLUDED.updated_at`,
    [id, JSON.stringify(meta)],
  );
  const operators = meta.operators.map((o) => o.name);
  const fulls = operators.filter((op) => update.full.has(op));
  await client.query(
    `DELETE FROM ${t.state}
     WHERE pipeline_id = $1 AND (operator = ANY($2::text[]) OR operator <> ALL($3::text[]))`,
    [id, fulls, operators],
  );
  for (const op of fulls) {
    const data = JSON.stringify(encodeStateValue(update.full.get(op), `state of '${op}'`));
    await client.query(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data) VALUES ($1, $2, 0, 'full', $3::json)`,
      [id, op, data],
    );
  }
  for (const op of operators) {
    const delta = update.deltas.get(op);
    if (delta === undefined || update.full.has(op)) continue;
    const data = JSON.stringify(encodeStateValue(delta, `state delta of '${op}'`));
    await client.query(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data)
       SELECT $1::text, $2::text, max(seq) + 1, 'delta', $3::json FROM ${t.state}
       WHERE pipeline_id = $1::text AND operator = $2::text HAVING count(*) > 0`,
      [id, op, data],
    );
  }
}

/** The last committed checkpoint of `pipelineId`, read in one statement (so from one snapshot). */
export async function readCheckpoint(
  pool: pg.Pool,
  t: StateTables,
  pipelineId: string,
): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined> {
  const { rows } = await pool.query<{
    meta: CheckpointMeta;
    operator: string | null;
    kind: 'full' | 'delta' | null;
    data: unknown;
  }>(
    `SELECT c.meta, s.operator, s.kind, s.data
     FROM ${t.checkpoints} c LEFT JOIN ${t.state} s ON s.pipeline_id = c.pipeline_id
     WHERE c.pipeline_id = $1 ORDER BY s.operator, s.seq`,
    [pipelineId],
  );
  if (rows.length === 0) return undefined;
  const state = new Map<string, { full: unknown; deltas: StateDelta[] }>();
  for (const r of rows) {
    if (r.operator === null) continue; // the LEFT JOIN's row of a checkpoint without state
    if (r.kind === 'full') state.set(r.operator, { full: decodeStateValue(r.data), deltas: [] });
    else state.get(r.operator)?.deltas.push(decodeStateValue(r.data) as StateDelta);
  }
  return { meta: rows[0]!.meta, state };
}
