/**
 * What tests use to reach the real services. Every call is memoised per process (each test file
 * runs in its own process); the broker and the databases are shared by all test files, so give
 * everything you create a {@link uniqueName}.
 */
import { randomBytes } from 'node:crypto';
import {
  ensureKafka,
  ensureMariaDb,
  ensurePostgres,
  ensureRedis,
  ensureZooKeeper,
} from '../../src/services/index.js';

function memo<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    p ??= f().catch((e: unknown) => {
      p = undefined; // let a later test try again
      throw e;
    });
    return p;
  };
}

/** `bootstrap.servers` of the shared broker (KAFKA_BOOTSTRAP, a running one, or one started now). */
export const kafkaBootstrap = memo(async () => (await ensureKafka()).bootstrapServers);

/** Connect string of the shared ZooKeeper (ZOOKEEPER_CONNECT, a running one, or one started now). */
export const zookeeperConnect = memo(async () => (await ensureZooKeeper()).connectString);

/** Connection URLs of the shared databases (SLUICE_POSTGRES_URL / SLUICE_MYSQL_URL / SLUICE_REDIS_URL or the local defaults). */
export const postgresUrl = memo(async () => (await ensurePostgres()).url);
export const mysqlUrl = memo(async () => (await ensureMariaDb()).url);
export const redisUrl = memo(async () => (await ensureRedis()).url);

let counter = 0;

/**
 * A name no other test (in this or another process, this or an earlier run) uses, made of
 * `[a-z0-9_-]` so it is valid as a Kafka topic, a group id, a table name (use `_` prefixes) or a key.
 * e.g. `uniqueName('orders')` → `orders-m3k2x1-4f2a-1`.
 */
export function uniqueName(prefix: string): string {
  const safe = prefix.toLowerCase().replace(/[^a-z0-9_-]+/g, '-');
  return `${safe}-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}-${++counter}`;
}
