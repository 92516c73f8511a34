/**
 * SQL on a batch: what one `SqlEngine.query` costs, by batch size. Records are case 10's running
 * totals `{ category, brand, sales }` (20 categories x 50 brands, cycled); for each size it times
 *   load   — `select count(*)`: loading the records (inference, conversion, appender) and a trivial query;
 *   top3   — the case-10 query (row_number() over (partition by category order by sales desc) <= 3);
 *   group  — `group by category` with sum and avg;
 *   js     — the same top 3 computed in plain JS, for scale.
 * Each is the median of `rounds` runs after one warm-up. Prints a Markdown table.
 *
 *   node --import tsx bench/sql.ts                       # 1k, 10k, 100k, 1M records, 5 rounds
 *   BENCH_SIZES=1000,50000 BENCH_ROUNDS=9 node --import tsx bench/sql.ts
 */
import os from 'node:os';
import { SqlEngine } from '../src/duckdb/index.js';

interface Sale {
  category: string;
  brand: string;
  sales: number;
}

const TOP3 = `select category, brand, sales from (
  select *, row_number() over (partition by category order by sales desc, brand) as rn from totals)
where rn <= 3 order by category, rn`;
const GROUP = 'select category, sum(sales) as s, avg(sales) as a from totals group by category';

function records(n: number): Sale[] {
  return Array.from({ length: n }, (_, i) => ({
    category: `c${i % 20}`,
    brand: `b${Math.floor(i / 20) % 50}-${Math.floor(i / 1000)}`,
    sales: (i * 7919) % 1000,
  }));
}

function top3Js(rows: Sale[]): Sale[] {
  const by = new Map<string, Sale[]>();
  for (const r of rows) (by.get(r.category) ?? by.set(r.category, []).get(r.category)!).push(r);
  return [...by.keys()].sort().flatMap((c) =>
    by
      .get(c)!
      .sort((a, b) => b.sales - a.sales || (a.brand < b.brand ? -1 : 1))
      .slice(0, 3),
  );
}

async function median(rounds: number, f: () => Promise<unknown> | unknown): Promise<number> {
  await f(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function benchSql(sizes: number[], rounds: number): Promise<string> {
  const sql = await SqlEngine.create();
  const lines = [
    `SQL on a batch — ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, node ${process.version}, median of ${rounds}`,
    '',
    '| records | load (count) ms | top3 window ms | group by ms | top3 in JS ms | load µs/record |',
    '|--:|--:|--:|--:|--:|--:|',
  ];
  try {
    for (const n of sizes) {
      const rows = records(n);
      const totals = { totals: rows };
      const load = await median(rounds, () => sql.query(totals, 'select count(*) from totals'));
      const top3 = await median(rounds, () => sql.query(totals, TOP3));
      const group = await median(rounds, () => sql.query(totals, GROUP));
      const js = await median(rounds, () => top3Js([...rows]));
      const [check] = await Promise.all([sql.query<Sale>(totals, TOP3)]);
      if (JSON.stringify(check) !== JSON.stringify(top3Js([...rows])))
        throw new Error(`top3 differs at ${n}`);
      lines.push(
        `| ${n.toLocaleString('en')} | ${load.toFixed(1)} | ${top3.toFixed(1)} | ${group.toFixed(1)} | ${js.toFixed(1)} | ${((load * 1000) / n).toFixed(2)} |`,
      );
    }
  } finally {
    await sql.close();
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = (process.env.BENCH_SIZES ?? '1000,10000,100000,1000000').split(',').map(Number);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  console.log(await benchSql(sizes, rounds));
}
