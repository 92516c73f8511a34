import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PipelineDefinitionError } from '../../src/core/errors.js';
import { InMemoryLog, InMemoryLogSource } from '../../src/core/memory-log.js';
import { InMemorySink } from '../../src/core/memory-sink.js';
import { InMemoryOffsetStore } from '../../src/core/offsets.js';
import { queueStream } from '../../src/core/queue-source.js';
import type { Source } from '../../src/core/source.js';
import { InMemoryCheckpointStore } from '../../src/core/state.js';
import { TestDriver } from '../../src/core/testing/driver.js';

/** An offset store that says several machines may commit to it (as the database and Kafka stores do). */
class SharedStore extends InMemoryOffsetStore {
  override readonly capabilities = { compareAndSet: true, shared: true };
}

/** An in-memory log source that declares it can run in group membership, as the Kafka source does. */
function groupSource(): Source<unknown> {
  const log = new InMemoryLog<string>();
  log.createTopic('t', 2);
  return Object.assign(new InMemoryLogSource(log, { topics: ['t'] }), {
    groupMembership: true,
  }) as Source<unknown>;
}

const refused = (pattern: RegExp) => (e: unknown) =>
  e instanceof PipelineDefinitionError && pattern.test(e.message);

describe('commit plan in group membership', () => {
  it('accepts a stateless pipeline over a group input with a shared store, and the plan says group', async () => {
    const driver = new TestDriver({ membership: 'group', offsetStore: new SharedStore() });
    driver.context.stream(groupSource(), { name: 'in' }).writeTo(new InMemorySink({ key: (r) => r }));
    await driver.start();
    assert.equal(driver.context.plan().membership, 'group');
    assert.match(driver.context.describe(), /membership group/);
    await driver.stop();
  });

  it('refuses a store that cannot be shared across machines, naming the stores that can', async () => {
    const driver = new TestDriver({ membership: 'group', offsetStore: new InMemoryOffsetStore() });
    driver.context.stream(groupSource(), { name: 'in' }).writeTo(new InMemorySink({ key: (r) => r }));
    await assert.rejects(driver.start(), refused(/offset store \(memory\) cannot be shared/));
  });

  it('refuses stateful operators, whose state would not move with their partitions yet', async () => {
    const store = new InMemoryCheckpointStore();
    const driver = new TestDriver({ membership: 'group', checkpoint: store });
    driver.context
      .stream(groupSource(), { name: 'in' })
      .map((r) => [String(r), 1] as [string, number])
      .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'counts' })
      .print();
    await assert.rejects(
      driver.start(),
      refused(/'counts'.* keep state, which group membership cannot move/),
    );
  });

  it('refuses an input that has no partitions a group could assign (a queue, a socket, a directory)', async () => {
    const driver = new TestDriver({ membership: 'group', offsetStore: new SharedStore() });
    queueStream<string>(driver.context, {}, { name: 'lines' }).print();
    await assert.rejects(
      driver.start(),
      refused(/Input 'lines' cannot be shared by the instances of a group/),
    );
  });

  it('takes the membership from SLUICE_MEMBERSHIP and refuses a value it does not know', () => {
    const saved = process.env.SLUICE_MEMBERSHIP;
    try {
      process.env.SLUICE_MEMBERSHIP = 'group';
      assert.equal(new TestDriver().context.membership, 'group');
      process.env.SLUICE_MEMBERSHIP = 'cluster';
      assert.throws(() => new TestDriver(), /SLUICE_MEMBERSHIP/);
    } finally {
      if (saved === undefined) delete process.env.SLUICE_MEMBERSHIP;
      else process.env.SLUICE_MEMBERSHIP = saved;
    }
  });
});
