import { SluiceError } from '../core/errors.js';

/** A pipeline file given to `sluice run` / `sluice describe` cannot be used: missing, failing to load, or exporting no pipeline. */
export class PipelineFileError extends SluiceError {
  static readonly code = 'SLUICE_PIPELINE_FILE';
  readonly code = PipelineFileError.code;
  constructor(
    readonly file: string,
    message: string,
    hint: string,
    options?: { cause?: unknown },
  ) {
    super(message, hint, options);
  }
}

/** `CODE: message` for any error (`code` when the error has a string one), as the CLI prints it. */
export function formatError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const text =
      typeof code === 'string' && code !== '' ? `${code}: ${e.message}` : `${e.name}: ${e.message}`;
    // A user function's error is wrapped (OperatorError); its stack is what the user needs to find it.
    const cause = e.cause instanceof Error && e.cause.stack ? `\ncaused by: ${e.cause.stack}` : '';
    return text + cause;
  }
  return String(e);
}
