/**
 * Turns the consumer's messages into {@link KafkaRecord}s: the per-record work of the direct
 * source's consume loop, kept free of allocations it does not need.
 */
import { DeserializationError } from '../core/errors.js';
import type { SourceContext } from '../core/source.js';
import type { KafkaRecord } from './direct-options.js';
import {
  resolveDeserializer,
  type DeserializeContext,
  type Deserializer,
  type DeserializerFn,
  type KafkaHeader,
} from './deserializers.js';
import type { RdMessage } from './rdkafka.js';

/** The engine's bad-record hook (SourceContext.reportBadRecord): throws under `fail`, else counts. */
type BadRecordReporter = (
  letter: {
    operator: string;
    reason: string;
    topic: string;
    partition: number;
    offset: number;
    key: Buffer | null;
    value: unknown;
  },
  error: unknown,
) => void;

const EMPTY_HEADERS: readonly KafkaHeader[] = Object.freeze([]);

/** Deserializes messages into records with the source's key and value deserializers. */
export class RecordDecoder {
  readonly #key: DeserializerFn<unknown>;
  readonly #value: DeserializerFn<unknown>;
  readonly #keyCustom: boolean;
  readonly #valueCustom: boolean;
  #ctx: SourceContext | undefined;

  constructor(keyDeserializer: Deserializer<unknown>, valueDeserializer: Deserializer<unknown>) {
    this.#key = resolveDeserializer(keyDeserializer);
    this.#value = resolveDeserializer(valueDeserializer);
    this.#keyCustom = typeof keyDeserializer === 'function';
    this.#valueCustom = typeof valueDeserializer === 'function';
  }

  /** The context whose bad-record hook gets the records that fail to deserialize. */
  bind(ctx: SourceContext): void {
    this.#ctx = ctx;
  }

  /**
   * Deserializes `m` into `out`, or hands it to the engine's bad-record hook. `topic` is the
   * source's own string for the topic: the client makes a new string per message, and a batch
   * would otherwise keep a million copies alive.
   */
  deliver(out: KafkaRecord<unknown, unknown>[], m: RdMessage, topic: string): void {
    let rec: KafkaRecord<unknown, unknown>;
    try {
      rec = this.#toRecord(m, topic);
    } catch (e) {
      const report = (this.#ctx as { reportBadRecord?: BadRecordReporter } | undefined)?.reportBadRecord;
      if (!report || !(e instanceof DeserializationError)) throw e;
      report(
        {
          operator: this.#ctx!.name,
          reason: e.message,
          topic: m.topic,
          partition: m.partition,
          offset: m.offset,
          key: m.key == null ? null : typeof m.key === 'string' ? Buffer.from(m.key) : m.key,
          value: m.value,
        },
        e,
      );
      return;
    }
    out.push(rec);
  }

  #toRecord(m: RdMessage, topic: string): KafkaRecord<unknown, unknown> {
    const headers = m.headers === undefined || m.headers.length === 0 ? EMPTY_HEADERS : toHeaders(m.headers);
    const rawKey = m.key;
    const keyBytes = rawKey == null ? null : typeof rawKey === 'string' ? Buffer.from(rawKey) : rawKey;
    let dctx: DeserializeContext | undefined;
    let key: unknown;
    let value: unknown;
    try {
      key = this.#keyCustom
        ? this.#key(
            keyBytes,
            (dctx ??= { topic: m.topic, partition: m.partition, offset: m.offset, headers }),
          )
        : this.#key(keyBytes, undefined as never);
    } catch (e) {
      throw new DeserializationError(m.topic, m.partition, m.offset, 'key', e);
    }
    try {
      value = this.#valueCustom
        ? this.#value(
            m.value,
            (dctx ??= { topic: m.topic, partition: m.partition, offset: m.offset, headers }),
          )
        : this.#value(m.value, undefined as never);
    } catch (e) {
      throw new DeserializationError(m.topic, m.partition, m.offset, 'value', e);
    }
    return {
      topic,
      partition: m.partition,
      offset: m.offset,
      key,
      value,
      headers,
      timestamp: m.timestamp ?? -1,
    };
  }
}

function toHeaders(hs: ReadonlyArray<Record<string, string | Buffer>>): KafkaHeader[] {
  const out: KafkaHeader[] = [];
  for (const h of hs) {
    for (const key of Object.keys(h)) {
      const v = h[key]!;
      out.push({ key, value: typeof v === 'string' ? Buffer.from(v) : v });
    }
  }
  return out;
}
