import type mysql from 'mysql2/promise';
import { stateTableNames, type CheckpointRow, type StateDialect } from '../relational/state.js';
import { mysqlConnection, placeholders } from './connection.js';

/**
 * Creates the checkpoint tables if they do not exist (what the store does before its first
 * checkpoint unless `createTable: false`). JSON goes in LONGTEXT, not MariaDB's JSON type: that
 * one's JSON_VALID check refuses `\ud800`-style escapes of lone surrogates, which JSON.stringify
 * writes for strings state may hold, and mysql2 would parse it into values on reading.
 */
export async function createStateTables(pool: mysql.Pool, offsetsTable = 'sluice_offsets'): Promise<void> {
  const t = stateTableNames(mysqlConnection, offsetsTable);
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

/** The state tables' statements of MySQL/MariaDB. */
export const mysqlState: StateDialect<mysql.Pool, mysql.PoolConnection> = {
  createStateTables,

  async upsertMeta(conn, t, id, meta) {
    await conn.execute(
      `INSERT INTO ${t.checkpoints} (pipeline_id, meta, updated_at) VALUES (?, ?, NOW(6))
       ON DUPLICATE KEY UPDATE meta = VALUES(meta), updated_at = VALUES(updated_at)`,
      [id, meta],
    );
  },

  async deleteState(conn, t, id, replaced, operators) {
    // IN () is a syntax error: an empty list matches nothing, NOT IN an empty list everything.
    const full = replaced.length ? `operator IN (${placeholders(replaced.length)})` : 'FALSE';
    const dropped = operators.length ? `operator NOT IN (${placeholders(operators.length)})` : 'TRUE';
    await conn.execute(`DELETE FROM ${t.state} WHERE pipeline_id = ? AND (${full} OR ${dropped})`, [
      id,
      ...replaced,
      ...operators,
    ]);
  },

  async insertFull(conn, t, id, op, data) {
    await conn.execute(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data) VALUES (?, ?, 0, 'full', ?)`,
      [id, op, data],
    );
  },

  async appendDelta(conn, t, id, op, data) {
    await conn.execute(
      `INSERT INTO ${t.state} (pipeline_id, operator, seq, kind, data)
       SELECT ?, ?, MAX(seq) + 1, 'delta', ? FROM ${t.state}
       WHERE pipeline_id = ? AND operator = ? HAVING COUNT(*) > 0`,
      [id, op, data, id, op],
    );
  },

  async selectCheckpoint(pool, t, pipelineId) {
    const [rows] = await pool.execute<mysql.RowDataPacket[]>(
      `SELECT c.meta, s.operator, s.kind, s.data
       FROM ${t.checkpoints} c LEFT JOIN ${t.state} s ON s.pipeline_id = c.pipeline_id
       WHERE c.pipeline_id = ? ORDER BY s.operator, s.seq`,
      [pipelineId],
    );
    return rows as CheckpointRow[];
  },

  // LONGTEXT: the JSON comes back as its text.
  readJson: (value) => JSON.parse(value as string) as unknown,
};
