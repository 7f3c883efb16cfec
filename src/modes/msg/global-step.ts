/**
 * The reconcile step for a 2-phase message this service produced, on its leader only:
 *
 * - PREPARED before its check-back time: looked at again then. Past it: the producer never
 *   submitted nor discarded it (it crashed, or its local transaction is still running), so the
 *   check-back registered for the message's name is asked — never a guess. `committed` submits
 *   it, `rolled-back` discards it, `unknown` (or a failing check-back, or none registered here)
 *   asks again after the message's own check-back delay.
 * - SUBMITTED: DELIVERED once every consumer acknowledged.
 * - DELIVERED or DISCARDED: collected after the retention.
 */
import type { Logger } from 'pino';
import { LeadershipLost, TransactionAlreadyDecided, TransactionNotFound, errorMessage } from '../../errors.js';
import type { CheckBackAnswer, RegisteredResource } from '../../resource.js';
import { requireFence, type ReconcileContext, type ReconcileResult } from '../../runtime/index.js';
import { GlobalStatus, Outcome } from '../../states.js';
import type { GlobalRecord } from '../../store/index.js';
import type { GlobalInCache } from '../mode.js';
import { collectWhenDue, completeWhenDone, reportFinished } from '../collect.js';
import { runHandler } from '../tcc/handler.js';
import { delivered } from './completion.js';

const ANSWERS: readonly CheckBackAnswer[] = ['committed', 'rolled-back', 'unknown'];

/** Message names this term already said it has no check-back for: said once per term, not at every ask. */
const unregisteredSaid = new WeakMap<object, Set<string>>();

export async function reconcileMessageGlobal(ctx: ReconcileContext<RegisteredResource>, { global }: GlobalInCache, signal: AbortSignal): Promise<ReconcileResult> {
  const g = global.record;
  const log = ctx.logger.child({ xid: g.xid });
  // Only the leader reconciles a message; the steps below act on that.
  requireFence(ctx);
  const now = Date.now();
  switch (g.status) {
    case GlobalStatus.PREPARED:
      if (now < g.deadline) return { requeueAfterMs: g.deadline - now };
      return checkBack(ctx, g, log, signal);
    case GlobalStatus.SUBMITTED: {
      const done = await completeWhenDone(ctx, global, delivered);
      if (done) log.info({ consumers: done.members }, 'message DELIVERED: every consumer acknowledged');
      return;
    }
    case GlobalStatus.DISCARDED:
      // Discarded by a decision (the producer's, the check-back's, an operator's), finished at once.
      reportFinished(ctx, global);
      return collectWhenDue(ctx, global);
    case GlobalStatus.DELIVERED:
      return collectWhenDue(ctx, global);
  }
}

/** Asks the check-back about a prepared message past its check-back time, and decides on a definite answer. */
async function checkBack(ctx: ReconcileContext<RegisteredResource>, g: GlobalRecord, log: Logger, signal: AbortSignal): Promise<ReconcileResult> {
  const again = { requeueAfterMs: g.timeoutMs };
  const handler = ctx.checkBack?.(g.name);
  if (!handler) {
    const said = unregisteredSaid.get(ctx) ?? new Set<string>();
    unregisteredSaid.set(ctx, said);
    if (!said.has(g.name)) {
      said.add(g.name);
      log.warn({ name: g.name, retryInMs: again.requeueAfterMs }, `message ${g.xid} is past its check-back time, but this service registered no check-back for messages named ${JSON.stringify(g.name)} (service.checkBack()); asking again later`);
    }
    return again;
  }
  let answer: unknown;
  try {
    await runHandler(
      async (handlerSignal) => {
        answer = await handler({ xid: g.xid, name: g.name, preparedAt: g.createdAt, signal: handlerSignal });
      },
      { xid: g.xid, action: 'check-back', timeoutMs: ctx.options.handlerTimeoutMs },
      signal,
      // Only the leader decides a message: a replica that stopped leading must not even ask.
      () => {
        if (signal.aborted) throw new LeadershipLost(ctx.store.keys.leader(ctx.app));
        requireFence(ctx);
      },
    );
  } catch (err) {
    if (err instanceof LeadershipLost || signal.aborted) throw err instanceof LeadershipLost ? err : new LeadershipLost(ctx.store.keys.leader(ctx.app));
    log.warn({ name: g.name, err: errorMessage(err), retryInMs: again.requeueAfterMs }, 'check-back failed; asking again later');
    return again;
  }
  if (!ANSWERS.includes(answer as CheckBackAnswer)) {
    log.warn({ name: g.name, answer, retryInMs: again.requeueAfterMs }, `check-back answered ${JSON.stringify(answer)}, not one of ${ANSWERS.join(', ')}; taken as unknown`);
    return again;
  }
  if (answer === 'unknown') {
    log.info({ name: g.name, retryInMs: again.requeueAfterMs }, 'check-back cannot tell yet; asking again later');
    return again;
  }
  const outcome = answer === 'committed' ? Outcome.COMMIT : Outcome.ROLLBACK;
  try {
    const decided = await ctx.decide(g.xid, { outcome, by: 'check-back', reason: `the check-back answered ${answer as string}` });
    ctx.events.decided(decided.global);
    log.info({ name: g.name, answer }, answer === 'committed' ? 'check-back: committed; message submitted' : 'check-back: rolled back; message discarded');
  } catch (err) {
    // The producer (or an operator) decided meanwhile: that decision stands.
    if (!(err instanceof TransactionAlreadyDecided) && !(err instanceof TransactionNotFound)) throw err;
  }
  return;
}
