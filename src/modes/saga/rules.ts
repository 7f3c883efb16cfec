/**
 * The saga's rules, pure: which steps are ordered when, and what the saga becomes as its steps
 * finish. Computed from the members as etcd holds them (never from an initiator's memory), so any
 * owner that finishes a step can write the next move in the same Txn as its own record.
 *
 * - Groups run in order; the steps of a group concurrently. A step's branch (and member, and order)
 *   is created only when its group is ordered, so the members are exactly the steps that ran or
 *   may have run, and the highest group among them is the one the saga is at.
 * - The last step of a group to succeed orders the next group (or, after the last group, turns the
 *   saga SUCCEEDED).
 * - A step whose action failed for good turns the saga COMPENSATING and orders the compensation of
 *   every step of its group (each ran or may have run: a step still running, or one that failed
 *   half-way, is compensated too — empty compensations are the barrier's business).
 * - The last compensation of a group to finish orders the compensation of the group before it;
 *   after group 0 the saga is COMPENSATED. So the owner of a step compensates only after every
 *   later step is compensated.
 */
import { Action, GlobalStatus, Mode, Outcome, Phase2State, TryState } from '../../states.js';
import { newWriteId, withEvent, type BranchRecord, type GlobalRecord, type MemberRecord, type SagaStepPlan } from '../../store/index.js';

/** The highest group ordered so far: the one the saga is at. */
export function currentGroup(members: readonly Pick<MemberRecord, 'group'>[]): number {
  return members.reduce((max, m) => Math.max(max, m.group ?? 0), 0);
}

export function isCompensated(m: Pick<MemberRecord, 'action' | 'state'>): boolean {
  return m.action === Action.COMPENSATE && m.state === Phase2State.DONE;
}

/** The steps of group `group` in the plan. */
export function planOf(global: GlobalRecord, group: number): SagaStepPlan[] {
  return (global.steps ?? []).filter((s) => s.group === group);
}

export function lastGroup(global: GlobalRecord): number {
  return (global.steps ?? []).reduce((max, s) => Math.max(max, s.group), 0);
}

/** A step's branch record, as its group is ordered. */
export function stepBranch(global: GlobalRecord, step: SagaStepPlan, now: number): BranchRecord {
  return withEvent(
    { v: 1, mode: Mode.SAGA, xid: global.xid, app: global.app, branchId: step.branchId, owner: step.owner, resource: step.resource, payload: step.payload, createdAt: now, deadline: global.deadline, tryState: TryState.PENDING, updatedAt: now, writeId: newWriteId(), keyLayout: 2, group: step.group, events: [] },
    'Ordered',
    `action ordered (group ${step.group})`,
    now,
  );
}

/** What a saga write carries besides the step's own record. */
export interface SagaMove {
  /** The saga's new record (a status change), if any. */
  global?: GlobalRecord;
  /** Steps whose group is ordered now: their branch, member and action order are created. */
  create: BranchRecord[];
  /** Steps ordered to compensate (their order is overwritten). */
  compensate: Pick<MemberRecord, 'owner' | 'branchId'>[];
}

const NOTHING: SagaMove = { create: [], compensate: [] };

/**
 * The move that follows `changed` (a member as it is about to be written) in the saga `global`
 * whose members (as read, `changed` among them in its new state) are `members`. `by` names who
 * moves it (`participant:<app>`, `operator:<login>`).
 */
export function sagaMove(global: GlobalRecord, members: readonly MemberRecord[], changed: MemberRecord, by: string, now: number): SagaMove {
  const group = changed.group ?? 0;
  const all = members.map((m) => (m.owner === changed.owner && m.branchId === changed.branchId ? changed : m));
  // A member that does not parse could be of any group: nothing that depends on a whole group
  // moves until it is repaired (it is reported where it is read).
  const unknown = all.some((m) => m.malformed);
  const ofGroup = all.filter((m) => (m.group ?? 0) === group);
  if (global.status === GlobalStatus.RUNNING) {
    if (changed.tryState === TryState.FAILED) return startCompensation(global, all, by, `step ${changed.branchId} (${changed.owner}/${changed.resource}) failed: ${changed.lastError ?? 'its action failed for good'}`, now);
    if (changed.tryState !== TryState.SUCCEEDED || unknown || !ofGroup.every((m) => m.tryState === TryState.SUCCEEDED)) return NOTHING;
    if (group >= lastGroup(global)) {
      const done = withEvent({ ...global, status: GlobalStatus.SUCCEEDED, completedAt: now }, 'Completed', `all ${all.length} steps succeeded`, now);
      return { global: done, create: [], compensate: [] };
    }
    const next = planOf(global, group + 1);
    return { create: next.map((s) => stepBranch(global, s, now)), compensate: [] };
  }
  if (global.status === GlobalStatus.COMPENSATING) {
    if (!isCompensated(changed) || unknown || !ofGroup.every(isCompensated)) return NOTHING;
    if (group === 0) {
      // A compensation resolved by hand is resolved the way the saga went: not heuristic (as in TCC,
      // only a resolution against the decision is).
      const byHand = all.filter((m) => m.resolution !== undefined).length;
      const done = withEvent({ ...global, status: GlobalStatus.COMPENSATED, completedAt: now }, 'Completed', `all ${all.length} steps that ran are compensated${byHand ? ` (${byHand} by hand)` : ''}`, now);
      return { global: done, create: [], compensate: [] };
    }
    return { create: [], compensate: all.filter((m) => (m.group ?? 0) === group - 1) };
  }
  return NOTHING;
}

/**
 * The move a step's finish (or an operator's resolution) writes, by `by`, as store/sagas.ts
 * finishStep asks for it: from the saga and its members read at one revision.
 */
export function sagaMoveBy(by: string): (read: { global: { record: GlobalRecord }; members: readonly { record: MemberRecord }[] }, member: MemberRecord) => SagaMove {
  return (read, member) => sagaMove(read.global.record, read.members.map((m) => m.record), member, by, Date.now());
}

/** RUNNING → COMPENSATING: the steps of the group the saga is at are ordered to compensate. */
export function startCompensation(global: GlobalRecord, members: readonly MemberRecord[], by: string, reason: string, now: number, writeId = newWriteId()): SagaMove {
  const group = currentGroup(members);
  const next = withEvent(
    { ...global, status: GlobalStatus.COMPENSATING, decision: { outcome: Outcome.ROLLBACK, by, reason: reason.slice(0, 1000), at: now, writeId } },
    'Compensating',
    `compensating by ${by}: ${reason}`,
    now,
  );
  return { global: next, create: [], compensate: members.filter((m) => (m.group ?? 0) === group) };
}

/**
 * Why the owner of `member` must not compensate yet: a later step is not compensated (its
 * compensation comes first); undefined when it may.
 */
export function laterNotCompensated(members: readonly MemberRecord[], member: Pick<MemberRecord, 'group'>): MemberRecord | undefined {
  return members.find((m) => m.malformed || ((m.group ?? 0) > (member.group ?? 0) && !isCompensated(m)));
}
