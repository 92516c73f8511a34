/**
 * Case 10 as a real process: `sluice run examples/top-brands-sql.ts` counts sales per (category,
 * brand) with updateStateByKey in a checkpoint directory and prints the top 3 brands per category
 * ranked by DuckDB after every batch. The printed ranking is compared with one computed here
 * without SQL, after a first round, and after a restart from the checkpoint and a second round.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { createTopic, deleteTopic, produce } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { ChildRun, afterTests } from './child-process.js';

interface PrintedTop {
  time: number;
  total: number;
  /** `category rank brand sales` lines, as printed. */
  rows: string[];
}

/** The example's output: per batch a `Time: <ms> ms — top 3 brands per category of <n> sales` header and `top ...` lines. */
function parse(stdout: string): PrintedTop[] {
  const out: PrintedTop[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^Time: (\d+) ms — top 3 brands per category of (\d+) sales$/.exec(line))) {
      out.push({ time: Number(m[1]), total: Number(m[2]), rows: [] });
    } else if ((m = /^top (.+)$/.exec(line))) {
      out.at(-1)!.rows.push(m[1]!);
    }
  }
  return out;
}

/** The expected top 3 per category of `lines`, without SQL: sales desc, ties by brand; categories in order. */
function expectedTop3(lines: string[]): string[] {
  const totals = new Map<string, Map<string, number>>();
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue; // malformed: the example skips it
    const [, brand, category] = f as [string, string, string];
    const byBrand = totals.get(category) ?? new Map<string, number>();
    byBrand.set(brand, (byBrand.get(brand) ?? 0) + 1);
    totals.set(category, byBrand);
  }
  const byCode = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...totals.keys()].sort(byCode).flatMap((category) =>
    [...totals.get(category)!]
      .sort(([a, x], [b, y]) => y - x || byCode(a, b))
      .slice(0, 3)
      .map(([brand, sales], i) => `${category} ${i + 1} ${brand} ${sales}`),
  );
}

const validCount = (lines: string[]) => lines.filter((l) => l.trim().split(/\s+/).length === 3).length;

/** Sales lines: `counts[category][brand]` lines each, interleaved, ids from `firstId`. */
function salesLines(counts: Record<string, Record<string, number>>, firstId: number): string[] {
  const pending = Object.entries(counts).flatMap(([category, brands]) =>
    Object.entries(brands).map(([brand, n]) => ({ category, brand, n })),
  );
  const out: string[] = [];
  let id = firstId;
  while (pending.some((p) => p.n > 0)) {
    for (const p of pending) {
      if (p.n-- > 0) out.push(`${id++} ${p.brand} ${p.category}`);
    }
  }
  return out;
}

const { runs, cleanups, tempDir } = afterTests();

test('top-brands-sql prints the top 3 brands per category of the running totals, as computed independently, before and after a restart from its checkpoint', async () => {
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName('example-top-brands');
  await createTopic(bootstrap, topic, 3);
  cleanups.push(() => deleteTopic(bootstrap, topic));
  const dir = await tempDir('sluice-top-brands-');
  const env = {
    KAFKA_BOOTSTRAP: bootstrap,
    KAFKA_TOPIC: topic,
    CHECKPOINT_DIR: path.join(dir, 'checkpoint'),
    BATCH_INTERVAL_MS: '500',
  };
  const send = (lines: string[]) =>
    produce(
      bootstrap,
      topic,
      lines.map((value, i) => ({ value, partition: i % 3 })),
    );

  // Round 1: phone has a tie at the cut (oppo and vivo, 4 each): vivo loses on the brand name.
  const round1 = [
    ...salesLines(
      {
        phone: { apple: 9, samsung: 7, xiaomi: 4, vivo: 4, oppo: 4, nokia: 1 },
        tv: { sony: 3, lg: 5, tcl: 2 },
        laptop: { dell: 2, hp: 2 },
      },
      1,
    ),
    'not a sale',
    '',
    '42 lonely',
  ];
  await send(round1);
  const first = ChildRun.sluice(['run', 'examples/top-brands-sql.ts'], env);
  runs.push(first);
  const n1 = validCount(round1);
  await first.waitFor(
    (out) => parse(out).at(-1)?.total === n1,
    `a batch ranking all ${n1} sales of round 1`,
    30_000,
  );
  const after1 = parse(first.stdout).at(-1)!;
  assert.deepEqual(after1.rows, expectedTop3(round1), first.output());
  assert.deepEqual(after1.rows.slice(0, 3), ['laptop 1 dell 2', 'laptop 2 hp 2', 'phone 1 apple 9']);
  assert.ok(after1.rows.includes('phone 3 oppo 4') && !after1.rows.some((r) => r.includes('vivo')));
  assert.deepEqual(await first.stop('SIGINT'), { code: 0, signal: null }, first.output());
  // Totals only grow, and never past what was produced.
  const totals1 = parse(first.stdout).map((b) => b.total);
  assert.deepEqual(
    totals1,
    [...totals1].sort((a, b) => a - b),
  );
  assert.ok(totals1.every((t) => t <= n1));

  // Round 2 while the job is down, then a restart: the totals continue from the checkpoint.
  const round2 = salesLines(
    {
      phone: { vivo: 6, nokia: 9 },
      tv: { tcl: 4, philips: 6 },
      laptop: { lenovo: 1 },
      watch: { garmin: 2 },
    },
    1000,
  );
  await send(round2);
  const second = ChildRun.sluice(['run', 'examples/top-brands-sql.ts'], env);
  runs.push(second);
  const all = [...round1, ...round2];
  const n2 = validCount(all);
  await second.waitFor((out) => parse(out).at(-1)?.total === n2, `a batch ranking all ${n2} sales`, 30_000);
  const seen = parse(second.stdout).length;
  await second.waitFor((out) => parse(out).length >= seen + 1, 'one more batch', 10_000);
  assert.deepEqual(await second.stop('SIGINT'), { code: 0, signal: null }, second.output());

  const batches2 = parse(second.stdout);
  // The restarted job never counted a sale twice or lost round 1: every batch ranks n1..n2 sales.
  assert.ok(
    batches2.every((b) => b.total >= n1 && b.total <= n2),
    second.output(),
  );
  const last = batches2.at(-1)!;
  assert.equal(last.total, n2);
  assert.deepEqual(last.rows, expectedTop3(all), second.output());
  // Hand-checked: nokia and vivo tie at 10 (nokia first by name), apple 9; samsung 7 drops out.
  assert.deepEqual(
    last.rows.filter((r) => r.startsWith('phone ')),
    ['phone 1 nokia 10', 'phone 2 vivo 10', 'phone 3 apple 9'],
  );
});
