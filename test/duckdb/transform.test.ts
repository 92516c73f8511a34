import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OperatorError } from '../../src/core/errors.js';
import { TestDriver } from '../../src/core/testing/driver.js';
import { SqlEngine, SqlError, sqlTransform } from '../../src/duckdb/index.js';

let sql: SqlEngine;
before(async () => {
  sql = await SqlEngine.create({ threads: 2 });
});
after(async () => {
  await sql.close();
});

interface Sale {
  category: string;
  brand: string;
  sales: number;
}

/** The top `n` brands per category of running totals, computed without SQL: sales desc, then brand. */
function topN(totals: Map<string, Sale>, n: number): Sale[] {
  const byCategory = new Map<string, Sale[]>();
  for (const s of totals.values()) byCategory.set(s.category, [...(byCategory.get(s.category) ?? []), s]);
  return [...byCategory.keys()].sort().flatMap((c) =>
    byCategory
      .get(c)!
      .sort((a, b) => b.sales - a.sales || a.brand.localeCompare(b.brand))
      .slice(0, n),
  );
}

describe('sqlTransform in a pipeline (TestDriver)', () => {
  it('ranks the running totals of updateStateByKey per category after every batch, as computed independently', async () => {
    const driver = new TestDriver({ batchInterval: 1000 });
    const input = driver.input<string>({ name: 'lines' });
    const totals = input.stream
      .map((line) => line.split(' '))
      .mapToPair(([, brand, category]) => [[category!, brand!] as const, 1])
      .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length, { name: 'totals' });
    const top2 = driver.collect(
      totals
        .map(([[category, brand], sales]): Sale => ({ category, brand, sales }))
        .transform(
          sqlTransform<Sale>(
            sql,
            `select category, brand, sales from (
               select *, row_number() over (partition by category order by sales desc, brand) as rn from totals)
             where rn <= $1 order by category, rn`,
            {
              table: 'totals',
              params: [2],
              schema: { category: 'VARCHAR', brand: 'VARCHAR', sales: 'BIGINT' },
            },
          ),
          { name: 'top2' },
        ),
    );
    const batches = [
      ['1 A phone', '2 B phone', '3 B phone', '4 X tv'],
      ['5 C phone', '6 C phone', '7 C phone', '8 Y tv', '9 Y tv'],
      [],
      ['10 A phone', '11 A phone', '12 A phone', '13 X tv', '14 X tv', '15 Z tv'],
    ];
    const running = new Map<string, Sale>();
    const expected: Sale[][] = [];
    for (const b of batches) {
      for (const line of b) {
        const [, brand, category] = line.split(' ') as [string, string, string];
        const k = `${category}|${brand}`;
        running.set(k, { category, brand, sales: (running.get(k)?.sales ?? 0) + 1 });
      }
      expected.push(topN(running, 2));
    }
    await driver.start();
    for (const b of batches) {
      input.push(b);
      await driver.advance();
    }
    await driver.stop();
    assert.deepEqual(top2.all(), expected);
    assert.deepEqual(top2.last(), [
      { category: 'phone', brand: 'A', sales: 4 },
      { category: 'phone', brand: 'C', sales: 3 },
      { category: 'tv', brand: 'X', sales: 3 },
      { category: 'tv', brand: 'Y', sales: 2 },
    ]);
  });

  it('queries the [key, state] pairs of a state snapshot directly as columns _1 and _2', async () => {
    const driver = new TestDriver();
    const input = driver.input<string>();
    const out = driver.collect(
      input.stream
        .mapToPair((w) => [w, 1])
        .updateStateByKey((vs: number[], s: number | undefined) => (s ?? 0) + vs.length)
        .transform(sqlTransform(sql, 'select _1 as word, _2 as n from batch where _2 >= 2 order by _1')),
    );
    await driver.start();
    input.push(['a', 'b', 'a']);
    await driver.advance();
    input.push(['b', 'c']);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(out.all(), [
      [{ word: 'a', n: 2 }],
      [
        { word: 'a', n: 2 },
        { word: 'b', n: 2 },
      ],
    ]);
  });

  it('gives an empty batch without a schema an empty result, and runs the query on it with a schema', async () => {
    const driver = new TestDriver();
    const input = driver.input<{ v: number }>();
    const inferred = driver.collect(
      input.stream.transform(
        sqlTransform(sql, 'select count(*) as n from fresh_table', { table: 'fresh_table' }),
      ),
    );
    const declared = driver.collect(
      input.stream.transform(
        sqlTransform(sql, 'select count(*) as n, coalesce(sum(v), 0) as s from batch', {
          schema: { v: 'BIGINT' },
        }),
      ),
    );
    await driver.start();
    input.push([]);
    await driver.advance();
    input.push([{ v: 2 }, { v: 3 }]);
    await driver.advance();
    input.push([]);
    await driver.advance();
    await driver.stop();
    // The first empty batch has no known columns: no query, no rows. Later ones take the last batch's columns.
    assert.deepEqual(inferred.all(), [[], [{ n: 2 }], [{ n: 0 }]]);
    assert.deepEqual(declared.all(), [[{ n: 0, s: 0 }], [{ n: 2, s: 5 }], [{ n: 0, s: 0 }]]);
  });

  it('binds parameters computed from the batch context and joins reference tables loaded per batch', async () => {
    const driver = new TestDriver({ startTime: 0 });
    const input = driver.input<{ ip: string }>();
    let blacklist = ['10.0.0.2'];
    const out = driver.collect(
      input.stream.transform(
        sqlTransform<{ ip: string; t: number }>(
          sql,
          'select l.ip, $t as t from batch l anti join banned b on l.ip = b.ip order by l.ip',
          {
            params: (ctx) => ({ t: ctx.time }),
            tables: async () => ({
              banned: { rows: blacklist.map((ip) => ({ ip })), schema: { ip: 'VARCHAR' } },
            }),
          },
        ),
      ),
    );
    await driver.start();
    input.push([{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    await driver.advance();
    blacklist = [];
    input.push([{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    await driver.advance();
    await driver.stop();
    assert.deepEqual(out.all(), [
      [{ ip: '10.0.0.1', t: 1000 }],
      [
        { ip: '10.0.0.1', t: 2000 },
        { ip: '10.0.0.2', t: 2000 },
      ],
    ]);
  });

  it('fails the batch with an OperatorError naming the operator, caused by the SqlError with its position', async () => {
    const driver = new TestDriver();
    const input = driver.input<{ v: number }>();
    driver.collect(
      input.stream.transform(sqlTransform(sql, 'select v,\n  w from batch'), { name: 'bad-sql' }),
    );
    await driver.start();
    input.push([{ v: 1 }]);
    await assert.rejects(driver.advance(), (e: unknown) => {
      assert.ok(e instanceof OperatorError);
      assert.equal(e.operator, 'bad-sql');
      assert.ok(e.cause instanceof SqlError);
      assert.equal(e.cause.position?.line, 2);
      assert.match(e.message, /line 2, column 3/);
      return true;
    });
    await driver.stop();
  });

  it('keeps the order of the query in one partition by default, and spreads rows over numPartitions when asked', async () => {
    const driver = new TestDriver();
    const input = driver.input<{ v: number }>();
    const one = driver.collect(
      input.stream.transform(sqlTransform(sql, 'select v from batch order by v desc')),
    );
    const three = driver.collect(
      input.stream.transform(sqlTransform(sql, 'select v from batch order by v', { numPartitions: 3 })),
    );
    await driver.start();
    input.push([3, 1, 4, 1, 5, 9, 2, 6].map((v) => ({ v })));
    await driver.advance();
    await driver.stop();
    assert.deepEqual(one.batches[0]!.partitions.length, 1);
    assert.deepEqual(
      one.last().map((r) => r.v),
      [9, 6, 5, 4, 3, 2, 1, 1],
    );
    assert.equal(three.batches[0]!.partitions.length, 3);
    assert.deepEqual(
      three
        .last()
        .map((r) => r.v)
        .sort(),
      [1, 1, 2, 3, 4, 5, 6, 9],
    );
  });
});
