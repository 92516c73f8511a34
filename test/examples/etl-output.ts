/**
 * The per-batch blocks of the access-log ETL (examples/kafka-etl.ts, formatEtlBatch), which both
 * the example and the demo (scripts/demo.ts) print.
 */
import assert from 'node:assert/strict';

export interface EtlBatch {
  time: number;
  in: number;
  out: number;
  dead: number;
  processingMs: number;
  schedulingDelayMs: number;
  ranges: { topic: string; partition: number; from: number; until: number; size: number }[];
  /** The `output e.g.:` sample line. */
  output: string | undefined;
  /** The `dead letter e.g.:` sample reason. */
  reason: string | undefined;
}

/** The complete blocks printed so far: a `Batch <iso> (<ms>): ...` line, `offsets` lines and samples. */
export function parseEtlBatches(stdout: string): EtlBatch[] {
  const out: EtlBatch[] = [];
  const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    const head =
      /^Batch \S+ \((\d+)\): (\d+) in, (\d+) out, (\d+) dead letters, processing (\d+) ms, scheduling delay (-?\d+) ms$/.exec(
        line,
      );
    const range = /^ {2}offsets (\S+) (\d+) (\d+) (\d+) \((\d+)\)$/.exec(line);
    const output = /^ {2}output e\.g\.: (.*)$/.exec(line);
    const reason = /^ {2}dead letter e\.g\.: (.*)$/.exec(line);
    const b = out.at(-1);
    if (head) {
      out.push({
        time: Number(head[1]),
        in: Number(head[2]),
        out: Number(head[3]),
        dead: Number(head[4]),
        processingMs: Number(head[5]),
        schedulingDelayMs: Number(head[6]),
        ranges: [],
        output: undefined,
        reason: undefined,
      });
    } else if (range && b) {
      const [, topic, p, from, until, size] = range;
      b.ranges.push({
        topic: topic!,
        partition: Number(p),
        from: Number(from),
        until: Number(until),
        size: Number(size),
      });
    } else if (output && b) {
      b.output = output[1];
    } else if (reason && b) {
      b.reason = reason[1];
    }
  }
  return out;
}

/** The records in, out or dead-lettered over the batches. */
export const total = (batches: EtlBatch[], k: 'in' | 'out' | 'dead') => batches.reduce((n, b) => n + b[k], 0);

/** The batch has one range per partition of the 3-partition `topic`, in order, each of its printed size. */
export function checkRanges(b: EtlBatch, topic: string, where: string): void {
  assert.deepEqual(
    b.ranges.map((r) => [r.topic, r.partition]),
    [
      [topic, 0],
      [topic, 1],
      [topic, 2],
    ],
    where,
  );
  for (const r of b.ranges) assert.equal(r.size, r.until - r.from, where);
}
