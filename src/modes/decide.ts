/**
 * Deciding a global, whatever its mode: the store runs the read → rule → write loop with the rule of
 * the mode the global was begun in; when a write's outcome was lost, what was read back tells whether
 * it landed.
 */
import { DeadlineExceeded, errorMessage } from '../errors.js';
import { GlobalStatus, Outcome, isOpen } from '../states.js';
import { newWriteId, type DecisionWritten, type GlobalRecord, type Store, type TransactionRead } from '../store/index.js';
import type { DecisionRequest } from './mode.js';
import type { ModeRegistry } from './registry.js';
import { alreadyDecided } from './decided.js';

/** `cached`: the transaction as this service's informer holds it, tried before reading etcd. */
export async function decide(store: Store, modes: ModeRegistry, xid: string, request: Omit<DecisionRequest, 'writeId' | 'now'>, cached?: TransactionRead): Promise<DecisionWritten> {
  const full: DecisionRequest = { ...request, writeId: newWriteId(), now: Date.now() };
  return store.decisions.decide(
    xid,
    (read, limits) => modes.of(read.global.record.mode).decisionRule({ ...full, now: Date.now() })(read, limits),
    {
      landed: (back) => back?.decision?.writeId === full.writeId,
      unknown: (back, err, read) => notLanded(full, back, err, read),
    },
    cached,
  );
}

/** After a decision write whose outcome was lost and that did not land: the error that says why. */
function notLanded(request: DecisionRequest, back: GlobalRecord | undefined, err: unknown, read: GlobalRecord): Error | undefined {
  if (back && !isOpen(back.status)) return alreadyDecided(back);
  // Only TCC's commit is refused past the deadline (a message's deadline is when its check-back runs).
  if (request.outcome === Outcome.COMMIT && read.status === GlobalStatus.TRYING && Date.now() >= read.deadline) {
    return new DeadlineExceeded(read.xid, `transaction ${read.xid} reached its deadline before its commit could be written (${errorMessage(err)}); not committed, roll it back`);
  }
  return undefined;
}
