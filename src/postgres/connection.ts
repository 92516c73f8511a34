import pg from 'pg';
import { InvalidOptionError } from '../core/errors.js';
import type { ConnectionDialect, ResolvedPool } from '../relational/dialect.js';

/** Where to connect: an existing pool (the caller ends it), or a URL / config for a pool Sluice owns. */
export interface PostgresConnectionOptions {
  /** A pool you own: Sluice uses it and never ends it. */
  readonly pool?: pg.Pool;
  /**
   * A `postgres://` URL or a `pg.PoolConfig` for a pool Sluice creates and ends on `close()`.
   * Default: env `SLUICE_POSTGRES_URL`, else the `PG*` variables (PGHOST, PGPORT, PGUSER,
   * PGPASSWORD, PGDATABASE) over `postgres@127.0.0.1:5432/test`.
   */
  readonly connection?: string | pg.PoolConfig;
}

export function resolvePool(options: PostgresConnectionOptions): ResolvedPool<pg.Pool> {
  if (options.pool && options.connection !== undefined) {
    throw new InvalidOptionError('connection', 'either pool or connection, not both', '(both given)');
  }
  if (options.pool) return { pool: options.pool, owned: false };
  const pool = new pg.Pool(poolConfig(options.connection));
  // An idle client losing its connection (a server restart) is emitted on the pool; unhandled, it
  // would crash the process. The pool drops that client and the next query reports the problem.
  pool.on('error', () => {});
  return { pool, owned: true };
}

function poolConfig(connection: string | pg.PoolConfig | undefined): pg.PoolConfig {
  if (typeof connection === 'string') return { connectionString: connection };
  if (connection !== undefined) return connection;
  const url = process.env.SLUICE_POSTGRES_URL?.trim();
  if (url) return { connectionString: url };
  // pg reads PGPASSWORD (and the rest) itself; only the fallbacks are ours.
  return {
    host: process.env.PGHOST ?? '127.0.0.1',
    port: Number(process.env.PGPORT ?? 5432),
    user: process.env.PGUSER ?? 'postgres',
    database: process.env.PGDATABASE ?? 'test',
  };
}

/** Host, port, database and user of a pool, for describe(): never the password. */
export function describePool(pool: pg.Pool): Record<string, unknown> {
  const o = pool.options as pg.PoolConfig;
  if (o.connectionString) {
    try {
      const u = new URL(o.connectionString);
      return {
        host: u.hostname,
        port: Number(u.port || 5432),
        database: decodeURIComponent(u.pathname.slice(1)) || undefined,
        user: decodeURIComponent(u.username) || undefined,
      };
    } catch {
      return {};
    }
  }
  return { host: o.host, port: o.port, database: o.database, user: o.user };
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * A table name (`name` or `schema.name`) or column name, checked and double-quoted. Identifiers
 * cannot be bound as parameters, so only names matching `[A-Za-z_][A-Za-z0-9_]*` (max 63) get in.
 */
export function quoteIdentifier(option: string, name: unknown, qualified = false): string {
  const parts = typeof name === 'string' ? name.split('.') : [];
  if (parts.length === 0 || parts.length > (qualified ? 2 : 1) || !parts.every((p) => IDENTIFIER.test(p))) {
    const accepted = qualified ? "'name' or 'schema.name'" : "'name'";
    throw new InvalidOptionError(
      option,
      `${accepted}, each part [A-Za-z_][A-Za-z0-9_]* up to 63 characters`,
      name,
    );
  }
  return parts.map((p) => `"${p}"`).join('.');
}

/**
 * Runs `fn` in a READ COMMITTED transaction on one client of the pool (whatever the server's
 * default, so that concurrent compare-and-set writes conflict instead of failing to serialize).
 * Commits, or rolls back and rethrows; a client whose rollback fails is destroyed, not reused.
 */
export async function withTransaction<R>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<R>,
): Promise<R> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch((r: unknown) => {
      broken = r instanceof Error ? r : new Error(String(r));
    });
    throw e;
  } finally {
    client.release(broken);
  }
}

/** The connection part of the PostgreSQL dialect of the shared SQL stores. */
export const postgresConnection: ConnectionDialect<pg.Pool, pg.PoolClient> = {
  quoteIdentifier,
  // PostgreSQL would silently truncate a longer name, so a derived name that long is refused instead.
  maxIdentifierLength: 63,
  describePool,
  endPool: (pool) => pool.end(),
  withTransaction,
};
