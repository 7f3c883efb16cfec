/**
 * TCC's reconcile step for a global this service initiated, on the leader only: expires its
 * deadline, finishes a fan-out that did not fit the decision Txn, completes it once every branch is
 * done, and collects it after the retention.
 */
import { MalformedRecord, TransactionAlreadyDecided, TransactionNotFound, WriteConflict } from '../../errors.js';
import { GlobalStatus, Mode, Outcome } from '../../states.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../../runtime/index.js';
import { orderFor, parseMember, type MemberRecord } from '../../store/index.js';
import type { GlobalInCache, TransactionMode } from '../mode.js';
import { completed, fannedOut } from './completion.js';
import { collectWhenDue, membersOf } from '../collect.js';
import { actionFor } from './decision.js';

/** `mode` is TCC's mode object: the deadline means what it says (`deadlineOutcome`). */
export async function reconcileTccGlobal(ctx: ReconcileContext, { global }: GlobalInCache, mode: Pick<TransactionMode, 'deadlineOutcome'>): Promise<ReconcileResult> {
  const { store, options, logger } = ctx;
  const g = global.record;
  const xid = g.xid;
  const log = logger.child({ xid });
  const fence = requireFence(ctx);
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
      const seen = membersOf(ctx, xid);
      if (seen === undefined) return;
      const next = completed(g, seen.members, now);
      if (!next) return;
      try {
        await store.globals.complete(global, next, fence, seen.revision);
      } catch (err) {
        // The cache was behind (e.g. our own completion not yet seen): the watch event re-queues it.
        if (err instanceof WriteConflict) return;
        throw err;
      }
      log.info({ status: next.status, branches: seen.members.length, heuristic: next.heuristic ?? false }, `transaction ${next.status}`);
      ctx.events.completed(next);
      return;
    }
    case GlobalStatus.COMMITTED:
    case GlobalStatus.ROLLED_BACK:
      return collectWhenDue(ctx, global);
  }
}
