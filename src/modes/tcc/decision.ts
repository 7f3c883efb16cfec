/**
 * TCC's decision rule, pure: from a transaction as read, the decided global and the orders the
 * decision Txn carries, or the refusal.
 *
 * - A global is TRYING exactly while its key is at version 1: the decision compares it, so commit,
 *   rollback, deadline expiry and operator abort race safely and one wins (invariant 1).
 * - Commit needs every Try to have succeeded, and pins the member records as read (none added, none
 *   changed), so it never confirms a branch whose Try it did not see succeed (invariant 4).
 *   Rollback only pins that none was added, so Try results landing meanwhile don't make it retry.
 * - Commit is refused past the deadline (participants may have let their reservations expire), and
 *   its Txn gives up at the deadline rather than land after it. Rollback is always allowed.
 */
import { BranchesNotPrepared, DeadlineExceeded } from '../../errors.js';
import { alreadyDecided } from '../decided.js';
import { cmp } from '../../etcd/index.js';
import { Action, GlobalStatus, Mode, Outcome, TryState } from '../../states.js';
import type { DecisionRequest } from '../mode.js';
import { orderFor, withEvent, type DecisionPlan, type GlobalRecord, type Keys, type TransactionRead, type Versioned } from '../../store/index.js';

export function planDecision(request: DecisionRequest, read: TransactionRead & { global: Versioned<GlobalRecord> }, { keys, maxTxnOps }: { keys: Keys; maxTxnOps: number }): { plan: DecisionPlan } | { settled: GlobalRecord } {
  const { global, members, revision } = read;
  const g = global.record;
  if (g.status !== GlobalStatus.TRYING) {
    if (g.decision?.writeId === request.writeId) return { settled: g };
    throw alreadyDecided(g);
  }
  const commit = request.outcome === Outcome.COMMIT;
  if (commit) {
    const late = request.now - g.deadline;
    if (late >= 0) throw new DeadlineExceeded(g.xid, `transaction ${g.xid} passed its deadline ${late}ms before the commit (deadline ${new Date(g.deadline).toISOString()}); not committed, roll it back`);
    const unprepared = members.filter((m) => m.record.tryState !== TryState.SUCCEEDED).map((m) => m.record.branchId);
    if (unprepared.length > 0) throw new BranchesNotPrepared(g.xid, unprepared);
  }
  const action = commit ? Action.CONFIRM : Action.CANCEL;
  const inTxn = members.slice(0, maxTxnOps - 1);
  const next = withEvent(
    {
      ...g,
      status: commit ? GlobalStatus.COMMITTING : GlobalStatus.ROLLING_BACK,
      decision: { outcome: request.outcome, by: request.by, at: request.now, writeId: request.writeId, ...(request.reason ? { reason: request.reason } : {}) },
      fannedOut: inTxn.length === members.length,
    },
    'Decided',
    `${request.outcome} by ${request.by}${request.reason ? `: ${request.reason}` : ''} (${members.length} branches)`,
    request.now,
  );
  const pins = keys.members(g.xid).flatMap((p) => (commit ? cmp.prefixUnchangedSince(p, revision) : [cmp.prefixNoneCreatedSince(p, revision)]));
  return {
    plan: {
      next,
      orders: inTxn.map((m) => ({ owner: m.record.owner, order: orderFor(m.record, Mode.TCC, action, request.by, request.now) })),
      compares: [cmp.version(global.key, 1), ...pins],
      ...(commit ? { options: { deadline: g.deadline } } : {}),
    },
  };
}

/** The action every branch of a decided global receives. */
export function actionFor(status: GlobalStatus): Action | undefined {
  if (status === GlobalStatus.COMMITTING || status === GlobalStatus.COMMITTED) return Action.CONFIRM;
  if (status === GlobalStatus.ROLLING_BACK || status === GlobalStatus.ROLLED_BACK) return Action.CANCEL;
  return undefined;
}
