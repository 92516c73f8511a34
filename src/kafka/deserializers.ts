/**
 * Turning a record's key or value bytes into a value. Built-ins: `'string'` (UTF-8), `'json'`
 * (UTF-8 then `JSON.parse`), `'bytes'` (the Buffer itself). A `null` key or value (no key, a
 * tombstone) stays `null` with every built-in; a custom function receives the `null` and decides.
 */

/** One record header. Kafka allows repeated keys; order is kept. */
export interface KafkaHeader {
  readonly key: string;
  readonly value: Buffer;
}

/** Where the bytes being deserialized come from (for custom deserializers and error messages). */
export interface DeserializeContext {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly headers: readonly KafkaHeader[];
}

/** A custom deserializer. Throwing fails the batch with a `DeserializationError` naming the record. */
export type DeserializerFn<T> = (data: Buffer | null, ctx: DeserializeContext) => T;

export type BuiltinDeserializer = 'string' | 'json' | 'bytes';

/** What the `keyDeserializer` / `valueDeserializer` options accept. */
export type Deserializer<T = unknown> = BuiltinDeserializer | DeserializerFn<T>;

/** The type a deserializer option produces; `undefined` (option not given) means `'string'`. */
export type Deserialized<D> = D extends undefined
  ? string | null
  : D extends 'string'
    ? string | null
    : D extends 'bytes'
      ? Buffer | null
      : D extends 'json'
        ? unknown
        : D extends DeserializerFn<infer T>
          ? T
          : never;

export const BUILTIN_DESERIALIZERS: readonly BuiltinDeserializer[] = ['string', 'json', 'bytes'];

/** Returns the function behind a deserializer option. */
export function resolveDeserializer(d: Deserializer): DeserializerFn<unknown> {
  if (typeof d === 'function') return d;
  switch (d) {
    case 'string':
      return stringDeserializer;
    case 'json':
      return jsonDeserializer;
    case 'bytes':
      return bytesDeserializer;
  }
}

export function isBuiltinDeserializer(d: unknown): d is BuiltinDeserializer {
  return typeof d === 'string' && (BUILTIN_DESERIALIZERS as readonly string[]).includes(d);
}

/** A short label for plans and logs: the built-in's name or `custom`. */
export function deserializerLabel(d: Deserializer): string {
  return typeof d === 'function' ? `custom${d.name ? `:${d.name}` : ''}` : d;
}

export function stringDeserializer(data: Buffer | null): string | null {
  return data === null ? null : data.toString('utf8');
}

export function jsonDeserializer(data: Buffer | null): unknown {
  return data === null ? null : JSON.parse(data.toString('utf8'));
}

export function bytesDeserializer(data: Buffer | null): Buffer | null {
  return data;
}
