/** Waiting with AbortSignals: what every public call uses to honour its caller's signal. */
import { AbortError } from './errors.js';

export function throwIfAborted(signal: AbortSignal | undefined, xid: string | undefined): void {
  if (signal?.aborted) throw new AbortError(xid, signal.reason);
}

/** `p`, or a rejection as soon as `signal` aborts (`p` itself goes on; its outcome is ignored). */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal, error: () => unknown = () => signal.reason): Promise<T> {
  if (signal.aborted) return Promise.reject(error());
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(error());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
}

/** Waits for `p` at most `ms`, or until `skip` aborts; never rejects. */
export async function boundedWait(p: Promise<unknown>, ms: number, skip: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      if (skip.aborted) resolve();
      else skip.addEventListener('abort', () => resolve(), { once: true });
    }),
  ]);
  clearTimeout(timer);
}
