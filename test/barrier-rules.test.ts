/**
 * The branch barrier's rules as pure functions (src/barrier/rules.ts): what each op does given the
 * branch's barrier record. The etcd and PostgreSQL barriers run exactly these; their own tests show
 * the same rules against the real stores, atomic with the participant's data.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../src/index.js';
import { barrierCall, decide, type BarrierDecision, type BarrierOp, type BarrierRecord } from '../src/barrier/index.js';
import { newBranch, phase2Ctx, tryCtx } from './helpers/barrier.js';

const NOW = 1_700_000_000_000;
const b = newBranch();

/** Applies ops one after another, as a store would, returning each decision. */
function play(...steps: Array<{ op: BarrierOp; token?: string; attempt?: number }>): { decisions: BarrierDecision[]; record: BarrierRecord | undefined } {
  let record: BarrierRecord | undefined;
  const decisions: BarrierDecision[] = [];
  for (const s of steps) {
    const ctx = s.token !== undefined ? { ...b, fencingToken: s.token, attempt: s.attempt ?? 1 } : b;
    const d = decide(record, barrierCall(ctx, s.op), NOW);
    decisions.push(d);
    if (d.kind === 'run' || d.kind === 'empty-rollback') record = d.next;
  }
  return { decisions, record };
}

const kinds = (ds: BarrierDecision[]) => ds.map((d) => (d.kind === 'refuse' ? `refuse:${d.reason}` : d.kind));

describe('idempotence: an op already applied does nothing', () => {
  it('try, confirm, confirm: the second confirm is a duplicate', () => {
    expect(kinds(play({ op: 'try' }, { op: 'confirm', token: '5' }, { op: 'confirm', token: '5', attempt: 2 }).decisions)).toEqual(['run', 'run', 'duplicate']);
  });

  it('try, cancel, cancel: the second cancel is a duplicate', () => {
    expect(kinds(play({ op: 'try' }, { op: 'cancel', token: '5' }, { op: 'cancel', token: '6' }).decisions)).toEqual(['run', 'run', 'duplicate']);
  });

  it('a Try applied twice (a retried request) runs once', () => {
    expect(kinds(play({ op: 'try' }, { op: 'try' }).decisions)).toEqual(['run', 'duplicate']);
  });

  it('saga: action, compensate, compensate', () => {
    expect(kinds(play({ op: 'action', token: '5' }, { op: 'compensate', token: '5', attempt: 2 }, { op: 'compensate', token: '5', attempt: 3 }).decisions)).toEqual(['run', 'run', 'duplicate']);
  });
});

describe('empty rollback: a cancel whose Try never ran succeeds without effect, and is recorded', () => {
  it('records the Try as blocked, the cancel as applied and empty', () => {
    const { decisions, record } = play({ op: 'cancel', token: '7', attempt: 1 });
    expect(kinds(decisions)).toEqual(['empty-rollback']);
    expect(record).toMatchObject({ phase1: 'try', phase1State: 'blocked', phase2: 'cancel', emptyRollback: true, fencingToken: '7', attempt: 1 });
  });

  it('a cancel after a Try that ran is not empty: its handler runs', () => {
    const { decisions, record } = play({ op: 'try' }, { op: 'cancel', token: '7' });
    expect(kinds(decisions)).toEqual(['run', 'run']);
    expect(record).toMatchObject({ phase1State: 'applied', phase2: 'cancel', emptyRollback: false });
  });

  it('a compensation whose action never ran is empty too', () => {
    expect(play({ op: 'compensate', token: '7' }).record).toMatchObject({ phase1: 'action', phase1State: 'blocked', emptyRollback: true });
  });
});

describe('anti-hanging: a Try after its cancel is refused', () => {
  it('after an empty rollback', () => {
    expect(kinds(play({ op: 'cancel', token: '7' }, { op: 'try' }).decisions)).toEqual(['empty-rollback', 'refuse:hanging']);
  });

  it('after a confirm recorded without a Try', () => {
    expect(kinds(play({ op: 'confirm', token: '7' }, { op: 'try' }).decisions)).toEqual(['run', 'refuse:hanging']);
  });

  it('a saga action after its empty compensation', () => {
    expect(kinds(play({ op: 'compensate', token: '7' }, { op: 'action', token: '7' }).decisions)).toEqual(['empty-rollback', 'refuse:hanging']);
  });
});

describe('fencing: an attempt older than one that wrote is refused', () => {
  it('a lower fencing token, after a newer term applied the confirm', () => {
    const { decisions, record } = play({ op: 'try' }, { op: 'confirm', token: '200', attempt: 2 }, { op: 'confirm', token: '100', attempt: 1 });
    expect(kinds(decisions)).toEqual(['run', 'run', 'refuse:stale-term']);
    expect(record).toMatchObject({ fencingToken: '200', attempt: 2 });
  });

  it('the same term, a lower attempt (a handler that ran on past its timeout)', () => {
    expect(kinds(play({ op: 'try' }, { op: 'cancel', token: '9', attempt: 3 }, { op: 'cancel', token: '9', attempt: 2 }).decisions)).toEqual(['run', 'run', 'refuse:stale-term']);
  });

  it('tokens compare as numbers, not strings ("10" is newer than "9")', () => {
    expect(kinds(play({ op: 'try' }, { op: 'confirm', token: '10' }, { op: 'confirm', token: '9', attempt: 5 }).decisions)).toEqual(['run', 'run', 'refuse:stale-term']);
  });

  it('a newer attempt of an op already applied is a duplicate, not refused (and writes nothing)', () => {
    const { decisions, record } = play({ op: 'cancel', token: '9', attempt: 1 }, { op: 'cancel', token: '12', attempt: 2 });
    expect(kinds(decisions)).toEqual(['empty-rollback', 'duplicate']);
    expect(record).toMatchObject({ fencingToken: '9', attempt: 1 });
  });

  it('a Try (no fencing token) keeps the fence recorded', () => {
    const first = play({ op: 'confirm', token: '40', attempt: 3 }).record!;
    const d = decide({ ...first, phase1: undefined, phase1State: undefined, phase2: undefined }, barrierCall(tryCtx(b), 'try'), NOW);
    expect(d).toMatchObject({ kind: 'run', next: { fencingToken: '40', attempt: 3 } });
  });
});

describe('conflicts: an op that contradicts the record is refused', () => {
  it('a cancel after a confirm, and a confirm after a cancel', () => {
    expect(kinds(play({ op: 'try' }, { op: 'confirm', token: '1' }, { op: 'cancel', token: '1', attempt: 2 }).decisions)).toEqual(['run', 'run', 'refuse:conflict']);
    expect(kinds(play({ op: 'try' }, { op: 'cancel', token: '1' }, { op: 'confirm', token: '1', attempt: 2 }).decisions)).toEqual(['run', 'run', 'refuse:conflict']);
  });

  it('a saga compensation of a TCC branch', () => {
    expect(kinds(play({ op: 'try' }, { op: 'compensate', token: '1' }).decisions)).toEqual(['run', 'refuse:conflict']);
  });
});

describe('what a handler passes is checked', () => {
  it('the op must be the action of the phase-2 context (a confirm handler cannot record a cancel)', () => {
    expect(() => barrierCall(phase2Ctx(b, 'confirm'), 'cancel')).toThrow(ValidationError);
  });

  it('ids, ops, tokens and attempts', () => {
    expect(() => barrierCall({ ...b, xid: 'not an xid' }, 'try')).toThrow(/ctx.xid/);
    expect(() => barrierCall({ ...b, branchId: 'a/b' }, 'try')).toThrow(/ctx.branchId/);
    expect(() => barrierCall(b, 'commit' as BarrierOp)).toThrow(/op/);
    expect(() => barrierCall({ ...b, fencingToken: '12a', attempt: 1 }, 'confirm')).toThrow(/ctx.fencingToken/);
    expect(() => barrierCall({ ...b, fencingToken: '9223372036854775808', attempt: 1 }, 'confirm')).toThrow(/ctx.fencingToken/);
    expect(() => barrierCall({ ...b, fencingToken: '1', attempt: -1 }, 'confirm')).toThrow(/ctx.attempt/);
    expect(() => barrierCall({ ...b, attempt: 1 }, 'confirm')).toThrow(/fencing token/);
  });
});
