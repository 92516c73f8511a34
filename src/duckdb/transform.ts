import { Batch } from '../core/batch.js';
import { InvalidOptionError } from '../core/errors.js';
import type { SqlEngine, SqlParams, SqlRow, SqlTables } from './engine.js';
import { inferColumns, type SqlColumns, type SqlSchema } from './schema.js';
import type { BatchContext } from '../core/batch.js';

/** Options of {@link sqlTransform}. */
export interface SqlTransformOptions {
  /** The batch's table name in the query (default `batch`). */
  readonly table?: string;
  /**
   * The batch's columns. Without it they are inferred from each batch with rows; an empty batch
   * takes the columns of the last batch with rows, and before any, gives an empty result without
   * running the query. Give it when the query must run on every batch (e.g. `count(*)` = 0 first).
   */
  readonly schema?: SqlSchema | SqlColumns;
  /** Bound parameters, fixed or computed per batch (e.g. from `ctx.time`). */
  readonly params?: SqlParams | ((ctx: BatchContext) => SqlParams);
  /** More tables for the query (reference data), fixed or loaded per batch. */
  readonly tables?: SqlTables | ((ctx: BatchContext) => SqlTables | Promise<SqlTables>);
  /**
   * Partitions of the result (default 1, which keeps the query's `order by` when the batch is
   * collected); more spreads the rows round-robin.
   */
  readonly numPartitions?: number;
}

/**
 * A function for `stream.transform(...)` that runs a SQL query on every batch: the batch is the
 * table `batch` (or `options.table`), the rows of the result are the records of the new stream.
 * Works on any stream, including state snapshots (`updateStateByKey`, `mapWithState(...).stateSnapshots()`),
 * whose `[key, state]` pairs are the columns `_1` and `_2` (map them to objects for nicer names).
 *
 * @example
 * ```ts
 * import { SqlEngine, sqlTransform } from 'sluice/sql';
 * const sql = new SqlEngine({ closeWith: ctx });
 * const top3 = totals
 *   .map(([[category, brand], sales]) => ({ category, brand, sales }))
 *   .transform(
 *     sqlTransform<{ category: string; brand: string; sales: number }>(
 *       sql,
 *       `select category, brand, sales from (
 *          select *, row_number() over (partition by category order by sales desc, brand) as rn from totals)
 *        where rn <= 3 order by category, rn`,
 *       { table: 'totals', schema: { category: 'VARCHAR', brand: 'VARCHAR', sales: 'BIGINT' } },
 *     ),
 *     { name: 'top3' },
 *   );
 * ```
 */
export function sqlTransform<Row extends object = SqlRow, T = unknown>(
  engine: SqlEngine,
  text: string,
  options: SqlTransformOptions = {},
): (batch: Batch<T>, ctx: BatchContext) => Promise<Batch<Row>> {
  const table = options.table ?? 'batch';
  const numPartitions = options.numPartitions ?? 1;
  if (!Number.isInteger(numPartitions) || numPartitions < 1) {
    throw new InvalidOptionError('numPartitions', 'an integer >= 1', options.numPartitions);
  }
  if (typeof text !== 'string' || text.trim() === '')
    throw new InvalidOptionError('text', 'a SQL query', text);
  // The columns of the last batch with rows, for the empty batches that follow.
  let known: SqlColumns | undefined;
  return async (batch, ctx) => {
    const extra = typeof options.tables === 'function' ? await options.tables(ctx) : (options.tables ?? {});
    if (Object.keys(extra).some((name) => name.toLowerCase() === table.toLowerCase())) {
      throw new InvalidOptionError(
        'tables',
        `no table named '${table}' (the batch's own table)`,
        Object.keys(extra),
      );
    }
    const params = typeof options.params === 'function' ? options.params(ctx) : options.params;
    let schema = options.schema;
    if (schema === undefined) {
      if (!batch.isEmpty()) {
        const inferred = inferColumns(table, batch.collect());
        if (inferred.length > 0) known = inferred;
      }
      // No rows and no known columns: nothing to query, so nothing comes out.
      if (known === undefined && batch.isEmpty()) return Batch.of<Row>([], numPartitions);
      schema = known;
    }
    const self = schema ? { rows: batch as Batch<unknown>, schema } : (batch as Batch<unknown>);
    const rows = await engine.query<Row>({ ...extra, [table]: self }, text, params);
    return Batch.of(rows, numPartitions);
  };
}
