/**
 * The saga's reconcile step for a step this service owns: level-based, from the step's branch and
 * order as the cache holds them. Its action runs once ordered; its compensation once ordered and
 * every later step is compensated (checked in etcd, not assumed from the order). A finished action
 * or compensation is written with the saga's next move in one Txn (store/sagas.ts, rules.ts).
 */
import type { Logger } from 'pino';
import { TransactionAlreadyDecided, TransactionNotFound, UnknownResource } from '../../errors.js';
import type { RegisteredResource, StepContext } from '../../resource.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../../runtime/index.js';
import { Action, GlobalStatus, Outcome, Phase2State, TryState } from '../../states.js';
import { attemptsInBudget, freshBudget, memberOf, withEvent, type BranchRecord, type GlobalRecord, type Versioned } from '../../store/index.js';
import { runAttempt } from '../attempt.js';
import type { BranchInCache } from '../mode.js';
import { limitsFor, refusal, waitBeforeAttempt } from '../tcc/attempts.js';
import { laterNotCompensated, sagaMoveBy } from './rules.js';

/** How long an owner whose compensation must wait for a later step looks again (normally its order comes only once they are done). */
const LATER_STEP_POLL_MS = 1_000;

export async function reconcileSagaBranch(ctx: ReconcileContext<RegisteredResource>, found: BranchInCache, signal: AbortSignal): Promise<ReconcileResult> {
  const branch = found.branch.record;
  const order = found.order;
  const limits = limitsFor(ctx.options, ctx.retrySchedule(branch.resource));
  const log = ctx.logger.child({ xid: branch.xid, branch: branch.branchId, resource: branch.resource });
  const p = branch.phase2;
  const now = Date.now();
  if (!order) {
    // A step's branch and order are created in one Txn and deleted in one: one alone is debris.
    ctx.malformed.report(found.branch.key, 'branch', 'saga step without its order; nothing to run or compensate', found.branchKv.modRevision);
    return;
  }
  const registered = ctx.handlers.get(branch.resource);
  const handler = registered?.kind === 'saga' ? registered.handlers : undefined;
  const call = (action: 'action' | 'compensate', b: BranchRecord) =>
    handler
      ? (attempt: number, fencingToken: string, handlerSignal: AbortSignal) => {
          const sctx: StepContext = { xid: b.xid, branchId: b.branchId, resource: b.resource, payload: structuredClone(b.payload), action, attempt, actionState: b.tryState, fencingToken, signal: handlerSignal };
          return action === 'action' ? handler.action(sctx) : handler.compensate(sctx);
        }
      : undefined;
  const missing = new UnknownResource(ctx.app, branch.resource, 'saga').message;

  if (order.action === Action.ACTION) {
    const due = branch.deadline + ctx.options.graceMs;
    if (branch.tryState === TryState.SUCCEEDED && !branch.handedOn) {
      // Done before the rest of its group: until the saga moves on, this owner too holds a branch
      // of it, and compensates it past deadline + grace if nobody did (invariant 10).
      if (now < due) return { requeueAfterMs: due - now };
      await compensateExpired(ctx, branch, log);
      return;
    }
    if (branch.tryState !== TryState.PENDING || (p && p.state !== Phase2State.ACTIVE)) return;
    // Invariant 10: the saga's deadline passed and its initiator did not compensate it: this owner does.
    if (now >= due && (await compensateExpired(ctx, branch, log))) return { requeueAfterMs: 100 };
    // An attempt that never reported back, at the limit: the action failed for good.
    if (p && attemptsInBudget(p) >= limits.maxAttempts) {
      await finishAction(ctx, found.branch, failedForGood(branch, `attempt ${p.attempts} never reported back (its replica died during the action); failed after ${attemptsInBudget(p)} attempts`, now));
      return;
    }
    const wait = waitBeforeAttempt(branch, Action.ACTION, limits, now);
    if (wait > 0) return { requeueAfterMs: Math.min(wait, Math.max(1, due - now)) };
    return runAttempt(
      ctx,
      found,
      {
        action: Action.ACTION,
        limits,
        call: call('action', branch),
        missing,
        finish: async (outcome, current, _fence, record) => {
          if (outcome.result === 'failed') {
            await record(outcome.next);
            return;
          }
          const next = outcome.result === 'succeeded' ? { ...outcome.next, tryState: TryState.SUCCEEDED } : failedForGood(outcome.next, outcome.next.phase2?.lastError ?? 'failed', Date.now());
          await finishAction(ctx, current, next);
          return outcome.result === 'parked' ? { result: 'failed', message: `action failed for good; the saga compensates: ${next.tryError ?? ''}` } : undefined;
        },
      },
      signal,
    );
  }

  if (order.action !== Action.COMPENSATE) return;
  if (p?.action === Action.COMPENSATE && p.state !== Phase2State.ACTIVE) return;
  const switching = p?.action !== Action.COMPENSATE;
  if (!switching) {
    const wait = waitBeforeAttempt(branch, Action.COMPENSATE, limits, now);
    if (wait > 0) return { requeueAfterMs: wait };
  }
  // Reverse order, from etcd: every later step's compensation comes first.
  requireFence(ctx);
  const { members } = await ctx.store.globals.read(branch.xid);
  const later = laterNotCompensated(members.map((m) => m.record), memberOf(branch));
  if (later) {
    log.info({ waitingFor: later.branchId, owner: later.owner }, 'compensation waits for a later step to be compensated first');
    return { requeueAfterMs: LATER_STEP_POLL_MS };
  }
  // The compensation's attempts go on from the action's, with a budget of their own. With no action
  // attempt recorded, one may still have run: this term's, unrecorded, or an earlier term's that
  // led when the step was ordered (as countingOf reasons); it is counted, so numbers never repeat.
  let base: BranchRecord | undefined;
  if (switching) {
    const fence = requireFence(ctx);
    const mayHaveRun = !p && (ctx.unrecorded.has(found.branch.key) || (BigInt(found.branchKv.modRevision) < BigInt(fence.createRevision) && (await ctx.ledAt(found.branchKv.modRevision))));
    const phase2 = p ? freshBudget(p, Action.COMPENSATE) : mayHaveRun ? { action: Action.COMPENSATE, state: Phase2State.ACTIVE, attempts: 1, budgetFrom: 1 } : undefined;
    base = withEvent({ ...branch, ...(phase2 ? { phase2 } : {}) }, 'CompensationStarted', `compensation ordered by ${order.by}`, now);
  }
  return runAttempt(
    ctx,
    found,
    {
      action: Action.COMPENSATE,
      limits,
      ...(base ? { base } : {}),
      refuse: (b) => refusal(b, Action.COMPENSATE, limits),
      call: call('compensate', base ?? branch),
      missing,
      finish: async (outcome, current, fence, record) => {
        if (outcome.result !== 'succeeded') return void (await record(outcome.next));
        const written = await ctx.store.sagas.finishStep(fence, current, outcome.next, sagaMoveBy(`participant:${ctx.app}`));
        ctx.expectations.wrote(written.key, written.modRevision);
      },
    },
    signal,
  );
}

/** The step's action failed for good: recorded as FAILED (done with its action), so the saga compensates. */
function failedForGood(b: BranchRecord, error: string, now: number): BranchRecord {
  const p = b.phase2;
  return withEvent({ ...b, tryState: TryState.FAILED, tryError: error.slice(0, 2000), phase2: { action: Action.ACTION, state: Phase2State.DONE, attempts: p?.attempts ?? 0, ...(p?.budgetFrom !== undefined ? { budgetFrom: p.budgetFrom } : {}), lastError: error.slice(0, 2000), doneAt: now } }, 'ActionFailed', `action failed for good: ${error}`, now);
}

async function finishAction(ctx: ReconcileContext<RegisteredResource>, current: Versioned<BranchRecord>, next: BranchRecord): Promise<void> {
  let moved: GlobalRecord | undefined;
  const moveOf = sagaMoveBy(`participant:${ctx.app}`);
  const written = await ctx.store.sagas.finishStep(requireFence(ctx), current, next, (read, member) => {
    const move = moveOf(read, member);
    moved = move.global;
    return move;
  });
  ctx.expectations.wrote(written.key, written.modRevision);
  // This step's failure decided the saga: reported like any decision this service takes.
  if (moved?.status === GlobalStatus.COMPENSATING) {
    ctx.events.decided(moved);
    ctx.logger.warn({ xid: moved.xid, branch: next.branchId }, `saga compensating: ${moved.decision?.reason ?? ''}`);
  }
}

/**
 * Past deadline + grace with this step unfinished: compensates the saga if it is still RUNNING
 * (its initiator did not). True when it was (or already is) no longer running.
 */
async function compensateExpired(ctx: ReconcileContext<RegisteredResource>, branch: BranchRecord, log: Logger): Promise<boolean> {
  requireFence(ctx);
  const global = await ctx.store.globals.get(branch.xid);
  if (!global || global.record.status !== GlobalStatus.RUNNING) return false;
  if (Date.now() < global.record.deadline + ctx.options.graceMs) return false;
  try {
    const decided = await ctx.decide(branch.xid, { outcome: Outcome.ROLLBACK, by: `participant:${ctx.app}`, reason: `deadline + ${ctx.options.graceMs}ms grace passed with step ${branch.branchId} unfinished` });
    ctx.events.decided(decided.global);
    log.warn({ deadline: new Date(branch.deadline).toISOString() }, 'compensating a saga past its deadline');
  } catch (err) {
    if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
  }
  return true;
}
