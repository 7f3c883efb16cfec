/** The words the CLI and the logs use for TCC's states. */
import { Action, Phase2State, TryState } from '../../states.js';
import type { BranchRecord, OrderRecord } from '../../store/index.js';
import type { BranchWords } from '../mode.js';

const PENDING = ['TRYING', 'PREPARED', 'TRY_FAILED', 'CONFIRMING', 'CANCELLING'] as const;
const RESOLVED = ['RESOLVED_CONFIRMED', 'RESOLVED_CANCELLED'] as const;
const DONE = ['CONFIRMED', 'CANCELLED', ...RESOLVED] as const;

/** Every word branchStatus returns, grouped for the CLI's --status filters. */
export const BRANCH_WORDS: BranchWords = { all: [...PENDING, ...DONE, 'PARKED'], pending: PENDING, done: DONE, resolved: RESOLVED, parked: ['PARKED'] };

/** One word for a branch's state. Before its owner acts on an order, the order says which action. */
export function branchStatus(b: BranchRecord, order?: OrderRecord): string {
  const p = b.phase2;
  if (p) {
    if (p.state === Phase2State.PARKED) return 'PARKED';
    if (p.state === Phase2State.DONE) {
      if (p.resolution) return p.resolution.as === 'confirmed' ? 'RESOLVED_CONFIRMED' : 'RESOLVED_CANCELLED';
      return p.action === Action.CONFIRM ? 'CONFIRMED' : 'CANCELLED';
    }
    return p.action === Action.CONFIRM ? 'CONFIRMING' : 'CANCELLING';
  }
  if (order) return order.action === Action.CONFIRM ? 'CONFIRMING' : 'CANCELLING';
  if (b.tryState === TryState.SUCCEEDED) return 'PREPARED';
  if (b.tryState === TryState.FAILED) return 'TRY_FAILED';
  return 'TRYING';
}
