/**
 * Local services for tests, examples, the demo and the bench: make sure Kafka, ZooKeeper,
 * PostgreSQL, MariaDB and Redis answer, starting the local ones that do not. Each `ensure*` honours
 * an environment variable pointing at the user's own server (KAFKA_BOOTSTRAP, ZOOKEEPER_CONNECT,
 * SLUICE_POSTGRES_URL, SLUICE_MYSQL_URL, SLUICE_REDIS_URL); see each module.
 */
import { ensureMariaDb, ensurePostgres, ensureRedis, type DatabaseHandle } from './databases.js';
import { ensureKafka, type KafkaHandle } from './kafka.js';
import { ensureZooKeeper, type ZooKeeperHandle } from './zookeeper.js';

export {
  ensureKafka,
  stopKafka,
  kafkaStatus,
  probeKafka,
  brokerProperties,
  type KafkaOptions,
  type KafkaHandle,
} from './kafka.js';
export {
  ensureZooKeeper,
  stopZooKeeper,
  zookeeperStatus,
  probeZooKeeper,
  type ZooKeeperOptions,
  type ZooKeeperHandle,
} from './zookeeper.js';
export {
  ensurePostgres,
  ensureMariaDb,
  ensureRedis,
  postgresStatus,
  mariadbStatus,
  redisStatus,
  type DatabaseHandle,
  type DatabaseOptions,
} from './databases.js';
export { redactUrl, type ServiceStatus } from './util.js';

export interface AllServices {
  kafka: KafkaHandle;
  zookeeper: ZooKeeperHandle;
  postgres: DatabaseHandle;
  mariadb: DatabaseHandle;
  redis: DatabaseHandle;
}

/** Ensures every service (in parallel); rejects with the first ServiceStartError / BrokerUnreachableError. */
export async function ensureAll(): Promise<AllServices> {
  const [kafka, zookeeper, postgres, mariadb, redis] = await Promise.all([
    ensureKafka(),
    ensureZooKeeper(),
    ensurePostgres(),
    ensureMariaDb(),
    ensureRedis(),
  ]);
  return { kafka, zookeeper, postgres, mariadb, redis };
}
