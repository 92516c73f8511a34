import { Batch } from './batch.js';
import { ContextStateError } from './errors.js';
import { KeyMap, hashKey, type Pair } from './keys.js';
import type { StateHandle } from './state.js';

/** Tracks which keys of a keyed state changed since the last checkpoint. */
class Dirty<K> {
  #keys = new KeyMap<K, true>();
  mark(k: K): void {
    this.#keys.set(k, true);
  }
  /** The changed keys' current values (or removal), then forgets them. */
  take<V>(current: KeyMap<K, V>, encode: (v: V) => unknown = (v) => v) {
    const set: [unknown, unknown][] = [];
    const removed: unknown[] = [];
    for (const [k] of this.#keys) {
      if (current.has(k)) set.push([k, encode(current.get(k) as V)]);
      else removed.push(k);
    }
    this.#keys = new KeyMap();
    return { set, removed };
  }
}

/** The state of one key inside a `mapWithState` function (Spark's `State`). */
export class State<S> {
  #exists: boolean;
  #value: S | undefined;
  #updated = false;
  #removed = false;
  readonly #timingOut: boolean;

  /** @internal */
  constructor(exists: boolean, value: S | undefined, timingOut: boolean) {
    this.#exists = exists;
    this.#value = value;
    this.#timingOut = timingOut;
  }

  exists(): boolean {
    return this.#exists;
  }

  /** The state; throws if there is none (check `exists()` or use `getOption()`). */
  get(): S {
    if (!this.#exists)
      throw new ContextStateError(
        'State.get() on a key without state',
        'Check exists() first, or use getOption()',
        'none',
      );
    return this.#value as S;
  }

  getOption(): S | undefined {
    return this.#exists ? this.#value : undefined;
  }

  update(value: S): void {
    if (this.#timingOut) {
      throw new ContextStateError(
        'Cannot update the state of a key that is timing out',
        'Return a value instead; the state is removed after the timeout call',
        'timing-out',
      );
    }
    if (this.#removed)
      throw new ContextStateError('Cannot update a removed state', 'Call update before remove', 'removed');
    this.#value = value;
    this.#exists = true;
    this.#updated = true;
  }

  remove(): void {
    if (this.#timingOut)
      throw new ContextStateError(
        'Cannot remove the state of a key that is timing out',
        'It is removed after the timeout call',
        'timing-out',
      );
    this.#exists = false;
    this.#value = undefined;
    this.#removed = true;
    this.#updated = false;
  }

  /** True when the function is called because the key has been idle longer than the timeout. */
  isTimingOut(): boolean {
    return this.#timingOut;
  }

  /** @internal */
  get wasUpdated(): boolean {
    return this.#updated;
  }

  /** @internal */
  get wasRemoved(): boolean {
    return this.#removed;
  }
}

/** Hash-partitions pairs over `n` partitions. */
export function partitionPairs<K, V>(entries: Iterable<[K, V]>, n: number): Batch<[K, V]> {
  const parts: [K, V][][] = Array.from({ length: Math.max(1, n) }, () => []);
  for (const e of entries) parts[parts.length === 1 ? 0 : hashKey(e[0]) % parts.length]!.push(e);
  return new Batch(parts);
}

/** The batches of the last `windowMs`, emitted as one batch at every slide. */
export function windowState<T>(name: string, windowMs: number) {
  let buffer: { time: number; partitions: readonly (readonly T[])[] }[] = [];
  // Deltas are keyed by batch time: a checkpoint writes the batch that entered and the times that left.
  let added: typeof buffer = [];
  let dropped: number[] = [];
  return {
    step(time: number, parent: Batch<T> | undefined, valid: boolean): Batch<T> | undefined {
      if (parent) {
        const entry = { time, partitions: parent.partitions };
        buffer.push(entry);
        added.push(entry);
      }
      const keep = buffer.filter((b) => b.time > time - windowMs);
      for (const b of buffer) if (b.time <= time - windowMs) dropped.push(b.time);
      buffer = keep;
      return valid ? new Batch(buffer.flatMap((b) => b.partitions)) : undefined;
    },
    handle: {
      name,
      kind: 'window',
      snapshot: () => buffer,
      restore: (data: unknown) => void (buffer = data as typeof buffer),
      delta: () => {
        const gone = new Set(dropped);
        const d = {
          set: added.filter((a) => !gone.has(a.time)).map((a): [unknown, unknown] => [a.time, a.partitions]),
          removed: dropped,
        };
        added = [];
        dropped = [];
        return d;
      },
      applyDelta: (d) => {
        const removed = new Set(d.removed as number[]);
        buffer = buffer.filter((b) => !removed.has(b.time));
        for (const [time, partitions] of d.set)
          buffer.push({ time: time as number, partitions: partitions as T[][] });
        buffer.sort((a, b) => a.time - b.time);
      },
    } satisfies StateHandle,
  };
}

/**
 * Spark's ReducedWindowedDStream: the window's value per key is the previous window's value,
 * minus (inverse function) the batches that left, plus the batches that entered. Keys stay with
 * their value (e.g. 0) unless `filter` drops them.
 */
export function invertibleWindowState<K, V>(
  name: string,
  opts: {
    windowMs: number;
    slideMs: number;
    reduce: (a: V, b: V) => V;
    inverse: (a: V, b: V) => V;
    filter?: (pair: [K, V]) => boolean;
    numPartitions: () => number;
  },
) {
  let batches: { time: number; values: [K, V][] }[] = [];
  let previous: [K, V][] = [];
  // Deltas: batches that entered (by time), times that left, and the previous window when it changed.
  let added: typeof batches = [];
  let dropped: number[] = [];
  let previousChanged = false;
  const reduceAll = (vs: V[]) => vs.reduce((a, b) => opts.reduce(a, b));
  return {
    step(time: number, parent: Batch<Pair<K, V>> | undefined, valid: boolean): Batch<[K, V]> | undefined {
      if (parent) {
        const entry = { time, values: parent.collect() as [K, V][] };
        batches.push(entry);
        added.push(entry);
      }
      if (!valid) return undefined;
      const entering = new KeyMap<K, V[]>();
      const leaving = new KeyMap<K, V[]>();
      for (const b of batches) {
        const target =
          b.time > time - opts.slideMs
            ? entering
            : b.time > time - opts.windowMs - opts.slideMs && b.time <= time - opts.windowMs
              ? leaving
              : undefined;
        if (!target) continue;
        for (const [k, v] of b.values) {
          const list = target.get(k);
          if (list) list.push(v);
          else target.set(k, [v]);
        }
      }
      const prev = new KeyMap<K, V>();
      for (const [k, v] of previous) prev.set(k, v);
      const keys = new KeyMap<K, true>();
      for (const m of [prev, entering, leaving] as KeyMap<K, unknown>[])
        for (const [k] of m) keys.set(k, true);
      const merged: [K, V][] = [];
      for (const [k] of keys) {
        const newVals = entering.get(k);
        const oldVals = leaving.get(k);
        let value: V;
        if (!prev.has(k)) {
          // Spark fails here when there are no new values either; the key has simply left the window.
          if (!newVals) continue;
          value = reduceAll(newVals);
        } else {
          value = prev.get(k) as V;
          if (oldVals) value = opts.inverse(value, reduceAll(oldVals));
          if (newVals) value = opts.reduce(value, reduceAll(newVals));
        }
        if (!opts.filter || opts.filter([k, value])) merged.push([k, value]);
      }
      previous = merged;
      previousChanged = true;
      for (const b of batches) if (b.time <= time - opts.windowMs) dropped.push(b.time);
      batches = batches.filter((b) => b.time > time - opts.windowMs);
      return partitionPairs(merged, opts.numPartitions());
    },
    handle: {
      name,
      kind: 'reduceByKeyAndWindow',
      snapshot: () => ({ batches, previous }),
      restore: (data: unknown) => {
        const d = data as { batches: typeof batches; previous: typeof previous };
        batches = d.batches;
        previous = d.previous;
      },
      delta: () => {
        const gone = new Set(dropped);
        const set: [unknown, unknown][] = added
          .filter((a) => !gone.has(a.time))
          .map((a) => [a.time, a.values]);
        if (previousChanged) set.push(['previous', previous]);
        const d = { set, removed: dropped };
        added = [];
        dropped = [];
        previousChanged = false;
        return d;
      },
      applyDelta: (d) => {
        const removed = new Set(d.removed as number[]);
        batches = batches.filter((b) => !removed.has(b.time));
        for (const [key, value] of d.set) {
          if (key === 'previous') previous = value as [K, V][];
          else batches.push({ time: key as number, values: value as [K, V][] });
        }
        batches.sort((a, b) => a.time - b.time);
      },
    } satisfies StateHandle,
  };
}

/** Spark's updateStateByKey: every key's state after each batch; returning undefined removes the key. */
export function updateState<K, V, S>(
  name: string,
  fn: (values: V[], state: S | undefined) => S | undefined,
  initial: Iterable<Pair<K, S>> | undefined,
  numPartitions: () => number,
) {
  let state = new KeyMap<K, S>();
  const dirty = new Dirty<K>();
  for (const [k, s] of initial ?? []) {
    state.set(k, s);
    dirty.mark(k);
  }
  return {
    step(parent: Batch<Pair<K, V>>): Batch<[K, S]> {
      const grouped = new KeyMap<K, V[]>();
      for (const p of parent.partitions) {
        for (const [k, v] of p) {
          const list = grouped.get(k);
          if (list) list.push(v);
          else grouped.set(k, [v]);
        }
      }
      // In place: a second map of every key would double the peak memory of a large state.
      const visit = (k: K, before: S | undefined) => {
        const s = fn(grouped.get(k) ?? [], before);
        if (s === undefined) state.delete(k);
        else if (s !== before) state.set(k, s);
        // A state object mutated in place looks unchanged by identity: keys with values count as changed.
        if (s !== before || grouped.has(k)) dirty.mark(k);
      };
      const fresh = [...grouped.entries()].filter(([k]) => !state.has(k));
      for (const [k, before] of state) visit(k, before);
      for (const [k] of fresh) visit(k, undefined);
      return partitionPairs(state.entries(), numPartitions());
    },
    handle: {
      name,
      kind: 'updateStateByKey',
      snapshot: () => [...state.entries()],
      restore: (data: unknown) => {
        state = new KeyMap<K, S>();
        for (const [k, s] of data as [K, S][]) state.set(k, s);
      },
      delta: () => dirty.take(state),
      applyDelta: (d) => {
        for (const [k, s] of d.set) state.set(k as K, s as S);
        for (const k of d.removed) state.delete(k as K);
      },
    } satisfies StateHandle,
  };
}

/** Options of `mapWithState` (Spark's `StateSpec`). */
export interface MapWithStateSpec<K, V, S, U> {
  /** Called for every record, and once more for a key that times out (then `value` is undefined). */
  readonly fn: (key: K, value: V | undefined, state: State<S>) => U | undefined;
  /** Keys idle (state not updated) longer than this many ms time out: `fn` is called with `state.isTimingOut()`, then the state is removed. */
  readonly timeoutMs?: number;
  readonly initialState?: Iterable<Pair<K, S>>;
  readonly numPartitions?: number;
}

/** Spark's mapWithState: per-key state, emitted records, and state snapshots. */
export function mapWithStateOf<K, V, S, U>(
  name: string,
  spec: MapWithStateSpec<K, V, S, U>,
  numPartitions: () => number,
) {
  let state = new KeyMap<K, { value: S; updated: number }>();
  const dirty = new Dirty<K>();
  for (const [k, s] of spec.initialState ?? []) {
    state.set(k, { value: s, updated: Number.NEGATIVE_INFINITY });
    dirty.mark(k);
  }
  const snapshots = new Map<number, Batch<[K, S]>>();
  return {
    step(time: number, parent: Batch<Pair<K, V>>): Batch<U> {
      // As Spark: initial state counts as updated at the first batch, so it can time out.
      for (const [, cur] of state) if (cur.updated === Number.NEGATIVE_INFINITY) cur.updated = time;
      const emitted: U[] = [];
      for (const p of parent.partitions) {
        for (const [k, v] of p) {
          const cur = state.get(k);
          const st = new State<S>(cur !== undefined, cur?.value, false);
          const out = spec.fn(k, v, st);
          if (out !== undefined) emitted.push(out);
          if (st.wasRemoved) state.delete(k);
          else if (st.wasUpdated) state.set(k, { value: st.get(), updated: time });
          if (st.wasRemoved || st.wasUpdated) dirty.mark(k);
        }
      }
      if (spec.timeoutMs !== undefined) {
        const threshold = time - spec.timeoutMs;
        for (const [k, cur] of [...state.entries()]) {
          if (cur.updated < threshold) {
            const out = spec.fn(k, undefined, new State<S>(true, cur.value, true));
            if (out !== undefined) emitted.push(out);
            state.delete(k);
            dirty.mark(k);
          }
        }
      }
      snapshots.clear();
      snapshots.set(
        time,
        partitionPairs(
          [...state.entries()].map(([k, s]): [K, S] => [k, s.value]),
          numPartitions(),
        ),
      );
      return Batch.of(emitted, Math.max(1, parent.numPartitions));
    },
    snapshotAt(time: number): Batch<[K, S]> {
      return snapshots.get(time) ?? Batch.empty();
    },
    handle: {
      name,
      kind: 'mapWithState',
      snapshot: () =>
        [...state.entries()].map(([k, s]) => [k, s.value, Number.isFinite(s.updated) ? s.updated : null]),
      restore: (data: unknown) => {
        state = new KeyMap();
        for (const [k, v, u] of data as [K, S, number | null][])
          state.set(k, { value: v, updated: u ?? Number.NEGATIVE_INFINITY });
      },
    } satisfies StateHandle,
  };
}
