import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as errors from '../../src/core/errors.js';

const samples: errors.SluiceError[] = [
  new errors.InvalidOptionError('batchInterval', 'a number > 0', -1),
  new errors.PipelineDefinitionError('no output', 'add one'),
  new errors.ContextStateError('already started', 'build a new context', 'active'),
  new errors.OperatorError('parse', 1000, new Error('boom')),
  new errors.SourceError('socket', 'lost', 'reconnect', { retriable: true }),
  new errors.DeserializationError('t', 2, 42, 'value', new Error('bad json')),
  new errors.BrokerUnreachableError('127.0.0.1:1', 3),
  new errors.TopicNotFoundError('missing'),
  new errors.ServiceStartError('Kafka', 'exited with code 1', 'line a\nline b'),
  new errors.OffsetConflictError('g', 'orders', 1, 100, 150),
  new errors.OffsetOutOfRangeError('orders', 2, 10, 500, 900),
  new errors.CheckpointIncompatibleError('/tmp/cp', [
    { operator: 'counts', change: 'removed-or-renamed', detail: "'counts' is gone" },
  ]),
  new errors.OwnershipLostError('another instance owns orders-1 now', [{ topic: 'orders', partition: 1 }]),
];

describe('error catalogue', () => {
  it('covers every exported error class with a sample', () => {
    const classes = Object.values(errors).filter(
      (v) => typeof v === 'function' && v.prototype instanceof errors.SluiceError,
    );
    assert.deepEqual(
      new Set(classes.map((c) => (c as { name: string }).name)),
      new Set(samples.map((s) => s.constructor.name)),
    );
  });

  for (const e of samples) {
    it(`${e.constructor.name} reports its own class's stable code, its name and a hint`, () => {
      const cls = e.constructor as unknown as { code: string };
      assert.equal(e.code, cls.code);
      assert.match(e.code, /^SLUICE_[A-Z_]+$/);
      assert.equal(e.name, e.constructor.name);
      assert.ok(e.hint.length > 0);
      assert.ok(e.message.includes(e.hint));
      assert.ok(e instanceof Error);
    });
  }

  it('codes are unique across classes', () => {
    const codes = samples.map((s) => s.code);
    assert.equal(new Set(codes).size, codes.length);
  });

  it('messages carry what was wrong', () => {
    assert.match(samples[0]!.message, /batchInterval.*-1.*a number > 0/);
    assert.match(samples[3]!.message, /'parse'.*1000.*boom/);
    assert.match(samples[5]!.message, /t-2 at offset 42.*bad json/);
    assert.match(samples[8]!.message, /Kafka.*exited with code 1[\s\S]*line b/);
    assert.equal(samples[6]!.retriable, true);
    assert.equal(samples[4]!.retriable, true);
    assert.equal(samples[0]!.retriable, false);
  });
});
