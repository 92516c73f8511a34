import { InvalidOptionError } from './errors.js';

/** Rate control of a replayable source (Spark's maxRatePerPartition, backpressure.*). */
export interface RateOptions {
  /** Records per second per partition; a batch takes at most rate x interval from a partition. */
  readonly maxRatePerPartition?: number;
  /** Records per batch over all partitions. */
  readonly maxRecordsPerBatch?: number;
  /** Adapt the rate so processing keeps up with the interval (a PID controller, as Spark). Default off. */
  readonly backpressure?:
    | boolean
    | {
        /** Records per second over all partitions for the first batch after a (re)start. */
        readonly initialRate?: number;
        /** Lowest rate the estimator sets, records/s (default 100). */
        readonly minRate?: number;
        readonly proportional?: number;
        readonly integral?: number;
        readonly derivative?: number;
      };
}

export function validateRateOptions(o: RateOptions | undefined): void {
  if (!o) return;
  const positive = (name: string, v: unknown) => {
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v > 0)) {
      throw new InvalidOptionError(name, 'a number > 0', v);
    }
  };
  positive('maxRatePerPartition', o.maxRatePerPartition);
  positive('maxRecordsPerBatch', o.maxRecordsPerBatch);
  if (typeof o.backpressure === 'object') {
    positive('backpressure.initialRate', o.backpressure.initialRate);
    positive('backpressure.minRate', o.backpressure.minRate);
    for (const k of ['proportional', 'integral', 'derivative'] as const) {
      const v = o.backpressure[k];
      if (v !== undefined && !(typeof v === 'number' && v >= 0))
        throw new InvalidOptionError(`backpressure.${k}`, 'a number >= 0', v);
    }
  } else if (o.backpressure !== undefined && typeof o.backpressure !== 'boolean') {
    throw new InvalidOptionError(
      'backpressure',
      'true, false or { initialRate, minRate, proportional, integral, derivative }',
      o.backpressure,
    );
  }
}

/**
 * Spark Streaming's PID rate estimator: from each batch's size, processing time and scheduling
 * delay, the rate (records/s) at which the job would just keep up with the interval.
 */
export class PidRateEstimator {
  readonly #intervalMs: number;
  readonly #p: number;
  readonly #i: number;
  readonly #d: number;
  readonly #minRate: number;
  #firstRun = true;
  #latestTime = -1;
  #latestRate = -1;
  #latestError = -1;

  constructor(
    batchIntervalMs: number,
    options: { proportional?: number; integral?: number; derivative?: number; minRate?: number } = {},
  ) {
    this.#intervalMs = batchIntervalMs;
    this.#p = options.proportional ?? 1.0;
    this.#i = options.integral ?? 0.2;
    this.#d = options.derivative ?? 0.0;
    this.#minRate = options.minRate ?? 100;
  }

  /** The new rate in records/s, or undefined when this batch says nothing new (or is the first). */
  compute(
    time: number,
    numRecords: number,
    processingTimeMs: number,
    schedulingDelayMs: number,
  ): number | undefined {
    if (!(time > this.#latestTime && numRecords > 0 && processingTimeMs > 0)) return undefined;
    const sinceUpdate = (time - this.#latestTime) / 1000;
    const processingRate = (numRecords / processingTimeMs) * 1000;
    // Positive when the last rate was above what processing sustains.
    const error = this.#latestRate - processingRate;
    // Backlog from the scheduling delay, in records/s over one interval.
    const historicalError = (schedulingDelayMs * processingRate) / this.#intervalMs;
    const dError = (error - this.#latestError) / sinceUpdate;
    const newRate = Math.max(
      this.#latestRate - this.#p * error - this.#i * historicalError - this.#d * dError,
      this.#minRate,
    );
    this.#latestTime = time;
    if (this.#firstRun) {
      this.#latestRate = processingRate;
      this.#latestError = 0;
      this.#firstRun = false;
      return undefined;
    }
    this.#latestRate = newRate;
    this.#latestError = error;
    return newRate;
  }
}

/**
 * Feeds the estimator after each batch and answers the per-partition caps of the next one, as
 * Spark's DirectKafkaInputDStream.maxMessagesPerPartition does: the estimated rate is shared
 * between partitions in proportion to their lag, capped by maxRatePerPartition; then the whole
 * batch is capped by maxRecordsPerBatch.
 */
export class RateController {
  readonly #options: RateOptions;
  readonly #intervalMs: number;
  readonly #estimator: PidRateEstimator | undefined;
  #rate: number | undefined;

  constructor(options: RateOptions, batchIntervalMs: number) {
    validateRateOptions(options);
    this.#options = options;
    this.#intervalMs = batchIntervalMs;
    const bp = options.backpressure;
    if (bp) {
      const o = typeof bp === 'object' ? bp : {};
      this.#estimator = new PidRateEstimator(batchIntervalMs, o);
      this.#rate = o.initialRate;
    }
  }

  /** The estimated rate in force (records/s over all partitions), if backpressure is on and has one. */
  get rate(): number | undefined {
    return this.#rate;
  }

  /** Call after each completed batch. */
  update(batchTime: number, numRecords: number, processingTimeMs: number, schedulingDelayMs: number): void {
    const r = this.#estimator?.compute(batchTime, numRecords, processingTimeMs, schedulingDelayMs);
    if (r !== undefined) this.#rate = r;
  }

  /** Max records per partition for the next batch, given each partition's lag; undefined = no cap. */
  caps(lags: readonly number[]): (number | undefined)[] {
    const seconds = this.#intervalMs / 1000;
    const maxRate = this.#options.maxRatePerPartition;
    const totalLag = lags.reduce((a, b) => a + b, 0);
    let perPartition: (number | undefined)[] = lags.map((lag) => {
      let rate: number | undefined;
      if (this.#rate !== undefined && this.#rate > 0) {
        const share = totalLag > 0 ? (lag / totalLag) * this.#rate : this.#rate / Math.max(1, lags.length);
        rate = maxRate !== undefined ? Math.min(share, maxRate) : share;
      } else {
        rate = maxRate;
      }
      // As Spark: at least one record per partition per batch, so a tiny rate never stalls.
      return rate === undefined ? undefined : Math.max(1, Math.floor(rate * seconds));
    });
    const maxBatch = this.#options.maxRecordsPerBatch;
    if (maxBatch !== undefined) {
      const planned = perPartition.map((cap, i) => Math.min(cap ?? Number.POSITIVE_INFINITY, lags[i]!));
      const total = planned.reduce((a, b) => a + b, 0);
      if (total > maxBatch) {
        // Share the batch cap in proportion to what each partition would have taken.
        const shares = planned.map((p) => Math.floor((p / total) * maxBatch));
        let left = maxBatch - shares.reduce((a, b) => a + b, 0);
        for (let i = 0; left > 0 && i < shares.length; i++) {
          if (shares[i]! < planned[i]!) {
            shares[i]!++;
            left--;
          }
        }
        perPartition = shares;
      }
    }
    return perPartition;
  }
}
