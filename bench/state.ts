/**
 * State and windows (issue targets on these machines: 1M keys in <= 300 MB of heap; restore of
 * 1M keys <= 5 s):
 *   1. updateStateByKey state with 1,000,000 keys (string key, number value): heap per key;
 *   2. a full checkpoint of it written to a CheckpointDirectory, and its restore in a new store;
 *   3. reduceByKeyAndWindow over a 60-batch window, with and without the inverse function:
 *      median time per batch once the window is full.
 * Appends to bench/results/state.jsonl and state.md.
 *
 *   node --expose-gc --import tsx bench/state.ts        # BENCH_KEYS=1000000 by default
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Batch } from '../src/core/batch.js';
import { restoreState } from '../src/core/checkpointer.js';
import type { StateStore } from '../src/core/state.js';
import { updateState } from '../src/core/stateful.js';
import { TestDriver } from '../src/core/testing/driver.js';
import { median, writeResult } from './report.js';

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

const add = (vs: number[], s: number | undefined) => vs.reduce((a, b) => a + b, s ?? 0);

async function checkpointStore(dir: string): Promise<StateStore> {
  const { CheckpointDirectory } = (await import('../src/checkpoint/index.js')) as {
    CheckpointDirectory?: new (o: { dir: string }) => StateStore;
  };
  if (!CheckpointDirectory) throw new Error('sluice/checkpoint has no CheckpointDirectory yet');
  return new CheckpointDirectory({ dir });
}

export async function runStateBench(options: { keys?: number; write?: boolean; log?: (l: string) => void } = {}) {
  const keys = options.keys ?? Number(process.env.BENCH_KEYS ?? 1_000_000);
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!gc) log('warning: run with --expose-gc for a meaningful heap figure');

  // 1. Heap per key.
  const before = heapAfterGc();
  const state = updateState<string, number, number>('counts', add, undefined, () => 1);
  const chunk = 100_000;
  for (let from = 0; from < keys; from += chunk) {
    const pairs: [string, number][] = [];
    for (let i = from; i < Math.min(keys, from + chunk); i++) pairs.push([`key-${String(i).padStart(7, '0')}`, 1]);
    state.step(Batch.of(pairs));
  }
  const heapBytes = heapAfterGc() - before;
  log(`state: ${keys} keys, ${(heapBytes / 2 ** 20).toFixed(1)} MiB of heap, ${(heapBytes / keys).toFixed(1)} bytes/key`);

  // 2. Checkpoint write and restore.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-bench-state-'));
  let writeMs: number | undefined;
  let restoreMs: number | undefined;
  let restoredKeys: number | undefined;
  try {
    const store = await checkpointStore(dir);
    const meta = { pipelineId: 'bench', fingerprint: 'bench', operators: [{ name: 'counts', kind: 'updateStateByKey' }], batchTime: 1000 };
    const t0 = performance.now();
    await store.commitBatch('bench', [], meta, { full: new Map([['counts', state.handle.snapshot()]]), deltas: new Map() });
    writeMs = performance.now() - t0;
    await store.close();
    const t1 = performance.now();
    const fresh = await checkpointStore(dir);
    const loaded = await fresh.loadCheckpoint('bench');
    const restored = updateState<string, number, number>('counts', add, undefined, () => 1);
    restoreState(restored.handle, loaded!.state.get('counts')!);
    restoreMs = performance.now() - t1;
    restoredKeys = (restored.handle.snapshot() as unknown[]).length;
    await fresh.close();
    log(`checkpoint: write ${writeMs.toFixed(0)} ms, restore ${restoreMs.toFixed(0)} ms (${restoredKeys} keys)`);
  } catch (e) {
    log(`checkpoint: not measured: ${(e as Error).message}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // 3. Windows over 60 batches, with and without the inverse function.
  const windowMs = async (inverse: boolean) => {
    const driver = new TestDriver({ batchInterval: 1000 });
    const input = driver.input<[string, number]>();
    const windowed = input.stream.reduceByKeyAndWindow((a, b) => a + b, 60_000, inverse ? { inverse: (a, b) => a - b } : {});
    windowed.foreachBatch(() => {});
    await driver.start();
    const times: number[] = [];
    for (let b = 0; b < 120; b++) {
      input.push(Array.from({ length: 10_000 }, (_, i): [string, number] => [`k${(i * 7 + b) % 1000}`, 1]));
      const t = performance.now();
      await driver.advance();
      if (b >= 60) times.push(performance.now() - t);
    }
    await driver.stop();
    return median(times);
  };
  const plainMs = await windowMs(false);
  const inverseMs = await windowMs(true);
  log(`reduceByKeyAndWindow over 60 batches of 10,000 records: ${plainMs.toFixed(1)} ms/batch plain, ${inverseMs.toFixed(1)} ms/batch with inverse`);

  const result = {
    keys,
    heapBytes,
    bytesPerKey: heapBytes / keys,
    checkpointWriteMs: writeMs,
    restoreMs,
    restoredKeys,
    windowPlainMsPerBatch: plainMs,
    windowInverseMsPerBatch: inverseMs,
    targets: { heapBytesFor1M: 300 * 2 ** 20, restoreMsFor1M: 5000 },
  };
  if (options.write ?? true) {
    const fmt = (v: number | undefined, unit: string) => (v === undefined ? 'not measured' : `${v.toFixed(1)} ${unit}`);
    writeResult('state', `State with ${keys} keys and 60-batch windows`, result, [
      ['measure', 'value', 'target'],
      ['heap for the state', fmt(heapBytes / 2 ** 20, 'MiB'), keys === 1_000_000 ? '<= 300 MiB' : '-'],
      ['heap per key', fmt(heapBytes / keys, 'bytes'), '-'],
      ['full checkpoint write', fmt(writeMs, 'ms'), '-'],
      ['restore after restart', fmt(restoreMs, 'ms'), keys === 1_000_000 ? '<= 5000 ms' : '-'],
      ['reduceByKeyAndWindow, plain', fmt(plainMs, 'ms/batch'), '-'],
      ['reduceByKeyAndWindow, with inverse', fmt(inverseMs, 'ms/batch'), '-'],
    ]);
  }
  return result;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runStateBench();
}
