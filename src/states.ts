/**
 * The words txloop's records are made of, as `as const` objects (values are what etcd holds): the
 * transaction modes, a global transaction's status, a Try's outcome, a phase-2 action and its
 * progress. Part of the public API: callers compare `view.status` and `branch.state` with them.
 */

/** How a transaction runs. Every record carries its mode; one written without one is TCC. */
export const Mode = { TCC: 'tcc' } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/**
 * A mode as records carry it: one this version ships ({@link Mode}) or any other mode name, so that
 * records of a mode a service does not run still read, and the mode registry decides what to do with
 * them. Names are lowercase: a letter, then letters, digits or `-`, at most 32 characters.
 */
export type ModeName = Mode | (string & {});
export const MODE_NAME_RULE = /^[a-z][a-z0-9-]{0,31}$/;

export const GlobalStatus = {
  TRYING: 'TRYING',
  COMMITTING: 'COMMITTING',
  ROLLING_BACK: 'ROLLING_BACK',
  COMMITTED: 'COMMITTED',
  ROLLED_BACK: 'ROLLED_BACK',
} as const;
export type GlobalStatus = (typeof GlobalStatus)[keyof typeof GlobalStatus];

export const TryState = { PENDING: 'PENDING', SUCCEEDED: 'SUCCEEDED', FAILED: 'FAILED' } as const;
export type TryState = (typeof TryState)[keyof typeof TryState];

/** What phase 2 does to a branch. */
export const Action = { CONFIRM: 'confirm', CANCEL: 'cancel' } as const;
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

export function isTerminal(status: GlobalStatus): boolean {
  return status === GlobalStatus.COMMITTED || status === GlobalStatus.ROLLED_BACK;
}
