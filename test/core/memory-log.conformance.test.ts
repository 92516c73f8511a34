/**
 * InMemoryLogSource (the Kafka-shaped replayable source over an InMemoryLog) runs the source
 * conformance suite: offsets, replay and restarts from the stored offsets. The log outlives the
 * source instances, as a topic outlives its consumers. Sources start at `latest` when nothing is
 * stored, so a restart that ignored its stored offsets would skip records and fail the suite.
 */
import { InMemoryLog, InMemoryLogSource, type LogRecord } from '../../src/core/memory-log.js';
import { sourceConformance } from '../conformance/source.js';

const PARTITIONS = 3;

sourceConformance<LogRecord<string>>(`InMemoryLogSource (${PARTITIONS} partitions)`, {
  capabilities: { offsets: true, replayable: true, restart: true, handles: false },
  input: async () => {
    const log = new InMemoryLog<string>();
    log.createTopic('events', PARTITIONS);
    return {
      newSource: () => new InMemoryLogSource(log, { topics: ['events'], startingOffsets: 'latest' }),
      append: async (_source, values) => {
        values.forEach((v, i) => log.append('events', i % PARTITIONS, [v]));
      },
    };
  },
  view: (r) => ({ value: r.value, topic: r.topic, partition: r.partition, offset: r.offset }),
});

sourceConformance<LogRecord<string>>('InMemoryLogSource (two topics)', {
  capabilities: { offsets: true, replayable: true, restart: true, handles: false },
  input: async () => {
    const log = new InMemoryLog<string>();
    log.createTopic('a', 2);
    log.createTopic('b', 1);
    return {
      newSource: () => new InMemoryLogSource(log, { topics: ['a', 'b'], startingOffsets: 'latest' }),
      append: async (_source, values) => {
        values.forEach((v, i) => (i % 3 === 2 ? log.append('b', 0, [v]) : log.append('a', i % 3, [v])));
      },
    };
  },
  view: (r) => ({ value: r.value, topic: r.topic, partition: r.partition, offset: r.offset }),
});
