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
   * Whether this branch's Try is recorded as succeeded. false in a cancel is an empty rollback
   * (see `tryState` for why): release nothing that the Try did not reserve.
   */
  readonly tryCompleted: boolean;
  /**
   * The Try's recorded outcome. FAILED: it threw, nothing to release. PENDING: unknown — it never
   * ran, or its process died after running it and before recording; if your Try may have reserved
   * something, look in your own data (keyed by branchId) rather than assume nothing happened.
   */
  readonly tryState: 'SUCCEEDED' | 'FAILED' | 'PENDING';
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
