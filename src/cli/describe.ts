import { silentLogger } from '../core/logger.js';
import { buildContext, loadPipeline } from './load.js';

/** Options of {@link describePipelineFile}. */
export interface DescribeOptions {
  /** The plan as JSON (`ctx.describe('json')`) instead of text. */
  json?: boolean;
}

/**
 * `sluice describe <file>`: builds the pipeline without starting it (no source is opened, nothing
 * connects) and returns its plan: every operator with its name, kind, parents and options.
 *
 * @throws PipelineFileError when the file cannot be loaded or exports no pipeline, and whatever `build` throws.
 */
export async function describePipelineFile(file: string, options: DescribeOptions = {}): Promise<string> {
  const definition = await loadPipeline(file);
  const ctx = await buildContext(file, definition, { logger: silentLogger });
  return ctx.describe(options.json ? 'json' : 'text');
}
