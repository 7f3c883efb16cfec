/** The words the CLI and the logs use for a saga step's states. */
import { Action, Phase2State, TryState } from '../../states.js';
import type { BranchRecord, OrderRecord } from '../../store/index.js';
import type { BranchWords } from '../mode.js';

const PENDING = ['RUNNING', 'ACTION_FAILED', 'COMPENSATING'] as const;
const RESOLVED = ['RESOLVED_COMPENSATED'] as const;
const DONE = ['SUCCEEDED', 'COMPENSATED', ...RESOLVED] as const;

/** Every word sagaStepStatus returns, grouped for the CLI's --status filters. */
export const SAGA_WORDS: BranchWords = { all: [...PENDING, ...DONE, 'PARKED'], pending: PENDING, done: DONE, resolved: RESOLVED, parked: ['PARKED'] };

/**
 * One word for a step. RUNNING: its action is ordered and not finished; SUCCEEDED / ACTION_FAILED: its
 * action's outcome (FAILED: for good, its compensation follows); COMPENSATING, COMPENSATED.
 */
export function sagaStepStatus(b: BranchRecord, order?: OrderRecord): string {
  const p = b.phase2;
  if (p?.action === Action.COMPENSATE) {
    if (p.state === Phase2State.PARKED) return 'PARKED';
    if (p.state === Phase2State.DONE) return p.resolution ? 'RESOLVED_COMPENSATED' : 'COMPENSATED';
    return 'COMPENSATING';
  }
  if (order?.action === Action.COMPENSATE) return 'COMPENSATING';
  if (p?.state === Phase2State.PARKED) return 'PARKED';
  if (b.tryState === TryState.SUCCEEDED) return 'SUCCEEDED';
  if (b.tryState === TryState.FAILED) return 'ACTION_FAILED';
  return 'RUNNING';
}
