/**
 * `sluice group status <pipelineId>`: the consumer group of a job running in group membership, as
 * Kafka's admin API tells it — its members and the partitions each owns, the committed offset, log
 * end and lag of every partition, and each member's last batch, read from the commit metadata
 * (`{"instance":"<id>","batchTime":<ms>}`) its instance writes with every offset commit.
 */
import { escapeControlChars } from '../core/logger.js';
import { KafkaAdmin, tpKey, type ConsumerGroupInfo } from '../kafka/admin.js';
import { defaultCluster } from '../kafka/cluster.js';
import { parseCommitMetadata, type CommitMetadata } from '../kafka/group.js';
import type { CommandResult } from './kafka.js';

/** Options of {@link groupStatusCommand}. */
export interface GroupStatusOptions {
  /** The consumer group when it is not the pipeline id (the Kafka source's `groupId`). */
  readonly group?: string;
  readonly json?: boolean;
  /** Another cluster than KAFKA_BOOTSTRAP's, with the process's cluster settings. */
  readonly bootstrap?: string;
}

/** One partition of the group: who owns it, where the group is and how far behind. */
export interface PartitionStatus {
  readonly topic: string;
  readonly partition: number;
  /** The member id of its owner; null when no member owns it. */
  readonly member: string | null;
  /** The committed offset (the next one to read); null when none was committed. */
  readonly committed: number | null;
  /** The end of the log as a read_committed consumer sees it; null when the topic is gone. */
  readonly logEnd: number | null;
  /** `logEnd - committed` (never below 0); null when either is unknown. */
  readonly lag: number | null;
  /** The commit metadata of the committed offset, if an instance in group membership wrote it. */
  readonly lastBatch: CommitMetadata | null;
}

/** A member of the group. */
export interface MemberStatus {
  readonly memberId: string;
  readonly clientId: string;
  readonly host: string;
  readonly groupInstanceId?: string;
  /** `topic-partition` of each partition it owns. */
  readonly partitions: readonly string[];
  /** The newest commit metadata among the partitions it owns, and the partition it is from. */
  readonly lastBatch: (CommitMetadata & { readonly partition: string }) | null;
}

/** What `sluice group status --json` prints. */
export interface GroupStatus {
  readonly pipeline: string;
  readonly group: string;
  /** `dead`: the group does not exist. */
  readonly state: ConsumerGroupInfo['state'];
  readonly type: ConsumerGroupInfo['type'];
  readonly exists: boolean;
  readonly members: readonly MemberStatus[];
  readonly partitions: readonly PartitionStatus[];
  /** The sum of the known lags. */
  readonly totalLag: number;
}

const tp = (p: { topic: string; partition: number }) => `${p.topic}-${p.partition}`;
const byPartition = (
  a: { topic: string; partition: number },
  b: { topic: string; partition: number },
): number => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1);

/** The group's status from what the admin client read, and the log ends. */
export function groupStatusOf(
  pipeline: string,
  info: ConsumerGroupInfo,
  logEnds: ReadonlyMap<string, number>,
): GroupStatus {
  const owner = new Map<string, string>();
  for (const m of info.members)
    for (const p of m.partitions) if (!owner.has(tp(p))) owner.set(tp(p), m.memberId);
  const committed = new Map(info.offsets.map((o) => [tp(o), o]));
  const keys = new Map<string, { topic: string; partition: number }>();
  for (const m of info.members) for (const p of m.partitions) keys.set(tp(p), p);
  for (const o of info.offsets) keys.set(tp(o), o);
  const partitions: PartitionStatus[] = [...keys.values()].sort(byPartition).map((p) => {
    const c = committed.get(tp(p));
    const end = logEnds.get(tp(p));
    return {
      topic: p.topic,
      partition: p.partition,
      member: owner.get(tp(p)) ?? null,
      committed: c?.offset ?? null,
      logEnd: end ?? null,
      lag: c !== undefined && end !== undefined ? Math.max(0, end - c.offset) : null,
      lastBatch: parseCommitMetadata(c?.metadata) ?? null,
    };
  });
  const status = new Map(partitions.map((p) => [tp(p), p]));
  const members: MemberStatus[] = info.members
    .map((m) => {
      let last: MemberStatus['lastBatch'] = null;
      for (const p of m.partitions) {
        const batch = status.get(tp(p))?.lastBatch;
        if (batch && (last === null || batch.batchTime > last.batchTime))
          last = { ...batch, partition: tp(p) };
      }
      return {
        memberId: m.memberId,
        clientId: m.clientId,
        host: m.host,
        ...(m.groupInstanceId !== undefined ? { groupInstanceId: m.groupInstanceId } : {}),
        partitions: [...m.partitions].sort(byPartition).map(tp),
        lastBatch: last,
      };
    })
    .sort(
      (a, b) =>
        (a.partitions[0] ?? '\uffff').localeCompare(b.partitions[0] ?? '\uffff') ||
        a.memberId.localeCompare(b.memberId),
    );
  return {
    pipeline,
    group: info.group,
    state: info.state,
    type: info.type,
    exists: !(info.state === 'dead' && info.members.length === 0 && info.offsets.length === 0),
    members,
    partitions,
    totalLag: partitions.reduce((sum, p) => sum + (p.lag ?? 0), 0),
  };
}

/**
 * `sluice group status <pipelineId> [--group G] [--json]` on the process's cluster (KAFKA_BOOTSTRAP,
 * SLUICE_KAFKA_CONFIG / --kafka-config) or `--bootstrap`'s. Exit code 0 when the group has members,
 * 3 when it has none (also when it does not exist); a failure (unreachable cluster, a principal that
 * may not describe the group) is thrown.
 */
export async function groupStatusCommand(
  pipelineId: string,
  options: GroupStatusOptions = {},
): Promise<CommandResult> {
  const group = options.group ?? pipelineId;
  const admin = KafkaAdmin.create(defaultCluster(options.bootstrap), {
    policy: { attempts: 2, timeoutMs: 10_000 },
  });
  let info: ConsumerGroupInfo;
  const logEnds = new Map<string, number>();
  try {
    info = await admin.consumerGroup(group);
    const partitions = new Map<string, { topic: string; partition: number }>();
    for (const m of info.members) for (const p of m.partitions) partitions.set(tp(p), p);
    for (const o of info.offsets) partitions.set(tp(o), o);
    const topics = new Map<string, { topic: string; partition: number }[]>();
    for (const p of partitions.values()) topics.set(p.topic, [...(topics.get(p.topic) ?? []), p]);
    // One topic at a time: one that was deleted (TopicNotFoundError) leaves its log ends unknown.
    for (const list of topics.values()) {
      try {
        const ends = await admin.listOffsets(list, 'latest');
        for (const p of list) {
          const end = ends.get(tpKey(p.topic, p.partition));
          if (end !== undefined) logEnds.set(tp(p), end);
        }
      } catch (e) {
        if ((e as { code?: unknown }).code !== 'SLUICE_TOPIC_NOT_FOUND') throw e;
      }
    }
  } finally {
    admin.close();
  }
  const status = groupStatusOf(pipelineId, info, logEnds);
  const exitCode = status.members.length > 0 ? 0 : 3;
  if (options.json) return { exitCode, lines: [JSON.stringify(status)] };
  return { exitCode, lines: formatGroupStatus(status) };
}

/** The text form: a heading line, a table of the members, a table of the partitions. */
export function formatGroupStatus(s: GroupStatus): string[] {
  const name = `group ${s.group}${s.pipeline !== s.group ? ` (pipeline ${s.pipeline})` : ''}`;
  if (!s.exists) return [escapeControlChars(`${name}: does not exist (no members, no committed offsets)`)];
  const lines = [
    escapeControlChars(
      `${name}: ${s.state}, ${s.members.length} member(s)${s.type !== 'unknown' ? `, ${s.type} protocol` : ''}, total lag ${s.totalLag}`,
    ),
  ];
  const batch = (b: CommitMetadata | null) => (b ? `${isoTime(b.batchTime)} by ${b.instance}` : '-');
  if (s.members.length > 0) {
    lines.push(
      '',
      ...table(
        ['MEMBER', 'CLIENT ID', 'HOST', 'PARTITIONS', 'LAST BATCH'],
        s.members.map((m) => [
          m.memberId,
          m.clientId,
          m.host,
          m.partitions.length > 0 ? m.partitions.join(', ') : '-',
          m.lastBatch ? `${batch(m.lastBatch)} (${m.lastBatch.partition})` : '-',
        ]),
      ),
    );
  }
  if (s.partitions.length > 0) {
    const num = (n: number | null) => (n === null ? '-' : String(n));
    lines.push(
      '',
      ...table(
        ['TOPIC', 'PARTITION', 'MEMBER', 'COMMITTED', 'LOG END', 'LAG', 'LAST BATCH'],
        s.partitions.map((p) => [
          p.topic,
          String(p.partition),
          p.member ?? '-',
          num(p.committed),
          num(p.logEnd),
          num(p.lag),
          batch(p.lastBatch),
        ]),
      ),
    );
  }
  return lines;
}

function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/** Columns padded to their widest cell; every cell escaped first (it may come from the cluster). */
function table(header: string[], rows: string[][]): string[] {
  const cells = [header, ...rows].map((r) => r.map((c) => escapeControlChars(c)));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
