/**
 * The access check of Sluice's Kafka inputs and outputs (`checkAccess`, run by the context at start
 * before anything opens): which ACLs their principal lacks on their topics and group, asked with
 * one admin client, without side effects.
 *
 * What it can know up front: Describe, Read and Write on topics that exist (describeTopics with
 * the authorized operations; a topic the principal may not describe is refused as such, and then
 * every operation needed on it is missing), and Describe on the group (an offset fetch is refused
 * without it; Read implies Describe, so then Read is missing too).
 *
 * What it cannot: Read on a group whose Describe is allowed (only describeGroups tells, and it
 * crashes this client when refused: see {@link KafkaAdmin.groupDescribable}), so a principal with
 * Describe but not Read on the group is refused at its first commit; the transactional id (only
 * initTransactions tells: the transactional store starts its producer when the source opens, still
 * in `start()`); Create for a topic `createTopics` would create (refused by the creation, at open);
 * topics that records name themselves (`toRecord`'s `topic`).
 */
import type { AccessCheck } from '../core/access.js';
import { KafkaAdmin } from './admin.js';
import type { KafkaCluster } from './cluster.js';
import { KafkaAuthorizationError, missingOf, type KafkaPermission } from './errors.js';
import type { ClientConfig, ConnectPolicy } from './options.js';

/** What a Kafka input or output needs on its cluster. */
export interface KafkaAccessNeeds {
  readonly cluster: KafkaCluster;
  /** The client's own librdkafka properties (they may hold security settings given the old way). */
  readonly config: ClientConfig | undefined;
  readonly policy: ConnectPolicy;
  readonly signal: AbortSignal;
  /** Each topic with the operations needed on it. */
  readonly topics: readonly { readonly topic: string; readonly operations: readonly string[] }[];
  /** A group it needs Read (and so Describe) on. */
  readonly group?: string;
}

/** Asks the cluster which of `needs` this client's principal lacks (bounded by the policy). */
export async function checkKafkaAccess(needs: KafkaAccessNeeds): Promise<AccessCheck> {
  const admin = KafkaAdmin.create(needs.cluster, {
    config: { 'client.id': 'sluice-access-check', ...needs.config },
    policy: { ...needs.policy, signal: needs.signal },
  });
  const missing: KafkaPermission[] = [];
  try {
    const access = await admin.topicAccess([...new Set(needs.topics.map((t) => t.topic))]);
    for (const { topic, operations } of needs.topics) {
      const a = access.get(topic);
      // A topic that does not exist is the open's to report (or to create).
      if (a === undefined || a.kind === 'missing') continue;
      if (a.kind === 'found' && a.operations === undefined) continue; // the cluster did not say
      const refused =
        a.kind === 'denied'
          ? // Not even Describe: every operation needed is refused.
            operations.includes('Describe')
            ? operations
            : [...operations, 'Describe']
          : operations.filter((op) => !a.operations!.has(op));
      for (const operation of refused) missing.push({ operation, resourceType: 'topic', resource: topic });
    }
    if (needs.group !== undefined && !(await admin.groupDescribable(needs.group))) {
      missing.push(
        { operation: 'Read', resourceType: 'group', resource: needs.group },
        { operation: 'Describe', resourceType: 'group', resource: needs.group },
      );
    }
  } finally {
    admin.close();
  }
  return {
    missing: missingOf(admin.identity, missing),
    toError: (all) => new KafkaAuthorizationError(all),
  };
}
