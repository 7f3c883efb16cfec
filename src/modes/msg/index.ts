/**
 * The 2-phase message (transactional outbox with check-back) as a transaction mode: prepare, the
 * producer's local transaction, submit; every consumer then gets `deliver` at least once, and a
 * prepared message its producer never submitted is resolved by the producer's check-back.
 */
import type { RegisteredResource } from '../../resource.js';
import { TerminalError } from '../../errors.js';
import { GlobalStatus, Mode } from '../../states.js';
import type { TransactionMode } from '../mode.js';
import { reconcileMessageBranch } from './branch-step.js';
import { messageAction, planMessageDecision } from './decision.js';
import { reconcileMessageGlobal } from './global-step.js';
import { MESSAGE_WORDS, messageBranchStatus } from './words.js';

export const msg: TransactionMode<RegisteredResource> = {
  name: Mode.MESSAGE,
  statuses: [GlobalStatus.PREPARED, GlobalStatus.SUBMITTED, GlobalStatus.DELIVERED, GlobalStatus.DISCARDED],
  decisionRule: (request) => (read, limits) => planMessageDecision(request, read, limits),
  // A message's deadline decides nothing by itself: it is when its check-back is asked
  // (global-step.ts). Anything that would decide on the deadline alone would be guessing.
  deadlineOutcome: (g) => {
    throw new TerminalError(`message ${g.xid} is not decided by its deadline: its check-back decides it`);
  },
  orderedAction: messageAction,
  reconcileGlobal: (ctx, found, signal) => reconcileMessageGlobal(ctx, found, signal),
  reconcileBranch: (ctx, found, signal) => reconcileMessageBranch(ctx, found, signal),
  branchStatus: messageBranchStatus,
  branchWords: MESSAGE_WORDS,
};

export { consumerBranch, maxConsumers, messageAction, planMessageDecision, submitOps } from './decision.js';
export { delivered } from './completion.js';
export { MESSAGE_WORDS, messageBranchStatus } from './words.js';
