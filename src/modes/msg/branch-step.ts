/**
 * The reconcile step for a consumer's branch of a 2-phase message, on the consumer's leader: with
 * its deliver order, one counted, fenced attempt of the consumer's `deliver` (modes/attempt.ts),
 * retried with the service's backoff or the consumer's stepped schedule, parked after the last
 * attempt or at once on NonRetryableError. Nothing here writes the producer's global: a
 * consumer's failure stays in its own branch (and member record), so the message stays SUBMITTED.
 */
import { UnknownResource } from '../../errors.js';
import type { RegisteredResource } from '../../resource.js';
import type { ReconcileContext, ReconcileResult } from '../../runtime/index.js';
import { Action, Phase2State } from '../../states.js';
import type { BranchRecord, Phase2 } from '../../store/index.js';
import { runAttempt } from '../attempt.js';
import type { BranchInCache } from '../mode.js';
import { limitsFor, owedAction, refusal, waitBeforeAttempt } from '../tcc/attempts.js';

export async function reconcileMessageBranch(ctx: ReconcileContext<RegisteredResource>, found: BranchInCache, signal: AbortSignal): Promise<ReconcileResult> {
  const branch = found.branch.record;
  const limits = limitsFor(ctx.options, ctx.retrySchedule(branch.resource));
  const p = branch.phase2;
  if (p && p.state !== Phase2State.ACTIVE) return;
  // The submit writes a branch and its order in one Txn: a branch without one is waiting for nothing.
  const action = owedAction(branch, found.order);
  if (!action) return;
  const wait = waitBeforeAttempt(branch, action, limits, Date.now());
  if (wait > 0) return { requeueAfterMs: wait };
  const { xid, branchId, resource } = branch;
  const registered = ctx.handlers.get(resource);
  const consumer = registered?.kind === 'msg' ? registered.handlers : undefined;
  return runAttempt(
    ctx,
    found,
    {
      action,
      limits,
      refuse: (b) => notADelivery(b, action) ?? refusal(b, action, limits),
      call: consumer ? (attempt, fencingToken, handlerSignal) => consumer.deliver({ xid, branchId, resource, payload: structuredClone(branch.payload), attempt, fencingToken, signal: handlerSignal }) : undefined,
      missing: new UnknownResource(ctx.app, resource, 'msg').message,
    },
    signal,
  );
}

/** A message's branch is only ever ordered deliver; any other order was written by hand: park it, never guess. */
function notADelivery(b: BranchRecord, action: Action): { message: string; phase2: Phase2; attempt: number } | undefined {
  if (action === Action.DELIVER) return undefined;
  const attempts = b.phase2?.attempts ?? 0;
  const message = `a message consumer's branch was ordered ${action}; only deliver is run for a message, refusing`;
  return { message, phase2: { action, state: Phase2State.PARKED, attempts, lastError: message }, attempt: attempts + 1 };
}
