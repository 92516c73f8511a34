import { SluiceError } from '../core/errors.js';

/**
 * ZooKeeper did not answer in time: no session within the connect timeout, or an operation not
 * answered within the operation timeout. An operation that timed out may still have been applied.
 */
export class ZooKeeperUnreachableError extends SluiceError {
  static readonly code = 'SLUICE_ZOOKEEPER_UNREACHABLE';
  readonly code = ZooKeeperUnreachableError.code;
  override readonly retriable = true;
  constructor(
    readonly connectString: string,
    readonly timeoutMs: number,
    readonly operation: string,
    cause?: unknown,
  ) {
    super(
      `ZooKeeper at ${connectString} did not answer ${operation} within ${timeoutMs} ms`,
      'Start ZooKeeper, or point connectString / ZOOKEEPER_CONNECT at a running ensemble',
      { cause },
    );
  }
}
