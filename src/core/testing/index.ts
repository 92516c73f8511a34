export { TestDriver, CollectedOutput } from './driver.js';
export type { TestInput, CollectedBatch, TestDriverOptions } from './driver.js';
export { ManualClock } from '../clock.js';
export { QueueSource } from '../queue-source.js';
