/** The words the CLI and the logs use for a message consumer's branch. */
import { Phase2State } from '../../states.js';
import type { BranchRecord, OrderRecord } from '../../store/index.js';
import type { BranchWords } from '../mode.js';

const PENDING = ['DELIVERING'] as const;
const RESOLVED = ['RESOLVED_DELIVERED'] as const;
const DONE = ['DELIVERED', ...RESOLVED] as const;

/** Every word messageBranchStatus returns, grouped for the CLI's --status filters. */
export const MESSAGE_WORDS: BranchWords = { all: [...PENDING, ...DONE, 'PARKED'], pending: PENDING, done: DONE, resolved: RESOLVED, parked: ['PARKED'] };

/**
 * One word for a consumer's branch. A branch exists only once its message was submitted (with its
 * order, in the same Txn), so until it is delivered or parked it is DELIVERING.
 */
export function messageBranchStatus(b: BranchRecord, _order?: OrderRecord): string {
  const p = b.phase2;
  if (p?.state === Phase2State.PARKED) return 'PARKED';
  if (p?.state === Phase2State.DONE) return p.resolution ? 'RESOLVED_DELIVERED' : 'DELIVERED';
  return 'DELIVERING';
}
