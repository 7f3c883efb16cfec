/**
 * TCC's phase-2 rules, pure: which action a branch owes, when it must wait, and what its record
 * becomes as an attempt starts, succeeds, fails, or runs out of attempts (invariants 3 and 4).
 * Every attempt is counted (before its handler runs, or by its order: see countingOf), so attempt
 * numbers only grow and a handler that kills its process is still counted.
 */
import { exponentialBackoffMs } from '../../backoff.js';
import { Action, Phase2State, TryState } from '../../states.js';
import { attemptsInBudget, withEvent, type BranchRecord, type OrderRecord, type Phase2, type Resolution } from '../../store/index.js';

export interface AttemptLimits {
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  graceMs: number;
  /** A stepped schedule: the delay after each failed attempt (then parked), instead of the backoff. */
  steps?: readonly number[];
}

/** The limits for a branch of a resource with `steps` (its stepped schedule), else the service's. */
export function limitsFor<L extends AttemptLimits>(limits: L, steps: readonly number[] | undefined): L {
  return steps ? { ...limits, steps, maxAttempts: steps.length + 1 } : limits;
}

/** The action the branch owes: its recorded phase 2, else its order; undefined while undecided. */
export function owedAction(branch: BranchRecord, order: OrderRecord | undefined): Action | undefined {
  return branch.phase2?.action ?? order?.action;
}

/** Why the branch must not run its action yet, as how long to wait; 0 when it may run now. */
export function waitBeforeAttempt(branch: BranchRecord, action: Action, limits: Pick<AttemptLimits, 'graceMs'>, now: number): number {
  const p = branch.phase2;
  if (p?.nextRetryAt !== undefined && now < p.nextRetryAt) return p.nextRetryAt - now;
  if (action === Action.CANCEL && branch.tryState === TryState.PENDING) {
    // The Try may still be running somewhere; give it until the deadline plus grace to finish (its
    // signal aborts at the deadline) so the cancel knows whether there is anything to undo.
    const until = branch.deadline + limits.graceMs;
    if (now < until) return until - now;
  }
  return 0;
}

/**
 * A reason to park the branch instead of attempting, or undefined. `attempt` is the one reported:
 * the attempt that would have run (refusing to confirm), or the last one (at the limit).
 */
export function refusal(branch: BranchRecord, action: Action, limits: Pick<AttemptLimits, 'maxAttempts'>): { message: string; phase2: Phase2; attempt: number } | undefined {
  const p = branch.phase2;
  if (action === Action.CONFIRM && branch.tryState !== TryState.SUCCEEDED) {
    // Invariant 4: never confirm what was not tried. commit() refuses this, so only a hand-edited or
    // corrupt record gets here; park it for a human rather than guess.
    const message = `confirm ordered but the Try is ${branch.tryState}; refusing to confirm`;
    return { message, phase2: { action, state: Phase2State.PARKED, attempts: p?.attempts ?? 0, lastError: message }, attempt: (p?.attempts ?? 0) + 1 };
  }
  if (p && attemptsInBudget(p) >= limits.maxAttempts) {
    // An ACTIVE branch at the limit is one whose last attempt never reported back: its replica died
    // (or lost etcd) inside the handler.
    const message = `attempt ${p.attempts} never reported back (its replica died during the handler, or could not record the outcome); parked after ${attemptsInBudget(p)} attempts`;
    return { message, phase2: { ...p, state: Phase2State.PARKED, lastError: p.lastError ?? message }, attempt: p.attempts };
  }
  return undefined;
}

/** What decides how the next attempt of a branch is counted (see {@link countingOf}). */
export interface CountingFacts {
  /** The branch has a recorded attempt (phase 2 started). */
  recorded: boolean;
  /** Its order was written before this term began: an earlier term had the work. */
  orderFromEarlierTerm: boolean;
  /** This term ran an attempt of it whose start or outcome it could not write. */
  ranUnrecorded: boolean;
  maxAttempts: number;
}

/**
 * How the next attempt is counted. Every attempt is written before its handler runs except the
 * first attempt of work whose order came during this term — the common case, which so costs one
 * write and one round trip less: its order marks that attempt 1 may be running. So:
 * - `recordFirst`: write the attempt before running it (anything else: a retry, work from an
 *   earlier term, a run this term could not record, or a budget of one attempt);
 * - `askHistory`: with no attempt recorded and the order from an earlier term, that term may have
 *   run attempt 1 without a record if it led when the order came (runtime/term-history.ts): then
 *   this attempt is the second.
 * A term closing during an unrecorded attempt writes it (branch-step.ts). At worst an attempt that
 * never ran is counted (work an earlier term had queued but not started); never one that ran is
 * missed.
 */
export function countingOf(f: CountingFacts): { recordFirst: boolean; askHistory: boolean } {
  return {
    recordFirst: f.recorded || f.orderFromEarlierTerm || f.ranUnrecorded || f.maxAttempts <= 1,
    askHistory: !f.recorded && !f.ranUnrecorded && f.orderFromEarlierTerm && f.maxAttempts > 1,
  };
}

/** The record of a parked branch. */
export function parked(branch: BranchRecord, phase2: Phase2, message: string, now: number): BranchRecord {
  return withEvent({ ...branch, phase2 }, 'Parked', message, now);
}

/**
 * The branch with its next attempt counted, before its handler runs. `inherited`: from an earlier
 * term; `unrecordedRun`: with no attempt recorded, an earlier term may have run attempt 1 without a
 * record, so this one is attempt 2.
 */
export function attemptStarted(branch: BranchRecord, action: Action, inherited: boolean, now: number, unrecordedRun = false): BranchRecord {
  const p = branch.phase2;
  const attempt = p ? p.attempts + 1 : unrecordedRun ? 2 : 1;
  const phase2: Phase2 = { action, state: Phase2State.ACTIVE, attempts: attempt, ...(p?.budgetFrom !== undefined ? { budgetFrom: p.budgetFrom } : {}), lastAttemptAt: now, ...(p?.lastError ? { lastError: p.lastError } : {}) };
  const next = { ...branch, phase2 };
  return inherited ? withEvent(next, 'AttemptStarted', `${action} attempt ${attempt} started by a new leader`, now) : next;
}

/** The timeline event of a branch whose action succeeded, by action. */
const DONE_EVENT: Record<Action, string> = { confirm: 'Confirmed', cancel: 'Cancelled', action: 'ActionSucceeded', compensate: 'Compensated', deliver: 'Delivered' };

export interface AttemptOutcome {
  next: BranchRecord;
  result: 'succeeded' | 'failed' | 'parked';
  /** When to try again (a failed attempt within its budget). */
  requeueAfterMs?: number;
  /** For the log: what happened. */
  message: string;
}

/**
 * The branch once the attempt recorded in `started` (by {@link attemptStarted}) finished: done,
 * failed with a persisted next retry time (exponential backoff), or parked after its last attempt —
 * or at once when the handler said retrying cannot help (`final`: it threw NonRetryableError). A
 * handler that said its participant settled the branch (`resolved`: it threw ResolvedByParticipant)
 * makes it DONE with that resolution, as a human's resolve would, its reason kept as the last error.
 */
export function attemptFinished(started: BranchRecord, error: string | undefined, limits: AttemptLimits, startedAt: number, doneAt: number, final = false, resolved?: Omit<Resolution, 'at'>): AttemptOutcome {
  const p = started.phase2!;
  const { action, attempts: attempt } = p;
  const budget = p.budgetFrom !== undefined ? { budgetFrom: p.budgetFrom } : {};
  const inBudget = attemptsInBudget(p);
  if (resolved) {
    const message = `${action} attempt ${attempt}: resolved as ${resolved.as} by ${resolved.by}: ${resolved.reason}`;
    const phase2: Phase2 = { action, state: Phase2State.DONE, attempts: attempt, ...budget, lastAttemptAt: startedAt, lastError: resolved.reason.slice(0, 2000), doneAt, resolution: { ...resolved, at: doneAt } };
    return { next: withEvent({ ...started, phase2 }, 'Resolved', message, doneAt), result: 'succeeded', message };
  }
  if (error === undefined) {
    const empty = action === Action.CANCEL && started.tryState !== TryState.SUCCEEDED ? ' (empty rollback)' : '';
    const message = `${action} succeeded on attempt ${attempt}${empty}`;
    const phase2: Phase2 = { action, state: Phase2State.DONE, attempts: attempt, ...budget, lastAttemptAt: startedAt, doneAt };
    return { next: withEvent({ ...started, phase2 }, DONE_EVENT[action], message, doneAt), result: 'succeeded', message };
  }
  if (inBudget >= limits.maxAttempts || final) {
    const phase2: Phase2 = { action, state: Phase2State.PARKED, attempts: attempt, ...budget, lastAttemptAt: startedAt, lastError: error.slice(0, 2000) };
    const message = final ? `${action} failed for good (non-retryable) on attempt ${attempt}; parked: ${error}` : `${action} failed ${inBudget} times; parked for a human: ${error}`;
    return { next: withEvent({ ...started, phase2 }, 'Parked', message, doneAt), result: 'parked', message };
  }
  const requeueAfterMs = limits.steps?.[inBudget - 1] ?? exponentialBackoffMs(inBudget - 1, limits.retryBaseMs, limits.retryMaxMs);
  const phase2: Phase2 = { action, state: Phase2State.ACTIVE, attempts: attempt, ...budget, lastAttemptAt: startedAt, lastError: error.slice(0, 2000), nextRetryAt: doneAt + requeueAfterMs };
  const message = `${action} attempt ${attempt} failed: ${error}`;
  return { next: withEvent({ ...started, phase2 }, 'AttemptFailed', message, doneAt), result: 'failed', requeueAfterMs, message };
}
