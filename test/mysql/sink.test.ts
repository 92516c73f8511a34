import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import { Batch } from '../../src/core/batch.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { MySqlOffsetStore, MySqlSink, type MySqlSinkOptions } from '../../src/mysql/index.js';
import { sinkConformance } from '../conformance/sink.js';
import { dropTables, mysqlUrl, plainPool, uniqueTable } from './helpers.js';

interface Rec {
  id: string;
  name: string;
  n: number;
}

const url = await mysqlUrl();
const admin = await plainPool();
const created: string[] = [];
after(async () => {
  await admin.end();
  await dropTables(...created);
});

const records = (n: number, seed: string): Rec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${seed}-${i}`, name: `name ${seed} ${i}`, n: i }));
const base = { columns: ['id', 'name', 'n'], toRow: (r: Rec) => [r.id, r.name, r.n] };
const ctx = { time: 1000, offsetRanges: [] };
const sinkCtx = {
  pipelineId: 'test',
  name: 'out',
  logger: silentLogger,
  signal: new AbortController().signal,
};

/** A new InnoDB table `(id varchar [primary key], name text, n int)`, compared byte for byte. */
async function table(prefix: string, primaryKey: boolean): Promise<string> {
  const t = uniqueTable(prefix);
  created.push(t);
  await admin.query(
    `CREATE TABLE ${t} (id VARCHAR(64) NOT NULL ${primaryKey ? 'PRIMARY KEY' : ''}, name TEXT, n INT)
     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  );
  return t;
}

async function readBack(t: string): Promise<Rec[]> {
  const [rows] = await admin.query<mysql.RowDataPacket[]>(`SELECT id, name, n FROM ${t}`);
  return rows.map((r) => ({ id: r.id as string, name: r.name as string, n: r.n as number }));
}

async function count(t: string): Promise<number> {
  const [rows] = await admin.query<mysql.RowDataPacket[]>(
    `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM ${t}`,
  );
  assert.equal(Number(rows[0]!.n), Number(rows[0]!.ids), 'no duplicate ids');
  return Number(rows[0]!.n);
}

for (const mode of ['insert', 'upsert'] as const) {
  sinkConformance(`MySqlSink (${mode})`, async () => {
    const t = await table(`sink_${mode}`, mode === 'upsert');
    const offsets = uniqueTable('sink_offsets');
    created.push(offsets);
    const store = new MySqlOffsetStore({ connection: url, table: offsets });
    const sink = new MySqlSink<Rec>({
      ...base,
      store,
      table: t,
      mode,
      ...(mode === 'upsert' ? { key: ['id'] } : {}),
    });
    return { sink, readBack: () => readBack(t), records, cleanup: () => store.close() };
  });
}

/** A pool that records the text of every statement its connections send. */
function countingPool(): { pool: mysql.Pool; statements: string[] } {
  const statements: string[] = [];
  const pool = mysql.createPool({ uri: url, connectionLimit: 2 });
  // 'connection' hands over each new callback-style connection, which the promise API calls into.
  pool.on('connection', (conn) => {
    const c = conn as unknown as Record<'query' | 'execute', (...args: unknown[]) => unknown>;
    for (const method of ['query', 'execute'] as const) {
      const original = c[method].bind(c);
      c[method] = (...args: unknown[]) => {
        const q = args[0];
        statements.push(typeof q === 'string' ? q : (q as { sql: string }).sql);
        return original(...args);
      };
    }
  });
  return { pool, statements };
}

describe('MySqlSink', () => {
  const sinks: MySqlSink<Rec>[] = [];
  const make = (options: Partial<MySqlSinkOptions<Rec>> & { table: string; mode: 'insert' | 'upsert' }) => {
    const where = options.pool || options.connection ? {} : { connection: url };
    const s = new MySqlSink<Rec>({ ...where, ...base, ...options });
    sinks.push(s);
    return s;
  };
  after(async () => {
    for (const s of sinks) await s.close();
  });

  it('writes a batch of 20,000 rows with 20 multi-row INSERTs in one transaction', async () => {
    const t = await table('sink_big', false);
    const { pool, statements } = countingPool();
    const sink = make({ pool, table: t, mode: 'insert' });
    try {
      await sink.write(Batch.of(records(20_000, 'big'), 4), ctx);
      assert.equal(statements.filter((s) => s.startsWith('INSERT')).length, 20);
      assert.deepEqual(
        statements.filter((s) => !s.startsWith('INSERT')),
        ['SET TRANSACTION ISOLATION LEVEL READ COMMITTED', 'START TRANSACTION', 'COMMIT'],
      );
      assert.equal(await count(t), 20_000);
    } finally {
      await pool.end();
    }
  });

  it('upserts 21,845 rows of 3 columns in one statement: exactly the 65,535-placeholder limit', async () => {
    const t = await table('sink_big_upsert', true);
    const { pool, statements } = countingPool();
    const max = Math.floor(65535 / 3);
    const sink = make({ pool, table: t, mode: 'upsert', key: ['id'], rowsPerStatement: max });
    try {
      await sink.write(Batch.of(records(max, 'big'), 4), ctx);
      await sink.write(Batch.of(records(max, 'big'), 4), ctx);
      assert.equal(statements.filter((s) => s.startsWith('INSERT')).length, 2);
      assert.equal(await count(t), max);
    } finally {
      await pool.end();
    }
  });

  it('write keeps none of a batch whose later statement fails', async () => {
    const t = await table('sink_atomic', false);
    const sink = make({ table: t, mode: 'insert', rowsPerStatement: 100 });
    const recs: Rec[] = records(250, 'atomic');
    recs[220] = { ...recs[220]!, id: null as unknown as string }; // NOT NULL violation in the third statement
    await assert.rejects(sink.write(Batch.of(recs), ctx), /cannot be null/);
    assert.deepEqual(await readBack(t), []);
  });

  it('in upsert mode, the last record of a key in a batch wins', async () => {
    const t = await table('sink_dupkeys', true);
    const sink = make({ table: t, mode: 'upsert', key: ['id'], rowsPerStatement: 2 });
    const batch = Batch.of([
      { id: 'a', name: 'first', n: 1 },
      { id: 'a', name: 'second', n: 2 },
      { id: 'b', name: 'only', n: 3 },
      { id: 'a', name: 'last', n: 4 },
    ]);
    await sink.write(batch, ctx);
    assert.deepEqual(
      (await readBack(t)).sort((x, y) => x.id.localeCompare(y.id)),
      [
        { id: 'a', name: 'last', n: 4 },
        { id: 'b', name: 'only', n: 3 },
      ],
    );
  });

  it('stores values with quotes, backslashes, semicolons and placeholders verbatim', async () => {
    const t = await table('sink_verbatim', false);
    const sink = make({ table: t, mode: 'insert' });
    const tricky = [
      `O'Brien`,
      `x'); DROP TABLE ${t}; --`,
      `"double" \\ back\\slash \\' \\0`,
      '? ?? :name $1',
      'semi;colon\nnew line\ttab',
      'ünïcødé 🚀',
      '',
    ];
    const recs = tricky.map((name, i) => ({ id: `v${i}`, name, n: i }));
    await sink.write(Batch.of(recs), ctx);
    assert.deepEqual(
      (await readBack(t)).sort((a, b) => a.n - b.n),
      recs,
    );
  });

  it('open fails when the table or a column does not exist', async () => {
    const t = await table('sink_open', false);
    await assert.rejects(make({ table: `${t}_missing`, mode: 'insert' }).open(sinkCtx), /doesn't exist/);
    await assert.rejects(
      make({ table: t, mode: 'insert', columns: ['id', 'nope'], toRow: (r) => [r.id, r.n] }).open(sinkCtx),
      /Unknown column 'nope'/,
    );
    await make({ table: t, mode: 'insert' }).open(sinkCtx);
  });

  it('open refuses an upsert key that is not the primary key or a unique index of the table', async () => {
    const plain = await table('sink_nokey', false);
    const keyed = await table('sink_key', true);
    await assert.rejects(
      make({ table: plain, mode: 'upsert', key: ['id'] }).open(sinkCtx),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'key',
    );
    await assert.rejects(
      make({ table: keyed, mode: 'upsert', key: ['id', 'n'] }).open(sinkCtx),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'key',
    );
    await make({ table: keyed, mode: 'upsert', key: ['id'] }).open(sinkCtx);
  });

  it('refuses a record that toRow does not turn into one value per column', async () => {
    const t = await table('sink_arity', false);
    const sink = make({ table: t, mode: 'insert', toRow: (r) => [r.id, r.name] });
    await assert.rejects(
      sink.write(Batch.of(records(1, 'x')), ctx),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'toRow',
    );
  });

  it('refuses invalid options with InvalidOptionError naming the option', () => {
    const cases: [string, Partial<MySqlSinkOptions<Rec>>][] = [
      ['table', { table: 'orders; DROP TABLE x' }],
      ['table', { table: 'my-orders' }],
      ['columns', { columns: [] }],
      ['columns', { columns: ['id', 'na`me'] }],
      ['columns', { columns: ['id', 'id'] }],
      ['key', { mode: 'upsert' }],
      ['key', { mode: 'upsert', key: [] }],
      ['key', { mode: 'upsert', key: ['other'] }],
      ['key', { mode: 'insert', key: ['id'] }],
      ['mode', { mode: 'merge' as 'insert' }],
      ['toRow', { toRow: undefined }],
      ['rowsPerStatement', { rowsPerStatement: 1.5 }],
      ['rowsPerStatement', { rowsPerStatement: Math.floor(65535 / 3) + 1 }],
      ['store', { store: new MySqlOffsetStore({ pool: admin }) }],
    ];
    for (const [option, bad] of cases) {
      assert.throws(
        () =>
          new MySqlSink<Rec>({
            connection: url,
            table: 'orders',
            mode: 'insert',
            ...base,
            ...bad,
          } as MySqlSinkOptions<Rec>),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option,
        `${option}: ${Object.keys(bad).join(', ')}`,
      );
    }
  });

  it('is idempotent exactly in upsert mode, and describe never shows the password', () => {
    const upsert = make({
      connection: 'mysql://app:hunter2@db.example/prod',
      table: 'orders',
      mode: 'upsert',
      key: ['id'],
    });
    const insert = make({ connection: { host: 'h', password: 'hunter2' }, table: 'orders', mode: 'insert' });
    assert.equal(upsert.idempotent, true);
    assert.equal(insert.idempotent, false);
    assert.deepEqual(upsert.describe(), {
      host: 'db.example',
      port: 3306,
      database: 'prod',
      user: 'app',
      table: 'orders',
      columns: ['id', 'name', 'n'],
      mode: 'upsert',
      key: ['id'],
      rowsPerStatement: 1000,
      offsetsTable: 'sluice_offsets',
    });
    assert.doesNotMatch(JSON.stringify(insert.describe()), /hunter2/);
  });
});
