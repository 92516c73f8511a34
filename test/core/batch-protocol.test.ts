import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchProtocol } from '../../src/core/batch-protocol.js';
import { Checkpointer } from '../../src/core/checkpointer.js';
import { ManualClock } from '../../src/core/clock.js';
import { decideCommitPlan, offsetGroupOf } from '../../src/core/commit-plan.js';
import { OffsetConflictError } from '../../src/core/errors.js';
import type { BatchRun, InputRegistration, OutputRegistration } from '../../src/core/graph.js';
import { silentLogger } from '../../src/core/logger.js';
import { InMemoryLog, InMemoryLogSource } from '../../src/core/memory-log.js';
import { InMemoryTransactionalStore } from '../../src/core/memory-sink.js';
import { InMemoryOffsetStore, type OffsetRange, type OffsetStore } from '../../src/core/offsets.js';
import type { Guarantee } from '../../src/core/sink.js';
import type { Source } from '../../src/core/source.js';
import type { StateHandle } from '../../src/core/state.js';

// The protocol is driven here with its collaborators handed in, as the context does, and every
// collaborator records what it is asked to do in one shared journal: the tests read the order of
// the steps off it.

type Journal = string[];

/** A source over an in-memory log that journals its plan, fetch and commit calls. */
function journaled(journal: Journal, name: string, log: InMemoryLog<string>): Source<unknown> {
  const inner = new InMemoryLogSource(log, { topics: [name] });
  return {
    kind: inner.kind,
    replayable: true,
    describe: () => ({}),
    offsetGroup: (pipelineId) => inner.offsetGroup(pipelineId),
    open: (ctx) => inner.open(ctx),
    async plan() {
      journal.push(`plan ${name}`);
      return inner.plan();
    },
    async fetch(plan) {
      journal.push(`fetch ${name}`);
      return inner.fetch(plan);
    },
    async commit() {
      journal.push(`commit ${name}`);
    },
    async abandon() {
      journal.push(`abandon ${name}`);
    },
    close: () => inner.close(),
  };
}

/** An offset store that journals its writes. */
class JournaledStore extends InMemoryOffsetStore {
  constructor(readonly journal: Journal) {
    super();
  }
  override async write(group: string, ranges: readonly OffsetRange[], o?: { compareAndSet?: boolean }) {
    this.journal.push(`offsets ${ranges.map((r) => `${r.topic}:${r.untilOffset}`).join(',')}`);
    await super.write(group, ranges, o);
  }
  override async set(group: string, offsets: Parameters<OffsetStore['set']>[1]) {
    this.journal.push(`move ${offsets.map((o) => `${o.topic}:${o.offset}`).join(',')}`);
    await super.set(group, offsets);
  }
}

/** An output that journals its compute and its write, and fails its write when asked. */
function output(
  journal: Journal,
  name: string,
  options: {
    guarantee?: Guarantee;
    idempotent?: boolean;
    fail?: boolean;
    store?: InMemoryTransactionalStore;
  } = {},
): OutputRegistration {
  const write = async () => {
    journal.push(`write ${name}`);
    if (options.fail) throw new Error(`${name} failed`);
  };
  return {
    name,
    kind: 'test',
    guarantee: options.guarantee,
    idempotent: options.idempotent ?? false,
    ...(options.store
      ? {
          transactional: {
            store: options.store as never,
            run: async (_run: BatchRun, tx: unknown) => {
              journal.push(`write ${name} in ${tx ? 'the transaction' : 'nothing'}`);
            },
          },
        }
      : {}),
    prepare: async () => void journal.push(`compute ${name}`),
    late: false,
    run: write,
  };
}

function logOf(topics: Record<string, string[]>): InMemoryLog<string> {
  const log = new InMemoryLog<string>();
  for (const [topic, values] of Object.entries(topics)) {
    log.createTopic(topic, 1);
    log.append(topic, 0, values);
  }
  return log;
}

async function protocolFor(
  inputs: InputRegistration[],
  outputs: OutputRegistration[],
  offsetStore: OffsetStore,
  options: {
    handles?: StateHandle[];
    checkpoint?: InMemoryTransactionalStore;
    /** Where inputs start, by topic (default: the log start). */
    startAt?: Record<string, number>;
    membership?: 'single' | 'group';
  } = {},
): Promise<BatchProtocol> {
  const planInputs = {
    pipelineId: 'p',
    inputs,
    outputs,
    statefulOperators: (options.handles ?? []).map((h) => h.name),
    offsetStore,
    checkpoint: options.checkpoint,
  };
  for (const i of inputs) {
    await i.source.open({
      pipelineId: 'p',
      name: i.name,
      clock: new ManualClock(0),
      batchInterval: 1000,
      logger: silentLogger,
      signal: new AbortController().signal,
      storedOffsets: async (topics) =>
        topics
          .filter((t) => options.startAt?.[t] !== undefined)
          .map((t) => ({ topic: t, partition: 0, offset: options.startAt![t]! })),
      reportBadRecord: () => {},
      reportOffsetReset: () => {},
      reportRebalance: () => {},
      membership: 'single',
      instanceId: 'test-instance',
    });
  }
  return new BatchProtocol({
    pipelineId: 'p',
    membership: options.membership ?? 'single',
    clock: new ManualClock(0),
    inputs,
    outputs,
    stateful: [],
    offsetStore,
    commitPlan: decideCommitPlan(planInputs, offsetStore),
    checkpointer: new Checkpointer({
      pipelineId: 'p',
      handles: options.handles ?? [],
      fullEvery: 10,
      fingerprint: () => 'f',
    }),
    groupOf: (source) => offsetGroupOf(source, 'p'),
  });
}

describe('BatchProtocol.run', () => {
  it('fixes every input before fetching any, computes every output before writing any, and saves the offsets after the outputs', async () => {
    const journal: Journal = [];
    const log = logOf({ a: ['1', '2'], b: ['3'] });
    const inputs = ['a', 'b'].map((name) => ({ name, source: journaled(journal, name, log) }));
    const outputs = [output(journal, 'out1'), output(journal, 'out2')];
    const protocol = await protocolFor(inputs, outputs, new JournaledStore(journal));
    const { info, error } = await protocol.run(1000);
    assert.equal(error, undefined);
    assert.deepEqual(journal, [
      'plan a',
      'plan b',
      'fetch a',
      'fetch b',
      'compute out1',
      'compute out2',
      'write out1',
      'write out2',
      'offsets a:2,b:1',
      'commit a',
      'commit b',
    ]);
    assert.equal(info.status, 'completed');
    assert.equal(info.numRecords, 3);
    assert.deepEqual(
      info.outputs.map((o) => o.name),
      ['out1', 'out2'],
    );
  });

  it('under at-most-once saves the offsets before any output writes', async () => {
    const journal: Journal = [];
    const inputs = [{ name: 'a', source: journaled(journal, 'a', logOf({ a: ['1'] })) }];
    const protocol = await protocolFor(
      inputs,
      [output(journal, 'out', { guarantee: 'at-most-once' })],
      new JournaledStore(journal),
    );
    await protocol.run(1000);
    assert.ok(journal.indexOf('offsets a:1') < journal.indexOf('write out'), journal.join(' / '));
  });

  it('a failed output stops the batch: no offsets saved, no source told, and the record carries the error', async () => {
    const journal: Journal = [];
    const inputs = [{ name: 'a', source: journaled(journal, 'a', logOf({ a: ['1'] })) }];
    const store = new JournaledStore(journal);
    const protocol = await protocolFor(inputs, [output(journal, 'out', { fail: true })], store);
    const { info, error } = await protocol.run(1000);
    assert.match(String(error), /out failed/);
    assert.equal(info.status, 'failed');
    assert.equal(info.error, error);
    assert.ok(!journal.some((j) => j.startsWith('offsets') || j.startsWith('commit')), journal.join(' / '));
    assert.deepEqual(await store.read('p', ['a']), []);
  });

  it('moves the positions an offset reset moved before the batch, so its compare-and-set from there succeeds', async () => {
    const journal: Journal = [];
    const store = new JournaledStore(journal);
    await store.set('p', [{ topic: 'a', partition: 0, offset: 0 }]);
    journal.length = 0;
    // The source starts at 1, as after its policy reset a stored 0 that fell out of retention:
    // without the move, the store still holds 0 and the batch's compare-and-set from 1 conflicts.
    const source = journaled(journal, 'a', logOf({ a: ['lost', 'kept'] }));
    const protocol = await protocolFor([{ name: 'a', source }], [output(journal, 'out')], store, {
      startAt: { a: 1 },
    });
    protocol.positionMoved('p', { topic: 'a', partition: 0, offset: 1 });
    const { error } = await protocol.run(1000);
    assert.equal(error, undefined);
    assert.deepEqual(journal.slice(0, 3), ['plan a', 'fetch a', 'move a:1']);
    assert.deepEqual(await store.read('p', ['a']), [{ topic: 'a', partition: 0, offset: 2 }]);
  });

  it('writes the transactional outputs and the offsets in one transaction of the store; a conflict rolls both back', async () => {
    const journal: Journal = [];
    const store = new InMemoryTransactionalStore();
    const inputs = [{ name: 'a', source: journaled(journal, 'a', logOf({ a: ['1', '2'] })) }];
    const protocol = await protocolFor(inputs, [output(journal, 'rows', { store })], store);
    const first = await protocol.run(1000);
    assert.equal(first.error, undefined);
    assert.ok(journal.includes('write rows in the transaction'));
    assert.deepEqual(await store.read('p', ['a']), [{ topic: 'a', partition: 0, offset: 2 }]);

    // A second instance replaying the same batch: its compare-and-set from 0 conflicts.
    const replay = await protocolFor(
      [{ name: 'a', source: journaled([], 'a', logOf({ a: ['1', '2'] })) }],
      [output([], 'rows', { store })],
      store,
    );
    const second = await replay.run(1000);
    assert.ok(second.error instanceof OffsetConflictError);
    assert.deepEqual(await store.read('p', ['a']), [{ topic: 'a', partition: 0, offset: 2 }]);
  });

  it('commits a stateful pipeline’s state with its offsets in one checkpoint commit, full on the first', async () => {
    const store = new InMemoryTransactionalStore();
    let value = 0;
    const handle: StateHandle = {
      name: 'counts',
      kind: 'updateStateByKey',
      snapshot: () => value,
      restore: (v) => void (value = v as number),
    };
    const inputs = [{ name: 'a', source: journaled([], 'a', logOf({ a: ['1'] })) }];
    const protocol = await protocolFor(inputs, [output([], 'out', { idempotent: true })], store, {
      handles: [handle],
      checkpoint: store,
    });
    value = 7;
    assert.equal((await protocol.run(1000)).error, undefined);
    const cp = await store.loadCheckpoint('p');
    assert.equal(cp?.meta.batchTime, 1000);
    assert.deepEqual(cp?.state.get('counts'), { full: 7, deltas: [] });
    assert.deepEqual(await store.read('p', ['a']), [{ topic: 'a', partition: 0, offset: 1 }]);
  });

  it('in group membership abandons a batch another instance committed first: nothing of it committed, each source told to start over, the job not failed', async () => {
    const journal: Journal = [];
    const store = new InMemoryTransactionalStore();
    // Another instance took the partition and committed offset 1 meanwhile.
    await store.set('p', [{ topic: 'a', partition: 0, offset: 1 }]);
    const source = journaled(journal, 'a', logOf({ a: ['1', '2'] }));
    const protocol = await protocolFor([{ name: 'a', source }], [output(journal, 'rows', { store })], store, {
      startAt: { a: 0 },
      membership: 'group',
    });
    const { info, error, abandoned } = await protocol.run(1000);
    assert.equal(abandoned, true);
    assert.ok(error instanceof OffsetConflictError);
    assert.equal(info.status, 'abandoned');
    assert.ok(journal.includes('abandon a'), journal.join(' / '));
    assert.ok(!journal.includes('commit a'), journal.join(' / '));
    assert.deepEqual(await store.read('p', ['a']), [{ topic: 'a', partition: 0, offset: 1 }]);
  });

  it('with one process owning every partition, the same conflict fails the batch (a second writer is a fault)', async () => {
    const store = new InMemoryTransactionalStore();
    await store.set('p', [{ topic: 'a', partition: 0, offset: 1 }]);
    const journal: Journal = [];
    const protocol = await protocolFor(
      [{ name: 'a', source: journaled(journal, 'a', logOf({ a: ['1', '2'] })) }],
      [output(journal, 'rows', { store })],
      store,
      { startAt: { a: 0 } },
    );
    const { info, error, abandoned } = await protocol.run(1000);
    assert.equal(abandoned, undefined);
    assert.ok(error instanceof OffsetConflictError);
    assert.equal(info.status, 'failed');
    assert.ok(!journal.includes('abandon a'));
  });
});
