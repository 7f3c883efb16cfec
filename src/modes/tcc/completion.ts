/**
 * TCC's completion and retention rules, pure (invariant 8): a decided global completes only when
 * every member is done, heuristic when a human (or the participant itself: ResolvedByParticipant)
 * resolved one against the decision; a finished one is kept for the retention, and longer while a
 * member's Try may still be running.
 */
import { GlobalStatus, Phase2State, TryState } from '../../states.js';
import { withEvent, type GlobalRecord, type MemberRecord } from '../../store/index.js';

/** The completed global, or undefined while a member is not done. */
export function completed(global: GlobalRecord, members: readonly MemberRecord[], now: number): GlobalRecord | undefined {
  if (!members.every((m) => m.state === Phase2State.DONE)) return undefined;
  const wanted = global.status === GlobalStatus.COMMITTING ? 'confirmed' : 'cancelled';
  const heuristic = members.some((m) => m.resolution !== undefined && m.resolution !== wanted);
  const status = global.status === GlobalStatus.COMMITTING ? GlobalStatus.COMMITTED : GlobalStatus.ROLLED_BACK;
  return withEvent(
    { ...global, status, completedAt: now, ...(heuristic ? { heuristic: true } : {}) },
    'Completed',
    `all branches done: ${status}${heuristic ? ' (heuristic: a branch was resolved against the decision)' : ''}`,
    now,
  );
}

/**
 * When a finished global may be collected: after its retention, and not while a member's Try may
 * still be running (PENDING) — its handler may ignore the signal that aborted at the deadline, so it
 * gets the handler timeout on top; collecting it sooner would leave that Try nothing to record into.
 */
export function collectableAt(global: GlobalRecord, members: readonly MemberRecord[] | undefined, limits: { retentionMs: number; handlerTimeoutMs: number }, now: number): number {
  const due = (global.completedAt ?? now) + limits.retentionMs;
  if (members?.some((m) => m.tryState === TryState.PENDING)) return Math.max(due, global.deadline + limits.handlerTimeoutMs);
  return due;
}

/** The global once every order of its decision is written. */
export function fannedOut(global: GlobalRecord, members: number): GlobalRecord {
  return withEvent({ ...global, fannedOut: true }, 'FannedOut', `phase-2 orders written for all ${members} branches`);
}
