/**
 * One Kafka partition as the direct source reads it: where the next plan starts, what was committed,
 * the records the consumer delivered ahead of the current range, and the range a fetch is waiting
 * for. Only this object moves its positions.
 */
import { SourceError } from '../core/errors.js';
import type { KafkaRecord } from './direct-options.js';
import { CODES, call, describeError, errorCode, type RdKafkaConsumer, type RdMessage } from './rdkafka.js';
import type { RecordDecoder } from './record-decoder.js';

interface IncrementalAssign {
  incrementalAssign(assignments: { topic: string; partition: number; offset?: number }[]): void;
  incrementalUnassign(assignments: { topic: string; partition: number }[]): void;
}

export class PartitionReader {
  readonly topic: string;
  readonly partition: number;
  /** Where the next plan starts: the previous plan's untilOffset, or the starting position. */
  #next = 0;
  /** The offset the last completed batch ended at (after commit). */
  #committed = 0;
  /** The buffer holds every record the consumer delivered in [coverStart, reached). */
  #coverStart = 0;
  /** The consumer has delivered (or skipped, at EOF) every record below this offset. */
  #reached = 0;
  /** Delivered records at or after coverStart not yet handed out, ascending. */
  #buffer: RdMessage[] = [];
  /** During a fetch that still needs records of this partition: the range's end; else -1. */
  #until = -1;
  /** During a fetch: where the records of the range go. */
  #out: KafkaRecord<unknown, unknown>[] | undefined;

  constructor(topic: string, partition: number) {
    this.topic = topic;
    this.partition = partition;
  }

  get next(): number {
    return this.#next;
  }

  get committed(): number {
    return this.#committed;
  }

  /** The consumer has delivered (or skipped) every record below this offset. */
  get reached(): number {
    return this.#reached;
  }

  /** The end of the range a fetch waits for; -1 when none. */
  get until(): number {
    return this.#until;
  }

  /** How many delivered records the buffer holds. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Whether a fetch still waits for records of this partition. */
  get waiting(): boolean {
    return this.#until >= 0;
  }

  // ---- positions -----------------------------------------------------------------------------

  /** At open, before the consumer is assigned: everything starts at `offset`. */
  init(offset: number): void {
    this.#next = this.#committed = this.#coverStart = this.#reached = offset;
  }

  /** The next plan starts at `offset` (given with startAt); a fetch seeks there if it must. */
  setNext(offset: number): void {
    this.#next = offset;
  }

  /**
   * The `offsetOutOfRange` policy moved the next position to `offset`: reading must start over
   * there, so what the consumer buffered is dropped and the next fetch seeks.
   */
  resetTo(offset: number): void {
    this.#next = offset;
    this.#committed = Math.min(this.#committed, offset);
    this.forget();
  }

  /** A plan took the range [next, until): the next plan starts at its end. */
  planned(until: number): void {
    this.#next = until;
  }

  /** A batch ending at `until` was committed. */
  commit(until: number): void {
    if (until > this.#committed) this.#committed = until;
  }

  /** Drops what the consumer buffered: the next fetch seeks and reads again. */
  forget(): void {
    this.#buffer = [];
    this.#coverStart = Number.POSITIVE_INFINITY;
  }

  // ---- fetching --------------------------------------------------------------------------------

  /**
   * Starts reading the range [from, until) into `out`: seeks when `from` is outside what the
   * buffer covers, hands out the buffered records of the range, and answers whether the consumer
   * must still deliver more of it (the range then waits, see {@link receive}).
   */
  async begin(
    consumer: RdKafkaConsumer,
    from: number,
    until: number,
    out: KafkaRecord<unknown, unknown>[],
    decoder: RecordDecoder,
    timeoutMs: number,
  ): Promise<boolean> {
    if (from < this.#coverStart || from > this.#reached) await this.seek(consumer, from, timeoutMs);
    const buffer = this.#buffer;
    let k = 0;
    while (k < buffer.length && buffer[k]!.offset < from) k++;
    let j = k;
    for (; j < buffer.length && buffer[j]!.offset < until; j++) decoder.deliver(out, buffer[j]!, this.topic);
    this.#buffer = j === buffer.length ? [] : buffer.slice(j);
    this.#coverStart = from;
    if (this.#reached >= until) return false;
    this.#until = until;
    this.#out = out;
    return true;
  }

  /**
   * A message the consumer delivered for this partition: into the waiting range's records, or
   * the buffer when it lies past it. True when it completes the waiting range.
   */
  receive(m: RdMessage, decoder: RecordDecoder): boolean {
    const offset = m.offset;
    if (offset < this.#reached) return false; // delivered before a seek: never twice
    this.#reached = offset + 1;
    if (offset < this.#until) decoder.deliver(this.#out!, m, this.topic);
    else this.#buffer.push(m);
    return this.settle();
  }

  /**
   * The consumer is past `offset` without delivering what lies below it (partition EOF, or its
   * position moved over transaction markers). False when that is not news.
   */
  advance(offset: number): boolean {
    if (!(offset > this.#reached)) return false;
    this.#reached = offset;
    return true;
  }

  /** Ends the waiting range once the consumer has reached its end; true if it ended now. */
  settle(): boolean {
    if (this.#until >= 0 && this.#reached >= this.#until) {
      this.#until = -1;
      return true;
    }
    return false;
  }

  /** The fetch read the range up to `until`: the buffer now covers what lies past it. */
  complete(until: number): void {
    this.#until = -1;
    this.#out = undefined;
    this.#coverStart = until;
  }

  /** The fetch failed: forget what it took, so that the next fetch seeks and reads it again. */
  abandon(): void {
    this.#until = -1;
    this.#out = undefined;
    this.forget();
  }

  /** For errors: where a waiting range stands. */
  describeWait(): string {
    return `${this.topic}-${this.partition} at ${this.#reached} of ${this.#until}`;
  }

  /** Moves the consumer's position in this partition to `offset`, dropping what was buffered. */
  async seek(consumer: RdKafkaConsumer, offset: number, timeoutMs: number): Promise<void> {
    const tp = { topic: this.topic, partition: this.partition };
    try {
      try {
        await call<void>((cb) => consumer.seek({ ...tp, offset }, timeoutMs, cb));
      } catch (e) {
        // After an out-of-range error the client has stopped fetching the partition and refuses
        // to seek it (ERR__STATE): assign it again at the offset instead.
        if (errorCode(e) !== CODES.ERRORS.ERR__STATE) throw e;
        // Not in the typings; in the client since node-rdkafka 2.x.
        const c = consumer as unknown as IncrementalAssign;
        c.incrementalUnassign([tp]);
        c.incrementalAssign([{ ...tp, offset }]);
      }
    } catch (e) {
      throw new SourceError(
        'kafka',
        `cannot seek ${this.topic}-${this.partition} to ${offset}: ${describeError(e)}`,
        'Try again; if it persists, restart the job',
        {
          cause: e,
          retriable: true,
        },
      );
    }
    this.#buffer = [];
    this.#coverStart = this.#reached = offset;
  }
}
