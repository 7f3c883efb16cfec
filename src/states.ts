/**
 * The words txloop's records are made of, as `as const` objects (values are what etcd holds): the
 * transaction modes, a global transaction's status, a Try's outcome, a phase-2 action and its
 * progress. Part of the public API: callers compare `view.status` and `branch.state` with them.
 */

/** How a transaction runs. Every record carries its mode; one written without one is TCC. */
export const Mode = { TCC: 'tcc', SAGA: 'saga', MESSAGE: 'msg' } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/**
 * A mode as records carry it: one this version ships ({@link Mode}) or any other mode name, so that
 * records of a mode a service does not run still read, and the mode registry decides what to do with
 * them. Names are lowercase: a letter, then letters, digits or `-`, at most 32 characters.
 */
export type ModeName = Mode | (string & {});
export const MODE_NAME_RULE = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * A global's status. TCC: TRYING → COMMITTING | ROLLING_BACK → COMMITTED | ROLLED_BACK. Saga:
 * RUNNING → SUCCEEDED, or RUNNING → COMPENSATING → COMPENSATED. 2-phase message: PREPARED →
 * SUBMITTED → DELIVERED, or PREPARED → DISCARDED.
 */
export const GlobalStatus = {
  TRYING: 'TRYING',
  COMMITTING: 'COMMITTING',
  ROLLING_BACK: 'ROLLING_BACK',
  COMMITTED: 'COMMITTED',
  ROLLED_BACK: 'ROLLED_BACK',
  RUNNING: 'RUNNING',
  COMPENSATING: 'COMPENSATING',
  SUCCEEDED: 'SUCCEEDED',
  COMPENSATED: 'COMPENSATED',
  PREPARED: 'PREPARED',
  SUBMITTED: 'SUBMITTED',
  DELIVERED: 'DELIVERED',
  DISCARDED: 'DISCARDED',
} as const;
export type GlobalStatus = (typeof GlobalStatus)[keyof typeof GlobalStatus];

export const TryState = { PENDING: 'PENDING', SUCCEEDED: 'SUCCEEDED', FAILED: 'FAILED' } as const;
export type TryState = (typeof TryState)[keyof typeof TryState];

/**
 * What a branch's owner is ordered to run: TCC's confirm | cancel, a saga step's action |
 * compensate, a message consumer's deliver.
 */
export const Action = { CONFIRM: 'confirm', CANCEL: 'cancel', ACTION: 'action', COMPENSATE: 'compensate', DELIVER: 'deliver' } as const;
export type Action = (typeof Action)[keyof typeof Action];

/**
 * Phase-2 progress of a branch: ACTIVE until its action succeeds (DONE) or its attempts run out and
 * it is PARKED for a human (`txloop retry` / `resolve`). Records written before 0.2 say FAILED for
 * PARKED; they read as PARKED.
 */
export const Phase2State = { ACTIVE: 'ACTIVE', DONE: 'DONE', PARKED: 'PARKED' } as const;
export type Phase2State = (typeof Phase2State)[keyof typeof Phase2State];

/** A decision's outcome. */
export const Outcome = { COMMIT: 'commit', ROLLBACK: 'rollback' } as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

const TERMINAL: ReadonlySet<GlobalStatus> = new Set([GlobalStatus.COMMITTED, GlobalStatus.ROLLED_BACK, GlobalStatus.SUCCEEDED, GlobalStatus.COMPENSATED, GlobalStatus.DELIVERED, GlobalStatus.DISCARDED]);
/** Finished, whatever the mode: kept for the retention, then collected. */
export function isTerminal(status: GlobalStatus): boolean {
  return TERMINAL.has(status);
}

const OPEN: ReadonlySet<GlobalStatus> = new Set([GlobalStatus.TRYING, GlobalStatus.RUNNING, GlobalStatus.PREPARED]);
/** Not decided yet, whatever the mode: a rollback (an operator's abort, the deadline) may still take it. */
export function isOpen(status: GlobalStatus): boolean {
  return OPEN.has(status);
}

const DECIDED: ReadonlySet<GlobalStatus> = new Set([GlobalStatus.COMMITTING, GlobalStatus.ROLLING_BACK, GlobalStatus.COMMITTED, GlobalStatus.ROLLED_BACK, GlobalStatus.COMPENSATING, GlobalStatus.COMPENSATED, GlobalStatus.SUBMITTED, GlobalStatus.DELIVERED, GlobalStatus.DISCARDED]);
/** A status only a decision leads to: its record carries the decision. */
export function isDecided(status: GlobalStatus): boolean {
  return DECIDED.has(status);
}
