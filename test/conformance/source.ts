import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { SystemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import type { PartitionOffset } from '../../src/core/offsets.js';
import type { InputPlan, OffsetResetEvent, Source, SourceContext } from '../../src/core/source.js';

/** What the suite needs to know of one record a source returned. */
export interface RecordView {
  /** The value {@link SourceInput.append} was given for this record. */
  readonly value: string;
  /** Offset sources: where the record is. */
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: number;
}

/** Which parts of the contract a source takes on; the suite defines only the tests that apply. */
export interface SourceCapabilities {
  /**
   * Plans carry one offset range per partition, records carry their position, and a new instance
   * resumes from `SourceContext.storedOffsets` (Kafka, the in-memory log).
   */
  readonly offsets: boolean;
  /**
   * What the contract says the source must declare as `replayable` (a batch planned but not
   * committed can be read again): then fetching a plan again returns the same records.
   */
  readonly replayable: boolean;
  /**
   * A new instance on the same input reads again what its predecessor planned and did not commit,
   * and nothing it committed: from the stored offsets (offset sources) or from the source's own
   * bookkeeping kept with the input (a directory's tracking file). False when the input lives in
   * the source (a queue) or cannot be read again (a socket).
   */
  readonly restart: boolean;
  /**
   * The source holds connections or handles on its input that the fixture can count from outside
   * ({@link SourceInput.handles}). False for in-memory inputs: nothing outside the heap to release.
   */
  readonly handles: boolean;
}

/** One input no other test uses (a topic, a directory, a TCP server, a queue), and its sources. */
export interface SourceInput<T> {
  /** A new, unopened source instance reading this input. */
  newSource(): Source<T>;
  /** Resolves once an opened `source` sees what is appended from now on (e.g. its connection is accepted). */
  ready?(source: Source<T>): Promise<void>;
  /**
   * Appends one record per value to the real input (produce, move a file in, write lines, push),
   * in this order; resolves once the next `plan()` of the opened `source` can see all of them.
   */
  append(source: Source<T>, values: readonly string[]): Promise<void>;
  /**
   * Connections and handles sources hold on this input now, as the fixture sees them from outside
   * the source (e.g. the client connections the TCP server sees open, the process's sockets to the
   * broker, file handles and watchers in the directory). Required when `capabilities.handles`.
   */
  handles?(): Promise<number> | number;
  /** An open, connected source always holds at least one handle (so the suite checks it sees it). */
  readonly holdsHandlesWhileOpen?: boolean;
  /** Releases the input (deletes the topic, the directory, stops the server). */
  cleanup?(): Promise<void>;
}

export interface SourceFixture<T> {
  readonly capabilities: SourceCapabilities;
  /** A fresh, empty input. */
  input(): Promise<SourceInput<T>>;
  /** The appended value and position of a record the source returned. */
  view(record: T): RecordView;
}

/** Generous bound on any single wait: the machines are shared and noisy. */
const BOUND_MS = 25_000;

function within<V>(what: string, p: Promise<V>, ms = BOUND_MS): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(cond: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${BOUND_MS} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** `n` distinct values tagged `tag`, in append order. */
function values(tag: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(3, '0')}`);
}

/** Offsets a range spans (its records, when the input has no gaps). */
const rangeSize = (r: InputPlan['offsetRanges'][number]) => r.untilOffset - r.fromOffset;

const sorted = (xs: readonly string[]) => [...xs].sort();

/**
 * The source conformance suite: "plan fixes the content; fetch returns exactly it; a restart from
 * the stored position replays the same records; close releases everything". Every source runs it
 * against its real input:
 *
 * ```ts
 * sourceConformance('SocketTextSource', { capabilities, input: async () => ({ newSource, append, ... }), view });
 * ```
 *
 * The suite drives sources as the engine does: open with a hand-built {@link SourceContext}, then
 * plan, fetch and commit one batch at a time, and close.
 */
export function sourceConformance<T>(label: string, fixture: SourceFixture<T>): void {
  const caps = fixture.capabilities;

  describe(`${label} (source conformance)`, () => {
    const sources: Source<T>[] = [];
    const inputs: SourceInput<T>[] = [];
    // Every source and input a test made is released after it, even when the test failed.
    afterEach(async () => {
      const results = await Promise.allSettled([
        ...sources.splice(0).map((s) => s.close()),
        ...inputs.splice(0).map((i) => i.cleanup?.()),
      ]);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    });

    const input = async () => {
      const i = await fixture.input();
      inputs.push(i);
      return i;
    };

    /** The context the engine gives a source; `stored` is what its offset store holds. */
    const context = (stored: readonly PartitionOffset[]) => {
      const resets: Omit<OffsetResetEvent, 'input'>[] = [];
      const asked: string[][] = [];
      const ctx: SourceContext = {
        pipelineId: 'source-conformance',
        name: 'input',
        clock: new SystemClock(),
        batchInterval: 1000,
        logger: silentLogger,
        signal: new AbortController().signal,
        storedOffsets: async (topics) => {
          asked.push([...topics]);
          return stored.filter((o) => topics.includes(o.topic));
        },
        reportBadRecord: (_letter, error) => {
          throw error;
        },
        reportOffsetReset: (event) => resets.push(event),
        reportRebalance: () => {},
        membership: 'single',
        instanceId: 'test-instance',
      };
      return { ctx, resets, asked };
    };

    const handlesOf = async (inp: SourceInput<T>) => {
      if (!caps.handles) return 0;
      assert.ok(inp.handles, 'a fixture with capabilities.handles counts them');
      return inp.handles();
    };

    /** Opens a new instance on `inp` as the engine would, resuming from `stored`. */
    const open = async (inp: SourceInput<T>, stored: readonly PartitionOffset[] = []) => {
      const source = inp.newSource();
      sources.push(source);
      const { ctx, resets, asked } = context(stored);
      await within('open()', source.open(ctx));
      await within('the source to be ready', inp.ready?.(source) ?? Promise.resolve());
      return { source, resets, asked };
    };

    let time = 0;
    const plan = (source: Source<T>) => within('plan()', source.plan((time += 1000)));
    const fetch = (source: Source<T>, p: InputPlan) => within('fetch()', source.fetch(p));
    const commit = (source: Source<T>, p: InputPlan) =>
      within('commit()', source.commit?.(p) ?? Promise.resolve());
    /** One batch as the engine runs it: plan, fetch, commit. */
    const batch = async (source: Source<T>) => {
      const p = await plan(source);
      const parts = await fetch(source, p);
      await commit(source, p);
      return { plan: p, parts };
    };

    const views = (parts: T[][]) => parts.map((p) => p.map((r) => fixture.view(r)));
    const valuesOf = (parts: T[][]) => parts.flat().map((r) => fixture.view(r).value);
    const fromOffsets = (p: InputPlan): PartitionOffset[] =>
      p.offsetRanges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.fromOffset }));
    const untilOffsets = (p: InputPlan): PartitionOffset[] =>
      p.offsetRanges.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.untilOffset }));

    /** Each value once, and within each batch partition (followed over the batches) in append order. */
    const assertExactlyOnceInOrder = (batches: T[][][], appended: readonly string[]) => {
      const seen = batches.flatMap((parts) => valuesOf(parts));
      assert.equal(new Set(seen).size, seen.length, `a record was delivered twice: ${seen.join(', ')}`);
      assert.deepEqual(sorted(seen), sorted(appended));
      const index = new Map(appended.map((v, i) => [v, i]));
      const width = Math.max(0, ...batches.map((b) => b.length));
      for (let p = 0; p < width; p++) {
        const order = batches.flatMap((parts) =>
          (parts[p] ?? []).map((r) => index.get(fixture.view(r).value)!),
        );
        assert.deepEqual(
          order,
          [...order].sort((a, b) => a - b),
          `batch partition ${p} is not in append order`,
        );
      }
    };

    it(`declares replayable: ${caps.replayable}`, async () => {
      const inp = await input();
      const source = inp.newSource();
      assert.equal(
        source.replayable ?? false,
        caps.replayable,
        caps.replayable
          ? 'a batch planned and not committed can be read again, so the source must say so: the engine limits a non-replayable input to at-most-once'
          : 'nothing can be read again, so the source must not promise it',
      );
    });

    it('fetch returns exactly the records appended before plan(), each once, in append order within each batch partition', async () => {
      const inp = await input();
      const { source } = await open(inp);
      const appended = values('a', 11);
      await inp.append(source, appended);
      const { plan: p, parts } = await batch(source);
      assertExactlyOnceInOrder([parts], appended);
      if (!caps.offsets)
        assert.deepEqual(p.offsetRanges, [], 'a source without offsets plans no offset ranges');
    });

    it('records appended after plan() are not in that plan’s fetch: they come in the next batch', async () => {
      const inp = await input();
      const { source } = await open(inp);
      const before = values('before', 6);
      const after = values('after', 5);
      await inp.append(source, before);
      const p1 = await plan(source);
      await inp.append(source, after);
      assert.deepEqual(sorted(valuesOf(await fetch(source, p1))), sorted(before));
      await commit(source, p1);
      const { parts } = await batch(source);
      assert.deepEqual(sorted(valuesOf(parts)), sorted(after));
    });

    it('records appended over many batches arrive exactly once each, none repeated by a later batch, in append order per batch partition', async () => {
      const inp = await input();
      const { source } = await open(inp);
      const appended: string[] = [];
      const batches: T[][][] = [];
      for (let round = 0; round < 4; round++) {
        const vs = values(`r${round}`, 20);
        await inp.append(source, vs);
        appended.push(...vs);
        const p = await plan(source);
        if (round % 2 === 1) {
          // Arrives between plan and fetch: belongs to a later batch.
          const late = values(`late${round}`, 7);
          await inp.append(source, late);
          appended.push(...late);
        }
        batches.push(await fetch(source, p));
        await commit(source, p);
      }
      // Take what is left (a queue takes one append per batch), then one more batch: it must be empty.
      const deadline = Date.now() + BOUND_MS;
      while (batches.flatMap((parts) => parts.flat()).length < appended.length && Date.now() < deadline) {
        batches.push((await batch(source)).parts);
      }
      batches.push((await batch(source)).parts);
      assertExactlyOnceInOrder(batches, appended);
    });

    it('an empty input gives a plan of nothing and an empty batch, without waiting for records', async () => {
      const inp = await input();
      const { source } = await open(inp);
      for (let i = 0; i < 2; i++) {
        const p = await plan(source);
        assert.ok(
          p.offsetRanges.every((r) => rangeSize(r) === 0),
          `empty ranges: ${JSON.stringify(p.offsetRanges)}`,
        );
        const parts = await fetch(source, p);
        assert.deepEqual(valuesOf(parts), []);
        await commit(source, p);
      }
      // ...and nothing that comes later is lost or shifted by the empty batches.
      const later = values('later', 3);
      await inp.append(source, later);
      assert.deepEqual(sorted(valuesOf((await batch(source)).parts)), sorted(later));
    });

    it('close() can be called again: the second call resolves and opens nothing', async () => {
      const inp = await input();
      const baseline = await handlesOf(inp);
      const { source } = await open(inp);
      await inp.append(source, values('x', 2));
      await batch(source);
      await within('close()', source.close());
      await within('a second close()', source.close());
      if (caps.handles) {
        await waitUntil(async () => (await handlesOf(inp)) <= baseline, 'the source to release its handles');
      }
    });

    if (caps.offsets) {
      it('each plan has one range per batch partition; every record lies in its range, one per offset of the range', async () => {
        const inp = await input();
        const { source } = await open(inp);
        const appended = values('o', 9);
        await inp.append(source, appended);
        const { plan: p, parts } = await batch(source);
        assert.ok(p.offsetRanges.length > 0, 'an offset source plans a range for each of its partitions');
        assert.equal(parts.length, p.offsetRanges.length, 'one batch partition per range');
        assert.equal(
          new Set(p.offsetRanges.map((r) => `${r.topic}\u0000${r.partition}`)).size,
          p.offsetRanges.length,
          'one range per partition',
        );
        for (const [i, r] of p.offsetRanges.entries()) {
          const got = parts[i]!.map((rec) => fixture.view(rec));
          // The input has no gaps (no transactions, no compaction): one record per offset.
          assert.deepEqual(
            got.map((v) => [v.topic, v.partition, v.offset]),
            Array.from({ length: rangeSize(r) }, (_, k) => [r.topic, r.partition, r.fromOffset + k]),
            `records of ${r.topic}-${r.partition} [${r.fromOffset}, ${r.untilOffset})`,
          );
        }
        assert.equal(
          p.offsetRanges.reduce((n, r) => n + rangeSize(r), 0),
          appended.length,
        );
      });

      it('consecutive plans are contiguous: each range starts where the previous plan’s range of its partition ended', async () => {
        const inp = await input();
        const { source } = await open(inp);
        const plans: InputPlan[] = [];
        for (const n of [5, 0, 8, 1]) {
          if (n > 0) await inp.append(source, values(`c${plans.length}`, n));
          plans.push((await batch(source)).plan);
        }
        for (let k = 1; k < plans.length; k++) {
          const prev = new Map(plans[k - 1]!.offsetRanges.map((r) => [`${r.topic}\u0000${r.partition}`, r]));
          const cur = plans[k]!.offsetRanges;
          assert.equal(cur.length, prev.size, `plan ${k} covers the same partitions`);
          for (const r of cur) {
            const before = prev.get(`${r.topic}\u0000${r.partition}`);
            assert.ok(before, `plan ${k} has ${r.topic}-${r.partition}, which plan ${k - 1} did not have`);
            assert.equal(r.fromOffset, before.untilOffset, `plan ${k}, ${r.topic}-${r.partition}`);
            assert.ok(r.untilOffset >= r.fromOffset);
          }
        }
      });
    }

    if (caps.replayable) {
      it('fetching the same plan again returns the same records, also after later batches were read', async () => {
        const inp = await input();
        const { source } = await open(inp);
        const first = values('first', 7);
        const second = values('second', 4);
        await inp.append(source, first);
        const p1 = await plan(source);
        const r1 = views(await fetch(source, p1));
        await inp.append(source, second);
        const p2 = await plan(source);
        const r2 = views(await fetch(source, p2));
        assert.deepEqual(sorted(r1.flat().map((v) => v.value)), sorted(first));
        assert.deepEqual(sorted(r2.flat().map((v) => v.value)), sorted(second));
        assert.deepEqual(views(await fetch(source, p1)), r1);
        assert.deepEqual(views(await fetch(source, p2)), r2);
        await commit(source, p1);
        await commit(source, p2);
        // ...and the stream carries on after the last plan.
        const third = values('third', 3);
        await inp.append(source, third);
        assert.deepEqual(sorted(valuesOf((await batch(source)).parts)), sorted(third));
      });
    }

    if (caps.restart) {
      it('a new instance started from the positions stored before an uncommitted batch replays exactly that batch’s records first', async () => {
        const inp = await input();
        const first = await open(inp);
        const a = values('a', 8);
        await inp.append(first.source, a);
        const p1 = await plan(first.source);
        const r1 = views(await fetch(first.source, p1));
        // Crash: the batch is never committed. More records come while the pipeline is down.
        await within('close()', first.source.close());
        const b = values('b', 4);
        await inp.append(first.source, b);

        // What the engine's offset store holds: the positions before the batch.
        const second = await open(inp, fromOffsets(p1));
        const p = await plan(second.source);
        if (caps.offsets) {
          assert.deepEqual(
            p.offsetRanges.map((r) => [r.topic, r.partition, r.fromOffset]),
            p1.offsetRanges.map((r) => [r.topic, r.partition, r.fromOffset]),
            'the new instance starts at the stored positions',
          );
          assert.ok(second.asked.length > 0, 'the new instance asked for its stored positions');
        }
        const replay = views(await fetch(second.source, p));
        for (const [i, part] of r1.entries()) {
          assert.deepEqual(
            replay[i]!.slice(0, part.length),
            part,
            `batch partition ${i} starts with the replay`,
          );
        }
        assert.deepEqual(sorted(replay.flat().map((v) => v.value)), sorted([...a, ...b]));
        assert.deepEqual(second.resets, [], 'valid stored positions are not reset');
      });

      it('after commit, a new instance started from the committed positions reads the next records and repeats none', async () => {
        const inp = await input();
        const first = await open(inp);
        await inp.append(first.source, values('done', 6));
        const { plan: p1 } = await batch(first.source);
        await within('close()', first.source.close());
        const next = values('next', 5);
        await inp.append(first.source, next);

        // The positions committed with the batch: its ranges' untilOffsets.
        const second = await open(inp, untilOffsets(p1));
        const { plan: p, parts } = await batch(second.source);
        if (caps.offsets) {
          assert.deepEqual(
            p.offsetRanges.map((r) => [r.topic, r.partition, r.fromOffset]),
            p1.offsetRanges.map((r) => [r.topic, r.partition, r.untilOffset]),
            'the new instance starts at the committed positions',
          );
        }
        assertExactlyOnceInOrder([parts], next);
        assert.deepEqual(valuesOf((await batch(second.source)).parts), [], 'nothing more');
        assert.deepEqual(second.resets, []);
      });

      it('a new instance fetches a plan its predecessor made (as a checkpoint keeps it) and gets the same records', async () => {
        const inp = await input();
        const first = await open(inp);
        await inp.append(first.source, values('kept', 7));
        const p1 = await plan(first.source);
        const r1 = views(await fetch(first.source, p1));
        await within('close()', first.source.close());

        const second = await open(inp, fromOffsets(p1));
        const restored = JSON.parse(JSON.stringify(p1)) as InputPlan;
        assert.deepEqual(views(await fetch(second.source, restored)), r1);
      });
    }

    if (caps.handles) {
      it('close() releases every connection and handle the source held on its input, and nothing reopens', async () => {
        const inp = await input();
        const baseline = await handlesOf(inp);
        const { source } = await open(inp);
        await inp.append(source, values('h', 3));
        await batch(source);
        if (inp.holdsHandlesWhileOpen) {
          assert.ok((await handlesOf(inp)) > baseline, 'the fixture sees what the open source holds');
        }
        await within('close()', source.close());
        await waitUntil(async () => (await handlesOf(inp)) <= baseline, 'the source to release its handles');
        // Nothing reconnects or reopens afterwards.
        await sleep(300);
        assert.ok((await handlesOf(inp)) <= baseline, 'a handle was opened again after close()');
      });

      it('close() right after open(), before any batch, releases everything too', async () => {
        const inp = await input();
        const baseline = await handlesOf(inp);
        const source = inp.newSource();
        sources.push(source);
        await within('open()', source.open(context([]).ctx));
        await within('close()', source.close());
        await waitUntil(async () => (await handlesOf(inp)) <= baseline, 'the source to release its handles');
        await sleep(300);
        assert.ok((await handlesOf(inp)) <= baseline, 'a handle was opened again after close()');
      });
    }
  });
}
