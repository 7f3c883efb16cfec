/** The refusal every mode gives a decision that came too late. */
import { TransactionAlreadyDecided } from '../errors.js';
import { Outcome } from '../states.js';
import type { GlobalRecord } from '../store/index.js';

/** The error for a call that found `global` already decided. */
export function alreadyDecided(global: GlobalRecord): TransactionAlreadyDecided {
  return new TransactionAlreadyDecided(global.xid, global.decision?.outcome ?? Outcome.ROLLBACK, global.status, global.decision?.by ?? 'unknown');
}
