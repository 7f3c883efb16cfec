/**
 * The mode seam: records read whatever their mode, the registry decides whether a service runs it,
 * and what a deadline means, what a decision orders and the CLI's words come from the mode.
 */
import { describe, expect, it } from 'vitest';
import { toView } from '../src/client/index.js';
import { MalformedRecord, TerminalError } from '../src/errors.js';
import { builtInModes, msg, msgRules, tcc } from '../src/modes/index.js';
import { Action, GlobalStatus, Mode, Outcome, Phase2State, TryState } from '../src/states.js';
import { Keys, parseBranch, parseGlobal, parseOrder, type BranchRecord, type GlobalRecord } from '../src/store/index.js';
import { TransactionAlreadyDecided, ValidationError } from '../src/errors.js';

const NOW = 1_700_000_000_000;
const global = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ v: 1, xid: 'shop.0000000000000000a', app: 'shop', name: 'x', status: 'TRYING', createdAt: NOW, timeoutMs: 1_000, deadline: NOW + 1_000, events: [], ...over });
const branch = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ v: 1, xid: 'shop.0000000000000000a', app: 'shop', branchId: 'abcd1234', owner: 'bank', resource: 'r', payload: null, createdAt: NOW, deadline: NOW + 1_000, tryState: 'PENDING', updatedAt: NOW, writeId: 'w', events: [], ...over });
const order = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ v: 1, xid: 'shop.0000000000000000a', branchId: 'abcd1234', action: 'cancel', decidedAt: NOW, by: 'rollback', ...over });

describe('records of any mode read; the registry decides whether a service runs it', () => {
  it('a record without a mode is TCC; one of a mode this version does not ship reads with its mode', () => {
    expect(parseGlobal('k', JSON.stringify(global())).mode).toBe(Mode.TCC);
    expect(parseGlobal('k', JSON.stringify(global({ mode: 'saga' }))).mode).toBe('saga');
    expect(parseBranch('k', JSON.stringify(branch({ mode: 'msg-2p' }))).mode).toBe('msg-2p');
    expect(parseOrder('k', JSON.stringify(order({ mode: 'saga' }))).mode).toBe('saga');
  });

  it('a mode that is not a mode name is malformed', () => {
    for (const mode of ['', 'TCC', 'has space', '9lives', 'x'.repeat(33), 5, null, ['tcc']]) {
      expect(() => parseGlobal('k', JSON.stringify(global({ mode }))), JSON.stringify(mode)).toThrow(MalformedRecord);
      expect(() => parseBranch('k', JSON.stringify(branch({ mode }))), JSON.stringify(mode)).toThrow(MalformedRecord);
      expect(() => parseOrder('k', JSON.stringify(order({ mode }))), JSON.stringify(mode)).toThrow(MalformedRecord);
    }
  });

  it('the registry runs the modes it was given: another is a TerminalError from of(), and notRun() says why', () => {
    const modes = builtInModes();
    expect(modes.of(Mode.TCC)).toBe(tcc);
    expect(modes.find('xa')).toBeUndefined();
    expect(modes.notRun(Mode.TCC)).toBeUndefined();
    expect(modes.notRun(Mode.SAGA)).toBeUndefined();
    expect(modes.notRun('xa')).toMatch(/^this txloop runs no transaction mode "xa" \(it runs tcc, saga, msg\)$/);
    expect(() => modes.of('xa')).toThrow(TerminalError);
    expect(modes.branchStatus('k', Buffer.from(JSON.stringify(branch({ mode: 'xa' }))))).toBe('MALFORMED');
    expect(modes.notRun(Mode.MESSAGE)).toBeUndefined();
    expect(modes.branchStatus('k', Buffer.from(JSON.stringify(branch())))).toBe('TRYING');
  });
});

describe('TCC as a mode', () => {
  it('passing the deadline rolls back', () => {
    expect(tcc.deadlineOutcome(parseGlobal('k', JSON.stringify(global())))).toBe(Outcome.ROLLBACK);
  });

  it('a decided global has ordered confirm (commit) or cancel (rollback) for every branch; an undecided one nothing', () => {
    expect(tcc.orderedAction(GlobalStatus.TRYING)).toBeUndefined();
    expect(tcc.orderedAction(GlobalStatus.COMMITTING)).toBe(Action.CONFIRM);
    expect(tcc.orderedAction(GlobalStatus.COMMITTED)).toBe(Action.CONFIRM);
    expect(tcc.orderedAction(GlobalStatus.ROLLING_BACK)).toBe(Action.CANCEL);
    expect(tcc.orderedAction(GlobalStatus.ROLLED_BACK)).toBe(Action.CANCEL);
  });

  it('every word branchStatus returns is one of its branchWords, and each group is drawn from them', () => {
    const base = parseBranch('k', JSON.stringify(branch())) as BranchRecord;
    const seen = new Set<string>();
    for (const tryState of Object.values(TryState)) {
      seen.add(tcc.branchStatus({ ...base, tryState }));
      for (const action of Object.values(Action)) {
        seen.add(tcc.branchStatus({ ...base, tryState }, { v: 1, mode: Mode.TCC, xid: base.xid, branchId: base.branchId, action, decidedAt: NOW, by: 'x' }));
        for (const state of Object.values(Phase2State)) {
          seen.add(tcc.branchStatus({ ...base, tryState, phase2: { action, state, attempts: 1 } }));
          for (const as of ['confirmed', 'cancelled'] as const) seen.add(tcc.branchStatus({ ...base, tryState, phase2: { action, state, attempts: 1, resolution: { as, reason: 'r', at: NOW, by: 'op' } } }));
        }
      }
    }
    const { all, pending, done, resolved, parked } = tcc.branchWords;
    expect([...seen].sort()).toEqual([...all].sort());
    for (const group of [pending, done, resolved, parked]) for (const w of group) expect(all).toContain(w);
    expect(resolved.every((w) => done.includes(w))).toBe(true);
  });

  it("an initiator's view asks the global's mode what each branch was ordered; a mode not run orders nothing it can name", () => {
    const members = [{ v: 1 as const, xid: 'shop.0000000000000000a', owner: 'bank', branchId: 'abcd1234', resource: 'r', tryState: TryState.SUCCEEDED }];
    const committing = parseGlobal('k', JSON.stringify(global({ status: 'COMMITTING', decision: { outcome: 'commit', by: 'commit', at: NOW, writeId: 'w' } }))) as GlobalRecord;
    expect(toView(committing, members).branches[0]!.action).toBe(Action.CONFIRM);
    expect(toView(committing, members, builtInModes()).branches[0]!.action).toBe(Action.CONFIRM);
    const foreign = { ...committing, mode: 'xa' };
    expect(toView(foreign, members).mode).toBe('xa');
    expect(toView(foreign, members).branches[0]!.action).toBeUndefined();
  });
});

describe('2-phase messages as a mode (pure rules)', () => {
  const keys = new Keys('ns/');
  const prepared = (over: Record<string, unknown> = {}): GlobalRecord =>
    parseGlobal('k', JSON.stringify(global({ mode: 'msg', status: 'PREPARED', consumers: [{ service: 'bank', resource: 'credit', branchId: 'b1', payload: { amount: 5 } }, { service: 'mail', resource: 'notify', branchId: 'm1' }], ...over })));
  const read = (g: GlobalRecord) => ({ global: { key: keys.global(g.xid), record: g, modRevision: '7' }, members: [], revision: '7' });
  const request = (outcome: 'commit' | 'rollback', writeId = 'w1') => ({ outcome, by: outcome === 'commit' ? 'submit' : 'discard', writeId, now: NOW + 10 });

  it("a submit turns PREPARED into SUBMITTED and carries every consumer's branch, member and deliver order in its one Txn; the consumers leave the global", () => {
    const step = msgRules.planMessageDecision(request('commit'), read(prepared()), { keys, maxTxnOps: 16 });
    if (!('plan' in step)) throw new Error('expected a plan');
    const { plan } = step;
    expect(plan.next).toMatchObject({ status: 'SUBMITTED', decision: { outcome: 'commit', by: 'submit', writeId: 'w1' } });
    expect(plan.next.consumers).toBeUndefined();
    expect(plan.orders).toEqual([
      { owner: 'bank', order: { v: 1, mode: 'msg', xid: 'shop.0000000000000000a', branchId: 'b1', action: 'deliver', decidedAt: NOW + 10, by: 'submit' } },
      { owner: 'mail', order: { v: 1, mode: 'msg', xid: 'shop.0000000000000000a', branchId: 'm1', action: 'deliver', decidedAt: NOW + 10, by: 'submit' } },
    ]);
    expect(plan.puts!.map((p) => p.key)).toEqual([keys.branch('bank', 'shop.0000000000000000a', 'b1'), keys.member('shop.0000000000000000a', 'bank', 'b1'), keys.branch('mail', 'shop.0000000000000000a', 'm1'), keys.member('shop.0000000000000000a', 'mail', 'm1')]);
    expect(plan.puts![0]!.value).toMatchObject({ mode: 'msg', owner: 'bank', app: 'shop', resource: 'credit', payload: { amount: 5 }, tryState: 'SUCCEEDED', keyLayout: 2 });
    // The one-decision compare: a PREPARED global is at its first version.
    expect(plan.compares).toEqual([{ key: Buffer.from(keys.global('shop.0000000000000000a')), target: 'Version', result: 'Equal', version: 1 }]);
    expect(msgRules.submitOps(2)).toBe(7);
  });

  it('a discard ends it DISCARDED (terminal, nothing ordered); a second decision is refused, a retry of our own is settled', () => {
    const step = msgRules.planMessageDecision(request('rollback'), read(prepared()), { keys, maxTxnOps: 16 });
    if (!('plan' in step)) throw new Error('expected a plan');
    expect(step.plan.next).toMatchObject({ status: 'DISCARDED', completedAt: NOW + 10, decision: { outcome: 'rollback', by: 'discard' } });
    expect(step.plan.orders).toEqual([]);
    expect(step.plan.puts).toBeUndefined();
    const discarded = step.plan.next;
    expect(() => msgRules.planMessageDecision(request('commit', 'w2'), read(discarded), { keys, maxTxnOps: 16 })).toThrow(TransactionAlreadyDecided);
    expect(msgRules.planMessageDecision(request('rollback', 'w1'), read(discarded), { keys, maxTxnOps: 16 })).toEqual({ settled: discarded });
    const submitted = (msgRules.planMessageDecision(request('commit'), read(prepared()), { keys, maxTxnOps: 16 }) as { plan: { next: GlobalRecord } }).plan.next;
    expect(() => msgRules.planMessageDecision(request('rollback', 'w3'), read(submitted), { keys, maxTxnOps: 16 })).toThrow(/already decided: commit \(by submit, now SUBMITTED\)/);
  });

  it('a submit that would not fit one Txn under maxTxnOps is refused, naming the consumers', () => {
    expect(() => msgRules.planMessageDecision(request('commit'), read(prepared()), { keys, maxTxnOps: 6 })).toThrow(ValidationError);
    expect(msgRules.maxConsumers(128)).toBe(42);
  });

  it('its deadline decides nothing (the check-back does); a submitted message has ordered deliver, a prepared or discarded one nothing', () => {
    expect(() => msg.deadlineOutcome(prepared())).toThrow(TerminalError);
    expect(msg.orderedAction(GlobalStatus.PREPARED)).toBeUndefined();
    expect(msg.orderedAction(GlobalStatus.SUBMITTED)).toBe(Action.DELIVER);
    expect(msg.orderedAction(GlobalStatus.DELIVERED)).toBe(Action.DELIVER);
    expect(msg.orderedAction(GlobalStatus.DISCARDED)).toBeUndefined();
  });

  it('completion: DELIVERED only once every member is DONE; a resolution as delivered is not heuristic', () => {
    const submitted = { ...prepared(), status: GlobalStatus.SUBMITTED, decision: { outcome: Outcome.COMMIT, by: 'submit', at: NOW, writeId: 'w' } } as GlobalRecord;
    const m = (state: Phase2State, resolution?: 'delivered' | 'confirmed') => ({ v: 1 as const, xid: submitted.xid, owner: 'bank', branchId: 'b1', resource: 'credit', tryState: TryState.SUCCEEDED, action: Action.DELIVER, state, ...(resolution ? { resolution } : {}) });
    expect(msgRules.delivered(submitted, [m(Phase2State.DONE), m(Phase2State.PARKED)], NOW)).toBeUndefined();
    expect(msgRules.delivered(submitted, [m(Phase2State.DONE), m(Phase2State.DONE, 'delivered')], NOW)).toMatchObject({ status: 'DELIVERED', completedAt: NOW });
    expect(msgRules.delivered(submitted, [m(Phase2State.DONE, 'delivered')], NOW)!.heuristic).toBeUndefined();
    expect(msgRules.delivered(submitted, [m(Phase2State.DONE, 'confirmed')], NOW)!.heuristic).toBe(true);
  });

  it('every word branchStatus returns is one of its branchWords, and each group is drawn from them', () => {
    const base = parseBranch('k', JSON.stringify(branch({ mode: 'msg', tryState: 'SUCCEEDED' }))) as BranchRecord;
    const seen = new Set<string>([msg.branchStatus(base)]);
    for (const state of Object.values(Phase2State)) {
      seen.add(msg.branchStatus({ ...base, phase2: { action: Action.DELIVER, state, attempts: 1 } }));
      seen.add(msg.branchStatus({ ...base, phase2: { action: Action.DELIVER, state, attempts: 1, resolution: { as: 'delivered', reason: 'r', at: NOW, by: 'op' } } }));
    }
    const { all, pending, done, resolved, parked } = msg.branchWords;
    expect([...seen].sort()).toEqual([...all].sort());
    for (const group of [pending, done, resolved, parked]) for (const w of group) expect(all).toContain(w);
    expect(resolved.every((w) => done.includes(w))).toBe(true);
  });

  it("a prepared message's consumers are validated on read: one naming no valid key is malformed", () => {
    expect(prepared().consumers![1]!.payload).toBeNull();
    for (const bad of [{}, [{ service: 'Bank!', resource: 'r', branchId: 'b' }], [{ service: 'bank', resource: 'r' }], [{ service: 'bank', resource: 'r', branchId: 'a/b' }], ['x']]) {
      expect(() => parseGlobal('k', JSON.stringify(global({ mode: 'msg', status: 'PREPARED', consumers: bad }))), JSON.stringify(bad)).toThrow(MalformedRecord);
    }
  });
});
