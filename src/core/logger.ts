import { pino } from 'pino';

/** The logging interface the engine and adapters use (pino's). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Keys whose values are replaced by `[redacted]` wherever they appear in a log line. */
export const REDACTED_KEYS = [
  'password',
  'sasl.password',
  'ssl.key.password',
  'ssl.keystore.password',
  'sasl.oauthbearer.client.secret',
  'secret',
  'token',
  'connectionString',
];

/**
 * The default logger: JSON lines on stderr, level from `SLUICE_LOG_LEVEL` (default `info`), secrets
 * redacted at any depth up to two levels.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  const paths = REDACTED_KEYS.flatMap((k) => {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const sep = key.startsWith('[') ? '' : '.';
    return [key, `*${sep}${key}`, `*.*${sep}${key}`];
  });
  return pino(
    {
      name: options.name ?? 'sluice',
      level: options.level ?? process.env.SLUICE_LOG_LEVEL ?? 'info',
      redact: { paths, censor: '[redacted]' },
    },
    pino.destination(2),
  );
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
