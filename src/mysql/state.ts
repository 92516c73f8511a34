import type mysql from 'mysql2/promise';
import { decodeStateValue, encodeStateValue } from '../checkpoint/directory.js';
import type { CheckpointMeta, OperatorState, StateDelta, StateUpdate } from '../core/checkpoint.js';
import { InvalidOptionError } from '../core/errors.js';
import { quoteIdentifier } from './connection.js';

/** The two tables a MySQL/MariaDB state store keeps beside its offsets table, quoted. */
export interface StateTables {
  /** `<offsets table>_checkpoints`: one row per pipeline, the meta of its last committed batch. */
  readonly checkpoints: string;
  /** `<offsets table>_state`: per pipeline and operator a full snapshot (seq 0) and the deltas after it. */
  readonly state: string;
}

/**
 * The state tables derived from the offsets table (`name` or `database.name`): `<name>_checkpoints`
 * and `<name>_state` in the same database. A derived name over 64 characters is refused.
 */
export function stateTableNames(offsetsTable: string): StateTables {
  try {
    return {
      checkpoints: quoteIdentifier('table', `${offsetsTable}_checkpoints`, true),
      state: quoteIdentifier('table', `${offsetsTable}_state`, true),
    };
  } catch {
    throw new InvalidOptionError(
      'table',
      "a table name of at most 52 characters when the store keeps state (it adds the tables '<table>_checkpoints' and '<table>_state')",
      offsetsTable,
    );
  }
}

/**
 * Creates the checkpoint tables if they do not exist (what the store does before its first
 * checkpoint unless `createTable: false`). JSON goes in LONGTEXT, not MariaDB's JSON type: that
 * one's JSON_VALID check refuses `\ud800`-style escapes of lone surrogates, which JSON.stringify
 * writes for strings state may hold, and mysql2 would parse it into values on reading.
 */
export async function createStateTables(pool: mysql.Pool, offsetsTable = 'sluice_offsets'): Promise<void> {
  const t = stateTableNames(offsetsTable);
  await pool.query(`CREATE TABLE IF NOT EXISTS ${t.checkpoints} (
    pipeline_id VARCHAR(255) NOT NULL,
    meta LONGTEXT NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (pipeline_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
  await pool.query(`CREATE TABLE IF NOT EXISTS ${t.state} (
    pipeline_id VARCHAR(255) NOT NULL,
    operator VARCHAR(255) NOT NULL,
    seq INT NOT NULL,
    kind ENUM('full', 'delta') NOT NULL,
    data LONGTEXT NOT NULL,
    PRIMARY KEY (pipeline_id, operator, seq)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
}

/**
 * In the caller's transaction, after the offsets: the checkpoint of `meta.batchTime`. The meta
 * upsert goes first because it locks the pipeline's checkpoint row, so two writers of one pipeline
 * take turns before either reads the next delta seq. Per operator of `meta.operators`: a full
 * snapshot replaces the operator's rows with seq 0; a delta appends MAX(seq) + 1 on top of them (if
 * there is no snapshot to apply it to, it is dropped, as the in-memory reference does). Operators
 * no longer in `meta.operators` lose their rows.
 */
export async function writeCheckpoint(
  conn: mysql.PoolConnection,
  t: StateTables,
  meta: CheckpointMeta,
  update: StateUpdate,
): Promise<void> {
  const id = meta.pipelineId;
  await conn.execute(
    `INSERT INTO ${t.checkpoints} (pipeline_id, meta, updated_at) VALUES (?, ?, NOW(6))
     ON DUPLICATE KEY UPDATE meta = VALUES(meta), updated_at = VALUES(updated_at)`,
    [id, JSON.stringify(meta)],
  );
  const operators = meta.operators.map((o) => o.name);
  const fulls = operators.filter((op) => update.full.has(op));
  // IN () is a syntax error: an empty list matches nothing, NOT IN an empty list everything.
  const replaced = fulls.length ? `operator IN (${placeholders(fulls.length)})` : 'FALSE';
  const dropped = operators.length ? `operator NOT IN (${placeholders(operators.length)})` : 'TRUE';
  await conn.execute(`DELETE FROM ${t.state} WHERE pipeline_id = ? AND (${replaced} OR ${dropped})`, [
    id,
    ...fulls,
    ...operators,
  ]);
  for (const op of fulls) {
    const data = JSON.stringify(encodeStateValue(update.full.get(op), `state of '${op}'`));
    await conn.execute(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data) VALUES (?, ?, 0, 'full', ?)`,
      [id, op, data],
    );
  }
  for (const op of operators) {
    const delta = update.deltas.get(op);
    if (delta === undefined || update.full.has(op)) continue;
    const data = JSON.stringify(encodeStateValue(delta, `state delta of '${op}'`));
    await conn.execute(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data)
       SELECT ?, ?, MAX(seq) + 1, 'delta', ? FROM ${t.state}
       WHERE pipeline_id = ? AND operator = ? HAVING COUNT(*) > 0`,
      [id, op, data, id, op],
    );
  }
}

/** The last committed checkpoint of `pipelineId`, read in one statement (so from one snapshot). */
export async function readCheckpoint(
  pool: mysql.Pool,
  t: StateTables,
  pipelineId: string,
): Promise<{ meta: CheckpointMeta; state: Map<string, OperatorState> } | undefined> {
  const [rows] = await pool.execute<mysql.RowDataPacket[]>(
    `SELECT c.meta, s.operator, s.kind, s.data
     FROM ${t.checkpoints} c LEFT JOIN ${t.state} s ON s.pipeline_id = c.pipeline_id
     WHERE c.pipeline_id = ? ORDER BY s.operator, s.seq`,
    [pipelineId],
  );
  if (rows.length === 0) return undefined;
  const state = new Map<string, { full: unknown; deltas: StateDelta[] }>();
  for (const r of rows) {
    const operator = r.operator as string | null;
    if (operator === null) continue; // the LEFT JOIN's row of a checkpoint without state
    const data = decodeStateValue(JSON.parse(r.data as string));
    if (r.kind === 'full') state.set(operator, { full: data, deltas: [] });
    else state.get(operator)?.deltas.push(data as StateDelta);
  }
  return { meta: JSON.parse(rows[0]!.meta as string) as CheckpointMeta, state };
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}
