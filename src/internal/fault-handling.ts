/**
 * The fault handling of every etcd client txloop makes (services, CLI): a failed call is retried on
 * another member up to three times, with no per-host circuit breaker.
 *
 * etcd3's default breaker fails every call for 5 s after three failures, with a message that names
 * no endpoint, and keeps failing a while after etcd is back; txloop's loops back off with jitter
 * themselves. And a response over the gRPC receive limit is not a host failure: etcd3 counts
 * RESOURCE_EXHAUSTED as one, so a too-large range would be downloaded four times. The answer does not
 * shrink on a retry; the caller asks for less instead (rangePrefix halves its batch).
 */
import { handleWhen, noop, retry } from 'cockatiel';
import { isRecoverableError, type IOptions } from 'etcd3';
import { isTooLarge } from './range.js';

const transient = handleWhen((err) => isRecoverableError(err) && !isTooLarge(err));

export function etcdFaultHandling(): NonNullable<IOptions['faultHandling']> {
  return {
    host: () => noop,
    global: retry(transient, { maxAttempts: 3 }),
  };
}
