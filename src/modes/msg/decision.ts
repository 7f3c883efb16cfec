/**
 * The 2-phase message's decision rule, pure: from a message as read, the decided global and what
 * the decision Txn carries, or the refusal.
 *
 * - A PREPARED global is at its key's first version: nothing writes it before its decision. The
 *   decision compares that version, so submit, discard, the check-back's answer and an operator's
 *   abort race safely and one wins (invariant 1); a loser asking for the other outcome gets
 *   TransactionAlreadyDecided, one asking for the same outcome is told it holds.
 * - Submit (commit) turns the message SUBMITTED and, in the same Txn, gives each consumer its
 *   branch (under the consumer's prefix), its member record and its deliver order: a submitted
 *   message has every delivery owed, or none is written. The consumers then leave the global.
 * - Discard (rollback) ends it DISCARDED, terminal: nothing is delivered.
 * - A submitted message is never rolled back: no rule leads from SUBMITTED anywhere but DELIVERED.
 */
import { ValidationError } from '../../errors.js';
import { cmp } from '../../etcd/index.js';
import { Action, GlobalStatus, Mode, Outcome, TryState } from '../../states.js';
import { memberOf, orderFor, withEvent, type BranchRecord, type DecisionPlan, type GlobalRecord, type Keys, type MessageConsumerEntry, type TransactionRead, type Versioned } from '../../store/index.js';
import { alreadyDecided } from '../decided.js';
import type { DecisionRequest } from '../mode.js';

/** Writes a submit needs in its one Txn: the global, then a branch, a member and an order per consumer. */
export function submitOps(consumers: number): number {
  return 1 + 3 * consumers;
}

/** The most consumers one message may have under etcd's `maxTxnOps`. */
export function maxConsumers(maxTxnOps: number): number {
  return Math.floor((maxTxnOps - 1) / 3);
}

export function planMessageDecision(request: DecisionRequest, read: TransactionRead & { global: Versioned<GlobalRecord> }, { keys, maxTxnOps }: { keys: Keys; maxTxnOps: number }): { plan: DecisionPlan } | { settled: GlobalRecord } {
  const { global } = read;
  const g = global.record;
  if (g.status !== GlobalStatus.PREPARED) {
    if (g.decision?.writeId === request.writeId) return { settled: g };
    // The same outcome reached by another way (the check-back submitted while the producer's own
    // submit was on its way, a retried discard): what the caller asked for holds.
    if (g.decision?.outcome === request.outcome) return { settled: g };
    throw alreadyDecided(g);
  }
  const decision = { outcome: request.outcome, by: request.by, at: request.now, writeId: request.writeId, ...(request.reason ? { reason: request.reason } : {}) };
  const why = request.reason ? `: ${request.reason}` : '';
  const compares = [cmp.version(global.key, 1)];
  if (request.outcome === Outcome.ROLLBACK) {
    const next = withEvent({ ...g, status: GlobalStatus.DISCARDED, decision, completedAt: request.now }, 'Decided', `discard by ${request.by}${why}; nothing is delivered`, request.now);
    return { plan: { next, orders: [], compares } };
  }
  const consumers = g.consumers ?? [];
  // prepareMessage refuses such a message; one prepared under a larger maxTxnOps could still come here.
  if (submitOps(consumers.length) > maxTxnOps) {
    throw new ValidationError('consumers', `message ${g.xid} has ${consumers.length} consumers: its submit needs ${submitOps(consumers.length)} writes in one etcd Txn, over maxTxnOps (${maxTxnOps})`);
  }
  const { consumers: _kept, ...rest } = g;
  const next = withEvent({ ...rest, status: GlobalStatus.SUBMITTED, decision }, 'Decided', `submit by ${request.by}${why} (${consumers.length} consumer${consumers.length === 1 ? '' : 's'})`, request.now);
  const branches = consumers.map((c) => consumerBranch(g, c, request));
  return {
    plan: {
      next,
      orders: branches.map((b) => ({ owner: b.owner, order: orderFor(b, Mode.MESSAGE, Action.DELIVER, request.by, request.now) })),
      puts: branches.flatMap((b) => [
        { key: keys.branch(b.owner, b.xid, b.branchId), value: b },
        { key: keys.member(b.xid, b.owner, b.branchId), value: memberOf(b) },
      ]),
      compares,
    },
  };
}

/**
 * A consumer's branch, as the submit creates it in the consumer's prefix. It has no first phase
 * of its own: the producer's local transaction was it, so its Try state is SUCCEEDED.
 */
export function consumerBranch(g: GlobalRecord, c: MessageConsumerEntry, request: Pick<DecisionRequest, 'by' | 'now' | 'writeId'>): BranchRecord {
  return withEvent(
    {
      v: 1,
      mode: Mode.MESSAGE,
      xid: g.xid,
      app: g.app,
      branchId: c.branchId,
      owner: c.service,
      resource: c.resource,
      payload: c.payload,
      createdAt: request.now,
      deadline: g.deadline,
      tryState: TryState.SUCCEEDED,
      updatedAt: request.now,
      writeId: request.writeId,
      keyLayout: 2,
      events: [],
    },
    'Received',
    `consumer of message ${JSON.stringify(g.name)} from ${g.app}, submitted by ${request.by}`,
    request.now,
  );
}

/** The action every branch of a message receives once it is submitted. */
export function messageAction(status: GlobalStatus): Action | undefined {
  return status === GlobalStatus.SUBMITTED || status === GlobalStatus.DELIVERED ? Action.DELIVER : undefined;
}
