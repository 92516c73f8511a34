/**
 * The crash harness. For one mode: records flow into a Kafka topic (kcat, paced so the stream
 * lasts until the last kill) while the fixture pipeline (`fixtures/pipeline.ts`) processes them;
 * the harness SIGKILLs it — at random moments, or exactly at a phase of a batch where the fixture
 * was told to stop and wait (before the write, in the middle of it, after it and before the
 * offsets) — and restarts it. After the last kill a run goes to the end of the stream and stops
 * gracefully, then the output is read with a plain client of the destination and compared with
 * the input, read with kcat: each input record must appear exactly once (exactly-once), at least
 * once (at-least-once) or at most once (at-most-once).
 */
import { createTopic, deleteTopic } from '../helpers/kafka.js';
import { kafkaBootstrap, uniqueName } from '../helpers/services.js';
import { MODE_SPECS, PAUSE_PHASES, type Mode, type PausePhase } from './modes.js';
import { prepareDestination, type OutputRow } from './outputs.js';
import { FixtureRun, KcatProducer, fmtExit, kcat, sleep } from './processes.js';

export type KillKind = PausePhase | 'random';

export interface CrashOptions {
  readonly mode: Mode;
  /**
   * Input records (ids 0 .. records-1), at least. Records keep coming while kills remain, so a
   * slow machine ends with more.
   */
  readonly records: number;
  /** SIGKILLs; each is followed by a restart. */
  readonly kills: number;
  /** Partitions of the input topic (default 3). */
  readonly partitions?: number;
  /** Batch interval of the pipeline in ms (default 250). */
  readonly intervalMs?: number;
  /** Seed of the kill plan and the random kill times (default: random, printed in the summary). */
  readonly seed?: number;
  /** Where progress lines go (default: nowhere). */
  readonly progress?: (line: string) => void;
}

/** Where a random kill landed: the last thing the pipeline printed before it. */
export type Landing = 'starting' | 'idle' | PausePhase | 'after-commit';

export interface CrashResult {
  readonly mode: Mode;
  readonly guarantee: string;
  readonly describe: string;
  readonly where: string;
  readonly seed: number;
  /** Records the input ended with (>= the records asked for). */
  readonly records: number;
  readonly partitions: number;
  readonly kills: number;
  /** Kills at a phase where the fixture was paused (each checked: its last line was that phase). */
  readonly targeted: Record<PausePhase, number>;
  readonly random: number;
  readonly randomLanded: Partial<Record<Landing, number>>;
  /** Starts after a kill (the final run included). */
  readonly restarts: number;
  /**
   * Batches (and their records) whose write began again after a kill: the ranges of a
   * `phase:before-write` that an earlier one had already covered, counted each time.
   */
  readonly replayedBatches: number;
  readonly replayedRecords: number;
  readonly outputRecords: number;
  /** Output records beyond the first of each input record. */
  readonly duplicates: number;
  /** Input records absent from the output. */
  readonly missing: number;
  /** Output records that match no input record (unknown id, or not where that id was read). */
  readonly foreign: number;
  readonly durationMs: number;
  /** A mode's own observation (Kafka: what a read_uncommitted reader sees). */
  readonly note?: string;
  /** Where the engine put the offsets in its commit plan (as the pipeline printed it). */
  readonly offsets: string;
  /** The offsets in the store after the last run (read with a plain client), `p:offset ...`. */
  readonly storedOffsets: string;
  /** The end offsets of the input, `p:offset ...`. */
  readonly inputEnds: string;
}

/** A small seeded PRNG (mulberry32): the same seed, the same sequence. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The kinds of the kills, shuffled: about two ninths at each phase (at least one each) and the
 * rest at random moments.
 */
export function killPlan(kills: number, rnd: () => number): KillKind[] {
  const each = Math.max(1, Math.round((kills * 2) / 9));
  const plan: KillKind[] = [];
  for (const phase of PAUSE_PHASES) for (let i = 0; i < each && plan.length < kills; i++) plan.push(phase);
  while (plan.length < kills) plan.push('random');
  for (let i = plan.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }
  return plan;
}

/**
 * Feeds kcat at a rate the harness adjusts so that `records` are produced about when the last kill
 * happens. While kills remain it never stops, even past `records` (so a run waiting for a batch
 * with records always gets one); `finish` produces what is missing up to `records` at once.
 */
class Feed {
  readonly #producer: KcatProducer;
  readonly #records: number;
  #next = 0;
  #rate: number;
  #quota = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(producer: KcatProducer, records: number, rate: number) {
    this.#producer = producer;
    this.#records = records;
    this.#rate = rate;
    this.#timer = setInterval(() => this.#tick(0.05), 50);
  }

  get produced(): number {
    return this.#next;
  }

  set rate(r: number) {
    this.#rate = r;
  }

  #tick(seconds: number): void {
    this.#quota += this.#rate * seconds;
    if (!this.#producer.writable) return;
    const n = Math.floor(this.#quota);
    if (n <= 0) return;
    this.#quota -= n;
    this.#produce(n);
  }

  #produce(n: number): void {
    let lines = '';
    for (let i = 0; i < n; i++, this.#next++) lines += `k${this.#next}:${this.#next}\n`;
    if (lines) this.#producer.write(lines);
  }

  /** Produces what is missing up to `records` at once; resolves with the total once kcat delivered it. */
  async finish(): Promise<number> {
    clearInterval(this.#timer);
    this.#produce(Math.max(0, this.#records - this.#next));
    await this.#producer.finish(120_000);
    return this.#next;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#producer.kill();
  }
}

export async function runCrashTest(options: CrashOptions): Promise<CrashResult> {
  const { mode, records, kills } = options;
  const partitions = options.partitions ?? 3;
  const interval = options.intervalMs ?? 250;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rnd = prng(seed);
  const progress = options.progress ?? (() => {});
  const spec = MODE_SPECS[mode];
  const started = Date.now();
  const bootstrap = await kafkaBootstrap();
  const topic = uniqueName(`crash-${mode}-in`);
  const group = uniqueName(`crash-${mode}`);
  const cleanups: (() => Promise<void>)[] = [];
  const runs: FixtureRun[] = [];
  let feed: Feed | undefined;

  // Progress across runs, from the pipeline's own lines.
  const committed = new Map<number, number>(); // partition -> highest committed untilOffset
  const begun = new Map<number, number>(); // partition -> highest untilOffset a write began for
  let replayedBatches = 0;
  let replayedRecords = 0;
  let offsetsPlan = '?';
  const onLine = (line: string) => {
    const [word, , , r] = line.split(' ');
    if (word === 'ready') {
      offsetsPlan = line.split(' ')[1] ?? '?';
    } else if (word === 'committed') {
      for (const [p, , until] of parseRanges(r)) committed.set(p, Math.max(committed.get(p) ?? 0, until));
    } else if (word === 'phase:before-write') {
      let again = 0;
      for (const [p, from, until] of parseRanges(line.split(' ')[2])) {
        const seen = begun.get(p) ?? 0;
        again += Math.max(0, Math.min(until, seen) - from);
        begun.set(p, Math.max(seen, until));
      }
      if (again > 0) {
        replayedBatches++;
        replayedRecords += again;
      }
    }
  };

  try {
    await createTopic(bootstrap, topic, partitions);
    cleanups.push(() => deleteTopic(bootstrap, topic));
    const dest = await prepareDestination(mode, { bootstrap, partitions, group });
    cleanups.push(dest.cleanup);
    const env = {
      ...dest.env,
      KAFKA_BOOTSTRAP: bootstrap,
      CRASH_MODE: mode,
      CRASH_TOPIC: topic,
      CRASH_GROUP: group,
      CRASH_INTERVAL_MS: String(interval),
    };
    const start = (extra: Record<string, string> = {}) => {
      const run = new FixtureRun({ ...env, ...extra }, onLine);
      runs.push(run);
      return run;
    };

    const plan = killPlan(kills, rnd);
    const targeted: Record<PausePhase, number> = { 'before-write': 0, 'mid-write': 0, 'after-write': 0 };
    const randomLanded: Partial<Record<Landing, number>> = {};
    let startupMs = 1500;
    let runMs = 2500;
    // Records per second: what is left of `records` over the time the remaining kills should take.
    const paceFor = (killsLeft: number) =>
      Math.max(
        20 * partitions,
        (records - (feed?.produced ?? 0)) / (Math.max(1, killsLeft) * (runMs / 1000) * 1.2),
      );
    feed = new Feed(new KcatProducer(bootstrap, topic), records, paceFor(kills));

    for (const [i, kind] of plan.entries()) {
      // A targeted run pauses at its phase of its 1st, 2nd or 3rd batch with records.
      const nth = 1 + Math.floor(rnd() * 3);
      const run =
        kind === 'random' ? start() : start({ CRASH_PAUSE_AT: kind, CRASH_PAUSE_BATCH: String(nth) });
      if (kind === 'random') {
        // A third of the random kills hit the start-up (opening the stores, reading the offsets,
        // connecting to Kafka), the rest the first 8 batch intervals of processing.
        if (rnd() < 1 / 3) {
          await Promise.race([sleep(rnd() * startupMs), run.exited]);
        } else {
          await run.waitForLine((l) => l.startsWith('ready '), 'the pipeline to start', 60_000);
          await Promise.race([sleep(rnd() * 8 * interval), run.exited]);
        }
        if (run.exitInfo)
          throw new Error(`run ${i + 1} exited (${fmtExit(run.exitInfo)}) before its kill\n${run.output()}`);
        const landing = landingOf(run.lines);
        randomLanded[landing] = (randomLanded[landing] ?? 0) + 1;
      } else {
        await waitForPause(run, kind, nth);
        targeted[kind]++;
      }
      const exit = await run.signal('SIGKILL', 10_000);
      if (exit.signal !== 'SIGKILL')
        throw new Error(`run ${i + 1} ended by ${fmtExit(exit)}, not by the kill\n${run.output()}`);
      if (kind !== 'random' && !run.lines.at(-1)?.startsWith(`phase:${kind} `)) {
        throw new Error(
          `run ${i + 1} was meant to die paused at ${kind} but printed after it\n${run.output()}`,
        );
      }
      if (run.readyAt) startupMs = (startupMs + (run.readyAt - run.startedAt)) / 2;
      runMs = (runMs * 2 + (Date.now() - run.startedAt)) / 3;
      feed.rate = paceFor(kills - i - 1);
      progress(
        `${mode}: kill ${i + 1}/${kills} (${kind === 'random' ? `random, after ${landingOf(run.lines)}` : kind}); produced ${feed.produced}/${records}, committed ${sum(committed)}`,
      );
    }

    // The last run goes to the end of the input.
    const last = start();
    const produced = await feed.finish();
    feed = undefined;
    const input = await readInput(bootstrap, topic, produced);
    const ends = input.ends;
    await last.waitUntil(
      () => [...ends].every(([p, end]) => (committed.get(p) ?? 0) >= end),
      `the offsets of the end of the input (${fmtEnds(ends)})`,
      60_000 + records,
    );
    const exit = await last.signal('SIGTERM', 30_000);
    if (exit.code !== 0 || !last.lines.includes('stopped')) {
      throw new Error(`the last run did not stop cleanly (${fmtExit(exit)})\n${last.output()}`);
    }

    const output = await dest.read();
    const check = compare(input.byId, output);
    const note = await dest.note?.();
    const stored = await dest.readOffsets(topic);
    return {
      mode,
      guarantee: spec.guarantee,
      describe: spec.describe,
      offsets: offsetsPlan,
      storedOffsets: fmtEnds(stored),
      inputEnds: fmtEnds(ends),
      where: dest.where,
      seed,
      records: produced,
      partitions,
      kills: plan.length,
      targeted,
      random: plan.filter((k) => k === 'random').length,
      randomLanded,
      restarts: runs.length - 1,
      replayedBatches,
      replayedRecords,
      outputRecords: output.length,
      ...check,
      durationMs: Date.now() - started,
      ...(note ? { note } : {}),
    };
  } finally {
    feed?.stop();
    for (const r of runs) await r.kill();
    for (const c of cleanups.reverse())
      await c().catch((e: unknown) => console.error(`crash harness (${mode}): cleanup failed: ${String(e)}`));
  }
}

/**
 * Waits until the run prints `phase` for its `nth` batch with records, where it pauses (each batch
 * with records prints each phase once).
 */
async function waitForPause(run: FixtureRun, phase: PausePhase, nth: number): Promise<void> {
  let seen = 0;
  await run.waitForLine(
    (l) => l.startsWith(`phase:${phase} `) && ++seen === nth,
    `the pause at ${phase} of batch ${nth}`,
    60_000,
  );
}

function landingOf(lines: readonly string[]): Landing {
  const last = lines.at(-1);
  if (last === undefined) return 'starting';
  if (last.startsWith('ready')) return 'idle';
  if (last.startsWith('committed')) return 'after-commit';
  const phase = /^phase:(\S+)/.exec(last)?.[1];
  return (PAUSE_PHASES as readonly string[]).includes(phase ?? '') ? (phase as PausePhase) : 'idle';
}

function parseRanges(text: string | undefined): [number, number, number][] {
  if (!text || text === '-') return [];
  return text.split(',').map((r) => {
    const m = /^(\d+):(\d+)-(\d+)$/.exec(r);
    if (!m) throw new Error(`bad range ${r}`);
    return [Number(m[1]), Number(m[2]), Number(m[3])];
  });
}

function sum(m: Map<number, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

function fmtEnds(ends: Map<number, number>): string {
  return [...ends]
    .sort(([a], [b]) => a - b)
    .map(([p, e]) => `${p}:${e}`)
    .join(' ');
}

interface Input {
  /** id -> `partition:offset` where it was written. */
  readonly byId: Map<number, string>;
  /** partition -> end offset. */
  readonly ends: Map<number, number>;
}

/** Reads the whole input with kcat and checks it holds ids 0 .. records-1 once each. */
async function readInput(bootstrap: string, topic: string, records: number): Promise<Input> {
  const text = await kcat(
    ['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p %o %s\n'],
    120_000,
  );
  const byId = new Map<number, string>();
  const ends = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [p, o, v] = line.split(' ').map(Number) as [number, number, number];
    if (byId.has(v)) throw new Error(`the input holds id ${v} twice`);
    byId.set(v, `${p}:${o}`);
    ends.set(p, Math.max(ends.get(p) ?? 0, o + 1));
  }
  if (byId.size !== records) throw new Error(`the input holds ${byId.size} records, not ${records}`);
  return { byId, ends };
}

function compare(
  input: Map<number, string>,
  output: readonly OutputRow[],
): { duplicates: number; missing: number; foreign: number } {
  const seen = new Map<number, number>();
  let foreign = 0;
  for (const row of output) {
    if (input.get(row.id) !== `${row.partition}:${row.offset}`) {
      foreign++;
      continue;
    }
    seen.set(row.id, (seen.get(row.id) ?? 0) + 1);
  }
  let duplicates = 0;
  for (const n of seen.values()) duplicates += n - 1;
  return { duplicates, missing: input.size - seen.size, foreign };
}

/** The per-mode summary the harness prints. */
export function formatSummary(r: CrashResult): string {
  const landed = Object.entries(r.randomLanded)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return [
    `crash-test ${r.mode} (${r.guarantee}): ${r.describe}; engine commit plan: offsets ${r.offsets}`,
    `  records ${r.records} in ${r.partitions} partitions -> ${r.where}; seed ${r.seed}`,
    `  kills ${r.kills}: before-write ${r.targeted['before-write']}, mid-write ${r.targeted['mid-write']}, after-write ${r.targeted['after-write']} (paused there), random ${r.random}${landed ? ` (last printed: ${landed})` : ''}`,
    `  restarts ${r.restarts}; batches re-run after a kill ${r.replayedBatches} (${r.replayedRecords} records)`,
    `  output ${r.outputRecords} records: duplicates ${r.duplicates}, missing ${r.missing}, foreign ${r.foreign}`,
    `  stored offsets ${r.storedOffsets} (end of input ${r.inputEnds})`,
    ...(r.note ? [`  ${r.note}`] : []),
    `  time ${(r.durationMs / 1000).toFixed(1)} s`,
  ].join('\n');
}

/** Why the result breaks its mode's guarantee, or undefined when it holds. */
export function violation(r: CrashResult): string | undefined {
  if (r.foreign) return `${r.foreign} output records match no input record`;
  const plan = MODE_SPECS[r.mode].offsets;
  if (r.offsets !== plan) return `the engine planned offsets ${r.offsets}, not ${plan}`;
  if (r.storedOffsets !== r.inputEnds)
    return `the stored offsets (${r.storedOffsets}) are not the end of the input (${r.inputEnds})`;
  switch (r.guarantee) {
    case 'exactly-once':
      if (r.duplicates || r.missing)
        return `exactly-once broken: ${r.duplicates} duplicates, ${r.missing} missing`;
      return undefined;
    case 'at-least-once':
      if (r.missing) return `at-least-once lost ${r.missing} records`;
      if (!r.duplicates)
        return 'at-least-once showed no duplicate despite kills after the write, before the offsets';
      return undefined;
    default:
      if (r.duplicates) return `at-most-once duplicated ${r.duplicates} records`;
      if (!r.missing)
        return 'at-most-once lost nothing despite kills after the offsets, before or during the write';
      return undefined;
  }
}
