import {
  InMemorySink,
  InMemoryTransactionalSink,
  InMemoryTransactionalStore,
} from '../../src/core/memory-sink.js';
import { sinkConformance } from '../conformance/sink.js';

const records = (n: number, seed: string) =>
  Array.from({ length: n }, (_, i) => ({ id: `${seed}-${i}`, n: i }));

sinkConformance('InMemorySink (append)', async () => {
  const sink = new InMemorySink<{ id: string; n: number }>();
  return { sink, readBack: async () => sink.records, records };
});

sinkConformance('InMemorySink (upsert by id)', async () => {
  const sink = new InMemorySink<{ id: string; n: number }>({ key: (r) => r.id });
  return { sink, readBack: async () => sink.records, records };
});

sinkConformance('InMemoryTransactionalSink', async () => {
  const sink = new InMemoryTransactionalSink<{ id: string; n: number }>(new InMemoryTransactionalStore());
  return { sink, readBack: async () => sink.records, records };
});
