/**
 * etcd3's fault handling (a circuit breaker per host, three retries of a failed call), except that
 * a response over the gRPC receive limit is not a host failure. etcd3 counts RESOURCE_EXHAUSTED as
 * one, so a single too-large range is downloaded four times and opens the host's breaker, and for
 * the next 5 s every call to that etcd fails. The answer does not shrink on a retry; the caller
 * asks for less instead (rangePrefix halves its batch).
 */
import { ConsecutiveBreaker, circuitBreaker, handleWhen, retry } from 'cockatiel';
import { isRecoverableError, type IOptions } from 'etcd3';
import { isTooLarge } from './range.js';

const transient = handleWhen((err) => isRecoverableError(err) && !isTooLarge(err));

export function etcdFaultHandling(): NonNullable<IOptions['faultHandling']> {
  return {
    host: () => circuitBreaker(transient, { halfOpenAfter: 5_000, breaker: new ConsecutiveBreaker(3) }),
    global: retry(transient, { maxAttempts: 3 }),
  };
}
