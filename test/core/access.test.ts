/**
 * The access check at start (src/core/access.ts): every input's and output's `checkAccess` runs
 * before anything opens, and the missing permissions of all of them come back as ONE error, made by
 * the first check that found any.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessCheck, AccessCheckContext, MissingPermission } from '../../src/core/access.js';
import { ManualClock } from '../../src/core/clock.js';
import { StreamingContext } from '../../src/core/context.js';
import { silentLogger } from '../../src/core/logger.js';
import { InMemorySink } from '../../src/core/memory-sink.js';
import { QueueSource, queueStream } from '../../src/core/queue-source.js';

class MissingError extends Error {
  constructor(readonly all: readonly MissingPermission[]) {
    super(`missing: ${all.map((m) => `${m.operation} ${m.resourceType} ${m.resource}`).join(', ')}`);
  }
}

function perm(operation: string, resource: string, resourceType = 'topic'): MissingPermission {
  return { system: 'test', operation, resourceType, resource, principal: 'User:bob' };
}

function check(missing: MissingPermission[], tag = 'first'): AccessCheck {
  return {
    missing,
    toError: (all) => Object.assign(new MissingError(all), { tag }),
  };
}

/** A queue source whose access check answers `answer` and that records what happened to it. */
class CheckedSource<T> extends QueueSource<T> {
  readonly events: string[] = [];
  constructor(readonly answer: () => Promise<AccessCheck | undefined>) {
    super();
  }
  async checkAccess(ctx: AccessCheckContext): Promise<AccessCheck | undefined> {
    this.events.push(`check ${ctx.pipelineId}/${ctx.name}`);
    return this.answer();
  }
  override async open(): Promise<void> {
    this.events.push('open');
    await super.open();
  }
}

class CheckedSink<T> extends InMemorySink<T> {
  readonly events: string[] = [];
  constructor(readonly answer: () => Promise<AccessCheck | undefined>) {
    super();
  }
  async checkAccess(ctx: AccessCheckContext): Promise<AccessCheck | undefined> {
    this.events.push(`check ${ctx.name}`);
    return this.answer();
  }
  override async open(): Promise<void> {
    this.events.push('open');
  }
}

function context() {
  return new StreamingContext({
    batchInterval: 1000,
    pipelineId: 'etl',
    clock: new ManualClock(0),
    logger: silentLogger,
  });
}

describe('the access check at start', () => {
  it('lists every missing permission of the inputs and outputs in one error, made by the first check that found any', async () => {
    const ctx = context();
    const source = new CheckedSource<string>(async () => check([]));
    const sink = new CheckedSink<string>(async () =>
      check([perm('Write', 'out'), perm('Describe', 'out')], 'sink'),
    );
    const dlq = new CheckedSink<string>(async () =>
      // The same permission twice (e.g. two outputs on one topic) is listed once.
      check([perm('Write', 'out'), perm('Read', 'etl', 'group')], 'dlq'),
    );
    const s = queueStream(ctx, source, { name: 'in' });
    s.writeTo(sink, { name: 'main' });
    s.writeTo(dlq, { name: 'other' });
    let stopped: Error | undefined;
    ctx.addListener({ onContextStopped: (e) => (stopped = e) });
    const e = await ctx.start().then(
      () => assert.fail('start() should fail'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof MissingError);
    assert.equal((e as MissingError & { tag: string }).tag, 'sink');
    assert.deepEqual(
      e.all.map((m) => `${m.operation} ${m.resourceType} ${m.resource}`),
      ['Write topic out', 'Describe topic out', 'Read group etl'],
    );
    assert.deepEqual(source.events, ['check etl/in'], 'nothing opens after a failed check');
    assert.deepEqual(sink.events, ['check main']);
    assert.deepEqual(dlq.events, ['check other']);
    assert.equal(ctx.state, 'stopped');
    assert.equal(stopped, e);
    await assert.rejects(ctx.awaitTermination(), MissingError);
  });

  it('the first check, in definition order (inputs first), makes the error', async () => {
    const ctx = context();
    const source = new CheckedSource<string>(async () => {
      await new Promise((r) => setTimeout(r, 20)); // finishes last
      return check([perm('Read', 'in')], 'source');
    });
    const sink = new CheckedSink<string>(async () => check([perm('Write', 'out')], 'sink'));
    queueStream(ctx, source).writeTo(sink);
    await assert.rejects(ctx.start(), (e: unknown) => {
      assert.ok(e instanceof MissingError);
      assert.equal((e as MissingError & { tag: string }).tag, 'source');
      assert.deepEqual(
        e.all.map((m) => m.resource),
        ['in', 'out'],
      );
      return true;
    });
  });

  it('a check that throws fails the start with its error; nothing opens', async () => {
    const ctx = context();
    const boom = new Error('login refused');
    const source = new CheckedSource<string>(async () => {
      throw boom;
    });
    const sink = new CheckedSink<string>(async () => check([perm('Write', 'out')]));
    queueStream(ctx, source, { name: 'in' }).writeTo(sink, { name: 'out' });
    await assert.rejects(ctx.start(), (e: unknown) => e === boom);
    assert.deepEqual(source.events, ['check etl/in']);
    assert.deepEqual(sink.events, ['check out']);
  });

  it('checks that find nothing (or cannot tell) let the pipeline start and run', async () => {
    const ctx = context();
    const source = new CheckedSource<string>(async () => check([]));
    const sink = new CheckedSink<string>(async () => undefined);
    queueStream(ctx, source, { name: 'in' }).writeTo(sink, { name: 'out' });
    await ctx.start();
    assert.deepEqual(source.events, ['check etl/in', 'open']);
    assert.deepEqual(sink.events, ['check out', 'open']);
    await ctx.stop();
  });
});
