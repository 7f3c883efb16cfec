/**
 * TCC's rules on their own, as pure next-record functions: no etcd, no clock but the one passed in.
 * Each test names the rule it guards; the same rules are exercised end to end by the etcd tests.
 */
import { describe, expect, it } from 'vitest';
import { BranchesNotPrepared, DeadlineExceeded, TransactionAlreadyDecided } from '../src/errors.js';
import { tccRules } from '../src/modes/index.js';
import { Action, GlobalStatus, Mode, Phase2State, TryState } from '../src/states.js';
import { Keys, type BranchRecord, type GlobalRecord, type MemberRecord, type TransactionRead, type Versioned } from '../src/store/index.js';

const keys = new Keys('txloop/');
const NOW = 1_700_000_000_000;
const limits = { maxAttempts: 3, retryBaseMs: 100, retryMaxMs: 1_000, graceMs: 500 };

function global(over: Partial<GlobalRecord> = {}): GlobalRecord {
  return { v: 1, xid: 'shop.0000000000000000a', app: 'shop', name: 'x', mode: Mode.TCC, status: GlobalStatus.TRYING, createdAt: NOW - 1_000, timeoutMs: 10_000, deadline: NOW + 9_000, events: [], ...over };
}
function member(tryState: MemberRecord['tryState'], over: Partial<MemberRecord> = {}): MemberRecord {
  return { v: 1, xid: 'shop.0000000000000000a', owner: 'bank', branchId: `b${Math.random().toString(36).slice(2, 8)}`, resource: 'r', tryState, ...over };
}
function branch(over: Partial<BranchRecord> = {}): BranchRecord {
  return { v: 1, mode: Mode.TCC, xid: 'shop.0000000000000000a', app: 'shop', branchId: 'abcd1234', owner: 'bank', resource: 'r', payload: null, createdAt: NOW - 1_000, deadline: NOW + 9_000, tryState: TryState.SUCCEEDED, updatedAt: NOW, writeId: 'w', events: [], ...over };
}
function read(g: GlobalRecord, members: MemberRecord[]): TransactionRead & { global: Versioned<GlobalRecord> } {
  return { global: { key: keys.global(g.xid), record: g, modRevision: '5' }, members: members.map((m) => ({ key: keys.member(m.xid, m.owner, m.branchId), record: m, modRevision: '4' })), revision: '6' };
}
const request = (outcome: 'commit' | 'rollback', now = NOW) => ({ outcome, by: outcome, writeId: 'mine', now });

describe('TCC decision rule (invariants 1 and 4)', () => {
  it('a commit of a TRYING global with every Try succeeded decides COMMITTING, orders confirm for each member, compares version 1, pins the members unchanged and carries the deadline', () => {
    const ms = [member(TryState.SUCCEEDED), member(TryState.SUCCEEDED)];
    const step = tccRules.planDecision(request('commit'), read(global(), ms), { keys, maxTxnOps: 128 });
    if (!('plan' in step)) throw new Error('expected a plan');
    expect(step.plan.next).toMatchObject({ status: GlobalStatus.COMMITTING, decision: { outcome: 'commit', by: 'commit', writeId: 'mine', at: NOW }, fannedOut: true });
    expect(step.plan.orders.map((o) => o.order.action)).toEqual([Action.CONFIRM, Action.CONFIRM]);
    expect(step.plan.compares.filter((c) => c.target === 'Version')).toEqual([expect.objectContaining({ version: 1 })]);
    // Unchanged and none added, under both member prefixes (today's and the legacy one).
    expect(step.plan.compares.filter((c) => c.range_end !== undefined)).toHaveLength(4);
    expect(step.plan.options).toEqual({ deadline: global().deadline });
  });

  it('a rollback pins only that no member was added, orders cancel, and has no deadline', () => {
    const step = tccRules.planDecision(request('rollback'), read(global(), [member(TryState.PENDING)]), { keys, maxTxnOps: 128 });
    if (!('plan' in step)) throw new Error('expected a plan');
    expect(step.plan.next.status).toBe(GlobalStatus.ROLLING_BACK);
    expect(step.plan.orders.map((o) => o.order.action)).toEqual([Action.CANCEL]);
    expect(step.plan.compares.filter((c) => c.range_end !== undefined).map((c) => c.target)).toEqual(['Create', 'Create']);
    expect(step.plan.options).toBeUndefined();
  });

  it('commit is refused while a Try has not succeeded (BranchesNotPrepared names them)', () => {
    const pending = member(TryState.PENDING);
    expect(() => tccRules.planDecision(request('commit'), read(global(), [member(TryState.SUCCEEDED), pending]), { keys, maxTxnOps: 128 })).toThrow(BranchesNotPrepared);
    let refusal: unknown;
    try {
      tccRules.planDecision(request('commit'), read(global(), [pending]), { keys, maxTxnOps: 128 });
    } catch (err) {
      refusal = err;
    }
    // Fails when nothing was thrown, not only when the wrong thing was.
    expect(refusal).toBeInstanceOf(BranchesNotPrepared);
    expect((refusal as BranchesNotPrepared).branchIds).toEqual([pending.branchId]);
  });

  it('commit at or past the deadline is refused with DeadlineExceeded; rollback past it is planned', () => {
    const g = global({ deadline: NOW });
    expect(() => tccRules.planDecision(request('commit', NOW), read(g, []), { keys, maxTxnOps: 128 })).toThrow(DeadlineExceeded);
    expect('plan' in tccRules.planDecision(request('rollback', NOW + 60_000), read(g, []), { keys, maxTxnOps: 128 })).toBe(true);
  });

  it('a decided global refuses a new decision naming the winner, but our own recorded decision is settled, not refused', () => {
    const decided = global({ status: GlobalStatus.ROLLING_BACK, decision: { outcome: 'rollback', by: 'deadline', at: NOW, writeId: 'theirs' } });
    expect(() => tccRules.planDecision(request('commit'), read(decided, []), { keys, maxTxnOps: 128 })).toThrow(TransactionAlreadyDecided);
    const ours = global({ status: GlobalStatus.COMMITTING, decision: { outcome: 'commit', by: 'commit', at: NOW, writeId: 'mine' } });
    expect(tccRules.planDecision(request('commit'), read(ours, []), { keys, maxTxnOps: 128 })).toEqual({ settled: ours });
  });

  it('a decision with more members than one Txn holds carries what fits and marks the global not fanned out', () => {
    const ms = Array.from({ length: 10 }, () => member(TryState.SUCCEEDED));
    const step = tccRules.planDecision(request('commit'), read(global(), ms), { keys, maxTxnOps: 4 });
    if (!('plan' in step)) throw new Error('expected a plan');
    expect(step.plan.orders).toHaveLength(3);
    expect(step.plan.next.fannedOut).toBe(false);
  });
});

describe('TCC Try rules (empty rollback, late Try)', () => {
  it('recording a Try result sets tryState and its event; recording the same result again changes nothing', () => {
    const next = tccRules.withTryResult(branch({ tryState: TryState.PENDING }), TryState.FAILED, 'no funds', NOW)!;
    expect(next).toMatchObject({ tryState: TryState.FAILED, tryError: 'no funds' });
    expect(next.events.at(-1)).toMatchObject({ type: 'TryFailed' });
    expect(tccRules.withTryResult(next, TryState.FAILED, 'no funds', NOW)).toBeUndefined();
  });

  it('a Try that succeeds after its empty rollback re-opens the cancel with a fresh budget, keeping the attempt count', () => {
    const cancelled = branch({ tryState: TryState.PENDING, phase2: { action: Action.CANCEL, state: Phase2State.DONE, attempts: 2, doneAt: NOW } });
    const next = tccRules.withTryResult(cancelled, TryState.SUCCEEDED, undefined, NOW)!;
    expect(next.phase2).toEqual({ action: Action.CANCEL, state: Phase2State.ACTIVE, attempts: 2, budgetFrom: 2 });
    expect(next.events.at(-1)).toMatchObject({ type: 'LateTry' });
  });

  it('a Try that succeeds after its branch was collected comes back with an orphan cancel order of its own', () => {
    const { branch: back, order } = tccRules.compensationOfCollectedTry(branch({ tryState: TryState.PENDING, phase2: { action: Action.CANCEL, state: Phase2State.DONE, attempts: 1 } }), NOW);
    expect(back.tryState).toBe(TryState.SUCCEEDED);
    expect(back.phase2).toBeUndefined();
    expect(order).toMatchObject({ action: Action.CANCEL, orphan: true, mode: Mode.TCC });
  });
});

describe('TCC phase-2 rules (invariants 3 and 4)', () => {
  it('confirm is never run for a branch whose Try did not succeed: it is refused and parked', () => {
    const refused = tccRules.refusal(branch({ tryState: TryState.FAILED }), Action.CONFIRM, limits);
    expect(refused?.phase2.state).toBe(Phase2State.PARKED);
    expect(refused?.message).toMatch(/refusing to confirm/);
  });

  it('a cancel waits for a PENDING Try until deadline + grace; a retry waits for its persisted time', () => {
    const pending = branch({ tryState: TryState.PENDING, deadline: NOW + 1_000 });
    expect(tccRules.waitBeforeAttempt(pending, Action.CANCEL, limits, NOW)).toBe(1_500);
    expect(tccRules.waitBeforeAttempt(pending, Action.CANCEL, limits, NOW + 2_000)).toBe(0);
    const retrying = branch({ phase2: { action: Action.CONFIRM, state: Phase2State.ACTIVE, attempts: 1, nextRetryAt: NOW + 300 } });
    expect(tccRules.waitBeforeAttempt(retrying, Action.CONFIRM, limits, NOW)).toBe(300);
  });

  it('every attempt is counted; a new term records AttemptStarted; numbers only grow', () => {
    const first = tccRules.attemptStarted(branch(), Action.CONFIRM, false, NOW);
    expect(first.phase2).toMatchObject({ state: Phase2State.ACTIVE, attempts: 1, lastAttemptAt: NOW });
    expect(first.events).toEqual([]);
    const inherited = tccRules.attemptStarted(first, Action.CONFIRM, true, NOW + 1);
    expect(inherited.phase2?.attempts).toBe(2);
    expect(inherited.events.at(-1)).toMatchObject({ type: 'AttemptStarted' });
  });

  it('only a first attempt of work whose order came during the term runs before it is written; the rest is written first, and history is asked only when an earlier term may have run it', () => {
    const facts = { recorded: false, orderFromEarlierTerm: false, ranUnrecorded: false, maxAttempts: 10 };
    expect(tccRules.countingOf(facts)).toEqual({ recordFirst: false, askHistory: false });
    expect(tccRules.countingOf({ ...facts, recorded: true })).toEqual({ recordFirst: true, askHistory: false });
    // The order came before this term (even if the branch was rewritten since, e.g. by a late Try).
    expect(tccRules.countingOf({ ...facts, orderFromEarlierTerm: true })).toEqual({ recordFirst: true, askHistory: true });
    // This term ran it and could not write the outcome: counted, written first, no history needed.
    expect(tccRules.countingOf({ ...facts, ranUnrecorded: true })).toEqual({ recordFirst: true, askHistory: false });
    // A budget of one attempt is never spent on a guess: always written first.
    expect(tccRules.countingOf({ ...facts, maxAttempts: 1 })).toEqual({ recordFirst: true, askHistory: false });
    expect(tccRules.countingOf({ ...facts, maxAttempts: 1, orderFromEarlierTerm: true })).toEqual({ recordFirst: true, askHistory: false });
    const fresh = branch();
    expect(tccRules.attemptStarted(fresh, Action.CONFIRM, true, NOW, false).phase2?.attempts).toBe(1);
    const afterUnrecorded = tccRules.attemptStarted(fresh, Action.CONFIRM, true, NOW, true);
    expect(afterUnrecorded.phase2?.attempts).toBe(2);
    expect(afterUnrecorded.events.at(-1)).toMatchObject({ type: 'AttemptStarted' });
    expect(tccRules.refusal(fresh, Action.CONFIRM, { maxAttempts: 2 })).toBeUndefined();
  });

  it('a failed attempt within the budget persists its error and an exponential next retry time; the last one parks', () => {
    const started = tccRules.attemptStarted(branch(), Action.CONFIRM, false, NOW);
    const failed = tccRules.attemptFinished(started, 'down', limits, NOW, NOW + 10);
    expect(failed).toMatchObject({ result: 'failed', requeueAfterMs: 100 });
    expect(failed.next.phase2).toMatchObject({ state: Phase2State.ACTIVE, attempts: 1, lastError: 'down', nextRetryAt: NOW + 110 });
    const second = tccRules.attemptFinished(tccRules.attemptStarted(failed.next, Action.CONFIRM, false, NOW), 'down', limits, NOW, NOW);
    expect(second.requeueAfterMs).toBe(200);
    const third = tccRules.attemptFinished(tccRules.attemptStarted(second.next, Action.CONFIRM, false, NOW), 'down', limits, NOW, NOW);
    expect(third.result).toBe('parked');
    expect(third.next.phase2?.state).toBe(Phase2State.PARKED);
  });

  it('a stepped schedule replaces the backoff: the delay after failed attempt n is step n, and the attempt after the last step parks', () => {
    const stepped = tccRules.limitsFor(limits, [5_000, 60_000]);
    expect(stepped.maxAttempts).toBe(3);
    const first = tccRules.attemptFinished(tccRules.attemptStarted(branch(), Action.CONFIRM, false, NOW), 'down', stepped, NOW, NOW);
    expect(first.requeueAfterMs).toBe(5_000);
    const second = tccRules.attemptFinished(tccRules.attemptStarted(first.next, Action.CONFIRM, false, NOW), 'down', stepped, NOW, NOW);
    expect(second.requeueAfterMs).toBe(60_000);
    const third = tccRules.attemptFinished(tccRules.attemptStarted(second.next, Action.CONFIRM, false, NOW), 'down', stepped, NOW, NOW);
    expect(third.result).toBe('parked');
    expect(tccRules.limitsFor(limits, undefined)).toBe(limits);
  });

  it('an attempt at the limit that never reported back (its replica died) is parked without running again', () => {
    const dead = branch({ phase2: { action: Action.CONFIRM, state: Phase2State.ACTIVE, attempts: 3 } });
    expect(tccRules.refusal(dead, Action.CONFIRM, limits)?.message).toMatch(/never reported back/);
    // An operator's retry gives a fresh budget: the same count is then within it.
    const retried = branch({ phase2: { action: Action.CONFIRM, state: Phase2State.ACTIVE, attempts: 3, budgetFrom: 3 } });
    expect(tccRules.refusal(retried, Action.CONFIRM, limits)).toBeUndefined();
  });

  it('a successful cancel of a branch whose Try never succeeded is recorded as an empty rollback', () => {
    const started = tccRules.attemptStarted(branch({ tryState: TryState.FAILED }), Action.CANCEL, false, NOW);
    const done = tccRules.attemptFinished(started, undefined, limits, NOW, NOW);
    expect(done.result).toBe('succeeded');
    expect(done.next.phase2).toMatchObject({ state: Phase2State.DONE, doneAt: NOW });
    expect(done.message).toMatch(/empty rollback/);
  });

  it('an attempt whose participant settled the branch itself (ResolvedByParticipant) is DONE with that resolution at once, not retried nor parked', () => {
    const started = tccRules.attemptStarted(branch(), Action.CONFIRM, false, NOW);
    const gone = { as: 'cancelled', reason: 'PUT answered 404', by: 'participant:swiss' } as const;
    const done = tccRules.attemptFinished(started, 'resolved as cancelled by participant:swiss: PUT answered 404', limits, NOW, NOW + 5, false, gone);
    expect(done.result).toBe('succeeded');
    expect(done.requeueAfterMs).toBeUndefined();
    expect(done.next.phase2).toMatchObject({ action: Action.CONFIRM, state: Phase2State.DONE, attempts: 1, doneAt: NOW + 5, lastError: 'PUT answered 404', resolution: { ...gone, at: NOW + 5 } });
    expect(done.next.events.at(-1)).toMatchObject({ type: 'Resolved', message: expect.stringContaining('by participant:swiss') });
    // It counts against the decision like a human's resolution: the commit completes heuristic.
    const decided = global({ status: GlobalStatus.COMMITTING, decision: { outcome: 'commit', by: 'commit', at: NOW, writeId: 'w' } });
    expect(tccRules.completed(decided, [member(TryState.SUCCEEDED, { state: Phase2State.DONE, resolution: 'cancelled' })], NOW)?.heuristic).toBe(true);
  });
});

describe('TCC completion and retention (invariant 8)', () => {
  const decided = global({ status: GlobalStatus.COMMITTING, decision: { outcome: 'commit', by: 'commit', at: NOW, writeId: 'w' } });

  it('a decided global completes only when every member is done, heuristic when one was resolved against the decision', () => {
    expect(tccRules.completed(decided, [member(TryState.SUCCEEDED, { state: Phase2State.DONE }), member(TryState.SUCCEEDED, { state: Phase2State.PARKED })], NOW)).toBeUndefined();
    const done = tccRules.completed(decided, [member(TryState.SUCCEEDED, { state: Phase2State.DONE })], NOW);
    expect(done).toMatchObject({ status: GlobalStatus.COMMITTED, completedAt: NOW });
    expect(done?.heuristic).toBeUndefined();
    const heuristic = tccRules.completed(decided, [member(TryState.SUCCEEDED, { state: Phase2State.DONE, resolution: 'cancelled' })], NOW);
    expect(heuristic?.heuristic).toBe(true);
  });

  it('a finished global is kept for the retention, and while a member is PENDING until its deadline + handler timeout', () => {
    const finished = global({ status: GlobalStatus.ROLLED_BACK, completedAt: NOW, deadline: NOW - 100, decision: { outcome: 'rollback', by: 'deadline', at: NOW, writeId: 'w' } });
    expect(tccRules.collectableAt(finished, [member(TryState.FAILED)], { retentionMs: 300, handlerTimeoutMs: 30_000 }, NOW)).toBe(NOW + 300);
    expect(tccRules.collectableAt(finished, [member(TryState.PENDING)], { retentionMs: 300, handlerTimeoutMs: 30_000 }, NOW)).toBe(NOW - 100 + 30_000);
  });
});
