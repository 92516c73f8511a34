/**
 * Group membership on Kafka: what the direct source (a member of its consumer group) shares with
 * the Kafka offset stores of the same process, and the metadata every commit carries.
 *
 * The broker takes offset commits of a group with members only from a member, and it accepts them
 * from a CURRENT member even for partitions that member no longer owns (measured with Kafka 4.3
 * and librdkafka 2.15, KIP-848). So the stores commit through the source's own consumer, and only
 * after asking the source whether it still owns what it commits ({@link GroupMember.assertOwned}).
 *
 * How a store finds its member: a source in group membership registers one per (cluster, group)
 * while it is open, and every read it asks of the pipeline's offset store runs "as" that member
 * ({@link runAsMember}, an AsyncLocalStorage scope): the store binds itself to the member it first
 * reads for, so two instances of a job in one process (tests) each commit through their own.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { TopicPartition } from '../core/source.js';
import type { RdKafkaConsumer } from './rdkafka.js';

/** The direct source of one instance, as the offset stores of its process see it. */
export interface GroupMember {
  readonly bootstrapServers: string;
  readonly group: string;
  /** The instance's stable id (`StreamingContextOptions.instanceId`). */
  readonly instanceId: string;
  /** The subscribed consumer: commits and `sendOffsetsToTransaction` go through it. */
  readonly consumer: RdKafkaConsumer;
  /** The time of the batch in progress (from its plan to its commit or abandonment), else undefined. */
  readonly batchTime: number | undefined;
  /** False once the source closed: its consumer is gone. */
  readonly open: boolean;
  /**
   * Throws `OwnershipLostError` unless this instance still owns every partition of `partitions` and
   * was not dropped from the group since the batch in progress was planned: the check before any
   * commit of that batch (the broker would accept it).
   */
  assertOwned(partitions: readonly TopicPartition[]): void;
}

const members = new Map<string, Set<GroupMember>>();
const current = new AsyncLocalStorage<GroupMember>();

function key(bootstrapServers: string, group: string): string {
  return JSON.stringify([bootstrapServers, group]);
}

/** Registers an open source's member; the function returned unregisters it (on close). */
export function registerGroupMember(member: GroupMember): () => void {
  const k = key(member.bootstrapServers, member.group);
  let set = members.get(k);
  if (!set) members.set(k, (set = new Set()));
  set.add(member);
  return () => {
    set.delete(member);
    if (set.size === 0 && members.get(k) === set) members.delete(k);
  };
}

/** Runs `fn` (an offset store read on the member's behalf) as `member`: see {@link memberFor}. */
export function runAsMember<T>(member: GroupMember, fn: () => T): T {
  return current.run(member, fn);
}

/** The member whose read of `group`'s offsets is running now (inside {@link runAsMember}), if any. */
export function readingMember(group: string): GroupMember | undefined {
  const reading = current.getStore();
  return reading && reading.group === group && reading.open ? reading : undefined;
}

/** The open members of (cluster, group) registered in this process. */
export function registeredMembers(bootstrapServers: string, group: string): GroupMember[] {
  return [...(members.get(key(bootstrapServers, group)) ?? [])];
}

// ---- commit metadata --------------------------------------------------------------------------

/**
 * What each offset commit of group membership carries, per partition, in the commit's `metadata`
 * (readable by any Kafka client: `AdminClient.listConsumerGroupOffsets`, `kafka-consumer-groups
 * --describe --offsets --verbose`): the JSON text `{"instance":"<instanceId>","batchTime":<ms>}`,
 * e.g. `{"instance":"etl-1","batchTime":1767225605000}`: the instance that committed the partition
 * last, and the time of its batch (ms since the epoch). Other keys may be added later; readers
 * ignore what they do not know. Kafka keeps at most 4096 bytes of metadata per partition by default.
 */
export interface CommitMetadata {
  readonly instance: string;
  readonly batchTime: number;
}

/** The metadata text of a commit (see {@link CommitMetadata}). */
export function formatCommitMetadata(m: CommitMetadata): string {
  return JSON.stringify({ instance: m.instance, batchTime: m.batchTime });
}

/**
 * The instance and batch time of a committed offset's metadata (see {@link CommitMetadata}), or
 * undefined when it is not Sluice's (empty, another client's text, a commit of single membership).
 * A trailing NUL, which some clients append, is ignored.
 *
 * @example
 * ```ts
 * parseCommitMetadata('{"instance":"etl-1","batchTime":1767225605000}');
 * // { instance: 'etl-1', batchTime: 1767225605000 }
 * ```
 */
export function parseCommitMetadata(text: string | null | undefined): CommitMetadata | undefined {
  if (typeof text !== 'string') return undefined;
  const trimmed = text.replace(/\0+$/, '').trim();
  if (!trimmed.startsWith('{')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { instance, batchTime } = value as { instance?: unknown; batchTime?: unknown };
  if (typeof instance !== 'string' || instance === '') return undefined;
  if (typeof batchTime !== 'number' || !Number.isSafeInteger(batchTime)) return undefined;
  return { instance, batchTime };
}
