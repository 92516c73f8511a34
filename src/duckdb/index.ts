/**
 * `sluice/sql`: SQL on any batch, with DuckDB in process. The core never imports this module.
 *
 * - {@link SqlEngine}: one in-process DuckDB; `query(tables, text, params)` loads batches or
 *   arrays of records as tables, runs the query with bound parameters and returns row objects.
 * - {@link sqlTransform}: the same as a `stream.transform(...)` function, on every batch.
 * - Errors: {@link SqlError} (`SLUICE_SQL_QUERY`, with line, column and a caret excerpt),
 *   {@link SqlSchemaError} (`SLUICE_SQL_SCHEMA`), {@link SqlEngineClosedError} (`SLUICE_SQL_ENGINE_CLOSED`).
 *
 * Types in: records' fields become columns (objects by property, tuples as `_1`, `_2`..., other
 * values as `value`); numbers are BIGINT (safe integers) or DOUBLE, bigints BIGINT/HUGEINT,
 * strings VARCHAR, Dates TIMESTAMP (UTC), bytes BLOB, arrays and objects JSON; conflicting types
 * give VARCHAR. Types out: integers as numbers when safe (else bigint), timestamps and dates as
 * Dates, JSON parsed (see {@link SqlValue}).
 *
 * @example
 * ```ts
 * import { definePipeline, socketTextStream } from 'sluice';
 * import { SqlEngine, sqlTransform } from 'sluice/sql';
 *
 * export default definePipeline({
 *   batchInterval: 1000,
 *   build(ctx) {
 *     const sql = new SqlEngine({ closeWith: ctx });
 *     socketTextStream(ctx, '127.0.0.1', 9999)
 *       .map((line) => ({ word: line.trim() }))
 *       .transform(sqlTransform(sql, 'select word, count(*) as n from batch group by word order by n desc limit $1', { params: [10] }))
 *       .print();
 *   },
 * });
 * ```
 */
export { SqlEngine } from './engine.js';
export type {
  SqlEngineOptions,
  SqlParam,
  SqlParams,
  SqlRow,
  SqlTable,
  SqlTableRows,
  SqlTables,
  SqlValue,
} from './engine.js';
export { sqlTransform } from './transform.js';
export type { SqlTransformOptions } from './transform.js';
export type { SqlColumns, SqlSchema, SqlType } from './schema.js';
export { SqlEngineClosedError, SqlError, SqlSchemaError } from './errors.js';
export type { SqlErrorPosition, SqlSchemaProblem } from './errors.js';
