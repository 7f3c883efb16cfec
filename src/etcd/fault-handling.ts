/**
 * The fault handling of every etcd client txloop makes (services, CLI): a failed call is retried on
 * another member up to three times.
 *
 * With several members, a per-host circuit breaker lets calls skip a member that stopped answering
 * (a frozen one would otherwise cost a full request timeout on every call routed to it). With one
 * endpoint there is nowhere else to go: a breaker would only turn "etcd is down" into 5 s of
 * "circuit breaker is open" after it is back, so there is none; txloop's loops back off with jitter
 * themselves, and its errors name the endpoints.
 *
 * A response over the gRPC receive limit is no host failure: etcd3 counts RESOURCE_EXHAUSTED as
 * one, so a too-large range would be downloaded four times and trip the breaker. The answer does not
 * shrink on a retry; the caller asks for less instead (rangePrefix halves its batch).
 */
import { ConsecutiveBreaker, circuitBreaker, handleWhen, noop, retry } from 'cockatiel';
import { isRecoverableError, type IOptions } from 'etcd3';
import { isTooLarge } from './range.js';

const transient = handleWhen((err) => isRecoverableError(err) && !isTooLarge(err));

export function etcdFaultHandling(endpoints: number): NonNullable<IOptions['faultHandling']> {
  return {
    host: () => (endpoints > 1 ? circuitBreaker(transient, { halfOpenAfter: 5_000, breaker: new ConsecutiveBreaker(3) }) : noop),
    global: retry(transient, { maxAttempts: 3 }),
  };
}
