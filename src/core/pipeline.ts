import type { StreamingContext, StreamingContextOptions } from './context.js';

/**
 * A pipeline file's default export, run by `sluice run <file>` and shown by `sluice describe <file>`.
 * `build` defines the streams and outputs on the context it is given; the CLI starts it.
 *
 * @example
 * ```ts
 * // wordcount.ts — run with: npx sluice run wordcount.ts
 * import { definePipeline, socketTextStream } from 'sluice';
 * export default definePipeline({
 *   pipelineId: 'wordcount',
 *   batchInterval: 1000,
 *   build(ctx) {
 *     socketTextStream(ctx, '127.0.0.1', 9999).flatMap((l) => l.split(' ')).countByValue().print();
 *   },
 * });
 * ```
 */
export interface PipelineDefinition {
  /** Context options; `stopGracefullyOnSignals` is turned on by `sluice run`. */
  readonly pipelineId?: string;
  readonly batchInterval: number;
  readonly context?: Omit<StreamingContextOptions, 'batchInterval' | 'pipelineId'>;
  /** Defines the pipeline on `ctx`. May be async (e.g. to load reference data first). */
  build(ctx: StreamingContext): void | Promise<void>;
}

/** Identity function that gives a pipeline file's default export its type. */
export function definePipeline(definition: PipelineDefinition): PipelineDefinition {
  return definition;
}

/** True when `value` looks like a {@link PipelineDefinition}. */
export function isPipelineDefinition(value: unknown): value is PipelineDefinition {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as PipelineDefinition).build === 'function' &&
    typeof (value as PipelineDefinition).batchInterval === 'number'
  );
}
