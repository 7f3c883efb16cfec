/**
 * Runs one confirm/cancel handler, cut short by the handler timeout or by the term's signal.
 * `mayStart` runs synchronously right before the handler is called and throws to stop it: a handler
 * is never started once this replica's term is over, nor with an already aborted signal.
 */
import { DeadlineExceeded } from '../../errors.js';
import type { PhaseTwoContext, TccResource } from '../../resource.js';
import { Action } from '../../states.js';

export async function runHandler(handler: TccResource, ctx: Omit<PhaseTwoContext, 'signal'>, timeoutMs: number, parent: AbortSignal, mayStart: () => void): Promise<void> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onParentAbort: (() => void) | undefined;
  // Settles when the attempt must end early: the handler timeout passed or leadership was lost.
  const cutoff = new Promise<never>((_, reject) => {
    const stop = (err: unknown): void => {
      controller.abort(err);
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    timer = setTimeout(() => stop(new DeadlineExceeded(ctx.xid, `${ctx.action} handler timed out after ${timeoutMs}ms`)), timeoutMs);
    onParentAbort = () => stop(parent.reason);
    parent.addEventListener('abort', onParentAbort, { once: true });
  });
  cutoff.catch(() => undefined);
  try {
    const fn = ctx.action === Action.CONFIRM ? handler.confirm : handler.cancel;
    mayStart();
    let running: Promise<void>;
    try {
      running = Promise.resolve(fn.call(handler, { ...ctx, signal: controller.signal }));
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
