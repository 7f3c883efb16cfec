/**
 * TCC's Try rules, pure: what a branch record becomes when its Try reports, and what a Try that
 * outlived its transaction leaves behind (seed rules: empty rollback, anti-hanging, no leak).
 */
import { Action, Mode, Phase2State, TryState } from '../../states.js';
import { freshBudget, orderFor, withEvent, type BranchRecord, type OrderRecord } from '../../store/index.js';

/**
 * The branch with its Try's outcome recorded, or undefined when that outcome is already recorded (a
 * retried write). A successful Try that finishes after its empty rollback re-opens the cancel, so
 * what it reserved is released too.
 */
export function withTryResult(branch: BranchRecord, tryState: TryState, tryError: string | undefined, now: number): BranchRecord | undefined {
  if (branch.tryState === tryState) return undefined;
  let next: BranchRecord = { ...branch, tryState };
  if (tryError !== undefined) next.tryError = tryError.slice(0, 2000);
  next = withEvent(next, tryState === TryState.SUCCEEDED ? 'TrySucceeded' : 'TryFailed', tryError ?? 'try succeeded', now);
  const p = branch.phase2;
  if (tryState === TryState.SUCCEEDED && p?.action === Action.CANCEL && p.state === Phase2State.DONE && !p.resolution) {
    next = withEvent({ ...next, phase2: freshBudget(p, Action.CANCEL) }, 'LateTry', 'try finished after its empty rollback; cancelling again to compensate it', now);
  }
  return next;
}

/**
 * A Try that succeeded after its branch was collected with its (rolled back) transaction: the
 * branch comes back with a cancel order of its own, marked orphan, so its owner cancels what the Try
 * reserved and later collects the branch itself.
 */
export function compensationOfCollectedTry(branch: BranchRecord, now: number): { branch: BranchRecord; order: OrderRecord } {
  const { phase2: _dropped, ...rest } = branch;
  return {
    branch: withEvent({ ...rest, tryState: TryState.SUCCEEDED }, 'LateTry', 'try succeeded after its transaction was rolled back and collected; cancelling to compensate it', now),
    order: orderFor(branch, Mode.TCC, Action.CANCEL, `participant:${branch.owner}`, now, true),
  };
}
