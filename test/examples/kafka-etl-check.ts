/**
 * What the kafka-etl example (case 7) must make of its input, and the checks of its output topics as
 * kcat (not Sluice) reads them: shared by the example's tests.
 */
import assert from 'node:assert/strict';
import {
  AccessLogError,
  SAMPLE_MALFORMATIONS,
  accessLogEtl,
  sampleAccessLogLine,
} from '../../examples/lib/access-log.js';
import type { TestRecord } from '../helpers/kafka.js';

export const TIME_ZONE = 'Asia/Shanghai';
const etl = accessLogEtl({ timeZone: TIME_ZONE });

/** Input line `i`: every 7th is malformed, cycling through the kinds; one in 97 has no value at all. */
export function inputLine(i: number): string | null {
  if (i % 97 === 96) return null;
  return sampleAccessLogLine(
    i,
    i % 7 === 6 ? SAMPLE_MALFORMATIONS[Math.floor(i / 7) % SAMPLE_MALFORMATIONS.length] : undefined,
  );
}

export interface Expected {
  out: string[];
  dead: { value: string | null; reason: string }[];
}

/** What the ETL must make of input lines [from, to), computed with the parser (tested on its own). */
export function expected(from: number, to: number): Expected {
  const out: string[] = [];
  const dead: Expected['dead'] = [];
  for (let i = from; i < to; i++) {
    const line = inputLine(i);
    try {
      out.push(etl(line));
    } catch (e) {
      assert.ok(e instanceof AccessLogError);
      dead.push({ value: line, reason: e.reason });
    }
  }
  return { out, dead };
}

export const records = (from: number, to: number): TestRecord[] =>
  Array.from({ length: to - from }, (_, k) => ({ value: inputLine(from + k), partition: (from + k) % 3 }));

export { kcat, type KcatRecord } from '../helpers/kafka.js';
import type { KcatRecord } from '../helpers/kafka.js';

export function header(r: KcatRecord, name: string): string | undefined {
  const h = r.headers ?? [];
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}

export const sorted = <T>(xs: T[]): T[] => [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

export function checkOutput(got: KcatRecord[], want: Expected['out'], output: string): void {
  const values = got.map((r) => r.payload);
  const dupes = values.filter((v, i) => values.indexOf(v) !== i);
  assert.deepEqual(dupes, [], `no output line twice\n${output}`);
  assert.deepEqual(sorted(values), sorted(want), `the output is exactly the expected lines\n${output}`);
  for (const r of got) assert.equal(r.key, r.payload!.split('|')[0], 'output records are keyed by user id');
}

/** `partitions`: of the input topic (default 3). */
export function checkDeadLetters(
  got: KcatRecord[],
  want: Expected['dead'],
  input: string,
  output: string,
  partitions = 3,
): void {
  const letters = got.map((r) => ({ value: r.payload, reason: header(r, 'sluice.reason')! }));
  assert.deepEqual(
    sorted(letters),
    sorted(want),
    `the dead letters are exactly the malformed lines with their reasons\n${output}`,
  );
  for (const r of got) {
    assert.equal(header(r, 'sluice.source.topic'), input);
    const p = Number(header(r, 'sluice.source.partition'));
    const offset = Number(header(r, 'sluice.source.offset'));
    assert.ok(p >= 0 && p < partitions && offset >= 0, JSON.stringify(r));
  }
}

