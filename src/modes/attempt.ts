/**
 * One attempt of the work a branch's owner was ordered to do, whatever the mode: counted (before its
 * handler runs, or by its order: tcc/attempts.ts countingOf), run with leadership re-checked fresh
 * right before the call, its outcome recorded with the next retry time or parked. Modes say which
 * handler runs, what refuses an attempt and how a finished attempt is written (a saga's may advance
 * the saga in the same Txn).
 */
import { LeadershipLost, NonRetryableError, ResolvedByParticipant, errorMessage } from '../errors.js';
import type { CachedKv } from '../cache/index.js';
import type { Fence } from '../etcd/index.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../runtime/index.js';
import { Action } from '../states.js';
import type { BranchRecord, Phase2, Resolution, Versioned } from '../store/index.js';
import type { BranchInCache } from './mode.js';
import { attemptFinished, attemptStarted, countingOf, parked, type AttemptLimits, type AttemptOutcome } from './tcc/attempts.js';
import { runHandler } from './tcc/handler.js';

export interface AttemptPlan {
  action: Action;
  limits: AttemptLimits & { handlerTimeoutMs: number };
  /** The record the attempt builds on, when not the branch as read (a saga's compensation after its action). */
  base?: BranchRecord;
  /** A reason to park instead of running; undefined to run. */
  refuse?(branch: BranchRecord): { message: string; phase2: Phase2; attempt: number } | undefined;
  /** The handler call, given the attempt's number, fencing token and signal; undefined: no handler (`missing` says why). */
  call: ((attempt: number, fencingToken: string, signal: AbortSignal) => unknown) | undefined;
  missing: string;
  /**
   * Writes a finished attempt (done, failed, parked). `record` writes the branch alone (fenced);
   * the default is `record(outcome.next)`. It may say what the attempt's result is reported as
   * (a saga action that failed for good is not parked: the saga compensates).
   */
  finish?(outcome: AttemptOutcome, current: Versioned<BranchRecord>, fence: Fence, record: (next: BranchRecord) => Promise<void>): Promise<Pick<AttemptOutcome, 'result' | 'message'> | void>;
}

/** `signal`: the term's, aborted when this replica stops leading or shuts down. */
export async function runAttempt(ctx: ReconcileContext<unknown>, found: BranchInCache, plan: AttemptPlan, signal: AbortSignal): Promise<ReconcileResult> {
  const { app, store, logger } = ctx;
  const { action, limits } = plan;
  const branch = plan.base ?? found.branch.record;
  const { xid, branchId } = branch;
  const log = logger.child({ xid, branch: branchId, resource: branch.resource });
  const fence = requireFence(ctx);
  let current = found.branch;
  // Every progress write goes through here, so the expectations always know this term's last write.
  const record = async (next: BranchRecord): Promise<void> => {
    current = await store.branches.recordProgress(fence, current, next);
    ctx.expectations.wrote(current.key, current.modRevision);
  };
  const now = Date.now();
  const p = branch.phase2;
  const key = found.branch.key;
  const orderFromEarlierTerm = found.orderKv !== undefined && BigInt(found.orderKv.modRevision) < BigInt(fence.createRevision);
  const ranUnrecorded = ctx.unrecorded.has(key);
  // A record to start from other than the one read (a switch of action) is always written first.
  const counting = countingOf({ recorded: p !== undefined || plan.base !== undefined, orderFromEarlierTerm, ranUnrecorded, maxAttempts: limits.maxAttempts });
  // No attempt recorded: one this term could not record, or one an earlier term may have run, counts.
  const unrecordedRun = !p && (ranUnrecorded || (counting.askHistory && (await ctx.ledAt(found.orderKv!.modRevision))));
  const refused = plan.refuse?.(branch);
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

  const startedAt = Date.now();
  let error: string | undefined;
  let final = false;
  let resolved: Omit<Resolution, 'at'> | undefined;
  if (!plan.call) {
    error = plan.missing;
  } else {
    const call = plan.call;
    try {
      await runHandler(
        (signal) => call(attempt, fence.createRevision, signal),
        { xid, action, timeoutMs: limits.handlerTimeoutMs },
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
      final = err instanceof NonRetryableError;
      if (err instanceof ResolvedByParticipant) {
        // Only a TCC confirm or cancel can be settled by its participant; anything else parks.
        if (action === Action.CONFIRM || action === Action.CANCEL) resolved = { as: err.as, reason: err.reason, by: err.by };
        else final = true;
      }
    }
  }
  const durationMs = Date.now() - startedAt;
  // The outcome builds on the record as written just now (its attempt and event), not the one read.
  let outcome = attemptFinished(current.record, error, limits, startedAt, Date.now(), final, resolved);
  let reported: Pick<AttemptOutcome, 'result' | 'message'> | void;
  try {
    reported = plan.finish ? await plan.finish(outcome, current, fence, record) : await record(outcome.next);
    if (reported) outcome = { ...outcome, ...reported };
  } catch (err) {
    // The attempt ran but is not in etcd: the next one in this term is counted after it, and
    // written before it runs.
    if (!recordedFirst) ctx.unrecorded.add(key);
    throw err;
  }
  ctx.unrecorded.delete(key);
  if (resolved) log.warn({ attempt, action, durationMs }, outcome.message);
  else if (outcome.result === 'succeeded') log.info({ attempt, action, durationMs }, `${action} done`);
  else if (outcome.result === 'parked') log.error({ attempt, err: error }, outcome.message);
  else log.warn({ attempt, err: error, retryInMs: outcome.requeueAfterMs }, reported ? outcome.message : `${action} failed; will retry`);
  ctx.events.phase2({ xid, branchId, resource: branch.resource, action, result: outcome.result, attempt, ...(error !== undefined && !resolved ? { error } : {}), durationMs });
  return outcome.requeueAfterMs !== undefined ? { requeueAfterMs: outcome.requeueAfterMs } : undefined;
}

/** Both the branch and its order were last written before this leader's term began. */
function inheritedFromEarlierTerm(branch: CachedKv, order: CachedKv | undefined, fence: Fence): boolean {
  const termStart = BigInt(fence.createRevision);
  return BigInt(branch.modRevision) < termStart && (!order || BigInt(order.modRevision) < termStart);
}
