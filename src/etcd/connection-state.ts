/**
 * One voice for "etcd is gone" and "etcd is back". Every part of a service that talks to etcd (the
 * election, the informer, the store) reports its failures and successes here, so an outage logs one
 * warning naming the endpoints when it starts and one line when it ends, instead of every retry
 * loop logging every attempt. (Retry loops wait with backoff.ts's RetryBackoff: jittered, so the
 * replicas of a fleet do not hammer a recovering etcd in step.)
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { isUnavailable } from './errors.js';

export class ConnectionState {
  private downSince: number | undefined;

  constructor(
    private readonly endpoints: readonly string[],
    private readonly logger: Logger,
  ) {}

  get down(): boolean {
    return this.downSince !== undefined;
  }

  /**
   * A call failed; `what` names the part that noticed. If the error says etcd is not answering it is
   * reported here (once per outage) and true is returned; any other error is the caller's to log.
   */
  failed(what: string, err: unknown): boolean {
    if (!isUnavailable(err)) return false;
    if (this.downSince !== undefined) {
      this.logger.debug({ what, err: errorMessage(err) }, 'etcd still unavailable');
      return true;
    }
    this.downSince = Date.now();
    this.logger.warn(
      { endpoints: this.endpoints, what, err: errorMessage(err) },
      `lost connection to etcd at ${this.endpoints.join(',')}; retrying with backoff`,
    );
    return true;
  }

  /** A call succeeded: if etcd was down, say once that it is back. */
  ok(): void {
    const since = this.downSince;
    if (since === undefined) return;
    this.downSince = undefined;
    this.logger.info({ endpoints: this.endpoints, downMs: Date.now() - since }, `connection to etcd at ${this.endpoints.join(',')} is back after ${Math.round((Date.now() - since) / 100) / 10}s`);
  }
}
