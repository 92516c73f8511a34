import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeadLetter } from '../../src/core/bad-records.js';
import { InvalidOptionError, OperatorError } from '../../src/core/errors.js';
import { InMemorySink } from '../../src/core/memory-sink.js';
import type { Source } from '../../src/core/source.js';
import { TestDriver } from '../../src/core/testing/driver.js';

const parse = (s: string) => {
  const n = Number(s);
  if (!Number.isInteger(n)) throw new Error(`not an integer: ${s}`);
  return n;
};

describe('bad records', () => {
  it('tryMap under skip drops and counts rejected records, per batch', async () => {
    const driver = new TestDriver();
    const input = driver.input<string>();
    const out = driver.collect(input.stream.tryMap(parse, { name: 'parse', badRecords: { policy: 'skip' } }));
    await driver.start();
    input.push(['1', 'x', '2', 'y']);
    const info = await driver.advance();
    await driver.stop();
    assert.deepEqual(out.last(), [1, 2]);
    assert.deepEqual(info.badRecords, [{ name: 'parse', skipped: 2, deadLettered: 0 }]);
  });

  it('tryMap under dead-letter writes each rejected record with its reason and origin', async () => {
    const dlq = new InMemorySink<DeadLetter>();
    const driver = new TestDriver();
    const input = driver.input<{
      topic: string;
      partition: number;
      offset: number;
      key: null;
      value: string;
    }>();
    const out = driver.collect(
      input.stream.tryMap((r) => parse(r.value), {
        name: 'parse',
        badRecords: { policy: 'dead-letter', deadLetter: dlq },
      }),
    );
    await driver.start();
    input.push([
      { topic: 'in', partition: 1, offset: 7, key: null, value: '5' },
      { topic: 'in', partition: 1, offset: 8, key: null, value: 'bad' },
    ]);
    const info = await driver.advance();
    await driver.stop();
    assert.deepEqual(out.last(), [5]);
    assert.deepEqual(dlq.records, [
      {
        input: 'parse',
        operator: 'parse',
        reason: 'not an integer: bad',
        batchTime: 1000,
        topic: 'in',
        partition: 1,
        offset: 8,
        key: null,
        value: 'bad',
      },
    ]);
    assert.deepEqual(info.badRecords, [{ name: 'parse', skipped: 0, deadLettered: 1 }]);
    assert.ok(driver.context.plan().nodes.some((n) => n.name === 'parse.dead-letter-sink' && n.output));
  });

  it('tryMap without a policy fails the batch, naming the operator', async () => {
    const driver = new TestDriver();
    const input = driver.input<string>();
    driver.collect(input.stream.tryMap(parse, { name: 'parse' }));
    await driver.start();
    input.push(['z']);
    await assert.rejects(
      driver.advance(),
      (e: unknown) => e instanceof OperatorError && e.operator === 'parse',
    );
  });

  it('a source reports unreadable records to its own policy; tryMap downstream uses the same policy', async () => {
    const dlq = new InMemorySink<DeadLetter>();
    let report!: Parameters<Source<string>['open']>[0]['reportBadRecord'];
    const source: Source<string> = {
      kind: 'bytes',
      replayable: true,
      badRecords: { policy: 'dead-letter', deadLetter: dlq },
      describe: () => ({}),
      open: async (ctx) => void (report = ctx.reportBadRecord),
      plan: async () => ({ offsetRanges: [] }),
      fetch: async () => {
        report(
          {
            operator: 'raw',
            reason: 'invalid UTF-8',
            topic: 't',
            partition: 0,
            offset: 3,
            value: Buffer.from([0xff]),
          },
          new Error('x'),
        );
        return [['1', 'two']];
      },
      close: async () => {},
    };
    const driver = new TestDriver();
    const raw = driver.context.stream(source, { name: 'raw' });
    const out = driver.collect(raw.tryMap(parse, { name: 'parse' }));
    await driver.start();
    const info = await driver.advance();
    await driver.stop();
    assert.deepEqual(out.last(), [1]);
    assert.deepEqual(
      dlq.records.map((d) => [d.input, d.operator, d.reason, d.offset]),
      [
        ['raw', 'raw', 'invalid UTF-8', 3],
        ['raw', 'parse', 'not an integer: two', undefined],
      ],
    );
    assert.deepEqual(info.badRecords, [{ name: 'raw', skipped: 0, deadLettered: 2 }]);
  });

  it('a dead-letter policy without a sink is refused, naming the option', () => {
    const driver = new TestDriver();
    assert.throws(
      () => driver.input<string>().stream.tryMap(parse, { badRecords: { policy: 'dead-letter' } }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'tryMap.badRecords.deadLetter',
    );
  });
});
