import { SluiceError } from '../core/errors.js';
import { escapeControlChars, scrubText } from '../core/logger.js';

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

/**
 * `CODE: message` for any error (`code` when the error has a string one, else its name), as the CLI
 * prints it: one line, control characters escaped (a message may quote a record), secrets of URLs
 * redacted, no stack trace. A SluiceError's message ends with its hint.
 */
export function formatError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const text =
      typeof code === 'string' && code !== '' ? `${code}: ${e.message}` : `${e.name}: ${e.message}`;
    return escapeControlChars(scrubText(text));
  }
  return escapeControlChars(scrubText(String(e)));
}

/**
 * The fields of the CLI's fatal log entry for an error: `code` (or `type`, the error's name, for an
 * error without a code), `message` (without the hint), `hint`, `retriable`. A Sluice error carries
 * no stack: it says what happened and what to do. What user code threw does: an error that is not a
 * Sluice error has its `stack`, and the foreign `cause` of a Sluice error (the user function's error
 * in an OperatorError, the import failure of a pipeline file) is given as `cause` with its stack.
 */
export function errorFields(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { type: typeof e, message: String(e) };
  const code = (e as { code?: unknown }).code;
  const fields: Record<string, unknown> = {
    ...(typeof code === 'string' && code !== '' ? { code } : {}),
    type: e.name,
    message: e.message,
  };
  if (e instanceof SluiceError) {
    const suffix = e.hint ? `. ${e.hint}` : '';
    if (suffix && e.message.endsWith(suffix)) fields.message = e.message.slice(0, -suffix.length);
    fields.hint = e.hint;
    fields.retriable = e.retriable;
    const cause = e.cause;
    if (cause instanceof Error && !(cause instanceof SluiceError)) {
      fields.cause = {
        type: cause.name,
        message: cause.message,
        ...(cause.stack ? { stack: cause.stack } : {}),
      };
    }
  } else if (e.stack) {
    fields.stack = e.stack;
  }
  return fields;
}
