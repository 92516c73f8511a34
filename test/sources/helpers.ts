import { SystemClock } from '../../src/core/clock.js';
import type { Logger } from '../../src/core/logger.js';
import type { SourceContext } from '../../src/core/source.js';

/** One log call recorded by {@link RecordingLogger}. */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that keeps what it is given, so tests can check what a source logged. */
export class RecordingLogger implements Logger {
  constructor(
    readonly entries: LogEntry[] = [],
    private readonly bindings: Record<string, unknown> = {},
  ) {}
  #add(level: LogEntry['level'], obj: object, msg?: string): void {
    this.entries.push({ level, obj: { ...this.bindings, ...obj }, msg });
  }
  debug(obj: object, msg?: string): void {
    this.#add('debug', obj, msg);
  }
  info(obj: object, msg?: string): void {
    this.#add('info', obj, msg);
  }
  warn(obj: object, msg?: string): void {
    this.#add('warn', obj, msg);
  }
  error(obj: object, msg?: string): void {
    this.#add('error', obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new RecordingLogger(this.entries, { ...this.bindings, ...bindings });
  }
  at(level: LogEntry['level']): LogEntry[] {
    return this.entries.filter((e) => e.level === level);
  }
}

export function sourceContext(
  overrides: Partial<SourceContext> = {},
): SourceContext & { logger: RecordingLogger; controller: AbortController } {
  const controller = new AbortController();
  const logger = new RecordingLogger();
  return {
    pipelineId: 'test-pipeline',
    name: 'input',
    clock: new SystemClock(),
    batchInterval: 1000,
    signal: controller.signal,
    storedOffsets: async () => [],
    reportBadRecord: (_letter, error) => {
      throw error;
    },
    reportOffsetReset: () => {},
    reportRebalance: () => {},
    membership: 'single',
    instanceId: 'test-instance',
    ...overrides,
    logger,
    controller,
  };
}

/** Polls `cond` every 5 ms until it is true; fails after `timeoutMs` with `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
