/** The shape of a TCC resource a participant registers, and the contexts its handlers receive. */

export interface TryContext<P = unknown> {
  readonly xid: string;
  readonly branchId: string;
  readonly resource: string;
  readonly payload: P;
  /** Epoch ms: the global is rolled back after this, so work past it is wasted. */
  readonly deadline: number;
  /** Aborted at the deadline or when the caller's signal fires. */
  readonly signal: AbortSignal;
}

export interface PhaseTwoContext<P = unknown> {
  readonly xid: string;
  readonly branchId: string;
  readonly resource: string;
  readonly payload: P;
  readonly action: 'confirm' | 'cancel';
  /** 1 for the first attempt; grows across retries, restarts and leader changes. */
  readonly attempt: number;
  /**
   * Whether this branch's Try succeeded. false in a cancel is an empty rollback: the Try never ran,
   * failed, or has not finished; release nothing that the Try did not reserve.
   */
  readonly tryCompleted: boolean;
  /** Aborted when the handler timeout passes or this replica stops leading. */
  readonly signal: AbortSignal;
}

/**
 * A TCC resource. `confirm` and `cancel` must be idempotent: they run at least once and may run again
 * after a crash, a timeout or a leader change.
 */
export interface TccResource<P = unknown, R = unknown> {
  try(ctx: TryContext<P>): Promise<R> | R;
  confirm(ctx: PhaseTwoContext<P>): Promise<void> | void;
  cancel(ctx: PhaseTwoContext<P>): Promise<void> | void;
}
