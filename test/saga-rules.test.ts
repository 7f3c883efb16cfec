/** The saga's rules as pure functions: what each finished step moves the saga to. */
import { describe, expect, it } from 'vitest';
import { Action, GlobalStatus, Mode, Phase2State, TryState } from '../src/index.js';
import { laterNotCompensated, sagaMove, startCompensation } from '../src/modes/saga/index.js';
import { MalformedRecord } from '../src/index.js';
import { parseGlobal, type GlobalRecord, type MemberRecord } from '../src/store/index.js';

const NOW = 1_700_000_000_000;
const xid = 'shop.0000000000000000a';
const saga = (over: Partial<GlobalRecord> = {}): GlobalRecord => ({
  v: 1, xid, app: 'shop', name: 'x', mode: Mode.SAGA, status: GlobalStatus.RUNNING, createdAt: NOW, timeoutMs: 1000, deadline: NOW + 1000, events: [],
  steps: [
    { branchId: 's1', owner: 'a', resource: 'r', group: 0, payload: 1 },
    { branchId: 's2', owner: 'b', resource: 'r', group: 1, payload: 2 },
    { branchId: 's3', owner: 'c', resource: 'r', group: 1, payload: 3 },
    { branchId: 's4', owner: 'd', resource: 'r', group: 2, payload: 4 },
  ],
  ...over,
});
const member = (branchId: string, owner: string, group: number, over: Partial<MemberRecord> = {}): MemberRecord => ({ v: 1, xid, owner, branchId, resource: 'r', tryState: TryState.PENDING, group, ...over });
const succeeded = { tryState: TryState.SUCCEEDED, action: Action.ACTION, state: Phase2State.DONE } as const;
const compensated = { action: Action.COMPENSATE, state: Phase2State.DONE } as const;
const compensating = { status: GlobalStatus.COMPENSATING, decision: { outcome: 'rollback' as const, by: 'participant:d', at: NOW, writeId: 'w' } };

describe('saga rules', () => {
  it('a group orders the next only once its last step succeeded', () => {
    const s1 = member('s1', 'a', 0, succeeded);
    const s2 = member('s2', 'b', 1, succeeded);
    const s3 = member('s3', 'c', 1);
    expect(sagaMove(saga(), [s1, s2, s3], s2, 'participant:b', NOW)).toEqual({ create: [], compensate: [] });
    const next = sagaMove(saga(), [s1, s2, s3], { ...s3, ...succeeded }, 'participant:c', NOW);
    expect(next.global).toBeUndefined();
    expect(next.create.map((b) => [b.owner, b.branchId, b.group, b.payload, b.tryState])).toEqual([['d', 's4', 2, 4, TryState.PENDING]]);
  });

  it('the first group ordered after submit is group 1 when group 0 (one step) succeeds', () => {
    const s1 = member('s1', 'a', 0, succeeded);
    expect(sagaMove(saga(), [s1], s1, 'participant:a', NOW).create.map((b) => b.branchId)).toEqual(['s2', 's3']);
  });

  it('the last group succeeding makes the saga SUCCEEDED', () => {
    const all = [member('s1', 'a', 0, succeeded), member('s2', 'b', 1, succeeded), member('s3', 'c', 1, succeeded), member('s4', 'd', 2, succeeded)];
    const done = sagaMove(saga(), all, all[3]!, 'participant:d', NOW);
    expect(done.global?.status).toBe(GlobalStatus.SUCCEEDED);
    expect(done.global?.completedAt).toBe(NOW);
    expect(done.create).toEqual([]);
  });

  it('a step failing for good compensates its whole group first, itself included, and nothing earlier yet', () => {
    const all = [member('s1', 'a', 0, succeeded), member('s2', 'b', 1, succeeded), member('s3', 'c', 1, { tryState: TryState.FAILED, lastError: 'declined' })];
    const m = sagaMove(saga(), all, all[2]!, 'participant:c', NOW);
    expect(m.global?.status).toBe(GlobalStatus.COMPENSATING);
    expect(m.global?.decision).toMatchObject({ outcome: 'rollback', by: 'participant:c' });
    expect(m.global?.decision?.reason).toContain('declined');
    expect(m.compensate.map((s) => s.branchId).sort()).toEqual(['s2', 's3']);
  });

  it('compensation goes group by group in reverse, the last of a group ordering the one before; after group 0 the saga is COMPENSATED', () => {
    const g = saga(compensating);
    const s1 = member('s1', 'a', 0, succeeded);
    const s2 = member('s2', 'b', 1, compensated);
    const s3 = member('s3', 'c', 1, { tryState: TryState.FAILED, action: Action.COMPENSATE, state: Phase2State.ACTIVE });
    expect(sagaMove(g, [s1, s2, s3], s2, 'participant:b', NOW)).toEqual({ create: [], compensate: [] });
    expect(sagaMove(g, [s1, s2, s3], { ...s3, ...compensated }, 'participant:c', NOW).compensate.map((s) => s.branchId)).toEqual(['s1']);
    const end = sagaMove(g, [{ ...s1, ...compensated, resolution: 'compensated' }, s2, { ...s3, ...compensated }], { ...s1, ...compensated, resolution: 'compensated' }, 'operator:x', NOW);
    expect(end.global?.status).toBe(GlobalStatus.COMPENSATED);
    expect(end.global?.heuristic).toBeUndefined();
    expect(end.global?.events.at(-1)?.message).toMatch(/\(1 by hand\)/);
  });

  it('a late action finishing in a compensating saga moves nothing (its compensation is already ordered)', () => {
    const s2 = member('s2', 'b', 1, succeeded);
    expect(sagaMove(saga(compensating), [member('s1', 'a', 0, succeeded), s2], s2, 'participant:b', NOW)).toEqual({ create: [], compensate: [] });
  });

  it('a rollback decision compensates the highest group ordered so far', () => {
    const m = startCompensation(saga(), [member('s1', 'a', 0, succeeded), member('s2', 'b', 1), member('s3', 'c', 1)], 'deadline', 'timeout', NOW, 'w1');
    expect(m.global).toMatchObject({ status: GlobalStatus.COMPENSATING, decision: { by: 'deadline', writeId: 'w1' } });
    expect(m.compensate.map((s) => s.branchId)).toEqual(['s2', 's3']);
  });

  it('a member that does not parse (its group unknown) holds every move that needs a whole group, and every compensation', () => {
    const broken = member('s3', 'c', 0, { malformed: true });
    const s2 = member('s2', 'b', 1, succeeded);
    expect(sagaMove(saga(), [member('s1', 'a', 0, succeeded), s2, broken], { ...s2 }, 'participant:b', NOW)).toEqual({ create: [], compensate: [] });
    expect(laterNotCompensated([member('s1', 'a', 0, succeeded), broken], member('s1', 'a', 0))?.branchId).toBe('s3');
  });

  it('an owner may compensate only once every later step is compensated', () => {
    const all = [member('s1', 'a', 0, succeeded), member('s2', 'b', 1, compensated), member('s3', 'c', 1, { tryState: TryState.FAILED })];
    expect(laterNotCompensated(all, all[0]!)?.branchId).toBe('s3');
    expect(laterNotCompensated(all, all[1]!)).toBeUndefined();
    expect(laterNotCompensated([all[0]!, all[1]!, { ...all[2]!, ...compensated }], all[0]!)).toBeUndefined();
  });
});

describe("a saga's declared steps as read from etcd", () => {
  const read = (steps: unknown): unknown => {
    try {
      return parseGlobal('k', JSON.stringify({ ...saga(), steps }));
    } catch (err) {
      return err;
    }
  };
  it('each step must name valid keys, with unique branch ids and groups from 0 without a gap; the problem names the step', () => {
    const ok = { branchId: 's1', owner: 'a', resource: 'r', group: 0 };
    expect(read([ok])).not.toBeInstanceOf(MalformedRecord);
    const cases: [unknown, RegExp][] = [
      [[{ ...ok, owner: 'evil/branch/x' }], /steps\[0\]\.owner/],
      [[{ ...ok, resource: '' }], /steps\[0\]\.resource/],
      [[{ ...ok, branchId: 'a/b' }], /steps\[0\]\.branchId/],
      [[ok, { ...ok, group: 1 }], /steps\[1\]\.branchId "s1" is used by another step/],
      [[ok, { ...ok, branchId: 's2', group: 2 }], /steps\[1\]\.group is 2, after group 0/],
      [[{ ...ok, group: -1 }], /steps\[0\]\.group must be a whole number/],
      ['x', /steps must be an array/],
    ];
    for (const [steps, problem] of cases) {
      const err = read(steps);
      expect(err, JSON.stringify(steps)).toBeInstanceOf(MalformedRecord);
      expect((err as MalformedRecord).message).toMatch(problem);
    }
  });
});
