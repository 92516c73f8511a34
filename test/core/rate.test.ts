import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidOptionError } from '../../src/core/errors.js';
import { PidRateEstimator, RateController } from '../../src/core/rate.js';

describe('PidRateEstimator', () => {
  it('says nothing after the first batch, then lowers the rate when processing is slower than the input', () => {
    const e = new PidRateEstimator(1000);
    // 10,000 records processed in 2 s: 5,000 records/s sustained.
    assert.equal(e.compute(1000, 10_000, 2000, 0), undefined);
    const r = e.compute(2000, 10_000, 2000, 1000);
    assert.ok(r !== undefined && r < 5000, `rate ${r}`);
  });

  it('converges to the processing rate when there is no backlog', () => {
    const e = new PidRateEstimator(1000);
    let rate: number | undefined;
    for (let t = 1; t <= 20; t++) rate = e.compute(t * 1000, 3000, 1000, 0) ?? rate;
    assert.ok(rate !== undefined && Math.abs(rate - 3000) < 1, `rate ${rate}`);
  });

  it('never goes below the minimum rate', () => {
    const e = new PidRateEstimator(1000, { minRate: 250 });
    e.compute(1000, 10, 10_000, 0);
    assert.equal(e.compute(2000, 10, 10_000, 60_000), 250);
  });

  it('ignores empty batches and batches not newer than the last', () => {
    const e = new PidRateEstimator(1000);
    e.compute(1000, 100, 100, 0);
    assert.equal(e.compute(2000, 0, 100, 0), undefined);
    assert.equal(e.compute(1000, 100, 100, 0), undefined);
  });
});

describe('RateController', () => {
  it('caps each partition at maxRatePerPartition x interval', () => {
    const c = new RateController({ maxRatePerPartition: 100 }, 2000);
    assert.deepEqual(c.caps([1000, 5, 0]), [200, 200, 200]);
  });

  it('without options sets no cap', () => {
    assert.deepEqual(new RateController({}, 1000).caps([10, 20]), [undefined, undefined]);
  });

  it('shares maxRecordsPerBatch over partitions in proportion to what each would take', () => {
    const caps = new RateController({ maxRecordsPerBatch: 100 }, 1000).caps([300, 100, 0]);
    assert.equal(
      caps.reduce((a, b) => a! + b!, 0),
      100,
    );
    assert.deepEqual(caps, [75, 25, 0]);
  });

  it('uses the initial rate for the first batch, shared by lag, then the estimated rate', () => {
    const c = new RateController({ backpressure: { initialRate: 1000 } }, 1000);
    assert.deepEqual(c.caps([3000, 1000]), [750, 250]);
    c.update(1000, 1000, 2000, 0); // processing: 500 records/s
    c.update(2000, 1000, 2000, 1000);
    const rate = c.rate!;
    assert.ok(rate < 1000);
    assert.deepEqual(c.caps([100, 100]), [
      Math.max(1, Math.floor(rate / 2)),
      Math.max(1, Math.floor(rate / 2)),
    ]);
  });

  it('backpressure stays under maxRatePerPartition', () => {
    const c = new RateController({ maxRatePerPartition: 10, backpressure: { initialRate: 1_000_000 } }, 1000);
    assert.deepEqual(c.caps([500, 500]), [10, 10]);
  });

  it('rejects a non-positive rate, naming the option', () => {
    assert.throws(
      () => new RateController({ maxRatePerPartition: 0 }, 1000),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'maxRatePerPartition',
    );
    assert.throws(
      () => new RateController({ backpressure: { initialRate: -1 } }, 1000),
      (e: unknown) => e instanceof InvalidOptionError && e.option === 'backpressure.initialRate',
    );
  });
});
