import type { TestDriver } from '../../src/core/testing/driver.js';

/** Advances the started driver `batches` intervals, or up to the first batch that fails: its error. */
export async function advanceBatches(driver: TestDriver, batches: number): Promise<Error | undefined> {
  try {
    for (let i = 0; i < batches; i++) await driver.advance();
  } catch (e) {
    return e as Error;
  }
  return undefined;
}
