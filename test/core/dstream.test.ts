import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batch } from '../../src/core/batch.js';
import type { DStream } from '../../src/core/dstream.js';
import { OperatorError, PipelineDefinitionError } from '../../src/core/errors.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { run, sorted } from './helpers.js';

/** Like `run`, for two inputs fed in lockstep. */
async function run2<A, B, O>(
  as: A[][],
  bs: B[][],
  build: (a: DStream<A>, b: DStream<B>) => DStream<O>,
): Promise<O[][]> {
  const driver = new TestDriver({ batchInterval: 1000 });
  const a = driver.input<A>({ name: 'a' });
  const b = driver.input<B>({ name: 'b' });
  const out = driver.collect(build(a.stream, b.stream));
  await driver.start();
  for (let i = 0; i < as.length; i++) {
    a.push(as[i]!);
    b.push(bs[i]!);
    await driver.advance();
  }
  await driver.stop();
  return out.all().map(sorted);
}

// Expected outputs below are what Spark Streaming's operators give for the same input batches
// (as in Spark's BasicOperationsSuite), compared as multisets per batch.
describe('DStream stateless operators', () => {
  it('map applies the function to every record', async () => {
    assert.deepEqual(await run([[1, 2], [3]], (s) => s.map((x) => x * 10)), [[10, 20], [30]]);
  });

  it('flatMap emits every element of the returned iterables', async () => {
    const out = await run([['a b', 'c'], ['']], (s) => s.flatMap((l) => l.split(' ').filter(Boolean)));
    assert.deepEqual(out, [['a', 'b', 'c'], []]);
  });

  it('filter keeps records for which the predicate holds', async () => {
    assert.deepEqual(await run([[1, 2, 3, 4], [5]], (s) => s.filter((x) => x % 2 === 0)), [[2, 4], []]);
  });

  it('mapPartitions sees each partition once, with its index', async () => {
    const out = await run([[1, 2, 3, 4]], (s) => s.mapPartitions((p, i) => [`${i}:${p.length}`]), {
      numPartitions: 2,
    });
    assert.deepEqual(out, [['0:2', '1:2']]);
  });

  it('union concatenates both streams batch by batch', async () => {
    const out = await run2([[1], [2]], [[10], []], (a, b) => a.union(b));
    assert.deepEqual(out, [[1, 10], [2]]);
  });

  it('repartition keeps the records and changes the number of partitions', async () => {
    const driver = new TestDriver();
    const input = driver.input<number>();
    const out = driver.collect(input.stream.repartition(3));
    await driver.start();
    input.push([1, 2, 3, 4, 5]);
    await driver.advance();
    await driver.stop();
    assert.equal(out.batches[0]!.partitions.length, 3);
    assert.deepEqual(sorted(out.last()), [1, 2, 3, 4, 5]);
  });

  it('count gives one record per batch, 0 for an empty batch', async () => {
    assert.deepEqual(await run([[1, 2, 3], [], [4]], (s) => s.count()), [[3], [0], [1]]);
  });

  it('countByValue counts each distinct value per batch', async () => {
    const out = await run([['a', 'b', 'a'], ['c']], (s) => s.countByValue());
    assert.deepEqual(out, [
      [
        ['a', 2],
        ['b', 1],
      ],
      [['c', 1]],
    ]);
  });

  it('reduce gives one record per non-empty batch and nothing for an empty one', async () => {
    assert.deepEqual(await run([[1, 2, 3], [], [7]], (s) => s.reduce((a, b) => a + b)), [[6], [], [7]]);
  });

  it('reduceByKey combines the values of each key within a batch only', async () => {
    const out = await run(
      [
        ['a', 'b', 'a'],
        ['a', 'c'],
      ],
      (s) => s.mapToPair((w) => [w, 1]).reduceByKey((x, y) => x + y),
    );
    assert.deepEqual(out, [
      [
        ['a', 2],
        ['b', 1],
      ],
      [
        ['a', 1],
        ['c', 1],
      ],
    ]);
  });

  it('reduceByKey with numPartitions spreads keys over that many partitions, each key in one', async () => {
    const driver = new TestDriver();
    const input = driver.input<[string, number]>();
    const out = driver.collect(input.stream.reduceByKey((a, b) => a + b, { numPartitions: 4 }));
    await driver.start();
    input.push(Array.from({ length: 100 }, (_, i): [string, number] => [`k${i % 20}`, 1]));
    await driver.advance();
    await driver.stop();
    const parts = out.batches[0]!.partitions;
    assert.equal(parts.length, 4);
    const keys = parts.flat().map(([k]) => k);
    assert.equal(new Set(keys).size, 20);
    assert.equal(keys.length, 20);
    assert.ok(parts.every((p) => p.every(([, v]) => v === 5)));
  });

  it('groupByKey collects all values of a key', async () => {
    const out = await run(
      [
        [
          ['a', 1],
          ['b', 2],
          ['a', 3],
        ],
      ] as [string, number][][],
      (s) => s.groupByKey().mapValues((vs) => [...vs].sort()),
    );
    assert.deepEqual(out, [
      [
        ['a', [1, 3]],
        ['b', [2]],
      ],
    ]);
  });

  it('mapValues and flatMapValues keep keys', async () => {
    const input = [
      [
        ['a', 2],
        ['b', 0],
      ],
    ] as [string, number][][];
    assert.deepEqual(await run(input, (s) => s.mapValues((v) => v * 2)), [
      [
        ['a', 4],
        ['b', 0],
      ],
    ]);
    assert.deepEqual(
      await run(input, (s) => s.flatMapValues((v) => Array.from({ length: v }, (_, i) => i))),
      [
        [
          ['a', 0],
          ['a', 1],
        ],
      ],
    );
  });

  it('object keys group by value, not by reference', async () => {
    const out = await run(
      [
        [
          [{ c: 'x', b: 1 }, 1],
          [{ c: 'x', b: 1 }, 2],
        ],
      ] as [{ c: string; b: number }, number][][],
      (s) => s.reduceByKey((a, b) => a + b),
    );
    assert.deepEqual(out, [[[{ c: 'x', b: 1 }, 3]]]);
  });

  // Spark: BasicOperationsSuite "join", "leftOuterJoin", "rightOuterJoin", "fullOuterJoin", "cogroup".
  const left = [
    [
      ['a', 1],
      ['a', 2],
      ['b', 1],
    ],
    [
      ['a', 1],
      ['b', 1],
    ],
    [],
    [['a', 1]],
  ] as [string, number][][];
  const right = [
    [
      ['a', 'x'],
      ['b', 'y'],
      ['b', 'z'],
    ],
    [['c', 'x']],
    [['b', 'x']],
    [],
  ] as [string, string][][];

  it('join pairs every left value with every right value of the same key', async () => {
    assert.deepEqual(await run2(left, right, (a, b) => a.join(b)), [
      [
        ['a', [1, 'x']],
        ['a', [2, 'x']],
        ['b', [1, 'y']],
        ['b', [1, 'z']],
      ],
      [],
      [],
      [],
    ]);
  });

  it('leftOuterJoin keeps left values without a match, with undefined', async () => {
    assert.deepEqual(await run2(left, right, (a, b) => a.leftOuterJoin(b)), [
      [
        ['a', [1, 'x']],
        ['a', [2, 'x']],
        ['b', [1, 'y']],
        ['b', [1, 'z']],
      ],
      sorted([
        ['a', [1, undefined]],
        ['b', [1, undefined]],
      ]),
      [],
      [['a', [1, undefined]]],
    ]);
  });

  it('rightOuterJoin keeps right values without a match, with undefined', async () => {
    assert.deepEqual(await run2(left, right, (a, b) => a.rightOuterJoin(b)), [
      [
        ['a', [1, 'x']],
        ['a', [2, 'x']],
        ['b', [1, 'y']],
        ['b', [1, 'z']],
      ],
      [['c', [undefined, 'x']]],
      [['b', [undefined, 'x']]],
      [],
    ]);
  });

  it('fullOuterJoin keeps every key of either side', async () => {
    const out = await run2(left, right, (a, b) => a.fullOuterJoin(b));
    assert.deepEqual(
      out[1],
      sorted([
        ['a', [1, undefined]],
        ['b', [1, undefined]],
        ['c', [undefined, 'x']],
      ]),
    );
    assert.deepEqual(out[2], [['b', [undefined, 'x']]]);
    assert.deepEqual(out[3], [['a', [1, undefined]]]);
    assert.equal(out[0]!.length, 4);
  });

  it('cogroup gives both sides’ values for every key in either', async () => {
    const out = await run2(left, right, (a, b) => a.cogroup(b));
    assert.deepEqual(out[0], [
      ['a', [[1, 2], ['x']]],
      ['b', [[1], ['y', 'z']]],
    ]);
    assert.deepEqual(
      out[1],
      sorted([
        ['a', [[1], []]],
        ['b', [[1], []]],
        ['c', [[], ['x']]],
      ]),
    );
    assert.deepEqual(out[2], [['b', [[], ['x']]]]);
  });

  it('transform runs a batch function, e.g. a join with reference data that changes between batches', async () => {
    let blacklist: [string, boolean][] = [['1.1.1.1', true]];
    const driver = new TestDriver();
    const lines = driver.input<string>();
    const kept = lines.stream.transform(async (batch) =>
      batch
        .keyBy((line) => line.split('##')[0]!)
        .leftOuterJoin(blacklist)
        .filter(([, [, banned]]) => !banned)
        .map(([, [line]]) => line),
    );
    const out = driver.collect(kept);
    await driver.start();
    lines.push(['1.1.1.1##a', '2.2.2.2##b']);
    await driver.advance();
    blacklist = [['2.2.2.2', true]];
    lines.push(['1.1.1.1##c', '2.2.2.2##d']);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(out.all(), [['2.2.2.2##b'], ['1.1.1.1##c']]);
  });

  it('transformWith combines the batches of two streams', async () => {
    const out = await run2([[1, 2], [3]], [[10], [20, 30]], (a, b) =>
      a.transformWith(b, (x, y) => Batch.of([x.size * 100 + y.size])),
    );
    assert.deepEqual(out, [[201], [102]]);
  });

  it('foreachBatch gets the batch time', async () => {
    const driver = new TestDriver({ batchInterval: 500, startTime: 10_000 });
    const input = driver.input<number>();
    const times: number[] = [];
    input.stream.foreachBatch((_b, ctx) => {
      times.push(ctx.time);
    });
    await driver.start();
    await driver.advance(3);
    await driver.stop();
    assert.deepEqual(times, [10_500, 11_000, 11_500]);
  });

  it('print writes the batch time header and the first n records, then "..."', async () => {
    const lines: string[] = [];
    const driver = new TestDriver();
    const input = driver.input<[string, number]>();
    input.stream.print(2, { write: (l) => lines.push(l) });
    await driver.start();
    input.push([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ]);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(lines, [
      '-------------------------------------------\nTime: 1000 ms\n-------------------------------------------',
      '(a,1)',
      '(b,2)',
      '...',
      '',
    ]);
  });

  it('a stream used by two outputs is computed once per batch', async () => {
    let calls = 0;
    const driver = new TestDriver();
    const input = driver.input<number>();
    const mapped = input.stream.map((x) => {
      calls++;
      return x;
    });
    const a = driver.collect(mapped);
    const b = driver.collect(mapped.filter((x) => x > 1));
    await driver.start();
    input.push([1, 2]);
    await driver.advance();
    await driver.stop();
    assert.equal(calls, 2);
    assert.deepEqual(a.last(), [1, 2]);
    assert.deepEqual(b.last(), [2]);
  });

  it('a throwing user function fails the batch with an error naming the operator and the batch time', async () => {
    const driver = new TestDriver({ batchInterval: 1000 });
    const input = driver.input<string>();
    const parsed = input.stream.map((s) => JSON.parse(s) as unknown, { name: 'parse-json' });
    const out = driver.collect(parsed);
    await driver.start();
    input.push(['{"ok":1}']);
    await driver.advance();
    input.push(['not json']);
    await assert.rejects(driver.advance(), (e: unknown) => {
      assert.ok(e instanceof OperatorError);
      assert.equal(e.code, 'SLUICE_OPERATOR_FAILED');
      assert.equal(e.operator, 'parse-json');
      assert.equal(e.batchTime, 2000);
      assert.match(e.message, /parse-json/);
      assert.ok(e.cause instanceof SyntaxError);
      return true;
    });
    await assert.rejects(driver.context.awaitTermination(), OperatorError);
    assert.equal(driver.context.state, 'stopped');
    assert.equal(out.batches.length, 1, 'the failed batch produced no output');
  });

  it('keyed operators are typed on pairs (checked by test/typecheck.test.ts)', () => {
    const driver = new TestDriver();
    const words = driver.input<string>().stream;
    const pairs = words.mapToPair((w) => [w, 1]);
    const counts: DStream<[string, number]> = pairs.reduceByKey((a, b) => a + b);
    // @ts-expect-error reduceByKey needs a stream of [key, value] pairs
    const wrong = () => words.reduceByKey((a: number, b: number) => a + b);
    assert.equal(typeof wrong, 'function');
    assert.equal(counts.kind, 'reduceByKey');
  });

  it('an operator with a duplicate name is refused when the pipeline is built', () => {
    const driver = new TestDriver();
    const s = driver.input<number>().stream;
    s.map((x) => x, { name: 'double' });
    assert.throws(() => s.map((x) => x, { name: 'double' }), PipelineDefinitionError);
  });
});
