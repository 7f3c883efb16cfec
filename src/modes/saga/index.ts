/** Saga as a transaction mode of the runtime: steps forward in order, compensations in reverse. */
import type { RegisteredResource } from '../../resource.js';
import { GlobalStatus, Mode, Outcome } from '../../states.js';
import type { TransactionMode } from '../mode.js';
import { reconcileSagaBranch } from './branch-step.js';
import { planSagaDecision } from './decision.js';
import { reconcileSagaGlobal } from './global-step.js';
import { SAGA_WORDS, sagaStepStatus } from './words.js';

export const saga: TransactionMode<RegisteredResource> = {
  name: Mode.SAGA,
  statuses: [GlobalStatus.RUNNING, GlobalStatus.COMPENSATING, GlobalStatus.SUCCEEDED, GlobalStatus.COMPENSATED],
  decisionRule: (request) => (read, limits) => planSagaDecision(request, read, limits),
  deadlineOutcome: () => Outcome.ROLLBACK,
  // Steps are ordered one group at a time, and compensated one group at a time (rules.ts): no status orders them all.
  orderedAction: () => undefined,
  reconcileGlobal: (ctx, found) => reconcileSagaGlobal(ctx, found),
  reconcileBranch: (ctx, found, signal) => reconcileSagaBranch(ctx, found, signal),
  branchStatus: sagaStepStatus,
  branchWords: SAGA_WORDS,
};

export { sagaMove, sagaMoveBy, startCompensation, currentGroup, laterNotCompensated, isCompensated, stepBranch, planOf, lastGroup, type SagaMove } from './rules.js';
export { SAGA_WORDS, sagaStepStatus } from './words.js';
