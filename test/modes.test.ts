/**
 * The mode seam: records read whatever their mode, the registry decides whether a service runs it,
 * and what a deadline means, what a decision orders and the CLI's words come from the mode.
 */
import { describe, expect, it } from 'vitest';
import { toView } from '../src/client/index.js';
import { MalformedRecord, TerminalError } from '../src/errors.js';
import { builtInModes, tcc } from '../src/modes/index.js';
import { Action, GlobalStatus, Mode, Outcome, Phase2State, TryState } from '../src/states.js';
import { parseBranch, parseGlobal, parseOrder, type BranchRecord, type GlobalRecord } from '../src/store/index.js';

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
    expect(modes.notRun('xa')).toMatch(/^this txloop runs no transaction mode "xa" \(it runs tcc, saga/);
    expect(() => modes.of('xa')).toThrow(TerminalError);
    expect(modes.branchStatus('k', Buffer.from(JSON.stringify(branch({ mode: 'xa' }))))).toBe('MALFORMED');
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
