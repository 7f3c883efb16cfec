/**
 * TCC's reconcile step for a global this service initiated, on the leader only: expires its
 * deadline, finishes a fan-out that did not fit the decision Txn, completes it once every branch is
 * done, and collects it after the retention.
 */
import { TransactionAlreadyDecided, TransactionNotFound } from '../../errors.js';
import { GlobalStatus, Mode, Outcome } from '../../states.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../../runtime/index.js';
import { orderFor } from '../../store/index.js';
import type { GlobalInCache, TransactionMode } from '../mode.js';
import { completed, fannedOut } from './completion.js';
import { collectWhenDue, completeWhenDone } from '../collect.js';
import { actionFor } from './decision.js';

/** `mode` is TCC's mode object: the deadline means what it says (`deadlineOutcome`). */
export async function reconcileTccGlobal(ctx: ReconcileContext, { global }: GlobalInCache, mode: Pick<TransactionMode, 'deadlineOutcome'>): Promise<ReconcileResult> {
  const { store, logger } = ctx;
  const g = global.record;
  const xid = g.xid;
  const log = logger.child({ xid });
  requireFence(ctx);
  const now = Date.now();

  switch (g.status) {
    case GlobalStatus.TRYING: {
      if (now < g.deadline) return { requeueAfterMs: g.deadline - now };
      try {
        const outcome = mode.deadlineOutcome(g);
        const decided = await ctx.decide(xid, { outcome, by: 'deadline', reason: `timeout of ${g.timeoutMs}ms passed` });
        ctx.events.decided(decided.global);
        log.warn({ timeoutMs: g.timeoutMs }, `deadline passed; ${outcome === Outcome.ROLLBACK ? 'rolled back' : 'committed'}`);
      } catch (err) {
        if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
      }
      return;
    }
    case GlobalStatus.COMMITTING:
    case GlobalStatus.ROLLING_BACK: {
      if (g.fannedOut === false) {
        await store.decisions.finishFanOut(
          xid,
          (decided, m) => orderFor(m, Mode.TCC, actionFor(decided.status)!, decided.decision?.by ?? 'unknown', decided.decision?.at ?? Date.now()),
          fannedOut,
        );
        return;
      }
      const done = await completeWhenDone(ctx, global, completed);
      if (done) log.info({ status: done.next.status, branches: done.members, heuristic: done.next.heuristic ?? false }, `transaction ${done.next.status}`);
      return;
    }
    case GlobalStatus.COMMITTED:
    case GlobalStatus.ROLLED_BACK:
      return collectWhenDue(ctx, global);
  }
}
