/**
 * The branch barrier's errors: small classes under {@link TxloopError} with stable names and the
 * branch they are about. Exported from `txloop` and from `txloop/barrier/postgres`.
 */
import { TxloopError, errorMessage } from '../errors.js';
import type { BarrierOp, BarrierRefusal } from './rules.js';

/**
 * The barrier refused the op; nothing ran and nothing was written. `reason`: `hanging` (a Try or
 * saga action arriving after its rollback, anti-hanging), `stale-term` (a newer fencing token or
 * attempt already wrote this branch's barrier), `conflict` (the op contradicts what is recorded,
 * e.g. a cancel after a confirm).
 */
export class BarrierRefused extends TxloopError {
  override readonly name = 'BarrierRefused';
  constructor(
    readonly xid: string,
    readonly branchId: string,
    /** `msg`: a 2-phase message's submit marker (PgBarrier.markSubmitted). */
    readonly op: BarrierOp | 'msg',
    readonly reason: BarrierRefusal,
    message: string,
  ) {
    super(message);
  }
}

/**
 * etcd: a compare the handler added to the barrier's Txn did not hold, so the Txn wrote nothing —
 * neither the handler's ops nor the barrier record. Fails the attempt (a Try fails; a phase-2 op is
 * retried).
 */
export class BarrierConditionFailed extends TxloopError {
  override readonly name = 'BarrierConditionFailed';
  constructor(
    readonly xid: string,
    readonly branchId: string,
    readonly op: BarrierOp,
  ) {
    super(`${op} of branch ${branchId} in ${xid}: a compare of the handler's Txn failed; nothing was written`);
  }
}

/**
 * PostgreSQL: a statement of the barrier itself (begin, its record, commit) failed; the handler's own
 * errors are thrown as they are. `maybeCommitted`: the COMMIT was sent and no answer came (the
 * connection broke), so the transaction may have landed — the next attempt finds out, as a duplicate.
 * `cause` is the driver's error.
 */
export class BarrierDatabaseError extends TxloopError {
  override readonly name = 'BarrierDatabaseError';
  constructor(
    /** undefined for a call about the whole table (prune). */
    readonly xid: string | undefined,
    readonly branchId: string | undefined,
    /** `msg` and `check-back`: a 2-phase message's submit marker and its check-back (PgBarrier). */
    readonly op: BarrierOp | 'get' | 'prune' | 'msg' | 'check-back',
    override readonly cause: unknown,
    readonly maybeCommitted = false,
  ) {
    super(
      `${op}${xid ? ` of branch ${branchId} in ${xid}` : ''}: the barrier's SQL failed: ${errorMessage(cause)}` +
        (maybeCommitted ? '; the COMMIT got no answer and may have landed' : op === 'get' ? '' : '; nothing was written'),
    );
  }
}
