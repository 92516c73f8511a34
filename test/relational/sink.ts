import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Batch } from '../../src/core/batch.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import type { SinkContext } from '../../src/core/sink.js';
import type { SqlSinkOptions } from '../../src/relational/sink.js';
import { sinkConformance } from '../conformance/sink.js';
import type { Sink, SqlFixture, Store, Where } from './fixture.js';

export interface Rec {
  id: string;
  name: string;
  n: number;
}

export const records = (n: number, seed: string): Rec[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${seed}-${i}`, name: `name ${seed} ${i}`, n: i }));
const base = { columns: ['id', 'name', 'n'], toRow: (r: Rec) => [r.id, r.name, r.n] };
export const sinkCtx: SinkContext = {
  pipelineId: 'test',
  name: 'out',
  logger: silentLogger,
  signal: new AbortController().signal,
};
const ctx = { time: 1000, offsetRanges: [] };

type Options<Pool, Conn> = Partial<Where<Pool> & SqlSinkOptions<Rec, Store<Pool, Conn>>> & {
  table: string;
  mode: 'insert' | 'upsert';
};

/** What a database's own sink tests get: a new table `(id [primary key], name, n)` and a sink, closed after. */
export interface SinkTestKit<Pool, Conn> {
  table(prefix: string, primaryKey: boolean): Promise<string>;
  make(options: Options<Pool, Conn>): Sink<Rec, Pool, Conn>;
}

/** The sink against one real server; `databaseTests` adds the database's own tests to the suite. */
export function sinkTests<Pool, Conn>(
  f: SqlFixture<Pool, Conn>,
  databaseTests: (kit: SinkTestKit<Pool, Conn>) => void = () => {},
): void {
  let admin: Pool;
  const created: string[] = [];
  const adminReady = f.plainPool().then((p) => (admin = p));
  after(async () => {
    await f.endPool(await adminReady);
    await f.dropTables(...created);
  });

  /** A new table `(id [primary key], name, n)`, ids compared byte for byte. */
  async function table(prefix: string, primaryKey: boolean): Promise<string> {
    await adminReady;
    const t = f.uniqueTable(prefix);
    created.push(t);
    await f.query(admin, f.ddl.sink(t, primaryKey));
    return t;
  }

  async function readBack(t: string): Promise<Rec[]> {
    const rows = await f.query(admin, `SELECT id, name, n FROM ${t}`);
    return rows.map((r) => ({ id: r.id as string, name: r.name as string, n: r.n as number }));
  }

  /** The rows of the table and its distinct ids. */
  async function count(t: string): Promise<{ n: number; ids: number }> {
    const rows = await f.query(admin, `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS ids FROM ${t}`);
    return { n: Number(rows[0]!.n), ids: Number(rows[0]!.ids) };
  }

  for (const mode of ['insert', 'upsert'] as const) {
    sinkConformance(`${f.sinkName} (${mode})`, async () => {
      const t = await table(`sink_${mode}`, mode === 'upsert');
      const offsets = f.uniqueTable('sink_offsets');
      created.push(offsets);
      const store = f.newStore({ connection: f.url, table: offsets });
      const sink = f.newSink<Rec>({
        ...base,
        store,
        table: t,
        mode,
        ...(mode === 'upsert' ? { key: ['id'] } : {}),
      });
      return { sink, readBack: () => readBack(t), records, cleanup: () => store.close() };
    });
  }

  describe(f.sinkName, () => {
    const sinks: Sink<Rec, Pool, Conn>[] = [];
    const make = (options: Options<Pool, Conn>) => {
      const where = options.pool || options.connection ? {} : { connection: f.url };
      const s = f.newSink<Rec>({ ...where, ...base, ...options });
      sinks.push(s);
      return s;
    };
    after(async () => {
      for (const s of sinks) await s.close();
    });

    it('writes a batch of 20,000 rows with 20 multi-row INSERTs in one transaction', async () => {
      const t = await table('sink_big', false);
      const { pool, statements } = f.countingPool();
      const sink = make({ pool, table: t, mode: 'insert' });
      try {
        await sink.write(Batch.of(records(20_000, 'big'), 4), ctx);
        assert.equal(statements.filter((s) => s.startsWith('INSERT')).length, 20);
        assert.deepEqual(
          statements.filter((s) => !s.startsWith('INSERT')),
          f.transactionStatements,
        );
        assert.deepEqual(await count(t), { n: 20_000, ids: 20_000 });
      } finally {
        await f.endPool(pool);
      }
    });

    it('upserts 21,845 rows of 3 columns in one statement: exactly the 65,535-parameter limit', async () => {
      const t = await table('sink_big_upsert', true);
      const { pool, statements } = f.countingPool();
      const max = Math.floor(65535 / 3);
      const sink = make({ pool, table: t, mode: 'upsert', key: ['id'], rowsPerStatement: max });
      try {
        await sink.write(Batch.of(records(max, 'big'), 4), ctx);
        await sink.write(Batch.of(records(max, 'big'), 4), ctx);
        assert.equal(statements.filter((s) => s.startsWith('INSERT')).length, 2);
        assert.deepEqual(await count(t), { n: max, ids: max });
      } finally {
        await f.endPool(pool);
      }
    });

    it('write keeps none of a batch whose later statement fails', async () => {
      const t = await table('sink_atomic', false);
      const sink = make({ table: t, mode: 'insert', rowsPerStatement: 100 });
      const recs: Rec[] = records(250, 'atomic');
      recs[220] = { ...recs[220]!, id: null as unknown as string }; // NOT NULL violation in the third statement
      await assert.rejects(sink.write(Batch.of(recs), ctx), f.errors.notNull);
      assert.deepEqual(await readBack(t), []);
    });

    it('in upsert mode, the last record of a key in a batch wins', async () => {
      // Two statements of two rows: the key twice in the first statement, and again in the second.
      const batches = [
        [
          { id: 'a', name: 'first', n: 1 },
          { id: 'b', name: 'only', n: 2 },
          { id: 'a', name: 'last', n: 3 },
        ],
        [
          { id: 'a', name: 'first', n: 1 },
          { id: 'a', name: 'second', n: 2 },
          { id: 'b', name: 'only', n: 3 },
          { id: 'a', name: 'last', n: 4 },
        ],
      ];
      for (const batch of batches) {
        const t = await table('sink_dupkeys', true);
        const sink = make({ table: t, mode: 'upsert', key: ['id'], rowsPerStatement: 2 });
        await sink.write(Batch.of(batch), ctx);
        assert.deepEqual(
          (await readBack(t)).sort((x, y) => x.id.localeCompare(y.id)),
          [batch.at(-1)!, batch.find((r) => r.id === 'b')!],
        );
      }
    });

    it('stores values with quotes, backslashes, semicolons and placeholders verbatim', async () => {
      const t = await table('sink_verbatim', false);
      const sink = make({ table: t, mode: 'insert' });
      const tricky = [
        `O'Brien`,
        `x'); DROP TABLE ${t}; --`,
        `"double" \\ back\\slash`,
        `"double" \\ back\\slash \\' \\0`,
        '$1 $2 ? :name',
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
      await assert.rejects(
        make({ table: `${t}_missing`, mode: 'insert' }).open(sinkCtx),
        f.errors.missingTable,
      );
      await assert.rejects(
        make({ table: t, mode: 'insert', columns: ['id', 'nope'], toRow: (r) => [r.id, r.n] }).open(sinkCtx),
        f.errors.missingColumn,
      );
      await make({ table: t, mode: 'insert' }).open(sinkCtx);
    });

    it('refuses a record that toRow does not turn into one value per column', async () => {
      const t = await table('sink_arity', false);
      const sink = make({ table: t, mode: 'insert', toRow: (r) => [r.id, r.name] });
      await assert.rejects(
        sink.write(Batch.of(records(1, 'x')), ctx),
        (e: unknown) => e instanceof InvalidOptionError && e.option === 'toRow',
      );
    });

    it('refuses invalid options with InvalidOptionError naming the option', async () => {
      await adminReady;
      const cases: [string, Partial<Options<Pool, Conn>>][] = [
        ['table', { table: 'orders; DROP TABLE x' }],
        ['table', { table: 'my-orders' }],
        ['columns', { columns: [] }],
        ['columns', { columns: ['id', 'na me'] }],
        ['columns', { columns: ['id', 'na`me'] }],
        ['columns', { columns: ['id', 'id'] }],
        ['key', { mode: 'upsert' }],
        ['key', { mode: 'upsert', key: [] }],
        ['key', { mode: 'upsert', key: ['other'] }],
        ['key', { mode: 'insert', key: ['id'] }],
        ['mode', { mode: 'merge' as 'insert' }],
        ['toRow', { toRow: undefined }],
        ['rowsPerStatement', { rowsPerStatement: 0 }],
        ['rowsPerStatement', { rowsPerStatement: 1.5 }],
        ['rowsPerStatement', { rowsPerStatement: Math.floor(65535 / 3) + 1 }],
        ['store', { store: f.newStore({ pool: admin }) }],
      ];
      for (const [option, bad] of cases) {
        assert.throws(
          () =>
            f.newSink<Rec>({
              connection: f.url,
              table: 'orders',
              mode: 'insert',
              ...base,
              ...bad,
            } as Options<Pool, Conn> & typeof base),
          (e: unknown) => e instanceof InvalidOptionError && e.option === option,
          `${option}: ${Object.keys(bad).join(', ')}`,
        );
      }
    });

    it('is idempotent exactly in upsert mode, and describe never shows the password', () => {
      const upsert = make({
        connection: `${f.scheme}://app:hunter2@db.example/prod`,
        table: 'orders',
        mode: 'upsert',
        key: ['id'],
      });
      const insert = make({
        connection: { host: 'h', password: 'hunter2' },
        table: 'orders',
        mode: 'insert',
      });
      assert.equal(upsert.idempotent, true);
      assert.equal(insert.idempotent, false);
      assert.deepEqual(upsert.describe(), {
        host: 'db.example',
        port: f.defaultPort,
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

    databaseTests({ table, make });
  });
}
