import { SluiceError } from '../core/errors.js';

/** Redis could not be reached: the connection failed and the bounded reconnection attempts ran out. */
export class RedisUnreachableError extends SluiceError {
  static readonly code = 'SLUICE_REDIS_UNREACHABLE';
  readonly code = RedisUnreachableError.code;
  override readonly retriable = true;
  constructor(
    /** `host:port` (or the socket path); never credentials. */
    readonly address: string,
    reason: string,
    cause?: unknown,
  ) {
    super(
      `Redis at ${address} is not reachable: ${reason}`,
      'Start Redis, or point the redis option / SLUICE_REDIS_URL at a running server',
      { cause },
    );
  }
}
