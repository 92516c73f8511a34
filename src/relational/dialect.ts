/**
 * What one SQL database does its own way, for the offset store, state tables and sink shared by
 * the PostgreSQL and MySQL/MariaDB adapters (one store, one sink, a dialect per database, the way
 * Kysely keeps one query builder and a dialect per database). This part is the connection: the
 * pool wrapper, identifier quoting and the transaction; the statements are in the dialects of
 * `offset-store.ts`, `state.ts` and `sink.ts`.
 */
export interface ConnectionDialect<Pool, Conn> {
  /**
   * A table name (`name`, or qualified by schema/database when `qualified`) or column name,
   * checked and quoted; an `InvalidOptionError` naming `option` otherwise.
   */
  quoteIdentifier(option: string, name: unknown, qualified?: boolean): string;
  /** The longest identifier the database keeps. */
  readonly maxIdentifierLength: number;
  /** Host, port, database and user of a pool, for describe(): never the password. */
  describePool(pool: Pool): Record<string, unknown>;
  endPool(pool: Pool): Promise<void>;
  /** Runs `fn` in a READ COMMITTED transaction on one connection; commits, or rolls back and rethrows. */
  withTransaction<R>(pool: Pool, fn: (conn: Conn) => Promise<R>): Promise<R>;
}

export interface ResolvedPool<Pool> {
  readonly pool: Pool;
  /** True when Sluice created the pool and must end it. */
  readonly owned: boolean;
}

/** A stored BIGINT offset (which a driver may return as a string) as a JS number, refusing precision loss. */
export function toOffset(value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`Stored offset ${String(value)} is not a safe integer`);
  return n;
}
