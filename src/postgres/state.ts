import type pg from 'pg';
import { stateTableNames, type CheckpointRow, type StateDialect } from '../relational/state.js';
import { postgresConnection } from './connection.js';

/**
 * Creates the checkpoint tables if they do not exist (what the store does before its first
 * checkpoint unless `createTable: false`). Values are `json`, not `jsonb`: `json` keeps the text
 * as written, and `jsonb` refuses strings holding U+0000 or a lone surrogate, which state may hold.
 */
export async function createStateTables(pool: pg.Pool, offsetsTable = 'sluice_offsets'): Promise<void> {
  const t = stateTableNames(postgresConnection, offsetsTable);
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

/** The state tables' statements of PostgreSQL. */
export const postgresState: StateDialect<pg.Pool, pg.PoolClient> = {
  createStateTables,

  async upsertMeta(client, t, id, meta) {
    await client.query(
      `INSERT INTO ${t.checkpoints} (pipeline_id, meta, updated_at) VALUES ($1, $2::json, now())
       ON CONFLICT (pipeline_id) DO UPDATE SET meta = EXCLUDED.meta, updated_at = EXCLUDED.updated_at`,
      [id, meta],
    );
  },

  async deleteState(client, t, id, replaced, operators) {
    await client.query(
      `DELETE FROM ${t.state}
       WHERE pipeline_id = $1 AND (operator = ANY($2::text[]) OR operator <> ALL($3::text[]))`,
      [id, replaced, operators],
    );
  },

  async insertFull(client, t, id, op, data) {
    await client.query(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data) VALUES ($1, $2, 0, 'full', $3::json)`,
      [id, op, data],
    );
  },

  async appendDelta(client, t, id, op, data) {
    await client.query(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data)
       SELECT $1::text, $2::text, max(seq) + 1, 'delta', $3::json FROM ${t.state}
       WHERE pipeline_id = $1::text AND operator = $2::text HAVING count(*) > 0`,
      [id, op, data],
    );
  },

  async selectCheckpoint(pool, t, pipelineId) {
    const { rows } = await pool.query<CheckpointRow>(
      `SELECT c.meta, s.operator, s.kind, s.data
       FROM ${t.checkpoints} c LEFT JOIN ${t.state} s ON s.pipeline_id = c.pipeline_id
       WHERE c.pipeline_id = $1 ORDER BY s.operator, s.seq`,
      [pipelineId],
    );
    return rows;
  },

  // pg parses json columns itself.
  readJson: (value) => value,
};
