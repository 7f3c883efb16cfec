/**
 * The saga's decision rule, pure: a saga is decided only one way — rolled back (compensated) while
 * RUNNING, by its deadline, an operator's abort or a participant past deadline + grace. The
 * compensation of the group it is at is ordered in the same Txn, pinned on the members as read, so
 * a group completing meanwhile makes the decision read again (and compensate the next group too).
 */
import { ValidationError } from '../../errors.js';
import { cmp } from '../../etcd/index.js';
import { Action, GlobalStatus, Mode, Outcome } from '../../states.js';
import { orderFor, type DecisionPlan, type GlobalRecord, type Keys, type TransactionRead, type Versioned } from '../../store/index.js';
import { alreadyDecided } from '../decided.js';
import type { DecisionRequest } from '../mode.js';
import { startCompensation } from './rules.js';

export function planSagaDecision(request: DecisionRequest, read: TransactionRead & { global: Versioned<GlobalRecord> }, { keys }: { keys: Keys; maxTxnOps: number }): { plan: DecisionPlan } | { settled: GlobalRecord } {
  const g = read.global.record;
  if (g.status !== GlobalStatus.RUNNING) {
    if (g.decision?.writeId === request.writeId) return { settled: g };
    throw alreadyDecided(g);
  }
  if (request.outcome === Outcome.COMMIT) {
    throw new ValidationError('xid', `${g.xid} is a saga: it has no commit (it succeeds when its last step does); it can only be rolled back, which compensates the steps that ran`);
  }
  const move = startCompensation(g, read.members.map((m) => m.record), request.by, request.reason ?? 'rolled back', request.now, request.writeId);
  return {
    plan: {
      next: move.global!,
      orders: move.compensate.map((m) => ({ owner: m.owner, order: orderFor({ xid: g.xid, branchId: m.branchId }, Mode.SAGA, Action.COMPENSATE, request.by, request.now) })),
      compares: keys.members(g.xid).flatMap((p) => cmp.prefixUnchangedSince(p, read.revision)),
    },
  };
}
