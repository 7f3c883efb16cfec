/**
 * What every public call of a service goes through: refused once the service is closed, raced with
 * the caller's AbortSignal, and its failures in txloop's own error classes (never a client library's).
 */
import { AbortError, ServiceClosed, TxloopError } from './errors.js';
import { toTxloopError } from './etcd/index.js';
import { raceAbort, throwIfAborted } from './signals.js';

export class CallGuard {
  constructor(
    private readonly app: string,
    private readonly endpoints: readonly string[],
    private readonly closing: () => boolean,
  ) {}

  assertOpen(): void {
    if (this.closing()) throw new ServiceClosed(this.app);
  }

  /** Runs `fn` as the public call `what`; `writes`: an abort while it runs may leave its write landed. */
  async run<T>(what: string, xid: string | undefined, signal: AbortSignal | undefined, writes: boolean, fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    throwIfAborted(signal, xid);
    try {
      const work = fn();
      return await (signal ? raceAbort(work, signal, () => new AbortError(xid, signal.reason, writes)) : work);
    } catch (err) {
      throw this.error(err, xid ? `${what} ${xid}` : what);
    }
  }

  /** `err` as a TxloopError: ServiceClosed when the client was closed under the call by close(). */
  error(err: unknown, what: string): TxloopError {
    if (err instanceof TxloopError) return err;
    if (this.closing()) return new ServiceClosed(this.app);
    return toTxloopError(err, this.endpoints, what);
  }
}
