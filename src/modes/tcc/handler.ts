/**
 * Runs one handler call of a branch's ordered work, cut short by the handler timeout or by the
 * term's signal. `mayStart` runs synchronously right before the handler is called and throws to
 * stop it: a handler is never started once this replica's term is over, nor with an already
 * aborted signal.
 */
import { DeadlineExceeded } from '../../errors.js';

export async function runHandler(call: (signal: AbortSignal) => unknown, what: { xid: string; action: string; timeoutMs: number }, parent: AbortSignal, mayStart: () => void): Promise<void> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onParentAbort: (() => void) | undefined;
  // Settles when the attempt must end early: the handler timeout passed or leadership was lost.
  const cutoff = new Promise<never>((_, reject) => {
    const stop = (err: unknown): void => {
      controller.abort(err);
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    timer = setTimeout(() => stop(new DeadlineExceeded(what.xid, `${what.action} handler timed out after ${what.timeoutMs}ms`)), what.timeoutMs);
    onParentAbort = () => stop(parent.reason);
    parent.addEventListener('abort', onParentAbort, { once: true });
  });
  cutoff.catch(() => undefined);
  try {
    mayStart();
    let running: Promise<unknown>;
    try {
      running = Promise.resolve(call(controller.signal));
    } catch (err) {
      running = Promise.reject(err);
    }
    // A handler that ignores its signal keeps running, but the attempt is over for the queue.
    await Promise.race([running, cutoff]);
  } finally {
    clearTimeout(timer);
    if (onParentAbort) parent.removeEventListener('abort', onParentAbort);
  }
}
