import mysql from 'mysql2/promise';
import { InvalidOptionError } from '../core/errors.js';
import type { ConnectionDialect, ResolvedPool } from '../relational/dialect.js';

/** Where to connect: an existing pool (the caller ends it), or a URL / options for a pool Sluice owns. */
export interface MySqlConnectionOptions {
  /** A `mysql2/promise` pool you own: Sluice uses it and never ends it. */
  readonly pool?: mysql.Pool;
  /**
   * A `mysql://` URL or `mysql2` pool options for a pool Sluice creates and ends on `close()`.
   * Default: env `SLUICE_MYSQL_URL`, else `mysql://root@127.0.0.1:3306/test`.
   */
  readonly connection?: string | mysql.PoolOptions;
}

export function resolvePool(options: MySqlConnectionOptions): ResolvedPool<mysql.Pool> {
  if (options.pool && options.connection !== undefined) {
    throw new InvalidOptionError('connection', 'either pool or connection, not both', '(both given)');
  }
  if (options.pool) return { pool: options.pool, owned: false };
  const c = options.connection ?? process.env.SLUICE_MYSQL_URL?.trim() ?? 'mysql://root@127.0.0.1:3306/test';
  // BIGINT offsets come back as numbers (strings only beyond 2^53, which toOffset refuses).
  const bigNumbers = { supportBigNumbers: true, bigNumberStrings: false };
  const config = typeof c === 'string' ? { uri: c, ...bigNumbers } : { ...bigNumbers, ...c };
  return { pool: mysql.createPool(config), owned: true };
}

/** Host, port, database and user of a pool, for describe(): never the password. */
export function describePool(pool: mysql.Pool): Record<string, unknown> {
  const c = (pool.pool as unknown as { config?: { connectionConfig?: mysql.ConnectionOptions } }).config
    ?.connectionConfig;
  return c ? { host: c.host, port: c.port, database: c.database, user: c.user } : {};
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A table name (`name` or `database.name`) or column name, checked and backquoted. Identifiers
 * cannot be bound as parameters, so only names matching `[A-Za-z_][A-Za-z0-9_]*` (max 64) get in.
 */
export function quoteIdentifier(option: string, name: unknown, qualified = false): string {
  const parts = typeof name === 'string' ? name.split('.') : [];
  if (parts.length === 0 || parts.length > (qualified ? 2 : 1) || !parts.every((p) => IDENTIFIER.test(p))) {
    const accepted = qualified ? "'name' or 'database.name'" : "'name'";
    throw new InvalidOptionError(
      option,
      `${accepted}, each part [A-Za-z_][A-Za-z0-9_]* up to 64 characters`,
      name,
    );
  }
  return parts.map((p) => `\`${p}\``).join('.');
}

/**
 * Runs `fn` in a READ COMMITTED transaction on one connection of the pool. READ COMMITTED, not
 * InnoDB's default REPEATABLE READ: without gap locks, two writers creating the same offset row
 * meet on its key (one waits, then sees a duplicate) instead of deadlocking. Commits, or rolls back
 * and rethrows; a connection whose rollback fails is destroyed, not reused.
 */
export async function withTransaction<R>(
  pool: mysql.Pool,
  fn: (conn: mysql.PoolConnection) => Promise<R>,
): Promise<R> {
  const conn = await pool.getConnection();
  let broken = false;
  try {
    await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
    await conn.beginTransaction();
    const result = await fn(conn);
    await conn.commit();
    return result;
  } catch (e) {
    await conn.rollback().catch(() => {
      broken = true;
    });
    throw e;
  } finally {
    if (broken) conn.destroy();
    else conn.release();
  }
}

/** `?, ?, …`: `n` placeholders. */
export function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}

/** The connection part of the MySQL/MariaDB dialect of the shared SQL stores. */
export const mysqlConnection: ConnectionDialect<mysql.Pool, mysql.PoolConnection> = {
  quoteIdentifier,
  maxIdentifierLength: 64,
  describePool,
  endPool: (pool) => pool.end(),
  withTransaction,
};
