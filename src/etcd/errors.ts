/**
 * What the etcd client library throws, turned into txloop's own classes before a caller sees it:
 * an outage is {@link EtcdUnavailable} naming the endpoints, anything else etcd answered is
 * {@link EtcdError}; txloop's own errors pass through. The library's error stays as `cause`.
 */
import { isBrokenCircuitError } from 'cockatiel';
import { ClientClosedError, GRPCCancelledError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { EtcdError, EtcdUnavailable, TxloopError, errorMessage } from '../errors.js';

/** The call failed because etcd did not answer (as opposed to answering with an error). */
export function isUnavailable(err: unknown): boolean {
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || err instanceof GRPCCancelledError || err instanceof ClientClosedError) return true;
  if (isBrokenCircuitError(err)) return true;
  return /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|No connection established|deadline exceeded|failed to connect|UNAVAILABLE/i.test(errorMessage(err));
}

export function toTxloopError(err: unknown, endpoints: readonly string[], what: string): TxloopError {
  if (err instanceof TxloopError) return err;
  return isUnavailable(err) ? new EtcdUnavailable(endpoints, err, what) : new EtcdError(endpoints, err, what);
}

/** The endpoints an etcd3 client was built with, for error messages about it. */
export function endpointsOf(client: unknown): string[] {
  const hosts = (client as { options?: { hosts?: string | string[] } }).options?.hosts;
  if (hosts === undefined) return [];
  return Array.isArray(hosts) ? hosts : [hosts];
}
