import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StreamingContext, type StreamingContextOptions } from '../core/context.js';
import { createLogger, type Logger } from '../core/logger.js';
import { isPipelineDefinition, type PipelineDefinition } from '../core/pipeline.js';
import { PipelineFileError } from './errors.js';

const EXPECTED =
  "its default export must be a pipeline definition: `export default definePipeline({ batchInterval: 1000, build(ctx) { ... } })` (definePipeline from 'sluice')";

/** Pipeline files that need a TypeScript loader. */
const TYPESCRIPT_FILE = /\.[cm]?tsx?$/i;
let typeScriptLoader: Promise<void> | undefined;

/**
 * Registers tsx's ESM loader once, before the first TypeScript pipeline file is imported. The
 * installed package is JavaScript (dist/) and loads tsx only here, so `sluice run pipeline.js` never
 * does; when Sluice itself runs from its TypeScript sources (a source checkout: `bin/sluice.js` has
 * registered tsx already), there is nothing to do.
 */
function ensureTypeScriptLoader(): Promise<void> {
  typeScriptLoader ??= import.meta.url.endsWith('.ts')
    ? Promise.resolve()
    : import('tsx/esm/api').then(({ register }) => {
        register();
      });
  return typeScriptLoader;
}

/**
 * Imports a pipeline file (TypeScript or JavaScript; for `.ts`, `.mts`, `.cts` and `.tsx` files
 * tsx's loader is registered first) and returns its default export, checked with
 * {@link isPipelineDefinition}.
 *
 * @throws PipelineFileError when the file does not exist, fails to load, or exports no pipeline.
 */
export async function loadPipeline(file: string): Promise<PipelineDefinition> {
  const absolute = path.resolve(file);
  if (!existsSync(absolute) || !statSync(absolute).isFile()) {
    throw new PipelineFileError(
      file,
      `Pipeline file ${file} does not exist (looked for ${absolute})`,
      'Check the path',
    );
  }
  let mod: Record<string, unknown>;
  try {
    if (TYPESCRIPT_FILE.test(absolute)) await ensureTypeScriptLoader();
    mod = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (e) {
    throw new PipelineFileError(
      file,
      `Pipeline file ${file} failed to load: ${e instanceof Error ? e.message : String(e)}`,
      'Fix the error in the file (or in what it imports)',
      { cause: e },
    );
  }
  const definition = mod.default;
  if (!isPipelineDefinition(definition)) {
    throw new PipelineFileError(
      file,
      `Pipeline file ${file} does not export a pipeline: ${describeExport(mod)}`,
      `Fix the file: ${EXPECTED}`,
    );
  }
  return definition;
}

function describeExport(mod: Record<string, unknown>): string {
  if (!('default' in mod) || mod.default === undefined) {
    const names = Object.keys(mod).filter((k) => k !== 'default');
    return `it has no default export${names.length ? ` (it exports ${names.join(', ')})` : ''}`;
  }
  const d = mod.default;
  if (typeof d === 'function') return 'its default export is a function, not a pipeline definition object';
  if (typeof d !== 'object' || d === null)
    return `its default export is ${d === null ? 'null' : `a ${typeof d}`}`;
  const missing: string[] = [];
  if (typeof (d as { batchInterval?: unknown }).batchInterval !== 'number')
    missing.push('a numeric batchInterval');
  if (typeof (d as { build?: unknown }).build !== 'function') missing.push('a build(ctx) function');
  return `its default export lacks ${missing.join(' and ')}`;
}

/** Options of {@link buildContext}. */
export interface BuildOptions {
  /** Logger level (pino's: trace, debug, info, warn, error, fatal, silent). Default SLUICE_LOG_LEVEL or info. */
  logLevel?: string;
  /** Install SIGINT/SIGTERM handlers that stop the context gracefully (what `sluice run` does). */
  stopGracefullyOnSignals?: boolean;
  /** Overrides the logger (tests). */
  logger?: Logger;
}

/**
 * Creates the pipeline's StreamingContext and runs its `build`. The pipeline id is the definition's
 * `pipelineId`, or else the file's name without extension (characters that are not allowed become `-`).
 */
export async function buildContext(
  file: string,
  definition: PipelineDefinition,
  options: BuildOptions = {},
): Promise<StreamingContext> {
  const context: StreamingContextOptions = {
    ...definition.context,
    batchInterval: definition.batchInterval,
    pipelineId: definition.pipelineId ?? pipelineIdFromFile(file),
    stopGracefullyOnSignals:
      options.stopGracefullyOnSignals ?? definition.context?.stopGracefullyOnSignals ?? false,
    logger:
      options.logger ??
      (options.logLevel !== undefined
        ? createLogger({ level: options.logLevel })
        : definition.context?.logger),
  };
  const ctx = new StreamingContext(context);
  await definition.build(ctx);
  return ctx;
}

/** `examples/socket-wordcount.ts` → `socket-wordcount`. */
export function pipelineIdFromFile(file: string): string {
  const base = path.basename(file).replace(/\.[cm]?[jt]sx?$/, '');
  const id = base.replace(/[^A-Za-z0-9_.-]+/g, '-').slice(0, 200);
  return id === '' ? 'sluice' : id;
}
