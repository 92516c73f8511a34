import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { InvalidOptionError } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { RedisUnreachableError } from './errors.js';

/**
 * Where to connect: an ioredis client you own (Sluice uses it as configured and never quits it), or
 * a `redis://` / `rediss://` URL for a client Sluice creates and quits on `close()`.
 * Default: env `SLUICE_REDIS_URL`, else `redis://127.0.0.1:6379`. A client Sluice creates fails a
 * command with `RedisUnreachableError` after 3 reconnection attempts (about a second), instead of
 * holding it while Redis is down.
 */
export type RedisConnection = Redis | string;

export interface ResolvedRedis {
  readonly client: Redis;
  /** True when Sluice created the client and must quit it. */
  readonly owned: boolean;
  /** The last connection error the client reported, for {@link RedisUnreachableError}. */
  readonly lastError: () => Error | undefined;
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * A client Sluice creates: connects on first use, gives up on a command after a bounded number of
 * reconnection attempts (instead of queueing it forever while Redis is down).
 */
export function resolveRedis(option: unknown): ResolvedRedis {
  if (option instanceof Redis) return tracked(option, false);
  if (option !== undefined && (typeof option !== 'string' || !/^rediss?:\/\//.test(option))) {
    throw new InvalidOptionError(
      'redis',
      'an ioredis client, or a redis:// or rediss:// URL',
      redactValue(option),
    );
  }
  const env = process.env.SLUICE_REDIS_URL?.trim();
  if (option === undefined && env && !/^rediss?:\/\//.test(env)) {
    throw new InvalidOptionError('SLUICE_REDIS_URL', 'a redis:// or rediss:// URL', redactValue(env));
  }
  const url = (option as string | undefined) ?? (env || DEFAULT_REDIS_URL);
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 10_000,
    maxRetriesPerRequest: 3,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
  return tracked(client, true);
}

function tracked(client: Redis, owned: boolean): ResolvedRedis {
  let last: Error | undefined;
  // Failures reach the caller through the rejected command; the listener keeps the cause for the
  // error message and stops ioredis printing each one to the console. A client given by the caller
  // is left as it is: its error listeners are the caller's business.
  if (owned) {
    client.on('error', (e: Error) => (last = e));
    client.on('ready', () => (last = undefined));
  }
  return { client, owned, lastError: () => last };
}

/**
 * Runs a Redis call; a failure caused by the connection (refused, closed, retries exhausted) becomes
 * a {@link RedisUnreachableError} naming the server and the connection error.
 */
export async function redisCall<R>(resolved: ResolvedRedis, fn: () => Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (e) {
    throw asRedisError(resolved, e);
  }
}

type Pipeline = ReturnType<Redis['pipeline']>;

/** Sends a pipeline; throws the first command's error (see {@link redisCall}), else returns the replies. */
export async function execPipeline(resolved: ResolvedRedis, pipeline: Pipeline): Promise<unknown[]> {
  const results = (await redisCall(resolved, () => pipeline.exec())) ?? [];
  for (const [err] of results) if (err) throw asRedisError(resolved, err);
  return results.map(([, reply]) => reply);
}

function asRedisError(resolved: ResolvedRedis, e: unknown): unknown {
  if (e instanceof RedisUnreachableError) return e;
  const { client } = resolved;
  const name = (e as Error | undefined)?.name;
  const message = String((e as Error | undefined)?.message);
  const connection =
    name === 'MaxRetriesPerRequestError' ||
    /^Connection is closed|^Stream isn't writeable/.test(message) ||
    client.status !== 'ready';
  if (!connection) return e;
  const o = client.options;
  const address = o.path ?? `${o.host}:${o.port}`;
  return new RedisUnreachableError(address, resolved.lastError()?.message ?? message, e);
}

/** Host, port, db and user of a client, for describe(): never the password. */
export function describeRedis(client: Redis): Record<string, unknown> {
  const o = client.options;
  if (o.path) return { path: o.path, db: o.db ?? 0 };
  return {
    host: o.host,
    port: o.port,
    db: o.db ?? 0,
    ...(o.username ? { user: o.username } : {}),
    ...(o.tls ? { tls: true } : {}),
  };
}

/**
 * For error messages: a URL without its password and secret query parameters (`***`); an object
 * (options that may hold a password) as `(an object)`; anything else as it is.
 */
export function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactUrl(value);
  return typeof value === 'object' && value !== null ? '(an object)' : value;
}

/** Quits a client Sluice owns; disconnects at once if it never connected or cannot quit cleanly. */
export async function releaseRedis(resolved: ResolvedRedis): Promise<void> {
  if (!resolved.owned) return;
  const { client } = resolved;
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through
    }
  }
  client.disconnect();
}

/**
 * A Lua script run with EVALSHA, loaded with EVAL the first time a server does not know it
 * (NOSCRIPT): one round trip in the common case, and the caller's client is left unmodified
 * (unlike `defineCommand`).
 */
export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
