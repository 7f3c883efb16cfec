/**
 * Errors thrown by txloop. Each is a small class with a stable `name` and readonly context fields,
 * so callers can branch on `instanceof` (or on `name` across process boundaries).
 */

import type { Outcome } from './states.js';

/** Base class of every error txloop throws on purpose; `cause` holds the underlying error, if any. */
export class TxloopError extends Error {
  override readonly name: string = 'TxloopError';
}

/** An argument, option, header or HTTP body failed validation; `field` says which one. */
export class ValidationError extends TxloopError {
  override readonly name: string = 'ValidationError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** A payload does not fit in one etcd value (or is not JSON-serialisable). */
export class PayloadError extends ValidationError {
  override readonly name = 'PayloadError';
}

export class TransactionNotFound extends TxloopError {
  override readonly name = 'TransactionNotFound';
  constructor(readonly xid: string) {
    super(`transaction ${xid} does not exist (never begun, or already collected after its retention)`);
  }
}

/**
 * The global transaction already left TRYING. `outcome` names the decision that won, `status` is the
 * global's status when the call lost the race.
 */
export class TransactionAlreadyDecided extends TxloopError {
  override readonly name = 'TransactionAlreadyDecided';
  constructor(
    readonly xid: string,
    readonly outcome: Outcome,
    readonly status: string,
    readonly decidedBy: string,
  ) {
    super(`transaction ${xid} was already decided: ${outcome} (by ${decidedBy}, now ${status})`);
  }
}

/** The transaction's deadline passed before the call could finish (a caller's own signal is {@link AbortError}). */
export class DeadlineExceeded extends TxloopError {
  override readonly name = 'DeadlineExceeded';
  constructor(
    readonly xid: string | undefined,
    message?: string,
  ) {
    super(message ?? `deadline exceeded${xid ? ` for transaction ${xid}` : ''}`);
  }
}

/** commit() refused: some branches have not reported a successful Try, so nothing can be confirmed. */
export class BranchesNotPrepared extends TxloopError {
  override readonly name = 'BranchesNotPrepared';
  constructor(
    readonly xid: string,
    readonly branchIds: readonly string[],
  ) {
    super(
      `transaction ${xid} cannot commit: branch(es) ${branchIds.join(', ')} have no successful Try; ` +
        'roll it back (or wait for the Try calls to return)',
    );
  }
}

/** A Try was refused because its global transaction already left TRYING (anti-hanging). */
export class BranchRegistrationRefused extends TxloopError {
  override readonly name = 'BranchRegistrationRefused';
  constructor(
    readonly xid: string,
    readonly status: string,
    /** The transaction's mode: a saga or a message takes no Trys whatever its status. */
    readonly mode: string = 'tcc',
  ) {
    super(mode === 'tcc' ? `transaction ${xid} is ${status}: no new branch may join it` : `transaction ${xid} is a ${mode === 'saga' ? 'saga' : mode === 'msg' ? '2-phase message' : `${mode} transaction`}, not TCC: it takes no Try (it is ${status})`);
  }
}

/** The Try handler of a branch threw; the branch is recorded as failed and the global should roll back. */
export class TryFailed extends TxloopError {
  override readonly name = 'TryFailed';
  constructor(
    readonly xid: string,
    readonly branchId: string,
    readonly resource: string,
    override readonly cause: unknown,
  ) {
    super(`try of ${resource} in ${xid} (branch ${branchId}) failed: ${errorMessage(cause)}`);
  }
}

/**
 * A Try whose outcome is not known: its call got no answer (a timeout, a connection reset after the
 * request went out). Its branch stays PENDING — it may have reserved — so its cancel is told so
 * (tryState PENDING) rather than that it failed; a commit refuses it.
 */
export class TryOutcomeUnknown extends TxloopError {
  override readonly name = 'TryOutcomeUnknown';
  constructor(
    readonly xid: string,
    readonly branchId: string,
    readonly resource: string,
    override readonly cause: unknown,
  ) {
    super(`try of ${resource} in ${xid} (branch ${branchId}) got no answer: ${errorMessage(cause)}; its outcome is unknown, so it stays PENDING (a rollback cancels it as such)`);
  }
}

export class UnknownResource extends TxloopError {
  override readonly name = 'UnknownResource';
  constructor(
    readonly app: string,
    readonly resource: string,
    /** What the branch needs: a TCC resource, a saga step or a message consumer. */
    readonly kind: 'tcc' | 'saga' | 'msg' = 'tcc',
  ) {
    const words = KIND_WORDS[kind] ?? KIND_WORDS.tcc;
    super(`service ${app} has no ${words.what} named ${JSON.stringify(resource)}; register it with service.${words.call}()`);
  }
}
const KIND_WORDS = { tcc: { what: 'TCC resource', call: 'resource' }, saga: { what: 'saga step', call: 'sagaStep' }, msg: { what: 'message consumer', call: 'consumer' } } as const;

/**
 * Thrown by a handler to say that retrying cannot help (a card declined, an account closed): the
 * attempt is not retried. A saga step's action so failing turns the saga to compensating; a
 * compensation, a confirm, a cancel or a delivery so failing is parked for a human at once. Any
 * other error is retried with backoff (or by the resource's stepped schedule).
 */
export class NonRetryableError extends TxloopError {
  override readonly name = 'NonRetryableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Thrown by a TCC confirm or cancel handler to say the participant settled the branch itself, so
 * there is nothing to retry and nothing for a human to decide: a REST-TCC participant answering its
 * confirm with 404 (its reservation was cancelled or expired: `as: 'cancelled'`), or one that takes
 * no explicit cancel and relies on its own expiry. The branch is DONE with this resolution (`by`,
 * `reason`, in its timeline and `describe`), like a human's `txloop resolve`; a resolution against
 * the decision makes the transaction complete as heuristic. Thrown from any other handler (a saga
 * step, a delivery), it counts as a NonRetryableError.
 */
export class ResolvedByParticipant extends TxloopError {
  override readonly name = 'ResolvedByParticipant';
  constructor(
    readonly as: 'confirmed' | 'cancelled',
    /** Why, in the participant's words: the branch's resolution reason. */
    readonly reason: string,
    /** Who settled it, e.g. `participant:<host>`. */
    readonly by: string,
  ) {
    super(`resolved as ${as} by ${by}: ${reason}`);
  }
}

export class BranchNotFound extends TxloopError {
  override readonly name = 'BranchNotFound';
  constructor(
    readonly xid: string,
    readonly branchId: string,
  ) {
    super(`branch ${branchId} of transaction ${xid} does not exist`);
  }
}

/** A repair (retry/resolve/abort) that the invariants forbid in the record's current state. */
export class OperationRefused extends TxloopError {
  override readonly name = 'OperationRefused';
  constructor(
    readonly xid: string,
    /** What forbids it, for callers that explain it in their own words. */
    readonly reason: RefusalReason,
    message: string,
    readonly branchId?: string,
  ) {
    super(message);
  }
}

export const RefusalReason = {
  /** retry/resolve of a branch that is not parked. */
  NOT_PARKED: 'not-parked',
  /** resolve of a branch whose transaction has not been decided. */
  NOT_DECIDED: 'not-decided',
  /** resolve of a branch that is already done. */
  ALREADY_DONE: 'already-done',
  /** retry of a transaction none of whose branches is parked. */
  NOTHING_PARKED: 'nothing-parked',
  /** retry of more parked branches than one Txn can carry. */
  TOO_MANY: 'too-many',
  /** collection of a transaction that has not finished. */
  NOT_FINISHED: 'not-finished',
  /** resolve as an outcome the branch's mode does not have (a saga step resolved as confirmed). */
  WRONG_RESOLUTION: 'wrong-resolution',
  /** a repair the transaction's mode forbids (aborting a submitted message). */
  MODE_FORBIDS: 'mode-forbids',
  /** a Try's outcome reported again, differently. */
  ALREADY_REPORTED: 'already-reported',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/**
 * The caller's AbortSignal fired. `cause` is the signal's reason. A write already sent to etcd when
 * the signal fired may still land: `maybeWritten` says so, and `get(xid)` tells what happened.
 */
export class AbortError extends TxloopError {
  override readonly name = 'AbortError';
  constructor(
    readonly xid: string | undefined,
    override readonly cause: unknown,
    readonly maybeWritten = false,
  ) {
    super(
      `aborted by the caller's signal${xid ? ` (transaction ${xid})` : ''}: ${errorMessage(cause) || 'no reason given'}` +
        (maybeWritten ? '; the write was already sent and may have landed: read the transaction to know' : ''),
    );
  }
}

/**
 * An etcd call failed. `endpoints` are the ones tried; `cause` is the client library's error. As
 * itself: etcd answered with an error txloop has no better class for (permission denied, bad
 * request, ...).
 */
export class EtcdError extends TxloopError {
  override readonly name: string = 'EtcdError';
  constructor(
    readonly endpoints: readonly string[],
    override readonly cause: unknown,
    what = 'etcd request',
    /** How etcd failed, after "etcd at <endpoints>". */
    how = `answered ${shortCause(cause)}`,
  ) {
    super(`${what} failed: etcd at ${endpoints.join(',') || '(unknown endpoints)'} ${how}`);
  }
}

/**
 * etcd did not answer (connection refused, timed out, every member down, client closed under the
 * call). A write that failed this way may or may not have landed.
 */
export class EtcdUnavailable extends EtcdError {
  override readonly name = 'EtcdUnavailable';
  constructor(endpoints: readonly string[], cause: unknown, what = 'etcd request') {
    super(endpoints, cause, what, `is unavailable (${shortCause(cause)})`);
  }
}

/** A concurrent change to `key` won; re-read and retry (txloop retries these itself where it can). */
export class WriteConflict extends TxloopError {
  override readonly name = 'WriteConflict';
  constructor(readonly key: string) {
    super(`concurrent change to ${key}; re-read and retry`);
  }
}

/**
 * This replica is no longer the leader of its service. `writeRefused`: etcd refused a write fenced on
 * the old term; otherwise the replica noticed before acting and attempted nothing.
 */
export class LeadershipLost extends TxloopError {
  override readonly name = 'LeadershipLost';
  constructor(
    readonly leaderKey: string,
    readonly writeRefused = false,
  ) {
    super(writeRefused ? `no longer the leader (${leaderKey} changed); etcd refused the fenced write` : `no longer the leader (${leaderKey}); stopped before acting`);
  }
}

/** A record read from etcd cannot be used; `key` names it, `problem` says why. */
export class MalformedRecord extends TxloopError {
  override readonly name = 'MalformedRecord';
  constructor(
    readonly key: string,
    readonly problem: string,
  ) {
    super(`malformed record at ${key}: ${problem}`);
  }
}

/**
 * Thrown by a reconcile step to say "retrying cannot help" (a record of a mode this service does not
 * run, say): the key is logged, forgotten and not retried until its records change.
 */
export class TerminalError extends TxloopError {
  override readonly name = 'TerminalError';
  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** No etcd server binary was found where txloop/testing looks ($TXLOOP_ETCD_BIN, PATH, /usr/bin/etcd); the message says how to install one. */
export class EtcdNotInstalledError extends TxloopError {
  override readonly name = 'EtcdNotInstalledError';
}

/** etcd exited or stayed unhealthy while starting; the message ends with the tail of etcd's stderr. */
export class EtcdStartError extends TxloopError {
  override readonly name = 'EtcdStartError';
  constructor(
    message: string,
    readonly stderrTail = '',
  ) {
    super(stderrTail.trim() ? `${message}\n--- etcd stderr (tail) ---\n${stderrTail.trim()}` : message);
  }
}

/** The service was closed; no further calls are accepted. */
export class ServiceClosed extends TxloopError {
  override readonly name = 'ServiceClosed';
  constructor(readonly app: string) {
    super(`txloop service ${app} is closed`);
  }
}

/** A client-library error in one short clause: `14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED …` → `connect ECONNREFUSED …`. */
function shortCause(err: unknown): string {
  const msg = errorMessage(err)
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/\.? ?Resolution note:\s*$/, '');
  const last = /Last error: (?:Error: )?(.*)$/s.exec(msg)?.[1];
  return (last ?? msg).replace(/\s*\n\s*/g, ' ').trim().slice(0, 300) || 'no message';
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
