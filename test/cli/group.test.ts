/**
 * `sluice group status` against the real broker: two members of a consumer group made with the raw
 * client (KIP-848 protocol, incremental assignment), offsets committed with the commit metadata an
 * instance in group membership writes, then more records for lag.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Kafka, { type KafkaConsumer, type LibrdKafkaError } from '@confluentinc/kafka-javascript';
import type { GroupStatus } from '../../src/cli/group.js';
import { ChildRun, waitUntil } from '../examples/child-process.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const { KafkaConsumer: Consumer, CODES } = Kafka;

async function sluice(args: string[]): Promise<ChildRun> {
  const run = ChildRun.sluice(args, { SLUICE_LOG_LEVEL: 'warn' });
  await run.waitForExit(60_000);
  return run;
}

/** The binding has them (cooperative and KIP-848 rebalances), its typings do not. */
type IncrementalConsumer = KafkaConsumer & {
  incrementalAssign(partitions: Kafka.TopicPartition[]): void;
  incrementalUnassign(partitions: Kafka.TopicPartition[]): void;
};

/** A group member that takes what the group assigns it at once and polls until closed. */
class Member {
  readonly consumer: KafkaConsumer;
  #polling = true;
  #loop: Promise<void> | undefined;

  constructor(bootstrap: string, group: string, clientId: string) {
    this.consumer = new Consumer(
      {
        'bootstrap.servers': bootstrap,
        'group.id': group,
        'client.id': clientId,
        'group.protocol': 'consumer',
        'enable.auto.commit': false,
        rebalance_cb(this: IncrementalConsumer, err: LibrdKafkaError, partitions: Kafka.TopicPartition[]) {
          if (err.code === CODES.ERRORS.ERR__ASSIGN_PARTITIONS) this.incrementalAssign(partitions);
          else this.incrementalUnassign(partitions);
        },
      },
      { 'auto.offset.reset': 'earliest' },
    );
  }

  async join(topic: string): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.consumer.connect({ timeout: 10_000 }, (err) => (err ? reject(err) : resolve())),
    );
    this.consumer.setDefaultConsumeTimeout(100);
    this.consumer.subscribe([topic]);
    // Rebalances are served while the consumer is polled.
    this.#loop = (async () => {
      while (this.#polling) await new Promise<void>((resolve) => this.consumer.consume(100, () => resolve()));
    })();
  }

  partitions(): number[] {
    return this.consumer
      .assignments()
      .map((p) => p.partition)
      .sort((a, b) => a - b);
  }

  commit(topic: string, offset: number, metadata: (partition: number) => string): void {
    this.consumer.commitSync(
      this.partitions().map((partition) => ({ topic, partition, offset, metadata: metadata(partition) })),
    );
  }

  async close(): Promise<void> {
    this.#polling = false;
    await this.#loop;
    await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }
}

describe('sluice group status', () => {
  const topic = uniqueName('cli-group-status');
  const group = uniqueName('cli-group-status-g');
  const t0 = Date.UTC(2026, 0, 1, 0, 0, 5);
  let bootstrap: string;
  let a: Member;
  let b: Member;
  let aParts: number[];
  let bParts: number[];

  before(async () => {
    bootstrap = await kafkaBootstrap();
    await createTopic(bootstrap, topic, 4);
    await produce(
      bootstrap,
      topic,
      [0, 1, 2, 3].flatMap((partition) =>
        Array.from({ length: 5 }, (_, i) => ({ value: `r${i}`, partition })),
      ),
    );
    a = new Member(bootstrap, group, 'member-a');
    b = new Member(bootstrap, group, 'member-b');
    await a.join(topic);
    await b.join(topic);
    await waitUntil(
      'the group to give both members two partitions',
      60_000,
      async () => [a.partitions(), b.partitions()],
      ([pa, pb]) => pa!.length === 2 && pb!.length === 2,
    );
    aParts = a.partitions();
    bParts = b.partitions();
    // inst-a's partitions at offset 3, the first in an older batch; inst-b's at 1.
    a.commit(topic, 3, (p) =>
      JSON.stringify({ instance: 'inst-a', batchTime: p === aParts[0] ? t0 - 1000 : t0 }),
    );
    b.commit(topic, 1, () => JSON.stringify({ instance: 'inst-b', batchTime: t0 + 2000 }));
    // Two more records per partition: log end 7.
    await produce(
      bootstrap,
      topic,
      [0, 1, 2, 3].flatMap((partition) => [
        { value: 'x', partition },
        { value: 'y', partition },
      ]),
    );
  });

  after(async () => {
    await a?.close().catch(() => {});
    await b?.close().catch(() => {});
    await deleteTopic(bootstrap, topic).catch(() => {});
  });

  test("--json gives the members, the partitions each owns, committed offsets, log ends, lag and each member's newest batch", async () => {
    // The coordinator's view follows the members' own a moment later.
    const status = await waitUntil(
      'the group status to show both members with their partitions',
      60_000,
      async () => {
        const run = await sluice(['group', 'status', group, '--json']);
        return {
          run,
          status: run.exitInfo?.code === 0 ? (JSON.parse(run.stdout) as GroupStatus) : undefined,
        };
      },
      ({ status: s }) =>
        s !== undefined && s.members.length === 2 && s.members.every((m) => m.partitions.length === 2),
    ).then(({ status: s }) => s!);

    assert.equal(status.group, group);
    assert.equal(status.state, 'stable');
    assert.equal(status.type, 'consumer');
    const byClient = new Map(status.members.map((m) => [m.clientId, m]));
    assert.deepEqual(
      byClient.get('member-a')!.partitions,
      aParts.map((p) => `${topic}-${p}`),
    );
    assert.deepEqual(
      byClient.get('member-b')!.partitions,
      bParts.map((p) => `${topic}-${p}`),
    );
    assert.deepEqual(byClient.get('member-a')!.lastBatch, {
      instance: 'inst-a',
      batchTime: t0,
      partition: `${topic}-${aParts[1]}`,
    });
    assert.deepEqual(byClient.get('member-b')!.lastBatch, {
      instance: 'inst-b',
      batchTime: t0 + 2000,
      partition: `${topic}-${bParts[0]}`,
    });
    const memberOf = (p: number) =>
      (aParts.includes(p) ? byClient.get('member-a')! : byClient.get('member-b')!).memberId;
    assert.deepEqual(
      status.partitions,
      [0, 1, 2, 3].map((p) => {
        const ofA = aParts.includes(p);
        return {
          topic,
          partition: p,
          member: memberOf(p),
          committed: ofA ? 3 : 1,
          logEnd: 7,
          lag: ofA ? 4 : 6,
          lastBatch: {
            instance: ofA ? 'inst-a' : 'inst-b',
            batchTime: ofA ? (p === aParts[0] ? t0 - 1000 : t0) : t0 + 2000,
          },
        };
      }),
    );
    assert.equal(status.totalLag, 2 * 4 + 2 * 6);
  });

  test('the text form is a heading, a table of members and a table of partitions; exit code 0 while it has members', async () => {
    const run = await sluice(['group', 'status', 'the-pipeline', '--group', group]);
    assert.equal(run.exitInfo?.code, 0, run.output());
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(
      lines[0],
      `group ${group} (pipeline the-pipeline): stable, 2 member(s), consumer protocol, total lag 20`,
    );
    assert.match(lines[2]!, /^MEMBER\s+CLIENT ID\s+HOST\s+PARTITIONS\s+LAST BATCH$/);
    const memberA = lines.find((l) => / member-a /.test(l));
    assert.ok(memberA, run.stdout);
    assert.ok(
      memberA.endsWith(
        `${aParts.map((p) => `${topic}-${p}`).join(', ')}  2026-01-01T00:00:05.000Z by inst-a (${topic}-${aParts[1]})`,
      ),
      memberA,
    );
    const header = lines.findIndex((l) => l.startsWith('TOPIC'));
    assert.match(lines[header]!, /^TOPIC\s+PARTITION\s+MEMBER\s+COMMITTED\s+LOG END\s+LAG\s+LAST BATCH$/);
    const rows = lines.slice(header + 1).map((l) => l.split(/\s{2,}/));
    assert.deepEqual(
      rows.map((r) => [r[0], r[1], r[3], r[4], r[5]]),
      [0, 1, 2, 3].map((p) =>
        aParts.includes(p) ? [topic, String(p), '3', '7', '4'] : [topic, String(p), '1', '7', '6'],
      ),
    );
    assert.equal(rows[bParts[0]!]![6], '2026-01-01T00:00:07.000Z by inst-b');
  });

  test('a group whose members all left exits 3 and still shows its committed offsets and lag', async () => {
    await a.close();
    await b.close();
    const run = await waitUntil(
      'the group to have no members',
      60_000,
      () => sluice(['group', 'status', group]),
      (r) => r.exitInfo?.code === 3,
    );
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `group ${group}: empty, 0 member(s), consumer protocol, total lag 20`);
    assert.ok(!lines.some((l) => l.startsWith('MEMBER')), 'no members table');
    assert.equal(lines.filter((l) => l.startsWith(`${topic} `)).length, 4, run.stdout);
    assert.ok(
      lines.every((l) => !l.startsWith(topic) || / - {2,}/.test(l)),
      'no partition has an owner',
    );
  });

  test('a group that does not exist says so, with exit code 3', async () => {
    const missing = uniqueName('no-such-group');
    const run = await sluice(['group', 'status', missing]);
    assert.equal(run.exitInfo?.code, 3, run.output());
    assert.equal(run.stdout, `group ${missing}: does not exist (no members, no committed offsets)\n`);
    const json = await sluice(['group', 'status', missing, '--json']);
    assert.equal(json.exitInfo?.code, 3, json.output());
    assert.deepEqual(
      { ...(JSON.parse(json.stdout) as GroupStatus), type: undefined },
      {
        pipeline: missing,
        group: missing,
        state: 'dead',
        type: undefined,
        exists: false,
        members: [],
        partitions: [],
        totalLag: 0,
      },
    );
  });

  test('an unreachable cluster fails with exit code 1 and SLUICE_BROKER_UNREACHABLE', async () => {
    const run = ChildRun.sluice(['group', 'status', group, '--bootstrap', '127.0.0.1:1'], {
      SLUICE_LOG_LEVEL: 'warn',
    });
    await run.waitForExit(120_000);
    assert.equal(run.exitInfo?.code, 1, run.output());
    assert.match(run.stderr, /^sluice group status: SLUICE_BROKER_UNREACHABLE: /m);
    assert.equal(run.stdout, '');
  });
});
