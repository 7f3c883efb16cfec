/**
 * TCC's reconcile step for a branch this service owns: level-based, it takes the branch and its
 * order as the cache holds them and moves the branch one step on (the rules are attempts.ts').
 *
 * Handler failures are not thrown: they are recorded in etcd (attempts, last error, next retry time)
 * so the backoff and the attempt limit survive restarts and leader changes. Every attempt is
 * counted (attempts.ts countingOf); leadership is re-checked, fresh, right before the call.
 */
import type { Logger } from 'pino';
import { TransactionAlreadyDecided, TransactionNotFound, UnknownResource } from '../../errors.js';
import type { PhaseTwoContext, RegisteredResource } from '../../resource.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../../runtime/index.js';
import { Action, GlobalStatus, Mode, Phase2State, TryState } from '../../states.js';
import { isOrphanOrder, orderFor, type BranchRecord, type Phase2, type Versioned } from '../../store/index.js';
import { runAttempt } from '../attempt.js';
import type { BranchInCache } from '../mode.js';
import { limitsFor, owedAction, refusal, waitBeforeAttempt } from './attempts.js';
import { actionFor } from './decision.js';

export async function reconcileTccBranch(ctx: ReconcileContext<RegisteredResource>, found: BranchInCache, signal: AbortSignal): Promise<ReconcileResult> {
  const { app, logger } = ctx;
  const branch = found.branch.record;
  // A resource with a stepped retry schedule counts and waits by it (ResourceOptions.retry).
  const options = limitsFor(ctx.options, ctx.retrySchedule(branch.resource));
  const { xid, branchId } = branch;
  const log = logger.child({ xid, branch: branchId, resource: branch.resource });
  const p = branch.phase2;
  if (p && p.state !== Phase2State.ACTIVE) {
    if (p.state === Phase2State.DONE && isOrphanOrder(found.order)) return collectOrphan(ctx, found.branch, p);
    return;
  }
  const now = Date.now();
  const action = owedAction(branch, found.order);
  if (!action) return waitForDecision(ctx, branch, log);
  const wait = waitBeforeAttempt(branch, action, options, now);
  if (wait > 0) return { requeueAfterMs: wait };

  const registered = ctx.handlers.get(branch.resource);
  const handler = registered?.kind === 'tcc' ? registered.handlers : undefined;
  return runAttempt(
    ctx,
    found,
    {
      action,
      limits: options,
      refuse: (b) => refusal(b, action, options),
      call: handler
        ? (attempt, fencingToken, handlerSignal) => {
            const hctx = { xid, branchId, resource: branch.resource, payload: structuredClone(branch.payload), action, attempt, tryCompleted: branch.tryState === TryState.SUCCEEDED, tryState: branch.tryState, fencingToken, signal: handlerSignal } as const;
            return action === Action.CONFIRM ? handler.confirm(hctx as PhaseTwoContext & { action: 'confirm' }) : handler.cancel(hctx as PhaseTwoContext & { action: 'cancel' });
          }
        : undefined,
      missing: new UnknownResource(app, branch.resource).message,
    },
    signal,
  );
}

/** The owner collects an orphaned branch itself, once it is done and its retention has passed. */
async function collectOrphan(ctx: ReconcileContext<RegisteredResource>, current: Versioned<BranchRecord>, p: Phase2): Promise<ReconcileResult> {
  const due = (p.doneAt ?? Date.now()) + ctx.options.retentionMs;
  const now = Date.now();
  if (now < due) return { requeueAfterMs: due - now };
  if (await ctx.store.branches.delete(requireFence(ctx), current)) ctx.logger.info({ xid: current.record.xid, branch: current.record.branchId }, 'collected a branch whose global was gone');
  return;
}

/**
 * No order yet. Normally the initiator decides; once the deadline plus grace has passed, this
 * participant looks at the global itself (invariant 10): it rolls back a global still TRYING, and
 * writes its own order for a decided one whose fan-out has not reached it.
 */
async function waitForDecision(ctx: ReconcileContext<RegisteredResource>, branch: BranchRecord, log: Logger): Promise<ReconcileResult> {
  const { store, options, app } = ctx;
  const due = branch.deadline + options.graceMs;
  const now = Date.now();
  if (now < due) return { requeueAfterMs: due - now };
  requireFence(ctx);
  const global = await store.globals.get(branch.xid);
  if (!global) {
    // A global is collected only after every branch is done, so a missing one was never committed.
    log.warn('global record is gone while this branch waits for a decision; cancelling');
    await store.branches.ensureOrder(app, orderFor(branch, Mode.TCC, Action.CANCEL, `participant:${app}`, now, true));
    return;
  }
  const g = global.record;
  if (g.status === GlobalStatus.TRYING) {
    // The branch's deadline came with the Try call; the global's own deadline is the one that counts.
    const globalDue = g.deadline + options.graceMs;
    if (now < globalDue) return { requeueAfterMs: globalDue - now };
    try {
      const decided = await ctx.decide(branch.xid, { outcome: 'rollback', by: `participant:${app}`, reason: `deadline + ${options.graceMs}ms grace passed and the initiator had not decided` });
      ctx.events.decided(decided.global);
      log.warn({ deadline: new Date(branch.deadline).toISOString() }, 'rolled back a global stuck past its deadline');
    } catch (err) {
      if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
    }
    return { requeueAfterMs: 100 };
  }
  const action = actionFor(g.status);
  if (action) await store.branches.ensureOrder(app, orderFor(branch, Mode.TCC, action, g.decision?.by ?? `participant:${app}`, g.decision?.at ?? now));
  return;
}
