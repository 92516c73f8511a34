import { InvalidOptionError } from './errors.js';
import type { Guarantee, Sink } from './sink.js';

/**
 * What happens to a record that cannot be deserialized or that an operator rejects:
 * `fail` stops the job (default), `skip` drops it and counts it, `dead-letter` writes it with the
 * reason to a dead-letter sink (a Kafka topic, a table) and counts it. Nothing is dropped uncounted.
 */
export type BadRecordPolicy = 'fail' | 'skip' | 'dead-letter';

/** A rejected record, as written to a dead-letter destination. */
export interface DeadLetter {
  /** The input (or `tryMap` operator) whose policy handled it. */
  readonly input: string;
  /** Where it was rejected: the input's name for deserialization, else the operator's. */
  readonly operator: string;
  readonly reason: string;
  readonly batchTime: number;
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: number;
  /** The original key and value, as read (bytes for Kafka deserialization failures). */
  readonly key?: Buffer | string | null;
  readonly value: unknown;
}

export interface BadRecordsOptions {
  readonly policy: BadRecordPolicy;
  /** Required for `dead-letter`: where rejected records go. */
  readonly deadLetter?: Sink<DeadLetter>;
  /** Guarantee of the dead-letter output (default: the strongest it allows). */
  readonly guarantee?: Guarantee;
}

/** Counts of one policy owner in one batch. */
export interface BadRecordCounts {
  readonly name: string;
  readonly skipped: number;
  readonly deadLettered: number;
}

export const BAD_RECORD_POLICIES: readonly BadRecordPolicy[] = ['fail', 'skip', 'dead-letter'];

export function validateBadRecords(o: BadRecordsOptions | undefined, option = 'badRecords'): void {
  if (o === undefined) return;
  if (typeof o !== 'object' || o === null || !BAD_RECORD_POLICIES.includes(o.policy)) {
    throw new InvalidOptionError(`${option}.policy`, BAD_RECORD_POLICIES.join(' | '), o?.policy);
  }
  if (o.policy === 'dead-letter' && !o.deadLetter) {
    throw new InvalidOptionError(
      `${option}.deadLetter`,
      'a sink for the dead letters when policy is dead-letter',
      undefined,
    );
  }
}

/**
 * Where a record came from, when it carries it (Kafka records do: topic, partition, offset, key,
 * value). Records of other shapes are kept whole as the dead letter's value.
 */
export function originOf(
  record: unknown,
): Pick<DeadLetter, 'topic' | 'partition' | 'offset' | 'key' | 'value'> {
  const r = record as {
    topic?: unknown;
    partition?: unknown;
    offset?: unknown;
    key?: unknown;
    value?: unknown;
  };
  if (
    r &&
    typeof r === 'object' &&
    typeof r.topic === 'string' &&
    typeof r.partition === 'number' &&
    typeof r.offset === 'number'
  ) {
    return {
      topic: r.topic,
      partition: r.partition,
      offset: r.offset,
      key: (r.key ?? null) as Buffer | string | null,
      value: r.value,
    };
  }
  return { value: record };
}

/** The bad records of one batch, per policy owner. */
export class BadRecordLedger {
  readonly #owners = new Map<string, { skipped: number; letters: DeadLetter[] }>();

  /** Applies `policy`: rethrows for `fail`, else counts (and keeps the letter for `dead-letter`). */
  handle(policy: BadRecordPolicy, letter: DeadLetter, error: unknown): void {
    if (policy === 'fail') throw error;
    const acc = this.#entry(letter.input);
    if (policy === 'skip') acc.skipped++;
    else acc.letters.push(letter);
  }

  letters(owner: string): DeadLetter[] {
    return this.#owners.get(owner)?.letters ?? [];
  }

  counts(): BadRecordCounts[] {
    return [...this.#owners].map(([name, a]) => ({
      name,
      skipped: a.skipped,
      deadLettered: a.letters.length,
    }));
  }

  #entry(owner: string) {
    let e = this.#owners.get(owner);
    if (!e) this.#owners.set(owner, (e = { skipped: 0, letters: [] }));
    return e;
  }
}
