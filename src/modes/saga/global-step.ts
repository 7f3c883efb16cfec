/**
 * The saga's reconcile step for a saga this service initiated, on its leader: the deadline
 * (a saga still RUNNING when it passes is compensated), and collection once finished. Everything
 * between is moved by the steps' owners (rules.ts), so a saga goes on with its initiator gone.
 */
import { TransactionAlreadyDecided, TransactionNotFound } from '../../errors.js';
import type { ReconcileContext, ReconcileResult } from '../../runtime/index.js';
import { GlobalStatus, Outcome, isTerminal } from '../../states.js';
import { collectWhenDue, reportFinished } from '../collect.js';
import type { GlobalInCache } from '../mode.js';

export async function reconcileSagaGlobal(ctx: ReconcileContext, { global }: GlobalInCache): Promise<ReconcileResult> {
  const g = global.record;
  if (isTerminal(g.status)) {
    // Finished by a step's owner: this is where its initiator learns it.
    reportFinished(ctx, global);
    return collectWhenDue(ctx, global);
  }
  if (g.status !== GlobalStatus.RUNNING) return;
  const now = Date.now();
  if (now < g.deadline) return { requeueAfterMs: g.deadline - now };
  try {
    const decided = await ctx.decide(g.xid, { outcome: Outcome.ROLLBACK, by: 'deadline', reason: `timeout of ${g.timeoutMs}ms passed before the saga finished` });
    ctx.events.decided(decided.global);
    ctx.logger.warn({ xid: g.xid, timeoutMs: g.timeoutMs }, 'saga deadline passed; compensating');
  } catch (err) {
    if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
  }
  return;
}
