/**
 * QueueSource (Spark's queueStream, the test driver's input) runs the source conformance suite. The
 * queue is both the input and the source: each append() is one push, i.e. the content of one future
 * batch. It declares itself replayable by default (so the test driver can exercise the guarantees of
 * replayable pipelines), but lives in memory: a new instance does not see what an earlier one was
 * given, so the restart properties do not apply.
 */
import { QueueSource } from '../../src/core/queue-source.js';
import { sourceConformance } from '../conformance/source.js';

sourceConformance<string>('QueueSource (2 partitions, one push per batch)', {
  capabilities: { offsets: false, replayable: true, restart: false, handles: false },
  input: async () => ({
    newSource: () => new QueueSource<string>({ numPartitions: 2 }),
    append: async (source, values) => (source as QueueSource<string>).push(values),
  }),
  view: (record) => ({ value: record }),
});

sourceConformance<string>('QueueSource (everything queued per batch, declared not replayable)', {
  capabilities: { offsets: false, replayable: false, restart: false, handles: false },
  input: async () => ({
    newSource: () => new QueueSource<string>({ oneAtATime: false, replayable: false }),
    append: async (source, values) => (source as QueueSource<string>).push(values),
  }),
  view: (record) => ({ value: record }),
});
