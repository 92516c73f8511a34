import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Batch } from '../../src/core/batch.js';
import { StreamingContext } from '../../src/core/context.js';
import { InvalidOptionError, SluiceError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { QueueSource, queueStream } from '../../src/core/queue-source.js';
import { ManualClock } from '../../src/core/clock.js';
import {
  SqlEngine,
  SqlEngineClosedError,
  SqlError,
  SqlSchemaError,
  type SqlRow,
} from '../../src/duckdb/index.js';
import { inferColumns } from '../../src/duckdb/schema.js';

let sql: SqlEngine;
before(async () => {
  sql = await SqlEngine.create({ threads: 2 });
});
after(async () => {
  await sql.close();
});

/** The error `promise` rejects with, checked to be an instance of `type`. */
async function rejection<E extends Error>(
  promise: Promise<unknown>,
  type: new (...a: any[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${type.name}, but the promise resolved`);
}

describe('SqlEngine.query: tables in, typed rows out', () => {
  it('returns safe integers as numbers, wider ones as bigint, and doubles, strings, booleans, Dates and JSON as JS values', async () => {
    const when = new Date('2024-03-01T12:34:56.789Z');
    const rows = await sql.query<{
      id: number;
      big: bigint;
      total: number;
      ratio: number;
      name: string;
      ok: boolean;
      seen_at: Date;
      day: Date;
      tags: string[];
      meta: { a: number };
      n: number;
    }>(
      {
        t: [
          {
            id: 1,
            big: 2n ** 70n,
            ratio: 0.25,
            name: 'x',
            ok: true,
            seen_at: when,
            tags: ['a', 'b'],
            meta: { a: 1 },
          },
        ],
      },
      `select id, big, sum(id) over () as total, ratio, name, ok, seen_at, seen_at::date as day, tags, meta,
              (select count(*) from t) as n from t`,
    );
    assert.deepEqual(rows, [
      {
        id: 1,
        big: 2n ** 70n,
        total: 1,
        ratio: 0.25,
        name: 'x',
        ok: true,
        seen_at: when,
        day: new Date('2024-03-01T00:00:00Z'),
        tags: ['a', 'b'],
        meta: { a: 1 },
        n: 1,
      },
    ]);
    assert.equal(typeof rows[0]!.total, 'number', 'sum() is HUGEINT in DuckDB, a number here when safe');
    assert.equal(typeof rows[0]!.big, 'bigint');
  });

  it('loads a Batch across its partitions, arrays of tuples as _1, _2 and scalar records as value', async () => {
    const batch = Batch.of(
      Array.from({ length: 10 }, (_, i) => ({ i })),
      3,
    );
    assert.deepEqual(await sql.query({ b: batch }, 'select count(*) as n, sum(i) as s from b'), [
      { n: 10, s: 45 },
    ]);
    assert.deepEqual(
      await sql.query(
        {
          pairs: Batch.of([
            ['a', 1],
            ['b', 2],
          ] as [string, number][]),
        },
        'select _1, _2 from pairs order by _2',
      ),
      [
        { _1: 'a', _2: 1 },
        { _1: 'b', _2: 2 },
      ],
    );
    assert.deepEqual(
      await sql.query(
        { words: ['x', 'y', 'x'] },
        'select value, count(*) as n from words group by value order by value',
      ),
      [
        { value: 'x', n: 2 },
        { value: 'y', n: 1 },
      ],
    );
  });

  it('loads more rows than one DuckDB chunk (2048) without losing or mixing any', async () => {
    const records = Array.from({ length: 5000 }, (_, i) => ({ i, label: `r${i}` }));
    const [r] = await sql.query<{ n: number; s: number; last: string }>(
      { big: records },
      'select count(*) as n, sum(i) as s, max_by(label, i) as last from big',
    );
    assert.deepEqual(r, { n: 5000, s: (4999 * 5000) / 2, last: 'r4999' });
  });

  it('joins several tables in one query', async () => {
    const rows = await sql.query(
      {
        logs: [
          { ip: '1.1.1.1', path: '/a' },
          { ip: '2.2.2.2', path: '/b' },
          { ip: '3.3.3.3', path: '/c' },
        ],
        blacklist: [{ ip: '2.2.2.2' }],
      },
      'select l.ip, l.path from logs l left join blacklist b on l.ip = b.ip where b.ip is null order by l.ip',
    );
    assert.deepEqual(rows, [
      { ip: '1.1.1.1', path: '/a' },
      { ip: '3.3.3.3', path: '/c' },
    ]);
  });

  it('names repeated result columns name, name:1', async () => {
    assert.deepEqual(await sql.query({ t: [{ a: 1 }] }, 'select a, a from t'), [{ a: 1, 'a:1': 1 }]);
  });
});

describe('SqlEngine.query: bound parameters', () => {
  const people = [
    { name: "O'Brien; drop table people; --", age: 40 },
    { name: 'Ann', age: 30 },
  ];

  it('binds positional ($1 and ?) and named ($name) parameters', async () => {
    assert.deepEqual(
      await sql.query({ people }, 'select name from people where age > $1 and age < $2', [35, 50]),
      [{ name: people[0]!.name }],
    );
    assert.deepEqual(await sql.query({ people }, 'select name from people where age = ?', [30]), [
      { name: 'Ann' },
    ]);
    assert.deepEqual(await sql.query({ people }, 'select name from people where age = $age', { age: 30 }), [
      { name: 'Ann' },
    ]);
  });

  it('treats a value with quotes, semicolons and comments as data: it matches itself and runs nothing', async () => {
    const evil = "O'Brien; drop table people; --";
    assert.deepEqual(await sql.query({ people }, 'select age from people where name = $1', [evil]), [
      { age: 40 },
    ]);
    assert.deepEqual(
      await sql.query({ people }, 'select count(*) as n from people where name = $1', ["x' or '1'='1"]),
      [{ n: 0 }],
    );
    // The text of a loaded field is not SQL either: it arrives verbatim.
    assert.deepEqual(await sql.query({ people }, 'select name from people order by age desc limit 1'), [
      { name: evil },
    ]);
    assert.deepEqual(await sql.query({ people }, 'select count(*) as n from people'), [{ n: 2 }]);
  });

  it('binds bigints, Dates, null and arrays (as a LIST for = any(...))', async () => {
    const [row] = await sql.query<SqlRow>(
      { t: [{ x: 1 }] },
      'select $1::hugeint as big, $2 as at, $3 is null as isnull, 2 = any($4) as has2, $5 as words',
      [2n ** 80n, new Date(86_400_000), null, [1, 2, 3], ['a', 'b']],
    );
    assert.deepEqual(row, {
      big: 2n ** 80n,
      at: new Date(86_400_000),
      isnull: true,
      has2: true,
      words: ['a', 'b'],
    });
  });

  it('refuses a parameter value that has no SQL type, before running anything', async () => {
    const e = await rejection(
      sql.query({ t: [{ x: 1 }] }, 'select $1', [{ an: 'object' } as never]),
      InvalidOptionError,
    );
    assert.match(e.message, /params\[0\]/);
  });
});

describe('SqlEngine.query: window functions', () => {
  it('ranks rows within each partition with row_number() over (partition by ... order by ...)', async () => {
    const sales = [
      { category: 'phone', brand: 'A', sales: 10 },
      { category: 'phone', brand: 'B', sales: 30 },
      { category: 'phone', brand: 'C', sales: 20 },
      { category: 'phone', brand: 'D', sales: 5 },
      { category: 'tv', brand: 'X', sales: 7 },
      { category: 'tv', brand: 'Y', sales: 9 },
    ];
    const rows = await sql.query<{ category: string; brand: string; rn: number; running: number }>(
      { sales },
      `select category, brand, rn, running from (
         select *, row_number() over (partition by category order by sales desc) as rn,
                sum(sales) over (partition by category order by sales desc) as running
         from sales)
       where rn <= 3 order by category, rn`,
    );
    assert.deepEqual(rows, [
      { category: 'phone', brand: 'B', rn: 1, running: 30 },
      { category: 'phone', brand: 'C', rn: 2, running: 50 },
      { category: 'phone', brand: 'A', rn: 3, running: 60 },
      { category: 'tv', brand: 'Y', rn: 1, running: 9 },
      { category: 'tv', brand: 'X', rn: 2, running: 16 },
    ]);
  });

  it('supports lag, rank and framed windows', async () => {
    const rows = await sql.query(
      { t: [1, 2, 2, 5].map((v, i) => ({ i, v })) },
      `select i, lag(v) over w as prev, rank() over (order by v) as r,
              avg(v) over (order by i rows between 1 preceding and current row) as avg2
       from t window w as (order by i) order by i`,
    );
    assert.deepEqual(rows, [
      { i: 0, prev: null, r: 1, avg2: 1 },
      { i: 1, prev: 1, r: 2, avg2: 1.5 },
      { i: 2, prev: 2, r: 2, avg2: 2 },
      { i: 3, prev: 2, r: 4, avg2: 3.5 },
    ]);
  });
});

describe('SqlEngine.query: empty tables', () => {
  it('runs the query on an empty table that has a schema (count is 0, a select returns no rows)', async () => {
    const empty = { rows: Batch.empty<object>(), schema: { ip: 'VARCHAR', hits: 'BIGINT' } } as const;
    assert.deepEqual(
      await sql.query({ empty_t: empty }, 'select count(*) as n, sum(hits) as s from empty_t'),
      [{ n: 0, s: null }],
    );
    assert.deepEqual(await sql.query({ empty_t: empty }, 'select * from empty_t'), []);
  });

  it('refuses an empty table without a schema whose name never had rows, saying to pass a schema', async () => {
    const e = await rejection(sql.query({ never_seen: [] }, 'select * from never_seen'), SqlSchemaError);
    assert.equal(e.code, 'SLUICE_SQL_SCHEMA');
    assert.equal(e.problem, 'no-columns');
    assert.equal(e.table, 'never_seen');
    assert.match(e.message, /schema/);
  });

  it('carries no columns from one query to the next: an empty table without a schema is refused even after one with rows', async () => {
    await sql.query({ events: [{ kind: 'a', n: 1 }] }, 'select * from events');
    const e = await rejection(
      sql.query({ events: Batch.empty() }, 'select count(*) from events'),
      SqlSchemaError,
    );
    assert.equal(e.problem, 'no-columns');
  });

  it('takes a schema as an array of columns, keeping an order object keys cannot', async () => {
    const rows = await sql.query(
      {
        t: {
          rows: [{ '2': 'b', '1': 'a' }],
          schema: [
            { name: '2', type: 'VARCHAR' },
            { name: '1', type: 'VARCHAR' },
          ],
        },
      },
      "select concat_ws(',', *columns(*)) as s from t",
    );
    assert.deepEqual(rows, [{ s: 'b,a' }]);
  });

  it('infers no table at all from an empty array of records with an empty object in it', async () => {
    const e = await rejection(sql.query({ blank: [{}] }, 'select 1 from blank'), SqlSchemaError);
    assert.equal(e.problem, 'no-columns');
  });
});

describe('SqlEngine.query: mixed and nullable fields', () => {
  it('makes a column of every field seen, NULL where a record lacks it, and widens conflicting types', async () => {
    const records = [
      { id: 1, score: 1, note: 'first', extra: null },
      { id: 2, score: 2.5, code: 7 },
      { id: 3, note: null, code: 'x9', extra: undefined },
      { id: 4, score: null, flag: true },
    ];
    assert.deepEqual(
      inferColumns('t', records).map((c) => `${c.name} ${c.type}`),
      ['id BIGINT', 'score DOUBLE', 'note VARCHAR', 'extra VARCHAR', 'code VARCHAR', 'flag BOOLEAN'],
    );
    const rows = await sql.query({ t: records }, 'select * from t order by id');
    assert.deepEqual(rows, [
      { id: 1, score: 1, note: 'first', extra: null, code: null, flag: null },
      { id: 2, score: 2.5, note: null, extra: null, code: '7', flag: null },
      { id: 3, score: null, note: null, extra: null, code: 'x9', flag: null },
      { id: 4, score: null, note: null, extra: null, code: null, flag: true },
    ]);
    assert.deepEqual(await sql.query({ t: records }, 'select count(score) as scored, count(*) as n from t'), [
      { scored: 2, n: 4 },
    ]);
  });

  it('loads null and undefined records as rows of NULLs', async () => {
    assert.deepEqual(
      await sql.query({ t: [{ a: 1 }, null, undefined] }, 'select count(*) as n, count(a) as a from t'),
      [{ n: 3, a: 1 }],
    );
  });

  it('checks values against an explicit schema: other fields are ignored, a value that does not fit names its row and column', async () => {
    const schema = { brand: 'VARCHAR', sales: 'BIGINT' } as const;
    assert.deepEqual(
      await sql.query(
        { t: { rows: [{ brand: 'A', sales: 3, ignored: { deep: true } }, { brand: 'B' }], schema } },
        'select * from t',
      ),
      [
        { brand: 'A', sales: 3 },
        { brand: 'B', sales: null },
      ],
    );
    const e = await rejection(
      sql.query(
        {
          t: {
            rows: [
              { brand: 'A', sales: 3 },
              { brand: 'B', sales: '4' },
            ],
            schema,
          },
        },
        'select * from t',
      ),
      SqlSchemaError,
    );
    assert.equal(e.problem, 'value-does-not-fit');
    assert.match(e.message, /row 2, column 'sales' \(BIGINT\): "4" does not fit/);
  });

  it('loads every SQL type of an explicit schema and reads it back as the documented JS value', async () => {
    const at = new Date('2024-02-29T23:59:59.123Z');
    const schema = {
      b: 'BOOLEAN',
      i: 'INTEGER',
      l: 'BIGINT',
      h: 'HUGEINT',
      d: 'DOUBLE',
      s: 'VARCHAR',
      ts: 'TIMESTAMP',
      tz: 'TIMESTAMPTZ',
      day: 'DATE',
      bytes: 'BLOB',
      j: 'JSON',
    } as const;
    const rows = await sql.query(
      {
        t: {
          rows: [
            {
              b: false,
              i: -5,
              l: 2n ** 62n,
              h: -(2n ** 100n),
              d: -1.5,
              s: 12,
              ts: at,
              tz: at.getTime(),
              day: at,
              bytes: Buffer.from('hi'),
              j: { k: [1, 'x', null] },
            },
          ],
          schema,
        },
      },
      'select * from t',
    );
    assert.deepEqual(rows, [
      {
        b: false,
        i: -5,
        l: 2n ** 62n,
        h: -(2n ** 100n),
        d: -1.5,
        s: '12',
        ts: at,
        tz: at,
        day: new Date('2024-02-29T00:00:00Z'),
        bytes: Buffer.from('hi'),
        j: { k: [1, 'x', null] },
      },
    ]);
  });

  it('refuses fields whose names differ only in case, and functions as values', async () => {
    const dup = await rejection(sql.query({ t: [{ a: 1, A: 2 }] }, 'select 1'), SqlSchemaError);
    assert.equal(dup.problem, 'duplicate-column');
    const fn = await rejection(sql.query({ t: [{ f: () => 1 }] }, 'select 1'), SqlSchemaError);
    assert.equal(fn.problem, 'unsupported-value');
  });

  it('refuses a table name that is not a plain identifier', async () => {
    const e = await rejection(sql.query({ 'x; drop': [{ a: 1 }] }, 'select 1'), SqlSchemaError);
    assert.equal(e.problem, 'invalid-table-name');
  });
});

describe('SqlEngine.query: errors say where in the query', () => {
  const t = { t: [{ a: 1, b: 'x' }] };

  it('gives a binder error its line, column, the line of the query and a caret, with a stable code', async () => {
    const text = 'select a,\n       nope + 1\nfrom t';
    const e = await rejection(sql.query(t, text), SqlError);
    assert.equal(e.code, 'SLUICE_SQL_QUERY');
    assert.equal(SqlError.code, 'SLUICE_SQL_QUERY');
    assert.ok(e instanceof SluiceError);
    assert.equal(e.kind, 'Binder');
    assert.deepEqual(e.position, { offset: 17, line: 2, column: 8 });
    assert.equal(e.excerpt, '  2 |        nope + 1\n    |        ^');
    assert.ok(
      e.message.startsWith('SQL Binder error at line 2, column 8: Referenced column "nope" not found'),
      e.message,
    );
    assert.ok(e.message.includes(e.excerpt), e.message);
    assert.match(e.message, /t\(a BIGINT, b VARCHAR\)/, 'the hint lists the tables and their columns');
    assert.equal(e.query, text);
  });

  it('places a syntax error on its line, counting characters (not bytes) after multi-byte text', async () => {
    const text = "select 'héllo wörld' as greeting\nfrom t\nwhere a = 1 grop by a";
    const e = await rejection(sql.query(t, text), SqlError);
    assert.equal(e.kind, 'Parser');
    assert.equal(e.position?.line, 3);
    assert.equal(e.position?.column, 13);
    assert.equal(text.slice(e.position!.offset, e.position!.offset + 4), 'grop');
    assert.match(e.message, /at line 3, column 13: syntax error at or near "grop"/);
    assert.ok(e.message.includes('  3 | where a = 1 grop by a\n    |             ^'), e.message);
  });

  it('places binder and parser errors right after emoji and accents (DuckDB counts bytes for one, characters for the other)', async () => {
    const binder = await rejection(sql.query(t, "select '😀 é' as g, nope from t"), SqlError);
    assert.equal(binder.kind, 'Binder');
    assert.equal(binder.position?.column, "select '😀 é' as g, ".length + 1);
    const parser = await rejection(sql.query(t, "select '😀 é' as g frm t"), SqlError);
    assert.equal(parser.kind, 'Parser');
    assert.equal(parser.position?.column, "select '😀 é' as g ".length + 1);
    assert.match(parser.detail, /near "frm"/);
  });

  it('reports unknown tables and functions (Catalog errors) with their position', async () => {
    const e1 = await rejection(sql.query(t, 'select * from missing_table'), SqlError);
    assert.equal(e1.kind, 'Catalog');
    assert.deepEqual(e1.position, { offset: 14, line: 1, column: 15 });
    const e2 = await rejection(sql.query(t, 'select a,\n  no_such_fn(a) from t'), SqlError);
    assert.equal(e2.kind, 'Catalog');
    assert.equal(e2.position?.line, 2);
    assert.equal(e2.position?.column, 3);
  });

  it('reports a bound value that cannot be converted at the cast that converts it', async () => {
    const e = await rejection(sql.query(t, 'select a from t\nwhere a = $1::integer', ['abc']), SqlError);
    assert.equal(e.kind, 'Conversion');
    assert.equal(e.position?.line, 2);
    assert.match(e.detail, /abc/);
  });

  it('reports errors DuckDB gives no position for (a missing parameter) without one', async () => {
    const e = await rejection(sql.query(t, 'select a from t where a = $1 and b = $2', [1]), SqlError);
    assert.equal(e.position, undefined);
    assert.equal(e.excerpt, '');
    assert.equal(e.code, 'SLUICE_SQL_QUERY');
    assert.match(e.message, /^SQL \S.* error: /);
  });

  it('cuts a long line around the error in the excerpt', async () => {
    const text = `select ${Array.from({ length: 40 }, (_, i) => `a as c${i}`).join(', ')}, zzz from t`;
    const e = await rejection(sql.query(t, text), SqlError);
    const [line, caret] = e.excerpt.split('\n');
    assert.ok(line!.length < 120, line);
    assert.ok(line!.includes('...'));
    assert.equal(line![caret!.indexOf('^')], 'z', e.excerpt);
  });

  it('leaves the engine usable after an error: the next query gets fresh tables', async () => {
    await rejection(sql.query({ t: [{ a: 1 }] }, 'select nope from t'), SqlError);
    assert.deepEqual(await sql.query({ t: [{ a: 2 }, { a: 3 }] }, 'select sum(a) as s from t'), [{ s: 5 }]);
  });
});

describe('SqlEngine: concurrency and closing', () => {
  it('runs concurrent queries over tables of the same name without mixing their rows', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, k) =>
        sql.query<{ s: number; n: number }>(
          { batch: Array.from({ length: 100 * (k + 1) }, () => ({ k })) },
          'select sum(k) as s, count(*) as n from batch',
        ),
      ),
    );
    assert.deepEqual(
      results.map(([r]) => r),
      Array.from({ length: 8 }, (_, k) => ({ s: k * 100 * (k + 1), n: 100 * (k + 1) })),
    );
  });

  it('close waits for running queries, then refuses new ones with SqlEngineClosedError; closing twice is fine', async () => {
    const engine = new SqlEngine({ threads: 1 });
    const running = engine.query(
      { t: Array.from({ length: 3000 }, (_, i) => ({ i })) },
      'select count(*) as n from t',
    );
    const closed = engine.close();
    assert.equal(engine.closed, true);
    assert.deepEqual(await running, [{ n: 3000 }]);
    await closed;
    const e = await rejection(engine.query({}, 'select 1'), SqlEngineClosedError);
    assert.equal(e.code, 'SLUICE_SQL_ENGINE_CLOSED');
    await engine.close();
  });

  it('closes with the context it is tied to', async () => {
    const clock = new ManualClock(0);
    const ctx = new StreamingContext({ batchInterval: 1000, clock, logger: silentLogger });
    const engine = new SqlEngine({ closeWith: ctx });
    queueStream(ctx, new QueueSource<number>()).foreachBatch(() => {});
    await ctx.start();
    assert.deepEqual(await engine.query({}, 'select 42 as x'), [{ x: 42 }]);
    await ctx.stop();
    await rejection(engine.query({}, 'select 1'), SqlEngineClosedError);
  });

  it('validates its options', () => {
    assert.throws(() => new SqlEngine({ threads: 0 }), InvalidOptionError);
  });
});
