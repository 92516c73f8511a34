import { KeyMap, hashKey, type Pair } from './keys.js';
import type { OffsetRange } from './offsets.js';

/** What an operator sees of the batch being processed. */
export interface BatchContext {
  /** The batch time, in ms since the epoch: a multiple of the batch interval. */
  readonly time: number;
  /** The offset ranges of the inputs this stream is built from (empty for inputs without offsets). */
  readonly offsetRanges: readonly OffsetRange[];
  /**
   * In an output that writes inside the offset store's transaction: the transaction handle (a
   * `pg.PoolClient`, a mysql2 connection, ...). The batch's offsets commit with it.
   */
  readonly transaction?: unknown;
}

/**
 * One batch of a stream: its records split into partitions (Spark's RDD, eager and in memory).
 * `transform` and `foreachBatch` hand user code a `Batch`; every DStream operator is defined by
 * the `Batch` operator of the same name applied to each batch.
 *
 * @example
 * ```ts
 * const b = Batch.of(['a b', 'b'], 2);
 * b.flatMap((l) => l.split(' ')).countByValue().collect(); // [['a', 1], ['b', 2]] in some order
 * ```
 */
export class Batch<T> {
  readonly partitions: readonly (readonly T[])[];

  constructor(partitions: readonly (readonly T[])[]) {
    this.partitions = partitions;
  }

  /** A batch of `records` spread round-robin over `numPartitions` partitions (default 1). */
  static of<T>(records: Iterable<T>, numPartitions = 1): Batch<T> {
    const parts: T[][] = Array.from({ length: Math.max(1, numPartitions) }, () => []);
    let i = 0;
    for (const r of records) parts[i++ % parts.length]!.push(r);
    return new Batch(parts);
  }

  static empty<T>(): Batch<T> {
    return new Batch<T>([]);
  }

  /** Number of records. */
  get size(): number {
    let n = 0;
    for (const p of this.partitions) n += p.length;
    return n;
  }

  get numPartitions(): number {
    return this.partitions.length;
  }

  /** All records, partition after partition. */
  collect(): T[] {
    return this.partitions.flat() as T[];
  }

  /** The first `n` records, partition after partition. */
  take(n: number): T[] {
    const out: T[] = [];
    for (const p of this.partitions) {
      for (const r of p) {
        if (out.length >= n) return out;
        out.push(r);
      }
    }
    return out;
  }

  isEmpty(): boolean {
    return this.partitions.every((p) => p.length === 0);
  }

  map<U>(fn: (record: T) => U): Batch<U> {
    return new Batch(this.partitions.map((p) => p.map((r) => fn(r))));
  }

  /** `map` to a key/value pair; the tuple type is inferred without `as const`. */
  mapToPair<K, V>(fn: (record: T) => readonly [K, V]): Batch<[K, V]> {
    return this.map(fn as (record: T) => [K, V]);
  }

  /** Pairs `[fn(record), record]`. */
  keyBy<K>(fn: (record: T) => K): Batch<[K, T]> {
    return this.map((r): [K, T] => [fn(r), r]);
  }

  flatMap<U>(fn: (record: T) => Iterable<U>): Batch<U> {
    return new Batch(
      this.partitions.map((p) => {
        const out: U[] = [];
        for (const r of p) for (const u of fn(r)) out.push(u);
        return out;
      }),
    );
  }

  filter<S extends T>(fn: (record: T) => record is S): Batch<S>;
  filter(fn: (record: T) => boolean): Batch<T>;
  filter(fn: (record: T) => boolean): Batch<T> {
    return new Batch(this.partitions.map((p) => p.filter((r) => fn(r))));
  }

  /** Applies `fn` to each partition as a whole; `index` is the partition's position. */
  mapPartitions<U>(fn: (records: readonly T[], index: number) => Iterable<U>): Batch<U> {
    return new Batch(this.partitions.map((p, i) => Array.from(fn(p, i))));
  }

  /** The partitions of this batch followed by those of the others. */
  union(...others: Batch<T>[]): Batch<T> {
    return new Batch([...this.partitions, ...others.flatMap((o) => o.partitions)]);
  }

  /** Redistributes the records round-robin over `numPartitions` partitions. */
  repartition(numPartitions: number): Batch<T> {
    return Batch.of(this.collect(), numPartitions);
  }

  /** A batch of one record: the number of records (0 for an empty batch), as Spark's `count`. */
  count(): Batch<number> {
    return new Batch([[this.size]]);
  }

  /** `[value, occurrences]` for each distinct value. */
  countByValue(numPartitions?: number): Batch<[T, number]> {
    const counts = new KeyMap<T, number>();
    for (const p of this.partitions) for (const r of p) counts.set(r, (counts.get(r) ?? 0) + 1);
    return fromKeyMap(counts, numPartitions ?? this.defaultPartitions());
  }

  /** A batch of one record, the reduction of all records; empty if the batch is. */
  reduce(fn: (a: T, b: T) => T): Batch<T> {
    let acc: T | undefined;
    let seen = false;
    for (const p of this.partitions) {
      for (const r of p) {
        acc = seen ? fn(acc as T, r) : r;
        seen = true;
      }
    }
    return new Batch(seen ? [[acc as T]] : [[]]);
  }

  reduceByKey<K, V>(this: Batch<Pair<K, V>>, fn: (a: V, b: V) => V, numPartitions?: number): Batch<[K, V]> {
    const acc = new KeyMap<K, V>();
    for (const p of this.partitions) {
      for (const [k, v] of p) acc.set(k, acc.has(k) ? fn(acc.get(k) as V, v) : v);
    }
    return fromKeyMap(acc, numPartitions ?? this.defaultPartitions());
  }

  groupByKey<K, V>(this: Batch<Pair<K, V>>, numPartitions?: number): Batch<[K, V[]]> {
    return fromKeyMap(groupValues(this), numPartitions ?? this.defaultPartitions());
  }

  mapValues<K, V, W>(this: Batch<Pair<K, V>>, fn: (value: V) => W): Batch<[K, W]> {
    return this.map(([k, v]): [K, W] => [k, fn(v)]);
  }

  flatMapValues<K, V, W>(this: Batch<Pair<K, V>>, fn: (value: V) => Iterable<W>): Batch<[K, W]> {
    return this.flatMap(function* ([k, v]): Iterable<[K, W]> {
      for (const w of fn(v)) yield [k, w];
    });
  }

  /** `[key, [values of this, values of other]]` for every key in either. */
  cogroup<K, V, W>(
    this: Batch<Pair<K, V>>,
    other: PairInput<K, W>,
    numPartitions?: number,
  ): Batch<[K, [V[], W[]]]> {
    const groups = new KeyMap<K, [V[], W[]]>();
    for (const p of this.partitions) {
      for (const [k, v] of p) {
        const g = groups.get(k);
        if (g) g[0].push(v);
        else groups.set(k, [[v], []]);
      }
    }
    for (const [k, w] of pairsOf(other)) {
      const g = groups.get(k);
      if (g) g[1].push(w);
      else groups.set(k, [[], [w]]);
    }
    return fromKeyMap(groups, numPartitions ?? this.defaultPartitions());
  }

  /** Inner join: `[key, [v, w]]` for every pair of values with equal keys. */
  join<K, V, W>(this: Batch<Pair<K, V>>, other: PairInput<K, W>, numPartitions?: number): Batch<[K, [V, W]]> {
    return this.cogroup(other, numPartitions).flatMapValues(([vs, ws]) => cross(vs, ws));
  }

  /** `[key, [v, w | undefined]]`: every value of this, with `undefined` where other has no match (Spark's `None`). */
  leftOuterJoin<K, V, W>(
    this: Batch<Pair<K, V>>,
    other: PairInput<K, W>,
    numPartitions?: number,
  ): Batch<[K, [V, W | undefined]]> {
    return this.cogroup(other, numPartitions).flatMapValues(([vs, ws]) =>
      ws.length === 0 ? vs.map((v): [V, W | undefined] => [v, undefined]) : cross<V, W | undefined>(vs, ws),
    );
  }

  /** `[key, [v | undefined, w]]`: every value of other, with `undefined` where this has no match. */
  rightOuterJoin<K, V, W>(
    this: Batch<Pair<K, V>>,
    other: PairInput<K, W>,
    numPartitions?: number,
  ): Batch<[K, [V | undefined, W]]> {
    return this.cogroup(other, numPartitions).flatMapValues(([vs, ws]) =>
      vs.length === 0 ? ws.map((w): [V | undefined, W] => [undefined, w]) : cross<V | undefined, W>(vs, ws),
    );
  }

  /** `[key, [v | undefined, w | undefined]]` for every key in either side. */
  fullOuterJoin<K, V, W>(
    this: Batch<Pair<K, V>>,
    other: PairInput<K, W>,
    numPartitions?: number,
  ): Batch<[K, [V | undefined, W | undefined]]> {
    return this.cogroup(other, numPartitions).flatMapValues(([vs, ws]) => {
      if (vs.length === 0) return ws.map((w): [V | undefined, W | undefined] => [undefined, w]);
      if (ws.length === 0) return vs.map((v): [V | undefined, W | undefined] => [v, undefined]);
      return cross<V | undefined, W | undefined>(vs, ws);
    });
  }

  /** Spark uses the parent's partition count for shuffles when none is given. */
  private defaultPartitions(): number {
    return Math.max(1, this.partitions.length);
  }
}

/** The other side of a join: a batch of pairs, or any iterable of pairs (reference data). */
export type PairInput<K, W> = Batch<Pair<K, W>> | Iterable<Pair<K, W>>;

function* pairsOf<K, W>(input: PairInput<K, W>): Iterable<Pair<K, W>> {
  if (input instanceof Batch) {
    for (const p of input.partitions) yield* p;
  } else {
    yield* input;
  }
}

function groupValues<K, V>(batch: Batch<Pair<K, V>>): KeyMap<K, V[]> {
  const groups = new KeyMap<K, V[]>();
  for (const p of batch.partitions) {
    for (const [k, v] of p) {
      const g = groups.get(k);
      if (g) g.push(v);
      else groups.set(k, [v]);
    }
  }
  return groups;
}

/** Hash-partitions the entries of a KeyMap, as Spark's HashPartitioner would. */
function fromKeyMap<K, V>(map: KeyMap<K, V>, numPartitions: number): Batch<[K, V]> {
  const parts: [K, V][][] = Array.from({ length: numPartitions }, () => []);
  for (const [k, v] of map) parts[numPartitions === 1 ? 0 : hashKey(k) % numPartitions]!.push([k, v]);
  return new Batch(parts);
}

function cross<A, B>(as: readonly A[], bs: readonly B[]): [A, B][] {
  const out: [A, B][] = [];
  for (const a of as) for (const b of bs) out.push([a, b]);
  return out;
}
