/**
 * TCC's reconcile step for a branch this service owns: level-based, it takes the branch and its
 * order as the cache holds them and moves the branch one step on (the rules are attempts.ts').
 *
 * Handler failures are not thrown: they are recorded in etcd (attempts, last error, next retry time)
 * so the backoff and the attempt limit survive restarts and leader changes. Every attempt is
 * counted (attempts.ts countingOf); leadership is re-checked, fresh, right before the call.
 */
import type { Logger } from 'pino';
import { LeadershipLost, TransactionAlreadyDecided, TransactionNotFound, UnknownResource, errorMessage } from '../../errors.js';
import type { CachedKv } from '../../cache/index.js';
import type { Fence } from '../../etcd/index.js';
import type { TccResource } from '../../resource.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../../runtime/index.js';
import { Action, GlobalStatus, Mode, Phase2State, TryState } from '../../states.js';
import { isOrphanOrder, orderFor, type BranchRecord, type Phase2, type Versioned } from '../../store/index.js';
import type { BranchInCache } from '../mode.js';
import { attemptFinished, attemptStarted, countingOf, limitsFor, owedAction, parked, refusal, waitBeforeAttempt } from './attempts.js';
import { actionFor } from './decision.js';
import { runHandler } from './handler.js';

export async function reconcileTccBranch(ctx: ReconcileContext<TccResource>, found: BranchInCache, signal: AbortSignal): Promise<ReconcileResult> {
  const { app, store, logger } = ctx;
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

  const fence = requireFence(ctx);
  let current = found.branch;
  // Every progress write goes through here, so the expectations always know this term's last write.
  const record = async (next: BranchRecord): Promise<void> => {
    current = await store.branches.recordProgress(fence, current, next);
    ctx.expectations.wrote(current.key, current.modRevision);
  };

  const key = found.branch.key;
  const orderFromEarlierTerm = found.orderKv !== undefined && BigInt(found.orderKv.modRevision) < BigInt(fence.createRevision);
  const ranUnrecorded = ctx.unrecorded.has(key);
  const counting = countingOf({ recorded: p !== undefined, orderFromEarlierTerm, ranUnrecorded, maxAttempts: options.maxAttempts });
  // No attempt recorded: one this term could not record, or one an earlier term may have run, counts.
  const unrecordedRun = !p && (ranUnrecorded || (counting.askHistory && (await ctx.ledAt(found.orderKv!.modRevision))));
  const refused = refusal(branch, action, options);
  if (refused) {
    await record(parked(branch, refused.phase2, refused.message, now));
    log.error({ attempt: refused.attempt }, refused.message);
    ctx.events.phase2({ xid, branchId, resource: branch.resource, action, result: 'parked', attempt: refused.attempt, error: refused.message, durationMs: 0 });
    return;
  }

  const started = attemptStarted(branch, action, orderFromEarlierTerm && inheritedFromEarlierTerm(found.branchKv, found.orderKv, fence), now, unrecordedRun);
  const recordedFirst = counting.recordFirst;
  if (recordedFirst) {
    await record(started);
    ctx.unrecorded.delete(key);
    log.debug({ attempt: started.phase2!.attempts, action }, 'attempt recorded; starting the handler');
  } else {
    // A first attempt of work that came during this term: the order marks it (countingOf); its
    // outcome is written over the record as read.
    current = { ...current, record: started };
    log.debug({ attempt: started.phase2!.attempts, action }, 'starting the handler');
  }
  const attempt = current.record.phase2!.attempts;

  const handler = ctx.handlers.get(branch.resource);
  const startedAt = Date.now();
  let error: string | undefined;
  if (!handler) {
    error = new UnknownResource(app, branch.resource).message;
  } else {
    try {
      await runHandler(
        handler,
        { xid, branchId, resource: branch.resource, payload: structuredClone(branch.payload), action, attempt, tryCompleted: branch.tryState === TryState.SUCCEEDED, tryState: branch.tryState, fencingToken: fence.createRevision },
        options.handlerTimeoutMs,
        signal,
        () => {
          // Leadership re-checked locally and fresh, with nothing between this and the call: a
          // replica frozen after its attempt write resumes here and must not start the handler.
          if (signal.aborted || requireFence(ctx).createRevision !== fence.createRevision) throw new LeadershipLost(store.keys.leader(app));
        },
      );
    } catch (err) {
      // Cut short because this replica stopped leading (or is shutting down): not the handler's
      // failure, so no error is recorded; the next leader runs it again. An attempt not written
      // before it ran is written now, while this term can (a closing leader still holds its lease),
      // so the next term counts it.
      if (err instanceof LeadershipLost || signal.aborted) {
        if (!recordedFirst) {
          // If even this fails, the next term counts the attempt from etcd's history.
          await record(started).catch(() => ctx.unrecorded.add(key));
        }
        throw err instanceof LeadershipLost ? err : new LeadershipLost(store.keys.leader(app));
      }
      error = errorMessage(err) || 'handler failed without a message';
    }
  }
  const durationMs = Date.now() - startedAt;
  // The outcome builds on the record as written just now (its attempt and event), not the one read.
  const outcome = attemptFinished(current.record, error, options, startedAt, Date.now());
  try {
    await record(outcome.next);
  } catch (err) {
    // The attempt ran but is not in etcd: the next one in this term is counted after it, and
    // written before it runs.
    if (!recordedFirst) ctx.unrecorded.add(key);
    throw err;
  }
  ctx.unrecorded.delete(key);
  if (outcome.result === 'succeeded') log.info({ attempt, action, durationMs }, `${action} done`);
  else if (outcome.result === 'parked') log.error({ attempt, err: error }, outcome.message);
  else log.warn({ attempt, err: error, retryInMs: outcome.requeueAfterMs }, `${action} failed; will retry`);
  ctx.events.phase2({ xid, branchId, resource: branch.resource, action, result: outcome.result, attempt, ...(error !== undefined ? { error } : {}), durationMs });
  return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : undefined;
}

/** The owner collects an orphaned branch itself, once it is done and its retention has passed. */
async function collectOrphan(ctx: ReconcileContext<TccResource>, current: Versioned<BranchRecord>, p: Phase2): Promise<ReconcileResult> {
  const due = (p.doneAt ?? Date.now()) + ctx.options.retentionMs;
  const now = Date.now();
  if (now < due) return { requeueAfterMs: due - now };
  if (await ctx.store.branches.delete(requireFence(ctx), current)) ctx.logger.info({ xid: current.record.xid, branch: current.record.branchId }, 'collected a branch whose global was gone');
  return;
}

/** Both the branch and its order were last written before this leader's term began. */
function inheritedFromEarlierTerm(branch: CachedKv, order: CachedKv | undefined, fence: Fence): boolean {
  const termStart = BigInt(fence.createRevision);
  return BigInt(branch.modRevision) < termStart && (!order || BigInt(order.modRevision) < termStart);
}

/**
 * No order yet. Normally the initiator decides; once the deadline plus grace has passed, this
 * participant looks at the global itself (invariant 10): it rolls back a global still TRYING, and
 * writes its own order for a decided one whose fan-out has not reached it.
 */
async function waitForDecision(ctx: ReconcileContext<TccResource>, branch: BranchRecord, log: Logger): Promise<ReconcileResult> {
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
