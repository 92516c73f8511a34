/**
 * Time, injected. The engine never reads `Date.now()` or calls `setTimeout` directly: it asks its
 * clock, so tests can drive it with a {@link ManualClock}.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves when `now() >= time`, or rejects with the signal's reason when it is aborted. */
  sleepUntil(time: number, signal?: AbortSignal): Promise<void>;
}

/** Wall-clock time. */
export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  sleepUntil(time: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const wait = Math.max(0, time - Date.now());
      const timer = setTimeout(done, wait);
      function done() {
        signal?.removeEventListener('abort', onAbort);
        // setTimeout may fire a millisecond early; never report a time that has not come.
        const left = time - Date.now();
        if (left > 0) setTimeout(done, left);
        else resolve();
      }
      function onAbort() {
        clearTimeout(timer);
        reject(signal!.reason);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * A clock that moves only when told to. Sleepers wake, in time order, when {@link ManualClock.advance}
 * or {@link ManualClock.setTime} reaches their time.
 *
 * @example
 * ```ts
 * const clock = new ManualClock(0);
 * const woke = clock.sleepUntil(1000);
 * clock.advance(1000); // woke resolves
 * ```
 */
export class ManualClock implements Clock {
  #time: number;
  #sleepers: { time: number; resolve: () => void }[] = [];

  constructor(start = 0) {
    this.#time = start;
  }

  now(): number {
    return this.#time;
  }

  advance(ms: number): void {
    this.setTime(this.#time + ms);
  }

  setTime(time: number): void {
    if (time < this.#time) throw new RangeError(`ManualClock cannot go back from ${this.#time} to ${time}`);
    this.#time = time;
    const due = this.#sleepers.filter((s) => s.time <= time).sort((a, b) => a.time - b.time);
    this.#sleepers = this.#sleepers.filter((s) => s.time > time);
    for (const s of due) s.resolve();
  }

  /** Number of callers waiting for a time that has not come. */
  get waiting(): number {
    return this.#sleepers.length;
  }

  sleepUntil(time: number, signal?: AbortSignal): Promise<void> {
    if (time <= this.#time) return Promise.resolve();
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const sleeper = {
        time,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#sleepers.push(sleeper);
    });
  }
}
