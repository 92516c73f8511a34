import type { DStream } from '../../src/core/dstream.js';
import { TestDriver, type TestInput } from '../../src/core/testing/driver.js';

/** Sorts records by their JSON text: Spark's batch order is not defined, its content is. */
export function sorted<T>(records: T[]): T[] {
  return [...records].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

/** Pushes each batch and advances one interval after it. */
export async function feed<T>(driver: TestDriver, input: TestInput<T>, batches: T[][]): Promise<void> {
  for (const batch of batches) {
    input.push(batch);
    await driver.advance();
  }
}

/**
 * Runs `build` over the given input batches (one per interval, 1 s) through the test driver, then
 * `extraBatches` more intervals without input, and returns each output batch's records, sorted.
 */
export async function run<I, O>(
  inputs: I[][],
  build: (s: DStream<I>) => DStream<O>,
  options: { numPartitions?: number; extraBatches?: number } = {},
): Promise<O[][]> {
  const driver = new TestDriver({ batchInterval: 1000 });
  const input = driver.input<I>({ name: 'in', numPartitions: options.numPartitions ?? 1 });
  const out = driver.collect(build(input.stream));
  await driver.start();
  await feed(driver, input, inputs);
  if (options.extraBatches) await driver.advance(options.extraBatches);
  await driver.stop();
  return out.all().map(sorted);
}

/**
 * Batches of (key, number) pairs, one string per batch: `'a=2 b=1'` is `[['a', 2], ['b', 1]]` and
 * `''` an empty batch, so that long tables of batches read one batch a line.
 */
export function pairBatches(...batches: string[]): [string, number][][] {
  return batches.map((batch) =>
    batch === ''
      ? []
      : batch.split(' ').map((pair): [string, number] => {
          const [key, value] = pair.split('=');
          return [key!, Number(value)];
        }),
  );
}
