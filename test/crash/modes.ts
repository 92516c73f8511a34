/**
 * The crash-test modes: which output and which offset store the fixture pipeline
 * (`fixtures/pipeline.ts`) uses, and what the harness (`harness.ts`) must find after the kills.
 */
import type { Guarantee } from '../../src/index.js';

export const MODES = [
  'pg-transactional',
  'mysql-transactional',
  'pg-upsert',
  'redis-idempotent',
  'kafka-transactional',
  'at-least-once',
  'at-most-once',
] as const;

export type Mode = (typeof MODES)[number];

export interface ModeSpec {
  /** The guarantee the output is declared with, and the property the harness asserts. */
  readonly guarantee: Guarantee;
  /** One line for the summary: the output, and where the offsets go. */
  readonly describe: string;
  /** The engine's commit plan for the offsets (`ctx.commitPlan().offsets`) this mode must get. */
  readonly offsets: 'in-transaction' | 'after-outputs' | 'before-outputs';
}

export const MODE_SPECS: Record<Mode, ModeSpec> = {
  'pg-transactional': {
    guarantee: 'exactly-once',
    describe: 'PostgresSink insert + PostgresOffsetStore: rows and offsets in one PostgreSQL transaction',
    offsets: 'in-transaction',
  },
  'mysql-transactional': {
    guarantee: 'exactly-once',
    describe: 'MySqlSink insert + MySqlOffsetStore: rows and offsets in one MariaDB transaction',
    offsets: 'in-transaction',
  },
  'pg-upsert': {
    guarantee: 'exactly-once',
    describe: 'PostgresSink upsert on id (idempotent), offsets in Redis (RedisOffsetStore), written after',
    offsets: 'after-outputs',
  },
  'redis-idempotent': {
    guarantee: 'exactly-once',
    describe: 'RedisSink HSET id (idempotent), offsets in PostgreSQL (PostgresOffsetStore), written after',
    offsets: 'after-outputs',
  },
  'kafka-transactional': {
    guarantee: 'exactly-once',
    describe:
      'Kafka to Kafka: KafkaTransactionalSink + KafkaTransactionalStore, records and input offsets in one Kafka transaction',
    offsets: 'in-transaction',
  },
  'at-least-once': {
    guarantee: 'at-least-once',
    describe: 'PostgresSink insert (no key), offsets in PostgreSQL written after the rows',
    offsets: 'after-outputs',
  },
  'at-most-once': {
    guarantee: 'at-most-once',
    describe: 'PostgresSink insert (no key), offsets in PostgreSQL written before the rows',
    offsets: 'before-outputs',
  },
};

export function isMode(s: string | undefined): s is Mode {
  return (MODES as readonly string[]).includes(s ?? '');
}

/**
 * The places in a batch where the fixture can stop and wait to be killed (`CRASH_PAUSE_AT`):
 * - `before-write`: the output is about to be written. For at-most-once the offsets are already
 *   committed here; for every other mode nothing of the batch is stored yet.
 * - `mid-write`: part of the batch is written (for a transactional output: in the open transaction).
 * - `after-write`: the whole batch is written, the offsets are not committed (for a transactional
 *   output: the transaction is still open, before the offsets and the COMMIT).
 */
export const PAUSE_PHASES = ['before-write', 'mid-write', 'after-write'] as const;
export type PausePhase = (typeof PAUSE_PHASES)[number];

export function isPausePhase(s: string | undefined): s is PausePhase {
  return (PAUSE_PHASES as readonly string[]).includes(s ?? '');
}
