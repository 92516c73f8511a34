/**
 * Key identity for key/value operators. Primitive keys compare by value (as in a `Map`); object and
 * array keys compare by their JSON text, the way Spark compares case-class keys by `equals`.
 */
export type Key = unknown;

/** A key/value pair. Operators accept readonly tuples and produce mutable ones. */
export type Pair<K, V> = readonly [K, V];

function isObjectKey(k: unknown): k is object {
  return typeof k === 'object' && k !== null;
}

/** A Map whose keys may be primitives or plain objects/arrays (compared by JSON value). */
export class KeyMap<K, V> {
  #primitive = new Map<unknown, V>();
  #objects = new Map<string, { key: K; value: V }>();

  get size(): number {
    return this.#primitive.size + this.#objects.size;
  }

  get(key: K): V | undefined {
    return isObjectKey(key) ? this.#objects.get(JSON.stringify(key))?.value : this.#primitive.get(key);
  }

  has(key: K): boolean {
    return isObjectKey(key) ? this.#objects.has(JSON.stringify(key)) : this.#primitive.has(key);
  }

  set(key: K, value: V): void {
    if (isObjectKey(key)) this.#objects.set(JSON.stringify(key), { key, value });
    else this.#primitive.set(key, value);
  }

  delete(key: K): boolean {
    return isObjectKey(key) ? this.#objects.delete(JSON.stringify(key)) : this.#primitive.delete(key);
  }

  *entries(): IterableIterator<[K, V]> {
    yield* this.#primitive.entries() as IterableIterator<[K, V]>;
    for (const { key, value } of this.#objects.values()) yield [key, value];
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}

/** A stable 32-bit hash of a key (FNV-1a over its text form), used to assign keys to partitions. */
export function hashKey(key: unknown): number {
  const text = typeof key === 'string' ? key : isObjectKey(key) ? JSON.stringify(key) : String(key);
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
