import { createJsonLogger, escapeControlChars } from '../core/logger.js';
import { errorFields, formatError } from './errors.js';
import { buildContext, loadPipeline } from './load.js';
import type { TopicPartition } from '../core/source.js';
import { REBALANCE_MESSAGE, SUPERVISED_ENV } from './supervise.js';

/** Options of {@link runPipelineFile}. */
export interface RunOptions {
  /** Log level of the context's logger (pino's levels). Default SLUICE_LOG_LEVEL or info. */
  logLevel?: string;
  /** Where the CLI's own messages go (default stderr). */
  writeError?: (line: string) => void;
}

/**
 * `sluice run <file>`: loads the pipeline file, builds its context with `stopGracefullyOnSignals`,
 * starts it and waits until it stops. Resolves to the process exit code: 0 when the context stopped
 * gracefully (SIGINT/SIGTERM, or the pipeline stopped it), 1 when loading, building, starting or a
 * batch failed (the error is reported first, see {@link reportFailure}).
 *
 * A signal that arrives before the context has started (while the file loads or the sources open)
 * stops it as soon as it has started; a second one exits at once with 130. An exception nothing
 * catches (thrown by a callback of the pipeline outside a batch) is reported the same way and
 * exits with 1 at once, as Node would, instead of Node's multi-line print of it.
 */
export async function runPipelineFile(file: string, options: RunOptions = {}): Promise<number> {
  const writeError = options.writeError ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (options.logLevel !== undefined) process.env.SLUICE_LOG_LEVEL = options.logLevel;
  let pipeline: string | undefined;
  let started = false;
  const report = (e: unknown) =>
    reportFailure(file, started ? 'the pipeline failed' : 'cannot start', e, {
      logLevel: options.logLevel,
      pipeline,
      writeError,
    });
  // Left installed: until the process exits, whatever the pipeline left running belongs to this run.
  process.on('uncaughtException', (e) => {
    try {
      report(e);
    } finally {
      process.exit(1);
    }
  });
  let early: string | undefined;
  const earlyHandler = (signal: NodeJS.Signals): void => {
    if (early !== undefined) process.exit(130);
    early = signal;
    writeError(
      `sluice run: ${signal} received while starting; stopping once started (again to exit at once)`,
    );
  };
  process.on('SIGINT', earlyHandler);
  process.on('SIGTERM', earlyHandler);
  if (process.env[SUPERVISED_ENV] === '1' && process.channel) {
    // Under `sluice run --supervise`: its channel must not keep this process alive, and losing it
    // (the supervisor died) stops the pipeline gracefully, as SIGTERM does: no orphan job.
    process.channel.unref();
    process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  }
  try {
    const definition = await loadPipeline(file);
    const ctx = await buildContext(file, definition, {
      logLevel: options.logLevel,
      stopGracefullyOnSignals: true,
    });
    pipeline = ctx.pipelineId;
    if (process.env[SUPERVISED_ENV] === '1' && process.send) {
      // Under `sluice run --instances`: each rebalance goes to the supervisor, which prints a line
      // for it whatever the log level.
      const label = (p: TopicPartition) => `${p.topic}-${p.partition}`;
      ctx.addListener({
        onRebalance: (e) =>
          void process.send?.({
            type: REBALANCE_MESSAGE,
            instanceId: e.instanceId,
            input: e.input,
            gained: e.gained.map(label),
            lost: e.lost.map(label),
            owned: e.owned.map(label),
          }),
      });
    }
    try {
      await ctx.start();
      started = true;
    } finally {
      process.removeListener('SIGINT', earlyHandler);
      process.removeListener('SIGTERM', earlyHandler);
    }
    if (early !== undefined) await ctx.stop({ graceful: true });
    await ctx.awaitTermination();
    return 0;
  } catch (e) {
    report(e);
    return 1;
  } finally {
    process.removeListener('SIGINT', earlyHandler);
    process.removeListener('SIGTERM', earlyHandler);
  }
}

/**
 * How `sluice run` reports the error that ends it, on stderr:
 *
 * 1. a JSON log entry at level 60 (fatal) through a logger of the run's level, with the file, the
 *    pipeline id once known, and {@link errorFields}: `code`, `message`, `hint`, `retriable`, and
 *    the stack of what user code threw (`cause.stack`, or `stack`), never of a Sluice error;
 * 2. then, for a person and for any level (also `silent`), one line
 *    `sluice run <file>: cannot start|the pipeline failed: CODE: message. hint` with control
 *    characters escaped, so that a message quoting a record cannot forge a log line.
 */
export function reportFailure(
  file: string,
  phase: 'cannot start' | 'the pipeline failed',
  error: unknown,
  options: { logLevel?: string; pipeline?: string; writeError: (line: string) => void },
): void {
  const prefix = `sluice run ${file}: ${phase}`;
  let logger: ReturnType<typeof createJsonLogger> | undefined;
  try {
    logger = createJsonLogger({ level: options.logLevel });
  } catch {
    // An unknown SLUICE_LOG_LEVEL: the error it caused is the one reported, on the line below.
  }
  logger?.fatal(
    {
      file,
      ...(options.pipeline !== undefined ? { pipeline: options.pipeline } : {}),
      ...errorFields(error),
    },
    prefix,
  );
  options.writeError(`${escapeControlChars(prefix)}: ${formatError(error)}`);
}

/**
 * Once the command is done, a pipeline may still hold handles (a client it created and never closed)
 * that would keep the process alive: exit anyway after `graceMs`. The timer is unref'd, so it never
 * delays a process that ends by itself.
 */
export function exitEvenIfHandlesRemain(
  graceMs = 5_000,
  writeError = (line: string) => process.stderr.write(`${line}\n`),
): void {
  setTimeout(() => {
    writeError(
      `sluice: something the pipeline opened is still open ${graceMs} ms after it stopped; exiting anyway`,
    );
    process.exit(process.exitCode ?? 0);
  }, graceMs).unref();
}
