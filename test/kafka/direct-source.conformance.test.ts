/**
 * KafkaDirectSource runs the source conformance suite against the real broker (the shared local
 * single-node broker, or KAFKA_BOOTSTRAP), with its defaults (read_committed, 'latest' when no
 * position is stored): each input is a new 2-partition topic, records are produced by the test
 * helpers' own client (values spread over the partitions in turn), and a restart is a new source
 * given the positions through ctx.storedOffsets. Release is checked from outside the client: the
 * process's TCP connections to the broker go back to what they were before the source opened
 * (librdkafka's sockets do not show in Node's handle list).
 */
import { after, before } from 'node:test';
import { KafkaDirectSource, type KafkaRecord } from '../../src/kafka/index.js';
import { tcpConnectionsTo } from '../conformance/handles.js';
import { sourceConformance } from '../conformance/source.js';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';

const PARTITIONS = 2;

let bootstrapServers: string;
let brokerPorts: number[];
const leftover: string[] = [];

before(async () => {
  bootstrapServers = await kafkaBootstrap();
  brokerPorts = bootstrapServers.split(',').map((hp) => Number(hp.slice(hp.lastIndexOf(':') + 1)));
});

after(async () => {
  for (const t of leftover) await deleteTopic(bootstrapServers, t).catch(() => {});
});

sourceConformance<KafkaRecord>(`KafkaDirectSource (${PARTITIONS} partitions, read_committed)`, {
  capabilities: { offsets: true, replayable: true, restart: true, handles: true },
  input: async () => {
    const topic = uniqueName('conformance-direct');
    leftover.push(topic);
    await createTopic(bootstrapServers, topic, PARTITIONS);
    return {
      newSource: () => new KafkaDirectSource({ bootstrapServers, topics: [topic] }),
      append: async (_source, values) => {
        // Acknowledged by the broker (acks=all): in the partition's end offset the next plan reads.
        await produce(
          bootstrapServers,
          topic,
          values.map((value, i) => ({ value, partition: i % PARTITIONS })),
        );
      },
      handles: () => tcpConnectionsTo(brokerPorts),
      holdsHandlesWhileOpen: true,
      cleanup: async () => {
        await deleteTopic(bootstrapServers, topic);
        leftover.splice(leftover.indexOf(topic), 1);
      },
    };
  },
  view: (r) => ({ value: r.value ?? '', topic: r.topic, partition: r.partition, offset: r.offset }),
});
