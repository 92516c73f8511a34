/**
 * Per mode: creates what the fixture pipeline writes into, reads it back with a plain client of the
 * destination (pg, mysql2, ioredis, or `kcat -C -X isolation.level=read_committed` for Kafka) —
 * never with Sluice's code — and removes everything afterwards.
 */
import Kafka from '@confluentinc/kafka-javascript';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { Redis } from 'ioredis';
import { mysqlUrl, postgresUrl, redisUrl, uniqueName } from '../helpers/services.js';
import { createTopic, deleteTopic } from '../helpers/kafka.js';
import type { Mode } from './modes.js';
import { kcat } from './processes.js';

/** One output record: the input record's id and where the pipeline read it. */
export interface OutputRow {
  readonly id: number;
  readonly partition: number;
  readonly offset: number;
}

export interface Destination {
  /** Environment for the fixture: CRASH_OUT, CRASH_OFFSETS and the service URLs. */
  readonly env: Record<string, string>;
  /** Where the output is, for the summary. */
  readonly where: string;
  readonly read: () => Promise<OutputRow[]>;
  /** The offsets the pipeline stored for `topic`, read from the store (partition -> next offset). */
  readonly readOffsets: (topic: string) => Promise<Map<number, number>>;
  /** Something else worth a line in the summary, read after the output. */
  readonly note?: () => Promise<string>;
  readonly cleanup: () => Promise<void>;
}

/** A name usable as a table name and a Redis key: `crash_<prefix>_<unique>`. */
function identifier(prefix: string): string {
  return uniqueName(`crash_${prefix}`).replace(/[^a-z0-9_]+/g, '_');
}

export interface Where {
  readonly bootstrap: string;
  readonly partitions: number;
  /** The pipeline's offset group (for Kafka: the consumer group its transactions commit to). */
  readonly group: string;
}

export async function prepareDestination(
  mode: Mode,
  { bootstrap, partitions, group }: Where,
): Promise<Destination> {
  const base = identifier(mode.replace(/-/g, '_'));
  const out = `${base}_out`;
  const offsets = `${base}_offsets`;
  switch (mode) {
    case 'pg-transactional':
    case 'at-least-once':
    case 'at-most-once':
    case 'pg-upsert': {
      const url = await postgresUrl();
      const pool = new pg.Pool({ connectionString: url, max: 2 });
      const key = mode === 'pg-upsert' ? ', PRIMARY KEY (id)' : '';
      await pool.query(
        `CREATE TABLE "${out}" (id bigint NOT NULL, src_partition int NOT NULL, src_offset bigint NOT NULL${key})`,
      );
      const redis = mode === 'pg-upsert' ? await redisClient() : undefined;
      return {
        env: {
          SLUICE_POSTGRES_URL: url,
          ...(redis ? { SLUICE_REDIS_URL: await redisUrl() } : {}),
          CRASH_OUT: out,
          CRASH_OFFSETS: mode === 'pg-upsert' ? `${base}:offsets:` : offsets,
        },
        where: `PostgreSQL table ${out}`,
        read: async () => {
          const { rows } = await pool.query<{ id: string; src_partition: number; src_offset: string }>(
            `SELECT id, src_partition, src_offset FROM "${out}"`,
          );
          return rows.map((r) => ({
            id: Number(r.id),
            partition: r.src_partition,
            offset: Number(r.src_offset),
          }));
        },
        readOffsets: (topic) =>
          redis
            ? redisOffsets(redis, `${base}:offsets:${topic}`, group)
            : pgOffsets(pool, offsets, group, topic),
        cleanup: async () => {
          await pool.query(`DROP TABLE IF EXISTS "${out}", ${stateTables(offsets)}`);
          await pool.end();
          if (redis) {
            await deleteKeys(redis, `${base}:*`);
            redis.disconnect();
          }
        },
      };
    }
    case 'mysql-transactional': {
      const url = await mysqlUrl();
      const pool = mysql.createPool({ uri: url, connectionLimit: 2 });
      await pool.query(
        `CREATE TABLE \`${out}\` (id BIGINT NOT NULL, src_partition INT NOT NULL, src_offset BIGINT NOT NULL) ENGINE=InnoDB`,
      );
      return {
        env: { SLUICE_MYSQL_URL: url, CRASH_OUT: out, CRASH_OFFSETS: offsets },
        where: `MariaDB table ${out}`,
        read: async () => {
          const [rows] = await pool.query<mysql.RowDataPacket[]>(
            `SELECT id, src_partition, src_offset FROM \`${out}\``,
          );
          return rows.map((r) => ({
            id: Number(r.id),
            partition: Number(r.src_partition),
            offset: Number(r.src_offset),
          }));
        },
        readOffsets: async (topic) => {
          const [rows] = await pool.query<mysql.RowDataPacket[]>(
            `SELECT \`partition\`, next_offset FROM \`${offsets}\` WHERE group_id = ? AND topic = ?`,
            [group, topic],
          );
          return new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
        },
        cleanup: async () => {
          await pool.query(
            `DROP TABLE IF EXISTS \`${out}\`, \`${offsets}\`, \`${offsets}_checkpoints\`, \`${offsets}_state\``,
          );
          await pool.end();
        },
      };
    }
    case 'redis-idempotent': {
      const url = await postgresUrl();
      const redis = await redisClient();
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      const hash = `${base}:out`;
      return {
        env: {
          SLUICE_POSTGRES_URL: url,
          SLUICE_REDIS_URL: await redisUrl(),
          CRASH_OUT: hash,
          CRASH_OFFSETS: offsets,
        },
        where: `Redis hash ${hash}`,
        read: async () => {
          const all = await redis.hgetall(hash);
          return Object.entries(all).map(([id, at]) => {
            const [p, o] = at.split(':');
            return { id: Number(id), partition: Number(p), offset: Number(o) };
          });
        },
        readOffsets: (topic) => pgOffsets(pool, offsets, group, topic),
        cleanup: async () => {
          await deleteKeys(redis, `${base}:*`);
          redis.disconnect();
          await pool.query(`DROP TABLE IF EXISTS ${stateTables(offsets)}`);
          await pool.end();
        },
      };
    }
    case 'kafka-transactional': {
      const topic = uniqueName('crash-kafka-out');
      await createTopic(bootstrap, topic, partitions);
      return {
        env: { CRASH_OUT: topic, CRASH_OFFSETS: '-' },
        where: `Kafka topic ${topic}, read with kcat read_committed`,
        read: async () => {
          // prettier-ignore
          const text = await kcat(['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q',
            '-X', 'isolation.level=read_committed', '-f', '%s\n'], 120_000);
          return text
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => {
              const [id, p, o] = l.split(':');
              return { id: Number(id), partition: Number(p), offset: Number(o) };
            });
        },
        note: async () => {
          // prettier-ignore
          const all = await kcat(['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q',
            '-X', 'isolation.level=read_uncommitted', '-f', '%s\n'], 120_000);
          const lines = all.split('\n').filter((l) => l !== '');
          const aborted = lines.length - new Set(lines).size;
          return `read_uncommitted sees ${lines.length} records: ${aborted} more, from transactions the kills aborted`;
        },
        readOffsets: (input) => groupOffsets(bootstrap, group, input),
        cleanup: async () => {
          await deleteTopic(bootstrap, topic);
          await deleteGroup(bootstrap, group);
        },
      };
    }
  }
}

/** The offsets table and the checkpoint tables a PostgreSQL store may make next to it, quoted. */
function stateTables(offsets: string): string {
  return [offsets, `${offsets}_checkpoints`, `${offsets}_state`].map((t) => `"${t}"`).join(', ');
}

async function pgOffsets(
  pool: pg.Pool,
  table: string,
  group: string,
  topic: string,
): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ partition: number; next_offset: string }>(
    `SELECT partition, next_offset FROM "${table}" WHERE group_id = $1 AND topic = $2`,
    [group, topic],
  );
  return new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
}

/** The Redis layout: a hash per topic, field `group|partition`. */
async function redisOffsets(redis: Redis, key: string, group: string): Promise<Map<number, number>> {
  const all = await redis.hgetall(key);
  const out = new Map<number, number>();
  for (const [field, value] of Object.entries(all)) {
    const cut = field.lastIndexOf('|');
    if (field.slice(0, cut) === group) out.set(Number(field.slice(cut + 1)), Number(value));
  }
  return out;
}

function kafkaAdmin(bootstrap: string) {
  return new Kafka.KafkaJS.Kafka({
    kafkaJS: { brokers: bootstrap.split(','), logLevel: Kafka.KafkaJS.logLevel.ERROR },
  }).admin();
}

/** The consumer group's committed offsets (stable ones: none pending in an open transaction). */
async function groupOffsets(bootstrap: string, group: string, topic: string): Promise<Map<number, number>> {
  const admin = kafkaAdmin(bootstrap);
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({
      groupId: group,
      topics: [topic],
      requireStableOffsets: true,
      timeout: 10_000,
    });
    return new Map(
      (t?.partitions ?? []).filter((p) => Number(p.offset) >= 0).map((p) => [p.partition, Number(p.offset)]),
    );
  } finally {
    await admin.disconnect();
  }
}

/** Deletes the consumer group the Kafka transactions committed offsets to. */
async function deleteGroup(bootstrap: string, group: string): Promise<void> {
  const admin = kafkaAdmin(bootstrap);
  await admin.connect();
  try {
    await admin.deleteGroups([group]);
  } finally {
    await admin.disconnect();
  }
}

async function redisClient(): Promise<Redis> {
  const redis = new Redis(await redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  return redis;
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}
