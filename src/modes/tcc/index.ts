/** TCC (Try / Confirm / Cancel) as a transaction mode of the runtime. */
import type { RegisteredResource } from '../../resource.js';
import { GlobalStatus, Mode, Outcome } from '../../states.js';
import type { TransactionMode } from '../mode.js';
import { reconcileTccBranch } from './branch-step.js';
import { actionFor, planDecision } from './decision.js';
import { reconcileTccGlobal } from './global-step.js';
import { BRANCH_WORDS, branchStatus } from './words.js';

export const tcc: TransactionMode<RegisteredResource> = {
  name: Mode.TCC,
  statuses: Object.values(GlobalStatus),
  decisionRule: (request) => (read, limits) => planDecision(request, read, limits),
  // Participants may let a Try's reservation lapse at the deadline: passing it can only roll back.
  deadlineOutcome: () => Outcome.ROLLBACK,
  orderedAction: actionFor,
  reconcileGlobal: (ctx, found) => reconcileTccGlobal(ctx, found, tcc),
  reconcileBranch: (ctx, found, signal) => reconcileTccBranch(ctx, found, signal),
  branchStatus,
  branchWords: BRANCH_WORDS,
};

export { actionFor, planDecision } from './decision.js';
export { BRANCH_WORDS, branchStatus } from './words.js';
export { withTryResult, compensationOfCollectedTry } from './try-result.js';
export { attemptFinished, attemptStarted, owedAction, parked, countingOf, limitsFor, refusal, waitBeforeAttempt, type AttemptLimits, type AttemptOutcome } from './attempts.js';
export { collectableAt, completed, fannedOut } from './completion.js';
