/** The errors of txloop/testing's PostgreSQL launcher. */
import { TxloopError } from '../errors.js';

/** No PostgreSQL server binaries were found (initdb and postgres); the message says how to install them. */
export class PostgresNotInstalledError extends TxloopError {
  override readonly name = 'PostgresNotInstalledError';
}

/** initdb or postgres failed, or postgres was not ready in time; the message ends with the tail of its output. */
export class PostgresStartError extends TxloopError {
  override readonly name = 'PostgresStartError';
  constructor(
    message: string,
    readonly outputTail = '',
  ) {
    super(outputTail.trim() ? `${message}\n--- postgres output (tail) ---\n${outputTail.trim()}` : message);
  }
}
