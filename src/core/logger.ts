import { pino, type Logger as PinoLogger } from 'pino';
import { isSecretName, redactUrl } from './redact.js';

/** The logging interface the engine and adapters use (pino's). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Keys whose values are replaced by `[redacted]` wherever they appear in a log line, besides every
 * key the secret-name rule of `src/core/redact.ts` catches (password, secret, token, ...).
 */
export const REDACTED_KEYS = [
  'password',
  'sasl.password',
  'sasl.username',
  'ssl.key.password',
  'ssl.keystore.password',
  'ssl.key.pem',
  'ssl_key',
  'sasl.jaas.config',
  'sasl.oauthbearer.config',
  'sasl.oauthbearer.client.secret',
  'secret',
  'token',
  'connectionString',
];

/**
 * The default logger: JSON lines on stderr, level from `SLUICE_LOG_LEVEL` (default `info`), secrets
 * redacted at any depth: the value of a key named like a secret (the rule of `src/core/redact.ts`,
 * plus {@link REDACTED_KEYS}; not `key` alone, a record's key), a PEM private key anywhere, and the
 * password and secret query parameters of any URL in a string (also in an error's message and stack).
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return createJsonLogger(options);
}

/** {@link createLogger} with pino's whole API (`fatal`, `trace`), for the CLI. */
export function createJsonLogger(options: { level?: string; name?: string } = {}): PinoLogger {
  const logger = pino(
    {
      name: options.name ?? 'sluice',
      level: options.level ?? process.env.SLUICE_LOG_LEVEL ?? 'info',
      formatters: { log: (obj) => scrubValue(obj) as Record<string, unknown> },
      serializers: { err: (e: Error) => scrubSerializedError(pino.stdSerializers.err(e)) },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubText(a) : a));
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    // Synchronous: the CLI's own lines on stderr and other loggers' never interleave inside a line,
    // and the last entries are written before the process exits.
    pino.destination({ dest: 2, sync: true }),
  );
  // pino writes a child's bindings without the log formatter; children inherit this method.
  const child = logger.child;
  logger.child = function (this: PinoLogger, bindings, opts) {
    return child.call(this, scrubValue(bindings) as typeof bindings, opts);
  } as typeof child;
  return logger;
}

const SECRET_LOG_KEYS = new Set(REDACTED_KEYS);
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const URL_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>`]+/g;

function isSecretLogKey(key: string): boolean {
  return SECRET_LOG_KEYS.has(key) || (key !== 'key' && isSecretName(key));
}

/**
 * A copy of a log entry's plain objects and arrays with secrets replaced. Class instances (an Error
 * before its serializer, a Buffer) are left to their serializers; `err` is scrubbed after them.
 */
function scrubValue(value: unknown, path: WeakSet<object> = new WeakSet(), plainProto?: unknown): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object') return value;
  if (path.has(value)) return '[Circular]';
  const proto = Object.getPrototypeOf(value) as unknown;
  const plain =
    proto === Object.prototype || proto === null || (plainProto !== undefined && proto === plainProto);
  if (!Array.isArray(value) && !plain) return value;
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => scrubValue(v, path, plainProto));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] =
        isSecretLogKey(k) && v !== undefined && v !== null ? '[redacted]' : scrubValue(v, path, plainProto);
    }
    return out;
  } finally {
    path.delete(value);
  }
}

/** pino's serialized error (its `cause` serialized the same way) scrubbed as a plain object. */
function scrubSerializedError(serialized: object): unknown {
  return scrubValue(serialized, new WeakSet(), Object.getPrototypeOf(serialized));
}

/** `text` with the secrets of every URL in it redacted; a PEM private key hides the whole text. */
export function scrubText(text: string): string {
  if (PRIVATE_KEY_PEM.test(text)) return '[redacted]';
  return text.includes('://') ? text.replace(URL_IN_TEXT, (url) => redactUrl(url)) : text;
}

/**
 * `text` as one line with control characters escaped: `\n`, `\r`, `\t` as such, other C0 and C1
 * characters, DEL and the Unicode line/paragraph separators as `\xNN` / `\uNNNN`. What is not
 * a JSON log line and might hold record content (a printed record, the CLI's error summary) goes
 * through this, so that it can never start a line that looks like a log entry. Backslashes are
 * kept as they are (readable paths); the escaping is for safety, not to be reversed.
 */
export function escapeControlChars(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    switch (c) {
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default: {
        const code = c.charCodeAt(0);
        return code <= 0xff
          ? `\\x${code.toString(16).padStart(2, '0')}`
          : `\\u${code.toString(16).padStart(4, '0')}`;
      }
    }
  });
}

/** A logger that drops everything (the test driver's default). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
